package drift

import (
	"context"
	"errors"
	"fmt"

	"github.com/botehq/platform/runtime/notify"
	"github.com/botehq/platform/runtime/runs"
)

// PlanEnded records a drift check's result when its plan phase ended
// (planned: drift; no changes: clean), from the plan's JSON, notifies
// about drift, and cancels the check's saved plan: a drift check is never
// applied. Other runs are ignored. Called by the dispatcher after it
// recorded the phase (again if the bus delivers the result again).
func (s *Scheduler) PlanEnded(ctx context.Context, r runs.Run, planJSON []byte) error {
	if !r.DriftCheck || (r.State != runs.Planned && r.State != runs.NoChanges) {
		return nil
	}
	var found []Resource
	var readErr error
	if len(planJSON) > 0 {
		found, readErr = Resources(planJSON)
	}
	resources, more := Fit(found)
	status := Clean
	if r.State == runs.Planned || len(resources) > 0 {
		status = Drifted
	}
	st, err := update(ctx, s.cfg.Store, r.Tenant, r.Workspace, func(st *State) error {
		st.Status, st.CheckedAt, st.CheckRun, st.Resources, st.More, st.Cleared, st.LastError = status, s.now(), r.ID, resources, more, "", ""
		if readErr != nil || status == Drifted && len(planJSON) == 0 {
			st.LastError = fmt.Sprintf("drift found, but which resources is not known: %v", cmpErr(readErr, "the plan's JSON was not kept"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if status == Drifted && s.cfg.Notifier != nil {
		if err := s.cfg.Notifier.Notify(ctx, driftEvent(r, st)); err != nil {
			s.cfg.Logger.WarnContext(ctx, "cannot notify drift", "tenant", r.Tenant, "workspace", r.Workspace, "err", err)
		}
	}
	if r.State == runs.Planned {
		_, err := s.cfg.Runs.Cancel(ctx, runs.CancelRequest{Tenant: r.Tenant, Run: r.ID, By: By, Reason: "drift check recorded; a drift check is never applied"})
		if err != nil && !errors.Is(err, runs.ErrIllegalTransition) {
			return fmt.Errorf("cannot end drift check %s: %w", r.ID, err)
		}
	}
	s.cfg.Logger.InfoContext(ctx, "drift check recorded", "tenant", r.Tenant, "workspace", r.Workspace, "run", r.ID, "status", status, "resources", len(resources))
	return nil
}

func cmpErr(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

func driftEvent(r runs.Run, st State) notify.Event {
	ev := notify.Event{ID: r.ID + "-drift", Type: notify.DriftDetected, Time: st.CheckedAt, Tenant: r.Tenant, Workspace: r.Workspace,
		Run:     &notify.RunInfo{ID: r.ID, Operation: "drift-check", State: string(r.State)},
		Message: fmt.Sprintf("workspace %s drifted: %d resource(s) differ from the Terraform state", r.Workspace, len(st.Resources)+st.More)}
	for _, res := range st.Resources {
		ev.Drift = append(ev.Drift, notify.DriftInfo{Address: res.Address, Actions: res.Actions, Attributes: res.AttributeNames()})
	}
	return ev
}

// RunTransition keeps drift states in line with runs
// (runs.Manager.SubscribeTransitions): an apply clears a drifted workspace, a
// drift check that failed says so.
func (s *Scheduler) RunTransition(ctx context.Context, r runs.Run, t runs.Transition) {
	var change func(*State) bool
	switch {
	case t.To == runs.Applied && !r.DriftCheck:
		change = func(st *State) bool {
			if st.Status != Drifted {
				return false
			}
			st.Status, st.Cleared = Unknown, fmt.Sprintf("apply of run %s at %s", r.ID, t.At.UTC().Format("2006-01-02 15:04:05Z"))
			return true
		}
	case r.DriftCheck && (t.To == runs.Failed || t.To == runs.TimedOut):
		change = func(st *State) bool {
			st.LastError = fmt.Sprintf("check run %s %s: %s", r.ID, t.To, t.Reason)
			return true
		}
	default:
		return
	}
	cur, err := s.cfg.Store.Get(ctx, r.Tenant, r.Workspace)
	if err != nil || cur.ETag == "" {
		return // no drift record to change (or the read failed: logged below on write)
	}
	if _, err := update(ctx, s.cfg.Store, r.Tenant, r.Workspace, func(st *State) error {
		if !change(st) {
			return errUnchanged
		}
		return nil
	}); err != nil && !errors.Is(err, errUnchanged) {
		s.cfg.Logger.WarnContext(ctx, "cannot update the drift state", "tenant", r.Tenant, "workspace", r.Workspace, "run", r.ID, "err", err)
	}
}

var errUnchanged = errors.New("unchanged")
