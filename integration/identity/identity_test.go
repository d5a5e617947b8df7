// Package identity tests the real idp process end to end: connectors get
// tokens with clientauth over loopback, services verify them with
// accesstoken against the live JWKS, and the idp keeps its keys across
// restarts, reloads its registry and refuses replayed assertions.
package identity

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/accesstoken"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/registry"
)

func TestMain(m *testing.M) { procs.Main(m) }

// idpEnv is an idp installation: its registry file, key directory and
// fixed address, so that a restarted process has the same issuer.
type idpEnv struct {
	bin      string
	dir      string
	registry string
	issuer   string
	port     int
}

func newIDPEnv(t *testing.T) *idpEnv {
	t.Helper()
	dir := t.TempDir()
	port := procs.FreePort(t)
	return &idpEnv{
		bin:      procs.Build(t, "idp"),
		dir:      dir,
		registry: filepath.Join(dir, "registry.json"),
		issuer:   fmt.Sprintf("http://127.0.0.1:%d", port),
		port:     port,
	}
}

func (e *idpEnv) tokenURL() string { return e.issuer + "/oauth2/token" }

func (e *idpEnv) start(t *testing.T) *procs.Process {
	t.Helper()
	p := procs.Start(t, procs.Spec{
		Name: "idp",
		Path: e.bin,
		Args: []string{
			"--listen", fmt.Sprintf("127.0.0.1:%d", e.port),
			"--issuer", e.issuer,
			"--registry", e.registry,
			"--key-dir", filepath.Join(e.dir, "keys"),
			"--registry-poll", "100ms",
		},
	})
	addr, err := p.ListenAddr(30 * time.Second)
	require.NoError(t, err)
	require.Equal(t, e.issuer, addr)
	return p
}

// connector is a registered client with its key file on disk.
type connector struct {
	tenant, id string
	key        *ecdsa.PrivateKey
	disabled   bool
}

func (c connector) clientID() string { return registry.ClientID(c.tenant, c.id) }

func newConnector(t *testing.T, dir, tenant, id string) connector {
	t.Helper()
	key, err := clientauth.GenerateKey()
	require.NoError(t, err)
	path := filepath.Join(dir, tenant+"-"+id+".pem")
	require.NoError(t, clientauth.WriteKeyFile(path, key))
	loaded, err := clientauth.LoadKeyFile(path)
	require.NoError(t, err)
	return connector{tenant: tenant, id: id, key: loaded}
}

func (e *idpEnv) register(t *testing.T, cs ...connector) {
	t.Helper()
	var regs []registry.Connector
	for _, c := range cs {
		jwk, err := clientauth.PublicJWK(c.key, "")
		require.NoError(t, err)
		regs = append(regs, registry.Connector{Tenant: c.tenant, ID: c.id, JWK: jwk, Disabled: c.disabled})
	}
	out, err := registry.Marshal(regs)
	require.NoError(t, err)
	writeAtomically(t, e.registry, out)
}

// writeAtomically replaces path the way a deployment does: write aside,
// then rename.
func writeAtomically(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, data, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

func (e *idpEnv) tokenSource(t *testing.T, c connector) *clientauth.TokenSource {
	t.Helper()
	ts, err := clientauth.NewTokenSource(clientauth.TokenSourceConfig{TokenURL: e.tokenURL(), ClientID: c.clientID(), Key: c.key})
	require.NoError(t, err)
	return ts
}

func (e *idpEnv) verifier(t *testing.T) *accesstoken.Verifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := accesstoken.NewVerifier(ctx, accesstoken.VerifierConfig{Issuer: e.issuer, JWKSURL: e.issuer + "/.well-known/jwks.json"})
	require.NoError(t, err)
	return v
}

