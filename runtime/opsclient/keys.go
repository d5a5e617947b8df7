package opsclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// Operator API key management (platform administrators only).

// CreateKey creates an API key; the answer holds the key, shown once.
func (c *Client) CreateKey(ctx context.Context, req opsapitypes.CreateKeyRequest) (*opsapitypes.NewKey, error) {
	var out opsapitypes.NewKey
	if err := c.callJSON(ctx, http.MethodPost, "/v1/keys", req, http.StatusCreated, &out); err != nil {
		return nil, fmt.Errorf("cannot create API key %s: %w", req.ID, err)
	}
	return &out, nil
}

// Keys lists the API keys, without secrets.
func (c *Client) Keys(ctx context.Context) ([]opsapitypes.APIKey, error) {
	var list opsapitypes.KeyList
	if err := c.call(ctx, c.http, http.MethodGet, "/v1/keys", nil, "", nil, http.StatusOK, &list); err != nil {
		return nil, fmt.Errorf("cannot list API keys: %w", err)
	}
	return list.Keys, nil
}

// RotateKey gives key id a new secret; the answer holds it, shown once.
func (c *Client) RotateKey(ctx context.Context, id string) (*opsapitypes.NewKey, error) {
	var out opsapitypes.NewKey
	if err := c.call(ctx, c.http, http.MethodPost, "/v1/keys/"+url.PathEscape(id)+"/rotate", nil, "", nil, http.StatusOK, &out); err != nil {
		return nil, fmt.Errorf("cannot rotate API key %s: %w", id, err)
	}
	return &out, nil
}

// RevokeKey revokes key id for good.
func (c *Client) RevokeKey(ctx context.Context, id string) (*opsapitypes.APIKey, error) {
	var out opsapitypes.APIKey
	if err := c.call(ctx, c.http, http.MethodPost, "/v1/keys/"+url.PathEscape(id)+"/revoke", nil, "", nil, http.StatusOK, &out); err != nil {
		return nil, fmt.Errorf("cannot revoke API key %s: %w", id, err)
	}
	return &out, nil
}

// Whoami returns who the credential authenticates as and its grants.
func (c *Client) Whoami(ctx context.Context) (*opsapitypes.Whoami, error) {
	var out opsapitypes.Whoami
	if err := c.call(ctx, c.http, http.MethodGet, "/v1/whoami", nil, "", nil, http.StatusOK, &out); err != nil {
		return nil, fmt.Errorf("cannot ask who the credential is: %w", err)
	}
	return &out, nil
}
