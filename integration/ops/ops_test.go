// Package ops_test runs the operator path end to end with real processes on
// loopback: the opsbot CLI → a test relay → opsserver, and checks what an
// operator sees: output, messages and exit codes, including when the relay,
// the server or the credentials are wrong, and when connections drop.
package ops_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/relay/relaytest"
)

func TestMain(m *testing.M) { procs.Main(m) }

const hc = "ops"

const agentsJSON = `{"version": 1, "agents": [
  {"tenant": "contoso", "name": "agent-01", "state": "online", "version": "0.1.0", "labels": {"env": "prod"}},
  {"tenant": "fabrikam", "name": "agent-07", "state": "unknown"}
]}`

// stack is a test relay, its connection strings, and an operator API key.
// The relay is the devrelay binary (newStack), or the relaytest package in
// the test process (newInProcessStack) where a test needs a knob devrelay
// does not have: cutting listeners' connections, a short HTTP deadline.
type stack struct {
	relay    *relaytest.Server // in-process relay, or nil
	devrelay *procs.Process    // devrelay process, or nil
	devArgs  []string          // how devrelay was started, for a restart
	listenCS string            // Listen right only
	sendCS   string            // Send right only
	keysFile string
	agents   string
	apiKey   string
}

// newStack starts devrelay on a free port with known keys.
func newStack(t *testing.T) *stack {
	t.Helper()
	s := newFiles(t)
	listenKey, sendKey := randomKey(t), randomKey(t)
	s.devArgs = []string{"--listen", "127.0.0.1:0", "--hybrid-connection", hc, "--listen-key", listenKey, "--send-key", sendKey}
	s.startDevrelay(t)
	return s
}

func (s *stack) startDevrelay(t *testing.T) {
	t.Helper()
	p := procs.Start(t, procs.Spec{Name: "devrelay", Path: procs.Build(t, "devrelay"), Args: s.devArgs})
	value := func(key string) string {
		line, err := p.WaitOutput(key+"=", 20*time.Second)
		require.NoError(t, err)
		return strings.TrimSpace(line[strings.Index(line, key+"=")+len(key)+1:])
	}
	s.listenCS = value("RELAY_LISTEN_CONNECTION_STRING")
	s.sendCS = value("RELAY_SEND_CONNECTION_STRING")
	// A restart must come back on the same port, or clients could not
	// find it again.
	s.devArgs[1] = value("RELAY_NAMESPACE")
	s.devrelay = p
}

// newInProcessStack runs the relay in the test process.
func newInProcessStack(t *testing.T, opts relaytest.Options) *stack {
	t.Helper()
	opts.HybridConnections = []string{hc}
	r, err := relaytest.Start(opts)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	s := newFiles(t)
	s.relay = r
	s.listenCS = r.ConnectionString(hc, relaytest.Listen)
	s.sendCS = r.ConnectionString(hc, relaytest.Send)
	return s
}

// newFiles writes the server's keys and agents files.
func newFiles(t *testing.T) *stack {
	t.Helper()
	dir := t.TempDir()
	kf := &operatorauth.KeysFile{Version: operatorauth.KeysFileVersion}
	key, err := kf.AddKey("e2e", "integration test", operatorauth.Grants{Admin: true}, time.Now())
	require.NoError(t, err)
	keys := filepath.Join(dir, "keys.json")
	require.NoError(t, kf.Save(keys))
	agents := filepath.Join(dir, "agents.json")
	require.NoError(t, os.WriteFile(agents, []byte(agentsJSON), 0o600))
	return &stack{keysFile: keys, agents: agents, apiKey: key}
}

func randomKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(b)
}

// startServer runs opsserver as a process listening on the relay and
// waits until it is online there.
func (s *stack) startServer(t *testing.T, extra ...string) *procs.Process {
	t.Helper()
	args := append([]string{"--relay-insecure", "--api-keys-file", s.keysFile, "--agents-file", s.agents, "--event-interval", "1s", "--shutdown-timeout", "3s"}, extra...)
	p := procs.Start(t, procs.Spec{
		Name: "opsserver",
		Path: procs.Build(t, "opsserver"),
		Args: args,
		// The secret goes through the environment, as in production.
		Env: []string{"BOTE_OPSSERVER_CONNECTION_STRING=" + s.listenCS},
	})
	_, err := p.WaitOutput("listening on sb://", 20*time.Second)
	require.NoError(t, err)
	return p
}

type result struct {
	code           int
	stdout, stderr string
}

