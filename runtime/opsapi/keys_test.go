package opsapi

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/operatorauth"
)

// newKeysServer serves the API with a real key manager over a keys file
// holding "existing" (reader of contoso) and "gone" (revoked).
func newKeysServer(t *testing.T) (*operatorauth.Authenticator, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.json")
	f := &operatorauth.KeysFile{Version: operatorauth.KeysFileVersion}
	_, err := f.AddKey("existing", "", operatorauth.Grants{Tenants: map[string]operatorauth.Role{"contoso": operatorauth.RoleReader}}, time.Now())
	require.NoError(t, err)
	_, err = f.AddKey("gone", "", operatorauth.Grants{Admin: true}, time.Now())
	require.NoError(t, err)
	require.NoError(t, f.RevokeKey("gone", time.Now()))
	require.NoError(t, f.Save(path))
	km, err := operatorauth.New(context.Background(), operatorauth.Config{KeysFile: path})
	require.NoError(t, err)
	_, srv := newTestServer(t, func(c *Config) { c.Keys = km })
	return km, srv.URL
}

// provokeKeys makes a key route answer with code.
func provokeKeys(t *testing.T, method, path, code string) ([]byte, bool) {
	t.Helper()
	_, base := newKeysServer(t)
	url := func(id string) string { return base + pathWithKey(path, id) }
	var r response
	switch code {
	case "200":
		r = do(t, method, url("existing"), goodKey)
	case "201":
		r = send(t, method, url(""), goodKey, "application/json", []byte(`{"id":"carol","tenants":{"contoso":"operator"}}`))
	case "400":
		if method == http.MethodPost && path == "/v1/keys" {
			r = send(t, method, url(""), goodKey, "application/json", []byte(`{"id":"dave"}`))
		} else {
			r = do(t, method, url("Not_A_Key"), goodKey)
		}
	case "401":
		r = do(t, method, url("existing"), "bad")
	case "403":
		r = do(t, method, url("existing"), approverKey)
	case "404":
		r = do(t, method, url("nobody"), goodKey)
	case "409":
		if path == "/v1/keys" {
			r = send(t, method, url(""), goodKey, "application/json", []byte(`{"id":"existing","admin":true}`))
		} else {
			r = do(t, method, url("gone"), goodKey)
		}
	case "503":
		_, srv := newTestServer(t, nil)
		r = send(t, method, srv.URL+pathWithKey(path, "existing"), goodKey, "application/json", []byte(`{"id":"x","admin":true}`))
	default:
		return nil, false
	}
	require.Equal(t, code, strconv.Itoa(r.status), "body: %s", r.body)
	return r.body, true
}

func pathWithKey(path, id string) string {
	if id == "" {
		return path
	}
	return strings.ReplaceAll(path, "{key}", id)
}
