package runstore

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
)

func agentProps(a runs.Agent) map[string]any {
	return map[string]any{"LastHeartbeat": timeKey(a.LastHeartbeat), "Silent": a.Silent}
}

// PutAgent implements runs.Store.
func (s *Tables) PutAgent(ctx context.Context, a runs.Agent) error {
	e, err := encode(string(a.Tenant), a.ID, a, agentProps(a))
	if err != nil {
		return err
	}
	if a.ETag == "" {
		_, err = s.agents.UpsertEntity(ctx, e, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace})
	} else {
		etag := azcore.ETag(a.ETag)
		_, err = s.agents.UpdateEntity(ctx, e, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeReplace})
	}
	switch {
	case a.ETag != "" && (notFound(err) || isCode(err, http.StatusPreconditionFailed, aztables.UpdateConditionNotSatisfied)):
		return fmt.Errorf("agent %s/%s: %w", a.Tenant, a.ID, runs.ErrConflict)
	case err != nil:
		return fmt.Errorf("cannot store agent %s/%s: %w", a.Tenant, a.ID, err)
	}
	return nil
}

// GetAgent implements runs.Store.
func (s *Tables) GetAgent(ctx context.Context, tenant ids.TenantID, id string) (runs.Agent, error) {
	var a runs.Agent
	etag, err := s.getEntity(ctx, s.agents, string(tenant), id, &a)
	if err != nil {
		return runs.Agent{}, fmt.Errorf("agent %s/%s: %w", tenant, id, err)
	}
	a.ETag = etag
	return a, nil
}

// ListAgents implements runs.Store.
func (s *Tables) ListAgents(ctx context.Context, tenant ids.TenantID) ([]runs.Agent, error) {
	return s.listAgents(ctx, "PartitionKey eq "+quote(string(tenant)))
}

// ListSilentAgents implements runs.Store.
func (s *Tables) ListSilentAgents(ctx context.Context, cutoff time.Time) ([]runs.Agent, error) {
	return s.listAgents(ctx, "Silent eq false and LastHeartbeat lt "+quote(timeKey(cutoff)))
}

func (s *Tables) listAgents(ctx context.Context, filter string) ([]runs.Agent, error) {
	var out []runs.Agent
	err := list(ctx, s.agents, filter, func(raw []byte) error {
		var a runs.Agent
		etag, err := decode(raw, &a)
		a.ETag = etag
		out = append(out, a)
		return err
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out, err
}