// opsbot runs the CLI to completion as a real process. env replaces the
// default environment entries of the same name.
func (s *stack) opsbot(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	full := map[string]string{
		"HOME":                  t.TempDir(), // no stray config file
		"XDG_CONFIG_HOME":       "",
		"OPSBOT_NAMESPACE":      s.sendCS,
		"OPSBOT_RELAY_INSECURE": "true",
		"OPSBOT_API_KEY":        s.apiKey,
		"OPSBOT_TIMEOUT":        "20s",
	}
	for k, v := range env {
		full[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, procs.Build(t, "opsbot"), args...)
	for k, v := range full {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code, out.String(), errOut.String()}
}

func TestStatusAndAgentsThroughRelay(t *testing.T) {
	s := newStack(t)
	srv := s.startServer(t)

	r := s.opsbot(t, nil, "status")
	require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	assert.Regexp(t, `Relay listener:\s+connected`, r.stdout)
	assert.Regexp(t, `Agents:\s+2`, r.stdout)
	assert.Regexp(t, `Server version:\s+\S+`, r.stdout)

	r = s.opsbot(t, nil, "status", "-o", "json")
	require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	var st opsapi.Status
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	assert.True(t, st.RelayConnected)
	assert.Equal(t, 2, st.AgentCount)

	r = s.opsbot(t, nil, "agents", "list")
	require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 3, r.stdout)
	assert.Regexp(t, `^ID\s+TENANT\s+NAME\s+STATE\s+VERSION\s+TERRAFORM\s+LAST SEEN$`, lines[0])
	assert.Regexp(t, `^contoso/agent-01\s+contoso\s+agent-01\s+online\s+0\.1\.0\s+-\s+-$`, lines[1])
	assert.Regexp(t, `^fabrikam/agent-07\s+fabrikam\s+agent-07\s+unknown\s+-\s+-\s+-$`, lines[2])

	r = s.opsbot(t, nil, "agents", "list", "-o", "json", "--tenant", "contoso")
	require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	var list opsapi.AgentList
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list), r.stdout)
	require.Len(t, list.Agents, 1)
	assert.Equal(t, map[string]string{"env": "prod"}, list.Agents[0].Labels)

	// The server saw the operator on every request.
	assert.Equal(t, 4, strings.Count(srv.Output(), "operator=api-key:e2e"), srv.Output())
}

func TestBadAPIKey(t *testing.T) {
	s := newStack(t)
	s.startServer(t)
	wrong := "obk_e2e.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	for _, args := range [][]string{{"status"}, {"agents", "list", "-o", "json"}, {"events", "--count", "1"}} {
		r := s.opsbot(t, map[string]string{"OPSBOT_API_KEY": wrong}, args...)
		assert.Equal(t, exitcode.APIAuth, r.code, "%v: stderr: %s", args, r.stderr)
		assert.Contains(t, r.stderr, "the ops server refused the operator credential")
		assert.Empty(t, r.stdout)
		assert.NotContains(t, r.stderr, wrong)
	}
}

func TestNoListenerConnected(t *testing.T) {
	s := newStack(t)
	r := s.opsbot(t, nil, "status")
	assert.Equal(t, exitcode.NoListener, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stderr, `no ops server is listening on hybrid connection "ops"`)

	r = s.opsbot(t, nil, "events", "--count", "1")
	assert.Equal(t, exitcode.NoListener, r.code, "a WebSocket to no listener says so too; stderr: %s", r.stderr)
}

func TestBadRelayCredentials(t *testing.T) {
	s := newStack(t)
	s.startServer(t)
	ns, err := relay.ParseNamespace(s.sendCS)
	require.NoError(t, err)
	tests := map[string]string{
		"wrong key":        relay.Namespace{Host: ns.Host, KeyName: ns.KeyName, Key: "d3JvbmcgYnV0IHdlbGwgZm9ybWVkIGtleSBvZiAzMiBieXRlcyE=", EntityPath: hc}.ConnectionString(),
		"unknown rule":     relay.Namespace{Host: ns.Host, KeyName: "nobody", Key: ns.Key, EntityPath: hc}.ConnectionString(),
		"listen-only rule": s.listenCS,
	}
	for name, cs := range tests {
		t.Run(name, func(t *testing.T) {
			r := s.opsbot(t, map[string]string{"OPSBOT_NAMESPACE": cs}, "status")
			assert.Equal(t, exitcode.RelayAuth, r.code, "stderr: %s", r.stderr)
			assert.Contains(t, r.stderr, "refused the credentials")
			assert.NotContains(t, r.stderr, ns.Key)
		})
	}
}

