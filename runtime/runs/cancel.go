package runs

import (
	"context"
	"fmt"

	"github.com/botehq/platform/runtime/ids"
)

// CancelRequest asks to stop a run.
type CancelRequest struct {
	Tenant          ids.TenantID
	Run, By, Reason string
	// Force ends an executing run at once and releases its workspace
	// without waiting for the agent (for an agent that no longer answers).
	Force bool
}

// Cancel stops a run. A run no agent is working on ends Cancelled at once
// (a queued run leaves the queue, a planned one is discarded); an executing
// run is marked CancelRequested and ends when its agent confirms, unless
// Force is set.
func (m *Manager) Cancel(ctx context.Context, req CancelRequest) (Run, error) {
	reason := "cancelled by " + req.By
	if req.Reason != "" {
		reason += ": " + req.Reason
	}
	return m.change(ctx, req.Tenant, req.Run, func(r *Run, w Workspace) error {
		if r.State.Executing() && !req.Force {
			if r.CancelRequested {
				return nil
			}
			r.CancelRequested, r.CancelReason, r.UpdatedAt = true, reason, m.clock()
			return nil
		}
		if req.Force && r.State.Executing() {
			reason = "force-" + reason
		}
		return r.move(Cancelled, m.clock(), req.By, reason, w.Options)
	})
}

// change reads a run, applies f and writes it back with its lock.
func (m *Manager) change(ctx context.Context, tenant ids.TenantID, runID string, f func(*Run, Workspace) error) (Run, error) {
	var written *Run // what an earlier try of this call wrote
	return retry(ctx, func() (Run, error) {
		r, err := m.store.GetRun(ctx, tenant, runID)
		if err != nil {
			return Run{}, fmt.Errorf("cannot change run %s: %w", runID, err)
		}
		if written != nil && sameChange(r, *written) {
			// The earlier write landed although its answer was lost.
			m.changed(ctx, "run changed", r, "reason", r.LastReason(), "cancelRequested", r.CancelRequested)
			return r, nil
		}
		w, err := m.store.GetWorkspace(ctx, r.Tenant, r.Workspace)
		if err != nil {
			return Run{}, err
		}
		if err := f(&r, w); err != nil {
			return Run{}, err
		}
		written = &r
		if err := m.commitWithLock(ctx, r); err != nil {
			return Run{}, err
		}
		m.changed(ctx, "run changed", r, "reason", r.LastReason(), "cancelRequested", r.CancelRequested)
		return r, nil
	})
}

// sameChange reports whether stored is the run as want was written: same
// state, history, actor of the last move and update time.
func sameChange(stored, want Run) bool {
	n := len(want.History)
	return stored.State == want.State && stored.UpdatedAt.Equal(want.UpdatedAt) && stored.CancelRequested == want.CancelRequested &&
		len(stored.History) == n && (n == 0 || stored.History[n-1] == want.History[n-1])
}
