// Package exitcode is opsbot's exit codes. They are part of the CLI's
// interface: scripts branch on them, and the end-to-end suites
// (integration/e2e, integration/ops, integration/drift) assert them by
// these names rather than copying the numbers. docs/opsbot.md lists them.
package exitcode

// Exit codes of opsbot.
const (
	OK               = 0
	Error            = 1   // anything not below
	Usage            = 2   // bad flags or configuration
	RelayUnreachable = 3   // network, DNS, TLS or proxy failure reaching the relay
	NoListener       = 4   // no ops server connected to the hybrid connection
	RelayAuth        = 5   // the relay refused the SAS key or Entra ID token
	APIAuth          = 6   // the ops server refused the operator credential
	NotFound         = 7   // the hybrid connection does not exist
	Timeout          = 8   // the request did not finish in time
	Unknown          = 9   // no such tenant, workspace or run
	Interrupted      = 130 // SIGINT, as shells report it

	// Outcomes of a run a command waited for (plan, apply, destroy, runs
	// wait). Like terraform plan -detailed-exitcode, "the plan has
	// changes" is not an error but needs its own code; codes 2 to 8 are
	// taken, so run outcomes start at 10.
	Changes   = 10 // the plan succeeded and has changes: it waits for approval
	RunFailed = 11 // the run failed (Terraform error, agent lost, refused artifact)
	RunEnded  = 12 // the run was cancelled or timed out
)