func TestTokenVerifiesAcrossRestart(t *testing.T) {
	t.Parallel()
	e := newIDPEnv(t)
	agent := newConnector(t, e.dir, "contoso", "agent-01")
	e.register(t, agent)
	idp := e.start(t)
	ctx := context.Background()

	var disc struct {
		Issuer        string   `json:"issuer"`
		TokenEndpoint string   `json:"token_endpoint"`
		JWKSURI       string   `json:"jwks_uri"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
	}
	getJSON(t, e.issuer+"/.well-known/openid-configuration", &disc)
	assert.Equal(t, e.issuer, disc.Issuer)
	assert.Equal(t, e.tokenURL(), disc.TokenEndpoint)
	assert.Equal(t, []string{"private_key_jwt"}, disc.AuthMethods)

	token, err := e.tokenSource(t, agent).Token(ctx)
	require.NoError(t, err)
	claims, err := e.verifier(t).Verify(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, "contoso", claims.Tenant)
	assert.Equal(t, "agent-01", claims.Connector)

	_, err = idp.WaitOutput(`"msg":"token issued"`, 5*time.Second)
	require.NoError(t, err, "issuance is audited")
	assert.NotContains(t, idp.Output(), token, "the token never reaches the log")

	require.NoError(t, idp.Stop(), "graceful shutdown on SIGTERM")
	_, err = idp.WaitOutput(`"msg":"stopped"`, time.Second)
	assert.NoError(t, err)

	// A new process on the same key directory serves the same keys: a token
	// issued before the restart still verifies against a cold cache.
	restarted := e.start(t)
	claims, err = e.verifier(t).Verify(ctx, token)
	require.NoError(t, err, "token issued before the restart still verifies")
	assert.Equal(t, "agent-01", claims.Connector)

	// Even after a crash.
	restarted.Kill()
	e.start(t)
	fresh, err := e.tokenSource(t, agent).Token(ctx)
	require.NoError(t, err)
	v := e.verifier(t)
	for _, tok := range []string{token, fresh} {
		_, err = v.Verify(ctx, tok)
		assert.NoError(t, err)
	}
	assert.Equal(t, kidOf(t, token), kidOf(t, fresh), "same signing key across restarts")
}

func TestReplayedAssertionRefused(t *testing.T) {
	t.Parallel()
	e := newIDPEnv(t)
	agent := newConnector(t, e.dir, "contoso", "agent-01")
	e.register(t, agent)
	idp := e.start(t)

	assertion, err := clientauth.NewAssertion(agent.key, agent.clientID(), e.tokenURL(), time.Now())
	require.NoError(t, err)
	status, body := postAssertion(t, e, assertion)
	require.Equal(t, http.StatusOK, status, body)

	status, body = postAssertion(t, e, assertion)
	assert.Equal(t, http.StatusUnauthorized, status)
	var eb struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &eb))
	assert.Equal(t, "invalid_client", eb.Error)
	_, err = idp.WaitOutput(`"reason":"replay"`, 5*time.Second)
	assert.NoError(t, err, "the replay is audited")
	assert.NotContains(t, idp.Output(), assertion, "the assertion never reaches the log")
}

func TestRegistryReloadAndRefusals(t *testing.T) {
	t.Parallel()
	e := newIDPEnv(t)
	agent := newConnector(t, e.dir, "contoso", "agent-01")
	late := newConnector(t, e.dir, "fabrikam", "agent-02")
	e.register(t, agent)
	idp := e.start(t)
	ctx := context.Background()

	_, err := e.tokenSource(t, late).Token(ctx)
	var oe *clientauth.OAuthError
	require.ErrorAs(t, err, &oe, "not registered yet")
	assert.Equal(t, "invalid_client", oe.Code)

	e.register(t, agent, late)
	require.Eventually(t, func() bool {
		_, err := e.tokenSource(t, late).Token(ctx)
		return err == nil
	}, 10*time.Second, 100*time.Millisecond, "a registration is picked up without restart")

	// A broken file keeps the last good registry.
	writeAtomically(t, e.registry, []byte(`{"version":1,"connectors":[`))
	_, err = idp.WaitOutput("keeping the last good one", 10*time.Second)
	require.NoError(t, err)
	_, err = e.tokenSource(t, late).Token(ctx)
	assert.NoError(t, err)

	// Disabling a connector stops its tokens.
	late.disabled = true
	e.register(t, agent, late)
	require.Eventually(t, func() bool {
		_, err := e.tokenSource(t, late).Token(ctx)
		return errors.As(err, &oe) && oe.Code == "invalid_client"
	}, 10*time.Second, 100*time.Millisecond, "a disabled connector gets no token")
	_, err = e.tokenSource(t, agent).Token(ctx)
	assert.NoError(t, err, "other connectors are unaffected")
}

func postAssertion(t *testing.T, e *idpEnv, assertion string) (int, string) {
	t.Helper()
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {clientauth.AssertionType},
		"client_assertion":      {assertion},
	}
	resp, err := http.PostForm(e.tokenURL(), form)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	var header struct {
		Kid string `json:"kid"`
	}
	seg, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &header))
	return header.Kid
}
