package audit

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/runs"
)

// Store keeps records (*Table).
type Store interface {
	Append(ctx context.Context, r Record, key string) (Record, error)
	Query(ctx context.Context, q Query) (Page, error)
}

// appendTimeout bounds one write: recording must not hold a request or an
// agent's report for long when storage is slow.
const appendTimeout = 10 * time.Second

// Recorder records events into a Store, and reads them back. It never
// fails the action being recorded: a record that cannot be stored is
// logged at error level with every field, so the process log keeps it.
type Recorder struct {
	store Store
	log   *slog.Logger
	now   func() time.Time
}

// NewRecorder returns a Recorder on store; log defaults to slog.Default().
func NewRecorder(store Store, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.Default()
	}
	return &Recorder{store: store, log: log, now: time.Now}
}

// Record stores r. A zero Time is now; an empty RequestID and Client come
// from ctx's Origin. The write outlives ctx's cancellation (a caller that
// hangs up is still audited) but not appendTimeout.
func (rec *Recorder) Record(ctx context.Context, r Record) {
	rec.record(ctx, r, "")
}

func (rec *Recorder) record(ctx context.Context, r Record, key string) {
	if r.Time.IsZero() {
		r.Time = rec.now()
	}
	if o, ok := OriginFrom(ctx); ok {
		if r.RequestID == "" {
			r.RequestID = o.RequestID
		}
		if r.Client == "" {
			r.Client = o.Client
		}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), appendTimeout)
	defer cancel()
	_, err := rec.store.Append(wctx, r, key)
	if err == nil || key != "" && errors.Is(err, ErrExists) {
		return // a keyed event seen twice is recorded once
	}
	rec.log.ErrorContext(ctx, "cannot store audit record", append([]any{"err", err}, r.LogAttrs()...)...)
}

// Query reads records (GET /v1/audit).
func (rec *Recorder) Query(ctx context.Context, q Query) (Page, error) {
	return rec.store.Query(ctx, q)
}

// RunTransition records transition t of run r (runs.Config.OnTransition).
// The lifecycle never repeats a from → to move in one run, so a transition
// reported twice (a retried write, a redelivered report) is stored once.
func (rec *Recorder) RunTransition(ctx context.Context, r runs.Run, t runs.Transition) {
	detail := "workspace " + string(r.Workspace) + ", " + string(r.Operation) + ": "
	if t.From != "" {
		detail += string(t.From) + " → "
	}
	detail += string(t.To)
	if t.Reason != "" {
		detail += ": " + t.Reason
	}
	rec.record(ctx, Record{
		Time:      t.At,
		Tenant:    string(r.Tenant),
		Principal: transitionPrincipal(r, t.By),
		Action:    "run." + string(t.To),
		Object:    "/v1/tenants/" + string(r.Tenant) + "/runs/" + r.ID,
		Result:    ResultOK,
		Detail:    detail,
	}, string(r.Tenant)+"/"+r.ID+"/"+string(t.From)+">"+string(t.To))
}

// transitionPrincipal names who moved a run: operators are recorded as
// "kind:name" already; agents by their bare id; the manager's own actors
// by a word.
func transitionPrincipal(r runs.Run, by string) string {
	switch {
	case strings.Contains(by, ":"):
		return by
	case by == "":
		return "system"
	case by == r.PlanAgent || by == r.ApplyAgent || by == r.Agent:
		return "agent:" + by
	}
	return "system:" + by
}
