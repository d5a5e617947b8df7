package runs

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-version"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runspec"
	"github.com/botehq/platform/runtime/tfproviders"
	"github.com/botehq/platform/runtime/tfresult"
)

// Tenant is a customer. Its id is the gateway's tenant id.
type Tenant struct {
	ID          ids.TenantID `json:"id"`
	DisplayName string       `json:"displayName,omitempty"`
	CreatedAt   time.Time    `json:"createdAt"`
}

// Validate checks the tenant's fields.
func (t Tenant) Validate() error {
	return ids.Validate("tenant", string(t.ID))
}

// Workspace is one Terraform configuration for one environment of a tenant.
// Its runs go to the tenant's agents whose labels match AgentLabels.
type Workspace struct {
	Tenant      ids.TenantID    `json:"tenant"`
	Name        ids.WorkspaceID `json:"name"`
	Description string          `json:"description,omitempty"`
	// AgentLabels selects agents: every key must be present on the agent
	// with the same value. Empty means any agent of the tenant.
	AgentLabels map[string]string `json:"agentLabels,omitempty"`
	// TerraformVersion is a version constraint ("~> 1.9", ">= 1.10,
	// < 2.0") the terraform of an agent must meet to run the workspace
	// (agents report theirs in heartbeats); empty means any.
	TerraformVersion string `json:"terraformVersion,omitempty"`
	// Vars are the workspace's input variables that are not sensitive,
	// given to every plan (sensitive ones live in the secret store).
	Vars    map[string]string `json:"vars,omitempty"`
	Options Options           `json:"options"`
	// Providers override the agents' provider sources for the
	// workspace's runs (runproto.Assign.Providers).
	Providers tfproviders.Sources `json:"providers,omitzero"`
	CreatedAt time.Time           `json:"createdAt"`
	// ETag is the store's concurrency token; "" when not stored yet.
	ETag string `json:"-"`
}

// Options tune a workspace's runs (the rule is runspec's, which clients
// check too). Zero durations take the defaults.
type Options = runspec.Options

// Defaults for Options.
const (
	DefaultPlanTimeout     = runspec.DefaultPlanTimeout
	DefaultApplyTimeout    = runspec.DefaultApplyTimeout
	DefaultApprovalTimeout = runspec.DefaultApprovalTimeout
	MaxTimeout             = runspec.MaxTimeout
)

// timeout returns how long a run of a workspace with options o may stay
// in s; 0 means no deadline.
func timeout(o Options, s State) time.Duration {
	pick := func(v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		return v
	}
	switch s {
	case Planning:
		return pick(o.PlanTimeout, DefaultPlanTimeout)
	case Applying:
		return pick(o.ApplyTimeout, DefaultApplyTimeout)
	case Planned:
		return pick(o.ApprovalTimeout, DefaultApprovalTimeout)
	}
	return 0
}

// Validate checks the workspace's fields (runspec.Workspace).
func (w Workspace) Validate() error {
	err := runspec.Workspace{Tenant: string(w.Tenant), Name: string(w.Name), Description: w.Description, AgentLabels: w.AgentLabels,
		Vars: w.Vars, TerraformVersion: w.TerraformVersion, Options: w.Options}.Validate()
	if err != nil {
		return err
	}
	if err := w.Providers.Validate(); err != nil {
		return fmt.Errorf("workspace %w", err)
	}
	return nil
}

// Limits of a workspace's plain variables (they are stored with it).
const (
	MaxVars         = runspec.MaxVars
	MaxVarBytes     = runspec.MaxVarBytes
	MaxAllVarsBytes = runspec.MaxAllVarsBytes
)

// ValidateVars checks variable names and sizes (runspec.ValidateVars).
func ValidateVars(vars map[string]string) error { return runspec.ValidateVars(vars) }

// ValidVarName reports whether k can name a workspace variable.
func ValidVarName(k string) bool { return runspec.ValidVarName(k) }

