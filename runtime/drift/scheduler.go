package drift

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/notify"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runspec"
)

// Runs is what the scheduler needs of the run manager (*runs.Manager).
type Runs interface {
	GetWorkspace(ctx context.Context, tenant ids.TenantID, name ids.WorkspaceID) (runs.Workspace, error)
	ListLocks(ctx context.Context, tenant ids.TenantID) ([]runs.Lock, error)
	ListRuns(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, states ...runs.State) ([]runs.Run, error)
	Enqueue(ctx context.Context, req runs.EnqueueRequest) (runs.Enqueued, error)
	Cancel(ctx context.Context, req runs.CancelRequest) (runs.Run, error)
}

// Notifier tells webhooks (*notify.Notifier).
type Notifier interface {
	Notify(ctx context.Context, ev notify.Event) error
}

// Config configures a Scheduler.
type Config struct {
	Store Store // required
	Runs  Runs  // required
	// Notifier, if set, gets a workspace.drift_detected event per check
	// that found drift.
	Notifier Notifier
	// Tick is how often due schedules are looked for (default 30 s): the
	// scheduler's idle cost is one query per tick per replica.
	Tick time.Duration
	// BusyRetry is how soon a schedule that found its workspace busy
	// tries again (default 5 min, never later than its next time).
	BusyRetry time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("drift config: Store is required")
	case c.Runs == nil:
		return errors.New("drift config: Runs is required")
	case c.Tick < 0 || c.BusyRetry < 0:
		return errors.New("drift config: Tick and BusyRetry must not be negative")
	}
	return nil
}

// Scheduler fires drift checks and records their results.
type Scheduler struct {
	cfg Config
}

// Who queues and ends drift checks, in run records.
const (
	By   = "drift-check"
	ByID = "system:drift-check"
)

// New returns a Scheduler; Run fires schedules.
func New(cfg Config) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Tick = cmp.Or(cfg.Tick, 30*time.Second)
	cfg.BusyRetry = cmp.Or(cfg.BusyRetry, 5*time.Minute)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Scheduler{cfg: cfg}, nil
}

func (s *Scheduler) now() time.Time { return s.cfg.Now().UTC() }

