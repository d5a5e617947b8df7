// Package dispatch is the ops server's agent-facing loop: it hands runs to
// deployment agents through the bote gateway and records what they report.
//
// Outbound, a Dispatcher claims a workspace's next run for the best agent
// (runs.Manager.Dispatch) whenever something may let a run start: a run is
// queued or approved, a run ends, an agent heartbeats room it did not
// offer before (heartbeatKicks), and on a periodic tick (for changes made
// by other replicas). Tenants are dispatched concurrently, each by one
// pass at a time (Run). It sends the agent a
// runproto.Assign with fresh SAS URLs (read-only for the bundle, the saved
// plan and the workspace's state; write-only, short-lived and renewed only
// while the claim is open for the claim's own upload blobs, see links.go)
// and the workspace's secrets
// sealed to the agent's registered key (only ever an agent of the run's
// tenant), and a runproto.Cancel when a run it executes is cancelled,
// timed out or swept.
//
// Inbound, Handle is the botecloud.Run handler for what agents send. The
// agent's tenant and id come ONLY from the gateway-verified From identity,
// and only a connector registered as an agent of that tenant
// (registry.RoleAgent, not disabled) is heard: anything else it sends is
// refused, logged and audited. A run id of another tenant is not found; a
// report on a run the agent does not hold, whose claim token is not the
// run's current claim, or whose claim has ended, is refused (dead-lettered
// with the reason, never applied). Heartbeats go to runs.Manager.Heartbeat,
// log batches to artifacts in order and once each, results to
// runs.Manager.Report, after an apply's uploaded state was verified and
// promoted (States).
//
// All run state lives in the runs store and all artifacts in Blob storage;
// a Dispatcher keeps only caches (log cursors, followers), so a restarted
// the ops server continues every run: agents keep reporting through the bus,
// and an assignment that was claimed but never sent is sent again when the
// agent's heartbeat does not list it.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/audit"
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/secretstore"
)

// Sender sends to one connector through the gateway (*botecloud.Client).
type Sender interface {
	SendToConnector(ctx context.Context, tenant, connector string, msg botecloud.OutMessage) (string, error)
}

// Signer makes blob SAS URLs on the artifacts container
// (*claimcheck.Store opened on it).
type Signer interface {
	Container() string
	Sign(ctx context.Context, c *envelope.Claim, ttl time.Duration) error
	UploadURL(ctx context.Context, blob string, ttl time.Duration) (string, time.Time, error)
	ReadURL(ctx context.Context, blob string, ttl time.Duration) (string, time.Time, error)
}

// Logs appends run log batches (*artifacts.Store); at < 0 with no data
// returns the log's length.
type Logs interface {
	AppendLog(ctx context.Context, key artifacts.RunKey, at int64, data []byte) (int64, error)
}

// Plans stores a plan's JSON beside its run (*artifacts.Store).
type Plans interface {
	Put(ctx context.Context, key artifacts.RunKey, kind artifacts.Kind, r io.Reader, max int64) (*runs.Artifact, error)
}

