package main

import (
	"context"
	"errors"
	"io"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsclient"
)

// runsAPI is what the workspace and run commands need from the ops API:
// *opsclient.Client, or a fake in tests.
type runsAPI interface {
	CreateWorkspace(ctx context.Context, tenant string, req opsapitypes.CreateWorkspaceRequest) (*opsapitypes.Workspace, error)
	Workspaces(ctx context.Context, tenant string) ([]opsapitypes.Workspace, error)
	UpdateWorkspace(ctx context.Context, tenant, name string, req opsapitypes.UpdateWorkspaceRequest) (*opsapitypes.Workspace, error)
	// CreateRun uploads a configuration bundle (tar.gz) and queues a run;
	// its Waiting says why it cannot start at once.
	CreateRun(ctx context.Context, tenant, workspace string, op opsclient.RunOp, message string, bundle io.Reader, opts ...opsclient.RunOption) (*opsapitypes.Run, error)
	// Runs lists runs newest first.
	Runs(ctx context.Context, tenant string, q opsclient.RunQuery) (*opsapitypes.RunList, error)
	Run(ctx context.Context, tenant, id string) (*opsapitypes.Run, error)
	Approve(ctx context.Context, tenant, id string) (*opsapitypes.Run, error)
	// Cancel cancels a run; force ends an executing run without waiting
	// for its agent.
	Cancel(ctx context.Context, tenant, id, reason string, force bool) (*opsapitypes.Run, error)
	// Logs returns the log from offset, whole lines.
	Logs(ctx context.Context, tenant, id string, offset int64) (*opsapitypes.LogChunk, error)
	// StreamRun is one stream of the run's log lines from offset and its
	// changes (opsclient.FollowRun resumes it).
	opsclient.RunStreamer
	// StateVersions lists a workspace's kept states; PullState writes one
	// (version "": the current) to w and says which it was.
	StateVersions(ctx context.Context, tenant, workspace string) ([]opsapitypes.StateVersion, error)
	PullState(ctx context.Context, tenant, workspace, version string, w io.Writer) (string, error)
	// Plan is a run's saved plan (resource changes, sensitive values
	// masked).
	Plan(ctx context.Context, tenant, id string) (*tfjson.Plan, error)
	// Vars, SetVar and UnsetVar manage a workspace's input variables.
	Vars(ctx context.Context, tenant, workspace string) ([]opsapitypes.Variable, error)
	SetVar(ctx context.Context, tenant, workspace, name, value string, sensitive bool) (*opsapitypes.Variable, error)
	UnsetVar(ctx context.Context, tenant, workspace, name string) (*opsapitypes.Variable, error)
	// RollbackState makes a kept version current again.
	RollbackState(ctx context.Context, tenant, workspace, version string) (*opsapitypes.StateVersion, error)
}

var _ runsAPI = (*opsclient.Client)(nil)

// withTenant makes a command body that needs the tenant and the API.
func (a *app) withTenant(fn func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		tenant, err := a.tenantOf(cmd)
		if err != nil {
			return err
		}
		api, err := a.runsAPI()
		if err != nil {
			return err
		}
		return fn(cmd, args, tenant, api)
	}
}

// tenantOf is the resolved tenant setting (--tenant, OPSBOT_TENANT, a
// profile's or the config file's tenant).
func (a *app) tenantOf(*cobra.Command) (string, error) {
	if a.cfg == nil || a.cfg.Tenant == "" {
		return "", usageError{errors.New("tenant: required; set --tenant, OPSBOT_TENANT, or tenant in the config file or its profile")}
	}
	return a.cfg.Tenant, nil
}
