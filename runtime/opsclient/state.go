package opsclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/runspec"
)

// StateVersions lists a workspace's kept Terraform states, newest first
// (GET /v1/tenants/{tenant}/workspaces/{workspace}/state/versions).
func (c *Client) StateVersions(ctx context.Context, tenant, workspace string) ([]opsapitypes.StateVersion, error) {
	var list opsapitypes.StateVersionList
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "workspaces", workspace, "state", "versions"), nil, "", nil, http.StatusOK, &list); err != nil {
		return nil, fmt.Errorf("cannot list the state versions of %s/%s: %w", tenant, workspace, err)
	}
	return list.Versions, nil
}

// PullState writes a workspace's current state (version "") or a kept
// version to w, byte for byte, and returns which version it was. The
// bytes are checked against the SHA-256 the server states; on a mismatch
// (a truncated transfer) it fails after w got them, so write to a
// temporary file and keep it only on success.
func (c *Client) PullState(ctx context.Context, tenant, workspace, version string, w io.Writer) (string, error) {
	var q url.Values
	if version != "" {
		q = url.Values{"version": {version}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(tenantPath(tenant, "workspaces", workspace, "state"), q), nil)
	if err != nil {
		return "", err
	}
	if req.Header, err = c.header(ctx); err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", unwrapURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		return "", fmt.Errorf("cannot pull the state of %s/%s: %w", tenant, workspace, apiError(resp.StatusCode, data))
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(resp.Body, runspec.MaxStateBytes+1))
	switch got := hex.EncodeToString(h.Sum(nil)); {
	case err != nil:
		return "", fmt.Errorf("cannot pull the state of %s/%s: %w", tenant, workspace, err)
	case n > runspec.MaxStateBytes:
		return "", fmt.Errorf("cannot pull the state of %s/%s: it is over %d bytes", tenant, workspace, runspec.MaxStateBytes)
	case got != resp.Header.Get(opsapitypes.HeaderStateSHA256):
		return "", fmt.Errorf("cannot pull the state of %s/%s: the %d bytes received have SHA-256 %s, the server sent %q", tenant, workspace, n, got, resp.Header.Get(opsapitypes.HeaderStateSHA256))
	}
	return resp.Header.Get(opsapitypes.HeaderStateVersion), nil
}

// RollbackState makes a kept version the workspace's current state again
// (POST /v1/tenants/{tenant}/workspaces/{workspace}/state/rollback); the
// server refuses while a run holds the workspace.
func (c *Client) RollbackState(ctx context.Context, tenant, workspace, version string) (*opsapitypes.StateVersion, error) {
	var v opsapitypes.StateVersion
	if err := c.callJSON(ctx, http.MethodPost, tenantPath(tenant, "workspaces", workspace, "state", "rollback"), opsapitypes.StateRollbackRequest{Version: version}, http.StatusOK, &v); err != nil {
		return nil, fmt.Errorf("cannot roll back the state of %s/%s to %s: %w", tenant, workspace, version, err)
	}
	return &v, nil
}