// States promotes the state an apply claim uploaded to its workspace's
// current state, and names the current state's immutable snapshot for a
// plan to read (*artifacts.Store).
type States interface {
	PromoteState(ctx context.Context, p artifacts.Promotion) (artifacts.StateVersion, error)
	StateSnapshot(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (string, error)
}

// Keys finds a connector's registration (*registry.Registry).
type Keys interface {
	Lookup(clientID string) (registry.Connector, bool)
}

// Defaults for Config.
const (
	DefaultTick        = 10 * time.Second
	DefaultSweepEvery  = 10 * time.Second
	DefaultURLTTL      = 15 * time.Minute
	DefaultUploadTTL   = 10 * time.Minute
	DefaultResendAfter = 30 * time.Second
	DefaultLogWait     = 5 * time.Second
	maxUploadTTL       = 7 * 24 * time.Hour
	sendAttempts       = 3
)

// Config configures a Dispatcher.
type Config struct {
	Manager *runs.Manager
	// Tenants lists every tenant (runs.Store.ListTenants) for the tick.
	Tenants func(ctx context.Context) ([]runs.Tenant, error)
	Sender  Sender
	Signer  Signer
	Logs    Logs
	// Plans, if set, keeps the plan JSON agents report (runproto.Result.Plan).
	Plans Plans
	// Policies, if set, checks every plan against the tenant's policies
	// before it can be approved (*policy.Checker).
	Policies PolicyChecker
	// Drift, if set, records the results of drift checks
	// (*drift.Scheduler).
	Drift  DriftRecorder
	States States
	Keys   Keys
	// Secrets holds deployment secrets; nil means none.
	Secrets secretstore.Store
	// Audit, if set, records refused messages of connectors that are not
	// agents (at a bounded rate; every one is logged).
	Audit Auditor
	// Tick is how often every workspace is tried (default DefaultTick).
	Tick time.Duration
	// SweepEvery is the silent-agent and timeout sweep interval (default
	// DefaultSweepEvery); negative disables sweeping here.
	SweepEvery time.Duration
	// URLTTL is how long download URLs are valid (default DefaultURLTTL).
	URLTTL time.Duration
	// UploadTTL is how long an upload link is valid (default
	// DefaultUploadTTL): at most that long after its claim ended. Agents
	// renew links of an open claim (run.renew) before they upload.
	UploadTTL time.Duration
	// ResendAfter: a run claimed for an agent longer ago than this that
	// the agent's heartbeat does not list is assigned again (default
	// DefaultResendAfter).
	ResendAfter time.Duration
	// LogWait bounds how long a log batch waits for its predecessor, and a
	// result for the log batches before it (default DefaultLogWait).
	LogWait time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
}

// PolicyChecker checks a run's plan (its JSON as kept, nil if none)
// against the policies that apply to it; nil when none does. An error
// means the check could not be made now (the result is retried).
type PolicyChecker interface {
	Check(ctx context.Context, r runs.Run, plan []byte) (*runs.PolicyCheck, error)
}

// DriftRecorder records a drift check's result once its plan phase is
// recorded (r as recorded; plan its JSON, nil if none); other runs are
// ignored. An error leaves the result for the bus to deliver again.
type DriftRecorder interface {
	PlanEnded(ctx context.Context, r runs.Run, plan []byte) error
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Manager == nil:
		return errors.New("dispatch config: Manager is required")
	case c.Tenants == nil:
		return errors.New("dispatch config: Tenants is required")
	case c.Sender == nil:
		return errors.New("dispatch config: Sender is required")
	case c.Signer == nil:
		return errors.New("dispatch config: Signer is required")
	case c.Logs == nil:
		return errors.New("dispatch config: Logs is required")
	case c.States == nil:
		return errors.New("dispatch config: States is required")
	case c.Keys == nil:
		return errors.New("dispatch config: Keys is required")
	case c.Tick < 0:
		return fmt.Errorf("dispatch config: Tick %s is negative", c.Tick)
	case c.URLTTL < 0 || c.URLTTL > maxUploadTTL:
		return fmt.Errorf("dispatch config: URLTTL %s must be between 0 (default) and %s", c.URLTTL, maxUploadTTL)
	case c.UploadTTL < 0 || c.UploadTTL > maxUploadTTL:
		return fmt.Errorf("dispatch config: UploadTTL %s must be between 0 (default) and %s", c.UploadTTL, maxUploadTTL)
	case c.ResendAfter < 0:
		return fmt.Errorf("dispatch config: ResendAfter %s is negative", c.ResendAfter)
	case c.LogWait < 0:
		return fmt.Errorf("dispatch config: LogWait %s is negative", c.LogWait)
	}
	return nil
}

// Dispatcher hands runs to agents and records their reports. Create it
// with New, subscribe its OnChange to the Manager (runs.Manager.Subscribe),
// start Run, and give Handle to botecloud.Client.Run.
type Dispatcher struct {
	cfg Config
	m   *runs.Manager
	log *slog.Logger

	kicks  chan kick
	outbox chan outbound

	roleRefusals   atomic.Int64
	staleDropped   atomic.Int64
	refusalSampler audit.Sampler

	mu      sync.Mutex
	cursors map[string]*cursor
	subs    map[string]map[chan struct{}]struct{}
	agents  map[string]agentView // by tenant/agent, see heartbeatKicks
	// pending are the kicks of tenants a pass runs for (Run), not yet
	// handled; a tenant is present while a pass runs for it.
	pending map[ids.TenantID][]kick
}

