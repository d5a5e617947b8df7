// Package runproto is the protocol between the ops server (opsserver)
// and its deployment agents. Messages travel through the bote gateway:
// server → agent with botecloud.SendToConnector, agent → server with
// connector.Send, which arrives at the server with the verified From
// identity. The server takes an agent's tenant and id ONLY from From, never
// from a message body; bodies therefore carry no agent identity.
//
// A body is JSON with a "type" field (see the Type constants); the
// envelope's ContentType is ContentType. Decode checks the type and the
// fields each type requires and fails with a *DecodeError.
//
// Fencing: run.assign carries a claim token (the run's claim generation);
// every run.started, run.logs, run.result and run.renew echoes it, and the
// server ignores reports whose token is not the run's current, open claim,
// so a report from an earlier or ended claim (a previous phase, an agent
// that was declared silent and lost the run, anything after the result)
// never changes the run. Upload links are short-lived (run.renew gets
// fresh ones while the claim is open) and name blobs of the claim's own.
//
// Sizes: a message travels in one Storage Queue message when its encoded
// envelope stays under 64 KiB and by claim check beyond that; keep log
// batches to MaxLogBatchBytes and the gateway does the rest.
package runproto

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/runspec"
	"github.com/botehq/platform/runtime/tfproviders"
	"github.com/botehq/platform/runtime/tfresult"
)

// ContentType is the envelope content type of every runproto message.
const ContentType = "application/vnd.bote.run+json"

// Type names a message.
type Type string

// Message types.
const (
	TypeAssign    Type = "run.assign"      // server → agent
	TypeCancel    Type = "run.cancel"      // server → agent
	TypeHeartbeat Type = "agent.heartbeat" // agent → server
	TypeStarted   Type = "run.started"     // agent → server
	TypeLogs      Type = "run.logs"        // agent → server
	TypeResult    Type = "run.result"      // agent → server
	TypeRenew     Type = "run.renew"       // agent → server
	TypeLinks     Type = "run.links"       // server → agent
	TypeProceed   Type = "run.proceed"     // server → agent
)

// Limits.
const (
	// MaxMessageBytes is the largest body Decode accepts.
	MaxMessageBytes = 4 << 20
	// MaxLogBatchBytes is what an agent should keep a run.logs batch under,
	// so it travels in one queue message (no claim check).
	MaxLogBatchBytes = 32 << 10
	// MaxPlanBytes bounds Result.Plan, so a result stays well under
	// MaxMessageBytes.
	MaxPlanBytes = 2 << 20
	// HeartbeatInterval is how often agents heartbeat.
	HeartbeatInterval = 10 * time.Second
)

// Phase is what part of a run an agent executes.
type Phase string

// Phases.
const (
	PhasePlan  Phase = "plan"  // tfresult.Plan or tfresult.PlanDestroy
	PhaseApply Phase = "apply" // tfresult.Apply of the saved plan
)

// PhaseOf is the phase of a Terraform operation.
func PhaseOf(op tfresult.Operation) Phase {
	if op == tfresult.Apply {
		return PhaseApply
	}
	return PhasePlan
}

// Outcome is how a phase ended.
type Outcome string

// Outcomes.
const (
	Succeeded Outcome = "succeeded"
	Failed    Outcome = "failed"
	Cancelled Outcome = "cancelled"
	// Refused: the agent did not start Terraform (at its concurrency
	// limit, shutting down, or the server did not let it start); the
	// server gives the claim back to the queue for another agent.
	Refused Outcome = "refused"
)

