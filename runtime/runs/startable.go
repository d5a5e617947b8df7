package runs

import (
	"context"
	"errors"
	"fmt"

	"github.com/botehq/platform/runtime/ids"
)

// Startable reports whether a workspace has a run Dispatch could start,
// given an agent: the lock is free and a run is queued, or its approved
// run holds the lock waiting for its apply. It reads what a claim reads
// first (the lock, the queue from the last run started), so a dispatcher
// trying every workspace reads little of those with nothing to start.
func (m *Manager) Startable(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (bool, error) {
	lock, err := m.store.GetLock(ctx, tenant, workspace)
	if err != nil {
		return false, fmt.Errorf("cannot read the lock of workspace %s/%s: %w", tenant, workspace, err)
	}
	if lock.Held() {
		if lock.Agent != "" {
			return false, nil // an agent executes its run
		}
		// Its approved run waits for its apply; a lock its run does not
		// hold is repaired by a claim.
		holder, err := m.store.GetRun(ctx, tenant, lock.Run)
		switch {
		case errors.Is(err, ErrNotFound):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("cannot read run %s holding workspace %s/%s: %w", lock.Run, tenant, workspace, err)
		}
		return holder.State == Approved || !holder.State.HoldsLock(), nil
	}
	queued, err := m.store.ListRuns(ctx, tenant, workspace, RunQuery{States: []State{Queued}, From: queueFloor(lock.Started)})
	if err != nil {
		return false, fmt.Errorf("cannot read the queue of workspace %s/%s: %w", tenant, workspace, err)
	}
	return len(queued) > 0, nil
}
