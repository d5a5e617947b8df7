// Package runs is the Terraform run lifecycle of the ops server: tenants,
// workspaces, runs, workspace locks and deployment agents, and the rules
// that move a run from queued to applied.
//
// A run goes queued → planning → planned → approved → applying → applied,
// or ends no_changes, failed, cancelled or timed_out; the transition table
// in state.go is the whole lifecycle and every change is checked against
// it (a *TransitionError otherwise). A workspace runs one run at a time:
// claiming a run takes the workspace lock and moves the run in one atomic,
// conditional write (Store.Commit), so later runs queue behind it in
// creation order and two ops server replicas never start one workspace
// twice. The lock is held from the claim until the run ends, including
// while a saved plan waits for approval, so the plan applied is exactly
// the plan approved. The saved plan and working directory are a Blob
// artifact (Run.Plan) any agent of the tenant can apply.
//
// Agents heartbeat; SweepSilentAgents fails the runs of agents that went
// silent and releases their workspaces, SweepTimeouts ends runs past their
// deadline. Cancel ends a run no agent is working on at once and asks the
// agent of an executing run to stop (it confirms with a Report).
//
// Storage is behind the Store interface, implemented by package runstore
// (Azure Table Storage, and an in-memory store for unit tests), whose
// contract suite both pass. Every Store call is scoped by tenant.
package runs