// Runs reports whether agent a may run the workspace's runs: it has the
// workspace's labels, a terraform that meets its version constraint, and
// applies its provider sources if it has any.
func (w Workspace) Runs(a Agent) bool {
	return a.Matches(w.AgentLabels) && w.TerraformAccepts(a.TerraformVersion) && w.SourcesApplied(a)
}

// SourcesApplied reports whether agent a applies the workspace's
// provider sources: it has none, or a is an agent that does.
func (w Workspace) SourcesApplied(a Agent) bool {
	return w.Providers.IsZero() || a.ProviderSources
}

// TerraformAccepts reports whether a terraform of version v meets the
// workspace's constraint (an unknown version meets only no constraint).
func (w Workspace) TerraformAccepts(v string) bool {
	if w.TerraformVersion == "" {
		return true
	}
	c, err := version.NewConstraint(w.TerraformVersion)
	if err != nil {
		return false
	}
	got, err := version.NewVersion(v)
	return err == nil && c.Check(got)
}

// Operation is what a run does to the workspace's infrastructure.
type Operation string

// Operations.
const (
	OpApply   Operation = "apply"   // plan the configuration, then apply it
	OpDestroy Operation = "destroy" // plan a destroy, then apply it
)

// Valid reports whether o is known.
func (o Operation) Valid() bool { return o == OpApply || o == OpDestroy }