func TestRelayUnreachable(t *testing.T) {
	s := newFiles(t)
	dead := fmt.Sprintf("127.0.0.1:%d", procs.FreePort(t)) // nothing listens there
	s.sendCS = relay.Namespace{Host: dead, KeyName: "send", Key: randomKey(t), EntityPath: hc}.ConnectionString()
	r := s.opsbot(t, nil, "status")
	assert.Equal(t, exitcode.RelayUnreachable, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stderr, "cannot reach the relay at "+dead)
}

// The relay cuts the listener's control channel (as a network failure
// would); opsserver reconnects and serves again.
func TestServerReconnectsAfterDrop(t *testing.T) {
	t.Parallel() // a relay of its own on a port of its own; it waits on reconnects
	s := newInProcessStack(t, relaytest.Options{})
	srv := s.startServer(t)
	require.Equal(t, exitcode.OK, s.opsbot(t, nil, "status").code)

	for i := 0; i < 2; i++ {
		before := s.relay.Stats().ListenAttempts
		require.Equal(t, 1, s.relay.DropListeners(hc), "the relay cut the listener's control channel")
		require.Eventually(t, func() bool {
			return s.relay.Stats().ListenAttempts > before && s.relay.ListenerCount(hc) == 1
		}, 30*time.Second, 50*time.Millisecond, "opsserver reconnected")
		r := s.opsbot(t, nil, "status", "-o", "json")
		require.Equal(t, exitcode.OK, r.code, "after drop %d: stderr: %s", i+1, r.stderr)
		var st opsapi.Status
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
		assert.True(t, st.RelayConnected)
	}
	assert.Contains(t, srv.Output(), "relay listener offline")
}

// The relay process dies and comes back on the same address: opsserver
// keeps retrying and serves again without a restart of its own.
func TestServerReconnectsAfterRelayRestart(t *testing.T) {
	s := newStack(t)
	local := fmt.Sprintf("127.0.0.1:%d", procs.FreePort(t))
	srv := s.startServer(t, "--local-listen", local)
	require.Equal(t, exitcode.OK, s.opsbot(t, nil, "status").code)

	s.devrelay.Kill()
	r := s.opsbot(t, nil, "status")
	assert.Equal(t, exitcode.RelayUnreachable, r.code, "stderr: %s", r.stderr)
	_, err := srv.WaitOutput("relay listener offline", 10*time.Second)
	require.NoError(t, err)

	// Meanwhile the local port answers, and says the relay is down.
	r = s.opsbot(t, map[string]string{"OPSBOT_LOCAL_URL": "http://" + local}, "status", "-o", "json")
	require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	var st opsapi.Status
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
	assert.False(t, st.RelayConnected)

	s.startDevrelay(t)
	require.Eventually(t, func() bool { return s.opsbot(t, nil, "status").code == exitcode.OK }, 45*time.Second, 250*time.Millisecond,
		"opsserver reconnected to the restarted relay")
	select {
	case <-srv.Done():
		t.Fatal("opsserver exited instead of reconnecting")
	default:
	}
}

// The relay answers an HTTP-mode request with 504 once its deadline passes;
// the events stream is a relayed WebSocket and outlives it many times over.
func TestEventsOutliveTheRelayHTTPDeadline(t *testing.T) {
	t.Parallel() // a relay of its own on a port of its own; it waits on events
	const deadline = time.Second
	s := newInProcessStack(t, relaytest.Options{RequestTimeout: deadline})
	s.startServer(t)

	start := time.Now()
	r := s.opsbot(t, nil, "events", "--interval", "400ms", "--count", "8", "-o", "json")
	elapsed := time.Since(start)
	require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	assert.Greater(t, elapsed, 2*deadline, "the stream lasted longer than one relayed request may")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 8)
	for i, line := range lines {
		var ev opsapi.Event
		require.NoError(t, json.Unmarshal([]byte(line), &ev))
		assert.Equal(t, int64(i+1), ev.Seq)
		assert.True(t, ev.Status.RelayConnected)
	}
}

// A server restart ends the event stream with 1001; opsbot follows the new
// server.
func TestEventsFollowServerRestart(t *testing.T) {
	s := newStack(t)
	srv := s.startServer(t)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, procs.Build(t, "opsbot"), "events", "--interval", "200ms", "--count", "10")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "OPSBOT_NAMESPACE="+s.sendCS, "OPSBOT_RELAY_INSECURE=true", "OPSBOT_API_KEY="+s.apiKey)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Start())

	require.Eventually(t, func() bool { return strings.Count(out.String(), "\n") >= 2 }, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, srv.Stop(), "opsserver shuts down cleanly on SIGTERM")
	s.startServer(t)

	require.NoError(t, cmd.Wait(), "stderr: %s", errOut.String())
	assert.Equal(t, 10, strings.Count(out.String(), "\n"))
	assert.Contains(t, errOut.String(), "reconnecting")
}

