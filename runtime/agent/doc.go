// Package agent is the deployment agent's run executor: a bote connector
// handler that runs the Terraform phases the ops server assigns to it
// (runproto run.assign) and reports back through the gateway.
//
// For each assignment the agent makes a fresh working directory (0700)
// under its work directory, downloads the configuration bundle (plan,
// destroy) or the saved plan with its working directory (apply) from the
// read-only SAS link in the assignment, checks its size and SHA-256, unpacks
// it with tfarchive.Unpack, opens the sealed secrets with its own private
// key, and runs the phase with tfrun. Log lines stream back as run.logs
// batches in order (seq from 0, each batch sent until the gateway accepted
// it before the next one goes); run.started and run.result frame the phase.
// After a plan with changes the working directory, plan file and
// .terraform/ included, is packed and PUT to the assignment's write-only
// upload link, so the apply can run on any agent of the tenant. The working
// directory is removed when the phase ends, whatever the outcome.
//
// run.cancel cancels the run's context: tfrun interrupts Terraform (SIGINT),
// waits for the cancel grace and kills it; the phase reports cancelled.
// Heartbeats (agent.heartbeat) go out every HeartbeatInterval with the runs
// in flight; the server answers with run.cancel for runs the agent must
// stop.
//
// At most Concurrency phases run at once. An assignment above the limit
// waits up to QueueWait for a slot (the gateway message stays invisible in
// the agent's queue meanwhile, so it is redelivered if the agent dies);
// after that, or while the agent shuts down, it is refused with a failed
// run.result whose Reason starts with ReasonRefused, so the server frees
// the workspace.
//
// Secrets never leave the Terraform process: they are given to it as
// environment variables and input variables through tfrun, tfrun redacts
// them from log lines and diagnostics, and the agent never logs an
// assignment (its SAS links are credentials too).
package agent