// Get is a workspace's drift state (the workspace must exist).
func (s *Scheduler) Get(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (State, error) {
	if _, err := s.cfg.Runs.GetWorkspace(ctx, tenant, workspace); err != nil {
		return State{}, err
	}
	return s.cfg.Store.Get(ctx, tenant, workspace)
}

// List is the drift state of every workspace of the tenant that has one.
func (s *Scheduler) List(ctx context.Context, tenant ids.TenantID) ([]State, error) {
	return s.cfg.Store.List(ctx, tenant)
}

// SetSchedule sets (a zero Schedule: removes) a workspace's schedule.
func (s *Scheduler) SetSchedule(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, sch Schedule) (State, error) {
	if err := sch.Validate(); err != nil {
		return State{}, fmt.Errorf("%w: %w", runs.ErrInvalid, err)
	}
	if _, err := s.cfg.Runs.GetWorkspace(ctx, tenant, workspace); err != nil {
		return State{}, err
	}
	return update(ctx, s.cfg.Store, tenant, workspace, func(st *State) error {
		st.Schedule, st.Next = sch, sch.Next(s.now())
		return nil
	})
}

// Run fires due schedules every Tick until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		if _, err := s.FireDue(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.WarnContext(ctx, "cannot fire drift checks", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// FireDue fires every schedule due now (once across replicas) and returns
// how many checks this call queued.
func (s *Scheduler) FireDue(ctx context.Context) (int, error) {
	due, err := s.cfg.Store.Due(ctx, s.now(), 100)
	if err != nil {
		return 0, err
	}
	queued := 0
	for _, st := range due {
		ok, err := s.fire(ctx, st)
		if err != nil {
			s.cfg.Logger.WarnContext(ctx, "drift check not queued", "tenant", st.Tenant, "workspace", st.Workspace, "err", err)
		}
		if ok {
			queued++
		}
	}
	return queued, nil
}

// CheckNow queues a check of the workspace at once (if it is idle).
func (s *Scheduler) CheckNow(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (State, error) {
	st, err := s.Get(ctx, tenant, workspace)
	if err != nil {
		return State{}, err
	}
	busy, bundle, err := s.look(ctx, st)
	switch {
	case err != nil:
		return State{}, err
	case busy != "":
		return State{}, fmt.Errorf("%w: %s", runs.ErrConflict, busy)
	case bundle == nil:
		return State{}, fmt.Errorf("%w: workspace %s/%s has no applied run whose configuration a drift check could use", runs.ErrInvalid, tenant, workspace)
	}
	return s.queue(ctx, st, st.Next, bundle)
}

// look says why the workspace is busy (a run holds it or waits), and
// which configuration a check would plan: its latest applied run's.
func (s *Scheduler) look(ctx context.Context, st State) (busy string, bundle *runs.Run, err error) {
	locks, err := s.cfg.Runs.ListLocks(ctx, st.Tenant)
	if err != nil {
		return "", nil, err
	}
	for _, l := range locks {
		if l.Workspace == st.Workspace && l.Held() {
			return fmt.Sprintf("workspace %s is busy with run %s", st.Workspace, l.Run), nil, nil
		}
	}
	queued, err := s.cfg.Runs.ListRuns(ctx, st.Tenant, st.Workspace, runs.Queued)
	if err != nil {
		return "", nil, err
	}
	if len(queued) > 0 {
		return fmt.Sprintf("workspace %s has %d queued run(s)", st.Workspace, len(queued)), nil, nil
	}
	applied, err := s.cfg.Runs.ListRuns(ctx, st.Tenant, st.Workspace, runs.Applied)
	if err != nil || len(applied) == 0 {
		return "", nil, err
	}
	last := applied[len(applied)-1] // oldest first
	return "", &last, nil
}

// fire handles one due schedule; ok reports whether it queued a check.
func (s *Scheduler) fire(ctx context.Context, st State) (ok bool, err error) {
	now := s.now()
	next := st.Schedule.Next(now)
	busy, last, err := s.look(ctx, st)
	if err != nil {
		return false, err
	}
	if busy != "" || last == nil {
		st.Next, st.LastError = next, "no applied run yet whose configuration a drift check could use"
		if busy != "" {
			st.Next, st.LastError = minTime(next, now.Add(s.cfg.BusyRetry)), "skipped at "+now.Format(time.RFC3339)+": "+busy
		}
		if err := s.cfg.Store.Put(ctx, st); err != nil && !errors.Is(err, ErrConflict) {
			return false, err
		}
		return false, nil
	}
	if _, err := s.queue(ctx, st, next, last); err != nil {
		if errors.Is(err, ErrConflict) {
			return false, nil // another replica fired it
		}
		return false, err
	}
	return true, nil
}

// queue records the check (conditionally on st's ETag: once across
// replicas) and enqueues it.
func (s *Scheduler) queue(ctx context.Context, st State, next time.Time, last *runs.Run) (State, error) {
	now := s.now()
	id := runs.NewRunID(now)
	st.Next, st.LastRun, st.LastFired, st.LastError = next, id, now, ""
	if err := s.cfg.Store.Put(ctx, st); err != nil {
		return State{}, err
	}
	_, err := s.cfg.Runs.Enqueue(ctx, runs.EnqueueRequest{Tenant: st.Tenant, Workspace: st.Workspace, ID: id, Operation: runs.OpApply,
		Bundle: last.Bundle, Message: "drift check (configuration of run " + last.ID + ")", CreatedBy: By, CreatedByID: ByID,
		PlanOptions: runspec.PlanOptions{RefreshOnly: true}, DriftCheck: true})
	if err != nil {
		_, _ = update(ctx, s.cfg.Store, st.Tenant, st.Workspace, func(cur *State) error {
			cur.LastError = "cannot queue the check: " + err.Error()
			return nil
		})
		return State{}, fmt.Errorf("cannot queue a drift check of %s/%s: %w", st.Tenant, st.Workspace, err)
	}
	s.cfg.Logger.InfoContext(ctx, "drift check queued", "tenant", st.Tenant, "workspace", st.Workspace, "run", id, "next", next)
	return s.cfg.Store.Get(ctx, st.Tenant, st.Workspace)
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}