// syncBuffer is a bytes.Buffer safe for a process writing while the test
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A relay that refuses the server's credentials will not change its mind:
// opsserver exits at once with a message saying so, instead of retrying.
func TestServerExitsOnPermanentRelayRefusal(t *testing.T) {
	s := newStack(t)
	p := procs.Start(t, procs.Spec{
		Name: "opsserver",
		Path: procs.Build(t, "opsserver"),
		Args: []string{"--relay-insecure", "--api-keys-file", s.keysFile},
		Env:  []string{"BOTE_OPSSERVER_CONNECTION_STRING=" + s.sendCS}, // Send right only
	})
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("opsserver kept running with credentials the relay refuses")
	}
	assert.Error(t, p.ExitErr())
	assert.Contains(t, p.Output(), "cannot listen on the relay")
	assert.Contains(t, p.Output(), "relay refused the credentials")
}

// Operators may authenticate with OAuth2 access tokens from the configured
// issuer instead of API keys, end to end through the relay.
func TestOAuth2OperatorTokenThroughRelay(t *testing.T) {
	iss := newIssuer(t)
	s := newStack(t)
	// Entra group ids and app roles map to tenant roles (the stack passes
	// this as BOTE_OPSSERVER_OAUTH_ROLES).
	roles := `{"admin":["role:Ops.Admin"],"tenants":{"contoso":{"reader":["group:grp-contoso-ops"]},"fabrikam":{"approver":["role:Fabrikam.Approver"]}}}`
	s.startServer(t, "--oauth-issuer", iss.url, "--oauth-audience", "api://ops", "--oauth-required-role", "Ops.Operator", "--oauth-roles", roles)

	now := time.Now()
	good := iss.token(t, jwt.MapClaims{"iss": iss.url, "aud": "api://ops", "sub": "u1", "preferred_username": "alice@example.test",
		"roles": []string{"Ops.Operator"}, "groups": []string{"grp-contoso-ops", "grp-unrelated"}, "exp": now.Add(time.Hour).Unix()})
	r := s.opsbot(t, map[string]string{"OPSBOT_API_KEY": good}, "agents", "list", "-o", "json")
	require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stdout, "contoso/agent-01")
	assert.NotContains(t, r.stdout, "fabrikam", "a contoso reader by group sees only contoso's agents")
	r = s.opsbot(t, map[string]string{"OPSBOT_API_KEY": good}, "agents", "list", "--tenant", "fabrikam")
	assert.Equal(t, exitcode.APIAuth, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stderr, "lacks the reader role in tenant fabrikam")
	r = s.opsbot(t, map[string]string{"OPSBOT_API_KEY": good}, "workspaces", "create", "w", "--tenant", "contoso")
	assert.Equal(t, exitcode.APIAuth, r.code, "a reader does not create workspaces: %s", r.stderr)
	assert.Contains(t, r.stderr, "lacks the operator role in tenant contoso")
	r = s.opsbot(t, map[string]string{"OPSBOT_API_KEY": good}, "keys", "list")
	assert.Equal(t, exitcode.APIAuth, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stderr, "only a platform administrator")

	fab := iss.token(t, jwt.MapClaims{"iss": iss.url, "aud": "api://ops", "sub": "u2", "oid": "oid-2",
		"roles": []string{"Ops.Operator", "Fabrikam.Approver"}, "exp": now.Add(time.Hour).Unix()})
	r = s.opsbot(t, map[string]string{"OPSBOT_API_KEY": fab}, "agents", "list", "-o", "json")
	require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stdout, "fabrikam/agent-07", "an app role gives fabrikam")
	assert.NotContains(t, r.stdout, "contoso")
	admin := iss.token(t, jwt.MapClaims{"iss": iss.url, "aud": "api://ops", "sub": "u3", "roles": []string{"Ops.Operator", "Ops.Admin"}, "exp": now.Add(time.Hour).Unix()})
	r = s.opsbot(t, map[string]string{"OPSBOT_API_KEY": admin}, "agents", "list", "-o", "json")
	require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stdout, "contoso/agent-01")
	assert.Contains(t, r.stdout, "fabrikam/agent-07")

	tests := map[string]jwt.MapClaims{
		"expired":      {"iss": iss.url, "aud": "api://ops", "sub": "u1", "roles": []string{"Ops.Operator"}, "exp": now.Add(-time.Hour).Unix()},
		"wrong issuer": {"iss": "https://evil.example", "aud": "api://ops", "sub": "u1", "roles": []string{"Ops.Operator"}, "exp": now.Add(time.Hour).Unix()},
		"no role":      {"iss": iss.url, "aud": "api://ops", "sub": "u1", "exp": now.Add(time.Hour).Unix()},
	}
	for name, claims := range tests {
		t.Run(name, func(t *testing.T) {
			r := s.opsbot(t, map[string]string{"OPSBOT_API_KEY": iss.token(t, claims)}, "status")
			assert.Equal(t, exitcode.APIAuth, r.code, "stderr: %s", r.stderr)
		})
	}
}