// Run is one plan (and possibly apply) of a workspace.
type Run struct {
	ID        string          `json:"id"`
	Tenant    ids.TenantID    `json:"tenant"`
	Workspace ids.WorkspaceID `json:"workspace"`
	Operation Operation       `json:"operation"`
	State     State           `json:"state"`
	Message   string          `json:"message,omitempty"`
	CreatedBy string          `json:"createdBy,omitempty"`
	// CreatedByID identifies who queued the run stably (for four-eyes
	// approval), where CreatedBy is for people to read.
	CreatedByID string    `json:"createdById,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	// Bundle is the configuration to run (see package artifacts).
	Bundle *Artifact `json:"bundle"`
	// PlanOptions narrow or change the plan (-target, -replace,
	// -refresh-only).
	PlanOptions runspec.PlanOptions `json:"planOptions,omitzero"`
	// DriftCheck: a drift check (package drift) queued this refresh-only
	// plan to compare the state with reality. It is never applied
	// automatically, even in a workspace that auto-applies.
	DriftCheck bool `json:"driftCheck,omitempty"`
	// Plan is the saved plan with its working directory, set when the
	// plan ends; the apply applies exactly this, on any agent.
	Plan *Artifact `json:"plan,omitempty"`
	// PlanJSON is the saved plan as JSON (planrender.Keep) for operators to
	// see; set when a plan phase ends with it.
	PlanJSON *Artifact `json:"planJson,omitempty"`
	// Agent is working on the run now (planning or applying); "" otherwise.
	Agent string `json:"agent,omitempty"`
	// PlanAgent and ApplyAgent record who did each phase.
	PlanAgent  string `json:"planAgent,omitempty"`
	ApplyAgent string `json:"applyAgent,omitempty"`
	// Deadline is when the current state times out; zero means never.
	Deadline time.Time `json:"deadline,omitzero"`
	// CancelRequested asks the agent to stop; it confirms by reporting
	// Cancelled. CancelReason says who asked and why.
	CancelRequested bool   `json:"cancelRequested,omitempty"`
	CancelReason    string `json:"cancelReason,omitempty"`
	// TerraformStarted is when the server let the agent of the current
	// claim start Terraform (Manager.Start); nil until then. A lost
	// agent's claim goes back to the queue only while it is nil, or for a
	// plan; an apply it started needs attention instead.
	TerraformStarted *time.Time       `json:"terraformStarted,omitempty"`
	PlanResult       *tfresult.Result `json:"planResult,omitempty"`
	ApplyResult      *tfresult.Result `json:"applyResult,omitempty"`
	// Policy is the policy check of the latest plan (nil: no policy
	// applied, or a server without policies).
	Policy *PolicyCheck `json:"policy,omitempty"`
	// History records every transition, oldest first.
	History []Transition `json:"history"`
	// ETag is the store's concurrency token; "" when not stored yet.
	ETag string `json:"-"`
}

// Transition is one recorded state change.
type Transition struct {
	From   State     `json:"from,omitempty"`
	To     State     `json:"to"`
	At     time.Time `json:"at"`
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

// TerraformOp is the Terraform operation for the run's current phase.
func (r *Run) TerraformOp() tfresult.Operation {
	switch {
	case r.State == Applying || r.State == Approved:
		return tfresult.Apply
	case r.Operation == OpDestroy:
		return tfresult.PlanDestroy
	}
	return tfresult.Plan
}

// move validates and applies a transition to r (in memory only).
func (r *Run) move(to State, at time.Time, by, reason string, opts Options) error {
	if err := CheckTransition(r.ID, r.State, to); err != nil {
		return err
	}
	r.History = append(r.History, Transition{From: r.State, To: to, At: at, By: by, Reason: reason})
	r.State, r.UpdatedAt = to, at
	r.Deadline = time.Time{}
	if d := timeout(opts, to); d > 0 {
		r.Deadline = at.Add(d)
	}
	if !to.Executing() {
		r.Agent, r.CancelRequested, r.CancelReason = "", false, ""
	} else {
		r.TerraformStarted = nil // a new claim
	}
	return nil
}

// Claim is the run's claim generation: the length of its history right
// after its latest claim (its last move into an executing state), 0 if it
// was never claimed. Each claim of a run has its own; agents echo it as
// their claim token (runproto.ClaimToken).
func (r *Run) Claim() int {
	for i := len(r.History) - 1; i >= 0; i-- {
		if r.History[i].To.Executing() {
			return i + 1
		}
	}
	return 0
}

// LastReason is the reason recorded with the latest transition.
func (r *Run) LastReason() string {
	if len(r.History) == 0 {
		return ""
	}
	return r.History[len(r.History)-1].Reason
}

// Lock is a workspace's run lock: Run holds the workspace from its claim
// until it ends. There is one per workspace, stored next to its runs so a
// claim changes lock and run in one atomic transaction.
type Lock struct {
	Tenant    ids.TenantID    `json:"tenant"`
	Workspace ids.WorkspaceID `json:"workspace"`
	// Run holds the lock; "" means free.
	Run string `json:"run,omitempty"`
	// Agent is working on Run now; "" between phases.
	Agent string    `json:"agent,omitempty"`
	Since time.Time `json:"since,omitzero"`
	// Deadline mirrors the run's deadline so sweeps read locks only.
	Deadline time.Time `json:"deadline,omitzero"`
	// Started is the last run taken from the workspace's queue. Runs start
	// in creation order, so every queued run is newer (give or take clock
	// skew between replicas): the queue is read from there, not from the
	// workspace's first run.
	Started string `json:"started,omitempty"`
	ETag    string `json:"-"`
}

// Held reports whether a run holds the lock.
func (l Lock) Held() bool { return l.Run != "" }

// Agent is a deployment agent of a tenant (a bote connector).
type Agent struct {
	Tenant ids.TenantID `json:"tenant"`
	ID     string       `json:"id"`
	// Labels let workspaces select agents (e.g. "env": "prod").
	Labels map[string]string `json:"labels,omitempty"`
	// Capacity is how many runs the agent executes at once.
	Capacity int    `json:"capacity"`
	Version  string `json:"version,omitempty"` // software version
	// TerraformVersion is the version of the terraform the agent runs.
	TerraformVersion string    `json:"terraformVersion,omitempty"`
	RegisteredAt     time.Time `json:"registeredAt"`
	LastHeartbeat    time.Time `json:"lastHeartbeat"`
	// Silent is set by the sweeper once the agent stopped heartbeating;
	// the next heartbeat clears it.
	Silent bool `json:"silent,omitempty"`
	// Draining: the agent is shutting down and takes no new run (its
	// heartbeat says so, or it refused a run for that reason).
	Draining bool `json:"draining,omitempty"`
	// ProviderSources: the agent applies a workspace's provider sources
	// (Workspace.Providers); an older agent would ignore them, installing
	// from its own sources (the origin registries where a workspace turned
	// them off), so it does not run such a workspace.
	ProviderSources bool   `json:"providerSources,omitempty"`
	ETag            string `json:"-"`
}

// Validate checks the agent's fields.
func (a Agent) Validate() error {
	if err := ids.Validate("tenant", string(a.Tenant)); err != nil {
		return err
	}
	if err := ids.Validate("agent", a.ID); err != nil {
		return err
	}
	if a.Capacity < 1 || a.Capacity > 64 {
		return fmt.Errorf("agent capacity %d must be between 1 and 64", a.Capacity)
	}
	for k, v := range a.Labels {
		if err := registry.ValidateLabel(k, v); err != nil {
			return fmt.Errorf("agent labels: %w", err)
		}
	}
	return nil
}

// Matches reports whether the agent carries every label of selector.
func (a Agent) Matches(selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := a.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// NewRunID returns a new run id, "run-" and 16 characters that sort by
// creation time (48 bits of milliseconds, then 32 bits that start random),
// so a workspace's runs list oldest first straight from the store. Ids from
// one process are strictly increasing even within a millisecond or when
// the clock steps back (the ULID monotonic rule); across replicas, runs
// created in the same millisecond order arbitrarily.
func NewRunID(now time.Time) string {
	idMu.Lock()
	defer idMu.Unlock()
	ms := uint64(max(now.UnixMilli(), 0))
	if ms <= idLastMS {
		ms = idLastMS
		idLastLow++
		if idLastLow == 0 { // 2^32 ids in one millisecond: borrow the next one
			ms++
		}
	} else {
		var r [4]byte
		_, _ = rand.Read(r[:])                         // never fails (crypto/rand)
		idLastLow = binary.BigEndian.Uint32(r[:]) >> 1 // room to count up
	}
	idLastMS = ms
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], ms<<16)
	binary.BigEndian.PutUint32(b[6:], idLastLow)
	return "run-" + idEncoding.EncodeToString(b[:])
}

var (
	idMu      sync.Mutex
	idLastMS  uint64
	idLastLow uint32
)

// queueSlack is how much older than the last run started from a queue a
// queued run may be: clock skew between replicas, and the time between
// allocating an id (NewRunID, to upload a bundle under it) and enqueueing
// the run, which Enqueue bounds to maxIDAge.
const (
	queueSlack = time.Hour
	maxIDAge   = 30 * time.Minute
)

// queueFloor is the smallest id a queued run can have, given the last run
// started from the queue: runs are claimed oldest first, so only runs
// created after it, less queueSlack, can still wait.
func queueFloor(started string) string {
	at, ok := runIDTime(started)
	if !ok || at.UnixMilli() < queueSlack.Milliseconds() {
		return ""
	}
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], uint64(at.Add(-queueSlack).UnixMilli())<<16)
	return "run-" + idEncoding.EncodeToString(b[:])
}

// runIDTime is when id was allocated.
func runIDTime(id string) (time.Time, bool) {
	raw, err := idEncoding.DecodeString(strings.TrimPrefix(id, "run-"))
	if !ValidRunID(id) || err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(append(raw[:6:6], 0, 0)) >> 16)), true
}

// ValidRunID reports whether id has the form NewRunID produces.
func ValidRunID(id string) bool {
	rest, ok := strings.CutPrefix(id, "run-")
	if !ok || len(rest) != 16 {
		return false
	}
	_, err := idEncoding.DecodeString(rest)
	return err == nil
}

func cloneLabels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}
