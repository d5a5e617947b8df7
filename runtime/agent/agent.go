package agent

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/seen"
	"github.com/botehq/platform/runtime/tfproviders"
	"github.com/botehq/platform/runtime/tfrun"
)

// Sender sends a message to the cloud; *connector.Client is one.
type Sender interface {
	Send(ctx context.Context, m connector.OutMessage) (string, error)
}

// Terraform runs one Terraform phase; *tfrun.Runner is one.
type Terraform interface {
	Run(ctx context.Context, job tfrun.Job, sink tfrun.Sink) (*tfrun.Result, error)
}

// ReasonRefused starts the Reason of a run.result for an assignment the
// agent did not run (at its concurrency limit, shutting down, not its
// tenant).
const ReasonRefused = "refused by agent: "

// Config configures an Agent.
type Config struct {
	// Tenant and ID are the agent's connector identity.
	Tenant, ID string
	// Key is the agent's private key (the one registered with the idp);
	// sealed secrets are opened with it.
	Key *ecdsa.PrivateKey
	// WorkDir holds the runs' working directories (created 0700), in a
	// directory per agent process. Several agents may share it; what a
	// process that died left there is removed when the next one starts.
	WorkDir string
	// Concurrency is how many phases run at once (default 1).
	Concurrency int
	// QueueWait is how long an assignment above Concurrency waits for a
	// slot before it is refused (default 1m).
	QueueWait time.Duration
	// HeartbeatInterval (default runproto.HeartbeatInterval).
	HeartbeatInterval time.Duration
	// ShutdownGrace is how long running phases may go on once Run's
	// context ends before they are cancelled (default 5m).
	ShutdownGrace time.Duration
	// Labels, Version and TerraformVersion are reported in heartbeats. The
	// server serves the agent with the labels its registration grants;
	// Labels can only narrow them (none: all the registered labels).
	Labels           map[string]string
	Version          string
	TerraformVersion string

	// Server is the ops server's service name on the gateway (opsserver
	// --service-name; default DefaultServer). Run messages from any other
	// sender are dropped: every cloud service on the gateway may address
	// any connector, and only the ops server assigns runs.
	Server string

	// ProviderCache is the plugin cache the runs share (nil: none, every
	// init installs from scratch).
	ProviderCache *tfproviders.Cache
	// ProviderSources are where init installs providers from; a
	// workspace may override them (runproto.Assign.Providers).
	ProviderSources tfproviders.Sources
	// PlanWithoutProviders leaves the providers out of a saved plan's
	// working directory: the apply installs them (from the plugin cache
	// or the mirrors, as the lock file says) instead of downloading them
	// with the plan. Every agent that may apply the workspace's plans
	// needs a source for them then.
	PlanWithoutProviders bool
	// CLIConfig is the agent's own Terraform CLI configuration
	// (credentials, host blocks): each run's configuration starts with it.
	CLIConfig []byte

	Terraform Terraform
	Sender    Sender
	// HTTPClient downloads and uploads artifacts (default: no overall
	// timeout, the run's context bounds it).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Validate checks the configuration and names the bad field.
func (c Config) Validate() error {
	if err := ids.Validate("tenant", c.Tenant); err != nil {
		return fmt.Errorf("agent config: Tenant: %w", err)
	}
	if err := ids.Validate("connector", c.ID); err != nil {
		return fmt.Errorf("agent config: ID: %w", err)
	}
	switch {
	case c.Key == nil:
		return errors.New("agent config: Key is required")
	case c.WorkDir == "":
		return errors.New("agent config: WorkDir is required")
	case c.Concurrency < 0:
		return fmt.Errorf("agent config: Concurrency %d must not be negative", c.Concurrency)
	case c.QueueWait < 0:
		return fmt.Errorf("agent config: QueueWait %s must not be negative", c.QueueWait)
	case c.HeartbeatInterval < 0:
		return fmt.Errorf("agent config: HeartbeatInterval %s must not be negative", c.HeartbeatInterval)
	case c.ShutdownGrace < 0:
		return fmt.Errorf("agent config: ShutdownGrace %s must not be negative", c.ShutdownGrace)
	case c.Terraform == nil:
		return errors.New("agent config: Terraform is required")
	case c.Sender == nil:
		return errors.New("agent config: Sender is required")
	}
	if err := c.ProviderSources.Validate(); err != nil {
		return fmt.Errorf("agent config: ProviderSources: %w", err)
	}
	if c.Server != "" {
		if err := (envelope.Identity{Service: c.Server}).Validate(); err != nil {
			return fmt.Errorf("agent config: Server: %w", err)
		}
	}
	for k, v := range c.Labels {
		if err := registry.ValidateLabel(k, v); err != nil {
			return fmt.Errorf("agent config: Labels: %w", err)
		}
	}
	return nil
}

// DefaultServer is the ops server's default service name on the gateway
// (opsserver --service-name). It stays the binary's old name: it is what
// the ops server stamps as the sender of run messages, what agents accept
// them from and what the gateway's --cloud-service-keys name its keys
// under, so a new name would cut off every agent and gateway not
// reconfigured at the same time.
const DefaultServer = "relayserver"

// Agent executes assigned runs. It is a connector.Handler; Run keeps its
// heartbeat and shuts it down.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	slots chan struct{}
	// dir is this process's directory under WorkDir, where the runs'
	// directories are made; releaseDir removes it when Run ends.
	dir        string
	releaseDir func()

	// deliver bounds every message the agent sends; it ends only when Run
	// gives up on a clean shutdown, so a result is never dropped because
	// the run that produced it was cancelled.
	deliver     context.Context
	stopDeliver context.CancelFunc
	// runs is the parent of every run's context.
	runs       context.Context
	cancelRuns context.CancelCauseFunc

	mu        sync.Mutex
	active    map[string]*activeRun // by run id
	waiting   map[string]*waiter    // by runID/claimToken: assignments waiting for a slot
	draining  bool
	drainCh   chan struct{}                   // closed when draining starts
	done      *seen.Set                       // runID/claimToken of phases this agent ended
	cancelled map[string]string               // runID/claimToken → reason, for cancels that came before their assignment
	renewals  map[string]chan *runproto.Links // runID/claimToken → an upload waiting for fresh links
	wg        sync.WaitGroup
	fence     fence // claims waiting for run.proceed
}