// Duration is a time.Duration written as a Go duration string ("1h0m0s").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"1h30m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Assign (run.assign) gives an agent one phase of a run.
type Assign struct {
	RunID     string             `json:"runId"`
	Tenant    string             `json:"tenant"`
	Workspace string             `json:"workspace"`
	Op        tfresult.Operation `json:"op"`
	// ClaimToken is the claim generation; echo it in every report.
	ClaimToken string `json:"claimToken"`
	// BundleURL is a read-only SAS URL of the configuration bundle
	// (tar.gz, tfarchive.Pack), for plan and destroy; BundleSHA256 and
	// BundleSize let the agent check what it downloaded.
	BundleURL    string `json:"bundleURL,omitempty"`
	BundleSHA256 string `json:"bundleSha256,omitempty"`
	BundleSize   int64  `json:"bundleSize,omitempty"`
	// WorkdirURL is a read-only SAS URL of the saved plan with its working
	// directory (tfarchive.Pack with Workdir), for apply; the agent must
	// check WorkdirSHA256 and WorkdirSize before applying.
	WorkdirURL    string `json:"workdirURL,omitempty"`
	WorkdirSHA256 string `json:"workdirSha256,omitempty"`
	WorkdirSize   int64  `json:"workdirSize,omitempty"`
	// UploadURL is a write-only SAS URL of one blob where the agent PUTs
	// (x-ms-blob-type: BlockBlob) the working directory with the saved
	// plan after a plan with changes; set for plan and destroy.
	UploadURL string `json:"uploadURL,omitempty"`
	// StateURL is a read-only SAS URL of the workspace's Terraform state
	// as the last apply left it (local backend); for plan and destroy. The
	// blob may not exist yet (404: no state). A configuration with a remote
	// backend keeps its state there and never leaves one to store.
	StateURL string `json:"stateURL,omitempty"`
	// StateUploadURL is a write-only SAS URL of one blob of this claim
	// where the agent PUTs the local state an apply leaves
	// (terraform.tfstate), whether the apply succeeded or not: a failed
	// apply may have changed resources too. It reports the state's size
	// and SHA-256 in its result; the server promotes the state to the
	// workspace's only when it accepts that result.
	StateUploadURL string `json:"stateUploadURL,omitempty"`
	// UploadExpiresAt is when UploadURL and StateUploadURL stop working.
	// Upload links are short-lived so that none outlives its claim by
	// much: an agent about to upload with less than half of a link's
	// lifetime left asks for fresh ones (run.renew), which the server
	// gives only while the claim is open.
	UploadExpiresAt time.Time `json:"uploadExpiresAt,omitzero"`
	// Secrets is a compact JWE sealed to the agent's registered key (see
	// Seal); plaintext is a JSON Secrets. Empty when there are none.
	Secrets string `json:"secrets,omitempty"`
	// Timeout bounds this phase; the agent stops Terraform after it.
	Timeout Duration `json:"timeout,omitempty"`
	// Plan narrows or changes a plan or destroy (-target, -replace,
	// -refresh-only).
	Plan runspec.PlanOptions `json:"plan,omitzero"`
	// Vars are the workspace's input variables that are not sensitive (the
	// sensitive ones travel sealed in Secrets).
	Vars map[string]string `json:"vars,omitempty"`
	// LogOffset is the length of the run's log when the phase was
	// assigned: where this claim's first log batch starts (see Logs.Offset).
	LogOffset int64 `json:"logOffset"`
	// Providers are the workspace's provider sources: its mirrors replace
	// the agent's, and it may turn direct installation off.
	Providers tfproviders.Sources `json:"providers,omitzero"`
}