// issuer is an OIDC issuer with one RSA signing key.
type issuer struct {
	url string
	key *rsa.PrivateKey
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	iss := &issuer{key: key}
	b64 := base64.RawURLEncoding.EncodeToString
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": iss.url, "jwks_uri": iss.url + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{
			{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes())},
		}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	iss.url = srv.URL
	return iss
}

func (iss *issuer) token(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(iss.key)
	require.NoError(t, err)
	return s
}

// opsserver may start before the relay is reachable (a deploy where the
// network comes up late): it retries and serves once the relay is there.
func TestServerWaitsForTheRelay(t *testing.T) {
	s := newFiles(t)
	addr := fmt.Sprintf("127.0.0.1:%d", procs.FreePort(t))
	listenKey, sendKey := randomKey(t), randomKey(t)
	s.listenCS = relay.Namespace{Host: addr, KeyName: "listen", Key: listenKey, EntityPath: hc}.ConnectionString()
	s.sendCS = relay.Namespace{Host: addr, KeyName: "send", Key: sendKey, EntityPath: hc}.ConnectionString()
	srv := procs.Start(t, procs.Spec{
		Name: "opsserver",
		Path: procs.Build(t, "opsserver"),
		Args: []string{"--relay-insecure", "--api-keys-file", s.keysFile},
		Env:  []string{"BOTE_OPSSERVER_CONNECTION_STRING=" + s.listenCS},
	})
	_, err := srv.WaitOutput("retrying", 20*time.Second)
	require.NoError(t, err, "opsserver reports the unreachable relay and retries")

	s.devArgs = []string{"--listen", addr, "--hybrid-connection", hc, "--listen-key", listenKey, "--send-key", sendKey}
	s.startDevrelay(t)
	_, err = srv.WaitOutput("listening on sb://", 45*time.Second)
	require.NoError(t, err)
	r := s.opsbot(t, nil, "status")
	assert.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
}

// A response above the control channel's 64 kB limit travels over a
// rendezvous socket; the CLI sees the whole list.
func TestLargeAgentListThroughRelay(t *testing.T) {
	s := newStack(t)
	var b strings.Builder
	b.WriteString(`{"version": 1, "agents": [`)
	const n = 1500
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"tenant": "tenant-%03d", "name": "agent-%04d", "state": "online", "version": "1.0.0", "labels": {"region": "usgovvirginia", "pool": "default"}}`, i%40, i)
	}
	b.WriteString("]}")
	require.NoError(t, os.WriteFile(s.agents, []byte(b.String()), 0o600))
	s.startServer(t)

	r := s.opsbot(t, nil, "agents", "list", "-o", "json")
	require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	require.Greater(t, len(r.stdout), 128<<10, "the response is well over the control channel limit")
	var list opsapi.AgentList
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list))
	assert.Len(t, list.Agents, n)
}

// Two opsservers listen on the same hybrid connection (two replicas);
// requests keep working when one of them goes away.
func TestTwoServersOneGoesAway(t *testing.T) {
	s := newStack(t)
	a := s.startServer(t)
	b := s.startServer(t)
	for i := 0; i < 6; i++ {
		r := s.opsbot(t, nil, "status")
		require.Equal(t, exitcode.OK, r.code, "stderr: %s", r.stderr)
	}
	served := func(p *procs.Process) int { return strings.Count(p.Output(), "path=/v1/status") }
	t.Logf("requests served: %d and %d", served(a), served(b))

	require.NoError(t, a.Stop())
	for i := 0; i < 4; i++ {
		r := s.opsbot(t, nil, "status")
		require.Equal(t, exitcode.OK, r.code, "after one server left: stderr: %s", r.stderr)
	}
}