type activeRun struct {
	id, token string
	cancel    context.CancelCauseFunc
}

// New returns an Agent; it creates WorkDir.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1
	}
	if cfg.Server == "" {
		cfg.Server = DefaultServer
	}
	if cfg.QueueWait == 0 {
		cfg.QueueWait = time.Minute
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = runproto.HeartbeatInterval
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 5 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create work directory %s: %w", cfg.WorkDir, err)
	}
	dir, releaseDir, err := processDir(cfg.WorkDir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg: cfg, log: cfg.Logger.With("tenant", cfg.Tenant, "agent", cfg.ID),
		slots: make(chan struct{}, cfg.Concurrency), active: map[string]*activeRun{}, waiting: map[string]*waiter{},
		drainCh: make(chan struct{}), done: seen.New(10_000, 24*time.Hour), cancelled: map[string]string{},
		renewals: map[string]chan *runproto.Links{}, dir: dir, releaseDir: releaseDir,
	}
	a.deliver, a.stopDeliver = context.WithCancel(context.Background())
	a.runs, a.cancelRuns = context.WithCancelCause(context.Background())
	return a, nil
}

// Running lists the ids of the runs in flight or waiting for a slot,
// sorted: the runs this agent has taken on (the server assigns again a
// claimed run an agent does not list).
func (a *Agent) Running() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	running := make([]string, 0, len(a.active)+len(a.waiting))
	for id := range a.active {
		running = append(running, id)
	}
	for key := range a.waiting {
		id, _, _ := strings.Cut(key, "/")
		running = append(running, id)
	}
	slices.Sort(running)
	return slices.Compact(running)
}

// Handle handles one message from the gateway. Messages that are not
// runproto messages, not from the ops server (Config.Server), or not valid
// ones, are logged and dropped: sending them back to the queue would only
// loop.
func (a *Agent) Handle(ctx context.Context, m *connector.Message) error {
	if m.ContentType != runproto.ContentType {
		a.log.WarnContext(ctx, "dropping message that is not a run message", "id", m.ID, "contentType", m.ContentType, "from", m.From.Service)
		return nil
	}
	if !m.From.IsService() || m.From.Service != a.cfg.Server {
		// Another cloud service (or a message with no service sender):
		// it may not start, proceed, cancel or redirect a run.
		a.log.WarnContext(ctx, "dropping a run message that is not from the ops server", "id", m.ID, "from", m.From.String(), "server", a.cfg.Server)
		return nil
	}
	msg, err := runproto.Decode(m.Body)
	if err != nil {
		a.log.WarnContext(ctx, "dropping invalid run message", "id", m.ID, "from", m.From.Service, "err", err)
		return nil
	}
	switch msg := msg.(type) {
	case *runproto.Assign:
		return a.assign(ctx, msg)
	case *runproto.Cancel:
		a.cancel(ctx, msg)
		return nil
	case *runproto.Links:
		a.links(msg)
		return nil
	case *runproto.Proceed:
		a.fence.proceed(phaseKey(msg.RunID, msg.ClaimToken))
		return nil
	default:
		a.log.WarnContext(ctx, "dropping run message meant for the server", "id", m.ID, "type", runproto.TypeOf(msg))
		return nil
	}
}

// Run heartbeats until ctx ends, then shuts down: no new runs, running
// ones get ShutdownGrace to finish and are cancelled after that; Run
// returns when every run has reported (or, if reports cannot be
// delivered, a bounded time later).
func (a *Agent) Run(ctx context.Context) error {
	hbDone := make(chan struct{})
	hbCtx, stopHB := context.WithCancel(context.Background())
	go func() { defer close(hbDone); a.heartbeats(hbCtx) }()
	defer func() { stopHB(); <-hbDone; a.stopDeliver(); a.releaseDir() }()

	<-ctx.Done()
	a.mu.Lock()
	a.draining = true
	close(a.drainCh)
	n := len(a.active)
	a.mu.Unlock()
	a.log.Info("shutting down", "running", n, "grace", a.cfg.ShutdownGrace)
	a.heartbeat(hbCtx) // the server gives this agent no new run from now on

	finished := make(chan struct{})
	go func() { a.wg.Wait(); close(finished) }()
	t := time.NewTimer(a.cfg.ShutdownGrace)
	defer t.Stop()
	select {
	case <-finished:
		return nil
	case <-t.C:
	}
	a.log.Warn("cancelling runs still going after the shutdown grace", "running", a.Running())
	a.cancelRuns(&errCancelled{reason: "agent " + a.cfg.ID + " shut down"})
	// Cancelled runs stop Terraform (its own cancel grace) and report;
	// bound the wait in case the gateway is unreachable.
	t.Reset(a.cfg.ShutdownGrace)
	select {
	case <-finished:
	case <-t.C:
		a.log.Error("runs did not report before the shutdown bound; their results are lost", "running", a.Running())
	}
	return nil
}

// Stop cancels every run at once (a second signal).
func (a *Agent) Stop() {
	a.cancelRuns(&errCancelled{reason: "agent " + a.cfg.ID + " stopped"})
}