// kick asks to dispatch a workspace, or with workspace "" every workspace
// of tenant.
type kick struct {
	tenant    ids.TenantID
	workspace ids.WorkspaceID
}

// outbound is a message the loop sends, so OnChange never blocks.
type outbound struct {
	tenant ids.TenantID
	agent  string
	msg    runproto.Message
}

// New returns a Dispatcher.
func New(cfg Config) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Tick == 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = DefaultSweepEvery
	}
	if cfg.URLTTL == 0 {
		cfg.URLTTL = DefaultURLTTL
	}
	if cfg.UploadTTL == 0 {
		cfg.UploadTTL = DefaultUploadTTL
	}
	if cfg.ResendAfter == 0 {
		cfg.ResendAfter = DefaultResendAfter
	}
	if cfg.LogWait == 0 {
		cfg.LogWait = DefaultLogWait
	}
	if cfg.Secrets == nil {
		cfg.Secrets = secretstore.None{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Dispatcher{
		cfg: cfg, m: cfg.Manager, log: cfg.Logger,
		refusalSampler: audit.Sampler{Rate: refusalAuditRate, Burst: refusalAuditBurst},
		kicks:          make(chan kick, 1024),
		outbox:         make(chan outbound, 1024),
		cursors:        map[string]*cursor{},
		subs:           map[string]map[chan struct{}]struct{}{},
		agents:         map[string]agentView{},
		pending:        map[ids.TenantID][]kick{},
	}, nil
}

// Kick asks for a dispatch in a workspace ("" for every workspace of the
// tenant) soon. It never blocks; the tick catches what a full queue drops.
func (d *Dispatcher) Kick(tenant ids.TenantID, workspace ids.WorkspaceID) {
	select {
	case d.kicks <- kick{tenant, workspace}:
	default:
	}
}

// OnChange is the Manager's change hook (runs.Manager.Subscribe): it wakes followers, queues
// dispatches when a workspace or agent may be free, and tells an agent to
// stop a run it must no longer execute. It never blocks.
func (d *Dispatcher) OnChange(r runs.Run) {
	if d == nil {
		return
	}
	d.notify(r.ID)
	switch {
	case r.State == runs.Queued || r.State == runs.Approved:
		d.Kick(r.Tenant, r.Workspace)
	case r.State.Terminal():
		// The workspace and the agent are free: its next run, or the
		// agent's next run anywhere in the tenant.
		d.Kick(r.Tenant, "")
		if agent, by := endedOn(r); agent != "" && by != agent {
			d.queue(r.Tenant, agent, &runproto.Cancel{RunID: r.ID, Reason: r.LastReason()})
		}
	case r.State.Executing() && r.CancelRequested:
		d.queue(r.Tenant, r.Agent, &runproto.Cancel{RunID: r.ID, ClaimToken: runproto.ClaimToken(claimGeneration(r)), Reason: r.CancelReason})
	}
}

// endedOn returns the agent executing r before its last transition, and
// who made that transition.
func endedOn(r runs.Run) (agent, by string) {
	if len(r.History) == 0 {
		return "", ""
	}
	h := r.History[len(r.History)-1]
	switch h.From {
	case runs.Planning:
		return r.PlanAgent, h.By
	case runs.Applying:
		return r.ApplyAgent, h.By
	}
	return "", h.By
}

func (d *Dispatcher) queue(tenant ids.TenantID, agent string, m runproto.Message) {
	select {
	case d.outbox <- outbound{tenant, agent, m}:
	default:
		d.log.Warn("dispatch outbox full; the agent learns from its next heartbeat", "tenant", tenant, "agent", agent, "type", runproto.TypeOf(m))
	}
}
