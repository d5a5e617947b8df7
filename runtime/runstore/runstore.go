// Package runstore keeps the ops server's run state (package runs):
// Tables, the Azure Table Storage store the ops server uses, and Memory,
// an in-memory store for unit tests. Both pass the contract suite in
// runstore/storetest; the integration module runs it on Azurite.
//
// Table layout (prefix "boteruns" by default), chosen so the hot queries
// are single-partition:
//
//	tenants     PK "tenant"              RK tenant id
//	workspaces  PK tenant                RK workspace     (a tenant's workspaces)
//	runs        PK tenant|workspace      RK run id        (a workspace's runs, oldest first)
//	            PK tenant|workspace      RK "lock"        (the workspace lock)
//	runindex    PK tenant                RK run id        (run id → workspace)
//	agents      PK tenant                RK agent id      (a tenant's agents)
//	active      PK tenant                RK workspace     (workspaces whose lock may be held)
//
// A workspace's runs and its lock share one partition, so claiming a run
// (lock taken, run moved to planning) is one entity group transaction with
// an If-Match on both: two ops server replicas racing for one workspace
// cannot both win. Every key starts with the tenant id, and every method
// takes the tenant, so a tenant's reads never reach another's entities.
//
// Sweeps (silent agents, timeouts) and capacity checks need the held locks
// of all workspaces. Scanning the runs table for lock rows would read every
// run ever stored, so "active" keeps one hint per workspace whose lock may
// be held, written before the transaction that takes the lock; ListLocks
// reads the hints, checks each lock, and drops hints of free locks once
// they are old enough that no claim can still be in flight.
//
// An entity stores its value as JSON in string properties Data0.. (a
// property holds at most 64 KiB, an entity 1 MiB) plus the plain
// properties queries filter on (State on runs; LastHeartbeat and Silent
// on agents). Times in filtered properties are
// fixed-width UTC strings, so string order is time order.
package runstore

import (
	"fmt"

	"github.com/botehq/platform/runtime/runs"
)

// checkCommit validates that a commit stays inside its workspace.
func checkCommit(c runs.Commit) error {
	if len(c.Runs) == 0 && c.Lock == nil {
		return fmt.Errorf("commit to %s/%s writes nothing", c.Tenant, c.Workspace)
	}
	if len(c.Runs) > 50 {
		return fmt.Errorf("commit to %s/%s writes %d runs, the limit is 50", c.Tenant, c.Workspace, len(c.Runs))
	}
	for _, r := range c.Runs {
		if r.Tenant != c.Tenant || r.Workspace != c.Workspace {
			return fmt.Errorf("run %s belongs to %s/%s, not to %s/%s", r.ID, r.Tenant, r.Workspace, c.Tenant, c.Workspace)
		}
		if !runs.ValidRunID(r.ID) {
			return fmt.Errorf("run id %q is malformed", r.ID)
		}
		if !r.State.Valid() {
			return fmt.Errorf("run %s has unknown state %q", r.ID, r.State)
		}
	}
	if l := c.Lock; l != nil && (l.Tenant != c.Tenant || l.Workspace != c.Workspace) {
		return fmt.Errorf("lock of %s/%s committed to %s/%s", l.Tenant, l.Workspace, c.Tenant, c.Workspace)
	}
	return nil
}
