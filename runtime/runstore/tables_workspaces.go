package runstore

import (
	"context"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
)

// CreateTenant implements runs.Store.
func (s *Tables) CreateTenant(ctx context.Context, t runs.Tenant) error {
	return s.add(ctx, s.tenants, tenantsPartition, string(t.ID), t, nil)
}

// GetTenant implements runs.Store.
func (s *Tables) GetTenant(ctx context.Context, id ids.TenantID) (runs.Tenant, error) {
	var t runs.Tenant
	if _, err := s.getEntity(ctx, s.tenants, tenantsPartition, string(id), &t); err != nil {
		return runs.Tenant{}, fmt.Errorf("tenant %s: %w", id, err)
	}
	return t, nil
}

// ListTenants implements runs.Store.
func (s *Tables) ListTenants(ctx context.Context) ([]runs.Tenant, error) {
	var out []runs.Tenant
	err := list(ctx, s.tenants, "PartitionKey eq "+quote(tenantsPartition), func(raw []byte) error {
		var t runs.Tenant
		_, err := decode(raw, &t)
		out = append(out, t)
		return err
	})
	return out, err
}

// CreateWorkspace implements runs.Store.
func (s *Tables) CreateWorkspace(ctx context.Context, w runs.Workspace) error {
	return s.add(ctx, s.workspaces, string(w.Tenant), string(w.Name), w, nil)
}

// GetWorkspace implements runs.Store.
func (s *Tables) GetWorkspace(ctx context.Context, tenant ids.TenantID, name ids.WorkspaceID) (runs.Workspace, error) {
	var w runs.Workspace
	etag, err := s.getEntity(ctx, s.workspaces, string(tenant), string(name), &w)
	if err != nil {
		return runs.Workspace{}, fmt.Errorf("workspace %s/%s: %w", tenant, name, err)
	}
	w.ETag = etag
	return w, nil
}

// UpdateWorkspace implements runs.Store.
func (s *Tables) UpdateWorkspace(ctx context.Context, w runs.Workspace) error {
	if w.ETag == "" {
		return fmt.Errorf("workspace %s/%s: update needs the ETag it was read with", w.Tenant, w.Name)
	}
	e, err := encode(string(w.Tenant), string(w.Name), w, nil)
	if err != nil {
		return err
	}
	etag := azcore.ETag(w.ETag)
	_, err = s.workspaces.UpdateEntity(ctx, e, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeReplace})
	switch {
	case notFound(err):
		return fmt.Errorf("workspace %s/%s: %w", w.Tenant, w.Name, runs.ErrNotFound)
	case isCode(err, http.StatusPreconditionFailed, aztables.UpdateConditionNotSatisfied):
		return fmt.Errorf("workspace %s/%s: %w", w.Tenant, w.Name, runs.ErrConflict)
	case err != nil:
		return fmt.Errorf("cannot update workspace %s/%s: %w", w.Tenant, w.Name, err)
	}
	return nil
}

// ListWorkspaces implements runs.Store.
func (s *Tables) ListWorkspaces(ctx context.Context, tenant ids.TenantID) ([]runs.Workspace, error) {
	var out []runs.Workspace
	err := list(ctx, s.workspaces, "PartitionKey eq "+quote(string(tenant)), func(raw []byte) error {
		var w runs.Workspace
		etag, err := decode(raw, &w)
		w.ETag = etag
		out = append(out, w)
		return err
	})
	return out, err
}