// Cancel (run.cancel) asks an agent to stop a run.
type Cancel struct {
	RunID      string `json:"runId"`
	ClaimToken string `json:"claimToken,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// Heartbeat (agent.heartbeat) says an agent is alive, every
// HeartbeatInterval.
type Heartbeat struct {
	Capacity int               `json:"capacity"`
	Running  []string          `json:"running"`
	Labels   map[string]string `json:"labels,omitempty"`
	Version  string            `json:"version,omitempty"`
	// TerraformVersion is the version of the terraform the agent runs.
	TerraformVersion string `json:"terraformVersion,omitempty"`
	// Draining: the agent is shutting down and takes no new run.
	Draining bool `json:"draining,omitempty"`
	// ProviderSources: the agent applies a workspace's provider sources
	// (Assign.Providers). An older agent ignores them, so the server
	// gives a workspace that has them only to agents that say this.
	ProviderSources bool `json:"providerSources,omitempty"`
}

// Started (run.started) asks to start Terraform for a claim: the agent
// starts it only once the server answered run.proceed (the start fence),
// so the server knows of every claim whether Terraform may have started.
// The agent repeats it until answered; the server answers every copy.
type Started struct {
	RunID      string `json:"runId"`
	ClaimToken string `json:"claimToken"`
	Phase      Phase  `json:"phase"`
}

// Logs (run.logs) is a batch of log lines (without newlines). Seq counts
// an agent's batches of one claim from 0; the server appends batches in
// order, once each.
type Logs struct {
	RunID      string   `json:"runId"`
	ClaimToken string   `json:"claimToken"`
	Seq        int64    `json:"seq"`
	Lines      []string `json:"lines"`
	// Offset, when set, is where this batch starts in the run's log:
	// Assign.LogOffset plus the bytes of the claim's earlier batches, each
	// line counted with a trailing newline (artifacts.Lines). The server
	// then appends exactly there, which stays exactly-once and in order
	// across redeliveries, server restarts and several server replicas.
	// Without it the server orders batches by Seq in its memory.
	Offset *int64 `json:"offset,omitempty"`
}

// LinesBytes is how many bytes lines take in the run's log (each with a
// trailing newline): what an agent adds to Logs.Offset per batch.
func LinesBytes(lines []string) int64 {
	var n int64
	for _, l := range lines {
		n += int64(len(strings.TrimSuffix(l, "\n"))) + 1
	}
	return n
}

// Result (run.result) ends a phase.
type Result struct {
	RunID      string           `json:"runId"`
	ClaimToken string           `json:"claimToken"`
	Phase      Phase            `json:"phase"`
	Outcome    Outcome          `json:"outcome"`
	Result     *tfresult.Result `json:"result,omitempty"`
	// Reason explains a failure the Result does not (download failed, ...).
	Reason string `json:"reason,omitempty"`
	// WorkdirUploaded says the working directory with the saved plan was
	// PUT to the assignment's UploadURL; its size and SHA-256 follow.
	WorkdirUploaded bool   `json:"workdirUploaded,omitempty"`
	WorkdirSHA256   string `json:"workdirSha256,omitempty"`
	WorkdirSize     int64  `json:"workdirSize,omitempty"`
	// StateUploaded says an apply PUT the local state it left to the
	// assignment's StateUploadURL; its size and SHA-256 follow. The server
	// makes it the workspace's state only if they match what was uploaded
	// and it accepts this result.
	StateUploaded bool   `json:"stateUploaded,omitempty"`
	StateSHA256   string `json:"stateSha256,omitempty"`
	StateSize     int64  `json:"stateSize,omitempty"`
	// LastSeq is the Seq of the last run.logs batch of this claim (-1:
	// none), so the server knows when the log is complete.
	LastSeq int64 `json:"lastSeq"`
	// Plan is the saved plan of a successful plan phase as JSON
	// (planrender.Keep: Terraform's plan format, sensitive values masked,
	// the run's secrets redacted), at most MaxPlanBytes; the server stores
	// it beside the run so operators see the changes before approving.
	Plan json.RawMessage `json:"plan,omitempty"`
	// Draining, with Outcome Refused: the agent refused because it is
	// shutting down; the server gives it no further run.
	Draining bool `json:"draining,omitempty"`
}

// Renew (run.renew) asks for fresh upload links of a claim the agent
// still executes. The server answers with run.links while the claim is
// open, and refuses (no answer) once it ended.
type Renew struct {
	RunID      string `json:"runId"`
	ClaimToken string `json:"claimToken"`
}

// Links (run.links) are fresh upload links of one claim: UploadURL for a
// plan's working directory, StateUploadURL for an apply's state, both
// valid until ExpiresAt.
type Links struct {
	RunID          string    `json:"runId"`
	ClaimToken     string    `json:"claimToken"`
	UploadURL      string    `json:"uploadURL,omitempty"`
	StateUploadURL string    `json:"stateUploadURL,omitempty"`
	ExpiresAt      time.Time `json:"expiresAt"`
}

// Proceed (run.proceed) answers run.started: the server recorded that
// Terraform starts for this claim; the agent may start it.
type Proceed struct {
	RunID      string `json:"runId"`
	ClaimToken string `json:"claimToken"`
}

// Secrets is the plaintext of Assign.Secrets: environment for the
// Terraform process and input variables.
type Secrets struct {
	Env  map[string]string `json:"env,omitempty"`
	Vars map[string]string `json:"vars,omitempty"`
}

// Empty reports whether there is nothing to send.
func (s Secrets) Empty() bool { return len(s.Env) == 0 && len(s.Vars) == 0 }

// Message is one of *Assign, *Cancel, *Heartbeat, *Started, *Logs,
// *Result, *Renew, *Links, *Proceed.
type Message interface{ messageType() Type }

func (*Assign) messageType() Type    { return TypeAssign }
func (*Cancel) messageType() Type    { return TypeCancel }
func (*Heartbeat) messageType() Type { return TypeHeartbeat }
func (*Started) messageType() Type   { return TypeStarted }
func (*Logs) messageType() Type      { return TypeLogs }
func (*Result) messageType() Type    { return TypeResult }
func (*Renew) messageType() Type     { return TypeRenew }
func (*Links) messageType() Type     { return TypeLinks }
func (*Proceed) messageType() Type   { return TypeProceed }

// TypeOf is the type of m.
func TypeOf(m Message) Type { return m.messageType() }

// ClaimToken formats a claim generation (the length of a run's history
// right after the claim: it grows with every transition, so each claim of
// a run has its own).
func ClaimToken(generation int) string { return strconv.Itoa(generation) }

// ParseClaimToken reads a token ClaimToken made, and only such a token:
// "01" or "+1" are not another spelling of "1".
func ParseClaimToken(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0 && strconv.Itoa(n) == s
}
