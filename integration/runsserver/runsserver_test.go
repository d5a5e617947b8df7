// Package runsserver runs the ops server's agent side end to end with real
// processes (Azurite, idp, gateway, opsserver) and fake agents written
// with runtime/connector in the test, so it checks the server against the
// protocol (runtime/runproto) rather than against the agent binary: a run
// goes to exactly one agent of its tenant, another tenant's agent can
// neither receive nor report on it, logs and results are recorded,
// secrets are sealed to the assigned agent, and an agent that goes silent
// fails its run and frees the workspace.
package runsserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/secretstore"
	"github.com/botehq/platform/runtime/tfarchive"
	"github.com/botehq/platform/runtime/tfresult"
)

// TestMain runs the four tests at once: each starts a platform of its own
// (Azurite, idp, gateway, opsserver) and mostly waits on it.
func TestMain(m *testing.M) {
	procs.Parallel(4)
	procs.Main(m)
}

// uploadLinkTTL is short here so that tests see an ended claim's links
// stop working (the default is 10 minutes).
const uploadLinkTTL = 8 * time.Second

// dispatchTick is opsserver's --dispatch-tick here, and heartbeatEvery how
// often the fake agents heartbeat. Three heartbeats of an agent span two
// intervals (1 s), two ticks: a test that sees three of them refused knows
// a dispatch tick went by meanwhile (a wait that shows nothing happens,
// docs/conventions.md).
const (
	dispatchTick   = 500 * time.Millisecond
	heartbeatEvery = 500 * time.Millisecond
)

// agents registered with the gateway.
var registered = map[string][]string{"tenant-a": {"a1", "a2"}, "tenant-b": {"b1"}}

// registeredLabels are the labels registered agents may serve.
var registeredLabels = map[string]map[string]string{"tenant-a/a2": {"env": "prod"}}

// plainConnectors are registered connectors without the agent role.
var plainConnectors = map[string][]string{"tenant-a": {"erp"}}

// server is the running platform without agents.
type server struct {
	dir        string
	emu        *azurite.Emulator
	keys       map[string]*ecdsa.PrivateKey
	idpURL     string
	gatewayURL string
	api        *opsclient.Client
	secrets    string
	apiKey     string
	rsArgs     []string
	rs         *procs.Process
}

func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{dir: t.TempDir(), keys: map[string]*ecdsa.PrivateKey{}}
	var regs []registry.Connector
	for _, group := range []struct {
		ids   map[string][]string
		roles []string
	}{{registered, []string{registry.RoleAgent}}, {plainConnectors, nil}} {
		for tenant, ids := range group.ids {
			for _, id := range ids {
				k, err := clientauth.GenerateKey()
				require.NoError(t, err)
				cid := registry.ClientID(tenant, id)
				s.keys[cid] = k
				jwk, err := clientauth.PublicJWK(k, "")
				require.NoError(t, err)
				regs = append(regs, registry.Connector{Tenant: tenant, ID: id, JWK: jwk, Roles: group.roles, Labels: registeredLabels[cid]})
			}
		}
	}
	data, err := registry.Marshal(regs)
	require.NoError(t, err)
	reg := filepath.Join(s.dir, "registry.json")
	require.NoError(t, os.WriteFile(reg, data, 0o644))
	kf := &operatorauth.KeysFile{Version: operatorauth.KeysFileVersion}
	apiKey, err := kf.AddKey("e2e", "", operatorauth.Grants{Admin: true}, time.Now())
	require.NoError(t, err)
	keys := filepath.Join(s.dir, "keys.json")
	require.NoError(t, kf.Save(keys))
	s.secrets = filepath.Join(s.dir, "secrets.json")

	// The idp needs no storage: it starts while Azurite does.
	idp := procs.Start(t, procs.Spec{Name: "idp", Path: procs.Build(t, "idp"), Args: []string{
		"--listen", "127.0.0.1:0", "--registry", reg, "--key-dir", filepath.Join(s.dir, "idp-keys"), "--client-rate", "100", "--client-burst", "100"}})
	s.emu = azurite.New(t)
	s.idpURL, err = idp.ListenAddr(60 * time.Second)
	require.NoError(t, err)
	gw := procs.Start(t, procs.Spec{Name: "gateway", Path: procs.Build(t, "gateway"), Args: []string{
		"--listen", "127.0.0.1:0", "--storage-connection-string", s.emu.ConnectionString, "--issuer", s.idpURL,
		"--registry", reg, "--create-resources", "--shutdown-timeout", "5s"}})
	s.gatewayURL, err = gw.ListenAddr(60 * time.Second)
	require.NoError(t, err)
	s.apiKey = apiKey
	s.rsArgs = []string{"--no-relay", "--local-listen", "127.0.0.1:0", "--api-keys-file", keys, "--registry", reg,
		"--secrets-file", s.secrets, "--agent-silent-after", "3s", "--dispatch-tick", dispatchTick.String(), "--shutdown-timeout", "5s",
		"--upload-link-ttl", uploadLinkTTL.String(),
		// Lost agents are found within 250 ms of --agent-silent-after, and
		// registry edits within 200 ms (defaults 10 s and 2 s).
		"--sweep-interval", "250ms", "--registry-poll", "200ms",
		// Work for agents wakes the gateway's router at once, as in Azure,
		// rather than waiting for its idle route poll (up to 5 s).
		"--gateway-url", s.gatewayURL}
	s.startOpsServer(t)
	return s
}

// startOpsServer starts (or restarts) the ops server on a new port.
func (s *server) startOpsServer(t *testing.T) {
	t.Helper()
	s.rs = procs.Start(t, procs.Spec{Name: "opsserver", Path: procs.Build(t, "opsserver"), Args: s.rsArgs,
		Env: []string{"BOTE_OPSSERVER_STORAGE_CONNECTION_STRING=" + s.emu.ConnectionString}})
	url, err := s.rs.ListenAddr(60 * time.Second)
	require.NoError(t, err)
	s.api, err = opsclient.New(opsclient.Config{BaseURL: url, Credential: s.apiKey})
	require.NoError(t, err)
}

// agent is a fake deployment agent: a connector that records what the
// server sends and heartbeats while alive.
type agent struct {
	t      *testing.T
	tenant string
	id     string
	key    *ecdsa.PrivateKey
	client *connector.Client
	got    chan runproto.Message

	mu      sync.Mutex
	running []string
	labels  map[string]string // claimed in heartbeats
	silent  bool
	drains  bool // heartbeats say Draining (shutting down)
}

func (s *server) agent(t *testing.T, tenant, id string) *agent {
	t.Helper()
	a := &agent{t: t, tenant: tenant, id: id, key: s.keys[registry.ClientID(tenant, id)], got: make(chan runproto.Message, 100)}
	var err error
	a.client, err = connector.New(connector.Config{
		GatewayURL: s.gatewayURL, TokenURL: s.idpURL + "/oauth2/token", Tenant: tenant, Connector: id, Key: a.key,
		SafetyPoll: 2 * time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
		Handler: connector.HandlerFunc(func(_ context.Context, m *connector.Message) error {
			msg, err := runproto.Decode(m.Body)
			if err != nil {
				t.Errorf("%s/%s got an undecodable message: %v", tenant, id, err)
				return nil
			}
			a.got <- msg
			return nil
		}),
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.client.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	require.NoError(t, a.client.WaitConnected(wctx))
	go func() {
		for ctx.Err() == nil {
			a.mu.Lock()
			hb := &runproto.Heartbeat{Capacity: 1, Running: append([]string{}, a.running...), Labels: a.labels, Version: "fake", Draining: a.drains}
			silent := a.silent
			a.mu.Unlock()
			if !silent {
				_ = a.trySend(ctx, hb)
			}
			select {
			case <-ctx.Done():
			case <-time.After(heartbeatEvery):
			}
		}
	}()
	return a
}

func (a *agent) trySend(ctx context.Context, m runproto.Message) error {
	body, err := runproto.Encode(m)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = a.client.Send(sctx, connector.OutMessage{ContentType: runproto.ContentType, Body: body})
	return err
}

func (a *agent) send(m runproto.Message) {
	a.t.Helper()
	require.NoError(a.t, a.trySend(context.Background(), m))
}

func (a *agent) setRunning(ids ...string) {
	a.mu.Lock()
	a.running = ids
	a.mu.Unlock()
}

func (a *agent) setLabels(labels map[string]string) {
	a.mu.Lock()
	a.labels = labels
	a.mu.Unlock()
}

func (a *agent) goSilent() {
	a.mu.Lock()
	a.silent = true
	a.mu.Unlock()
}

// drain heartbeats as an agent shutting down does: Draining, so it gets
// no new run.
func (a *agent) drain() {
	a.mu.Lock()
	a.drains = true
	a.mu.Unlock()
}

// comeBack heartbeats again after goSilent (a restarted agent).
func (a *agent) comeBack() {
	a.mu.Lock()
	a.silent = false
	a.mu.Unlock()
}

// assignment waits for a run.assign.
func (a *agent) assignment(within time.Duration) *runproto.Assign {
	a.t.Helper()
	return await[*runproto.Assign](a, within)
}

// proceed waits for a run.proceed answer.
func (a *agent) proceed(within time.Duration) *runproto.Proceed {
	a.t.Helper()
	return await[*runproto.Proceed](a, within)
}

// links waits for a run.links answer.
func (a *agent) links(within time.Duration) *runproto.Links {
	a.t.Helper()
	return await[*runproto.Links](a, within)
}

// await waits for the next message of type T, dropping others.
func await[T runproto.Message](a *agent, within time.Duration) T {
	a.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-a.got:
			if v, ok := m.(T); ok {
				return v
			}
		case <-deadline:
			var zero T
			a.t.Fatalf("%s/%s got no %T within %s", a.tenant, a.id, zero, within)
			return zero
		}
	}
}

// assignments drains what arrived and returns the assignments among it.
func (a *agent) assignments() []*runproto.Assign {
	var out []*runproto.Assign
	for {
		select {
		case m := <-a.got:
			if as, ok := m.(*runproto.Assign); ok {
				out = append(out, as)
			}
		default:
			return out
		}
	}
}

func download(t *testing.T, url, wantSHA string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	assert.Equal(t, wantSHA, hex.EncodeToString(sum[:]))
	return data
}

func upload(t *testing.T, url string, data []byte) {
	t.Helper()
	require.Equal(t, http.StatusCreated, tryUpload(t, url, data))
}

// tryUpload PUTs data to a blob SAS link and returns the status.
func tryUpload(t *testing.T, url string, data []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(data))
	require.NoError(t, err)
	req.Header.Set("x-ms-blob-type", "BlockBlob")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// stateOf pulls a workspace's current state through the API (nil: none).
func (s *server) stateOf(t *testing.T, tenant, workspace string) []byte {
	t.Helper()
	var buf bytes.Buffer
	_, err := s.api.PullState(context.Background(), tenant, workspace, "", &buf)
	if opsclient.IsNotFound(err) {
		return nil
	}
	require.NoError(t, err)
	return buf.Bytes()
}

func bundle(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(`resource "terraform_data" "x" {}`+"\n"), 0o644))
	var buf bytes.Buffer
	_, err := tfarchive.Pack(dir, &buf, tfarchive.PackOptions{Limits: tfarchive.BundleLimits})
	require.NoError(t, err)
	return buf.Bytes()
}

// settled waits until opsserver has taken off the bus everything agents
// sent so far, handled or refused: bote-cloud holds no message, hidden or
// not (a connector's Send returns once the gateway enqueued it there). It
// stands in for sleeping "long enough for the server to refuse them".
func (s *server) settled(t *testing.T) {
	t.Helper()
	q, err := azqueue.NewQueueClientFromConnectionString(s.emu.ConnectionString, bus.QueueCloud, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		p, err := q.GetProperties(context.Background(), nil)
		return err == nil && p.ApproximateMessagesCount != nil && *p.ApproximateMessagesCount == 0
	}, 15*time.Second, 50*time.Millisecond, "opsserver settles what agents sent")
}

// waitRun polls the API until the run is in state.
func (s *server) waitRun(t *testing.T, tenant, id, state string, within time.Duration) *opsapi.Run {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := s.api.Run(context.Background(), tenant, id)
		require.NoError(t, err)
		if r.State == state {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s (%s), not %s, after %s", id, r.State, r.History[len(r.History)-1].Reason, state, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRunsServer(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	a1 := s.agent(t, "tenant-a", "a1")
	b1 := s.agent(t, "tenant-b", "b1")

	_, err := s.api.CreateWorkspace(ctx, "tenant-a", opsapi.CreateWorkspaceRequest{Name: "prod"})
	require.NoError(t, err)
	// tenant-b has a workspace of the same name: names are per tenant.
	_, err = s.api.CreateWorkspace(ctx, "tenant-b", opsapi.CreateWorkspaceRequest{Name: "prod"})
	require.NoError(t, err)
	store, err := secretstore.OpenFile(s.secrets)
	require.NoError(t, err)
	require.NoError(t, store.Put(ctx, "tenant-a", "prod", runproto.Secrets{Env: map[string]string{"ARM_CLIENT_SECRET": "tenant-a-secret"}}))

	b := bundle(t)
	run, err := s.api.CreateRun(ctx, "tenant-a", "prod", opsclient.OpPlan, "e2e", bytes.NewReader(b))
	require.NoError(t, err)

	// Exactly one agent of the right tenant gets it, quickly.
	start := time.Now()
	as := a1.assignment(15 * time.Second)
	t.Logf("queued → assigned: %s", time.Since(start))
	assert.Equal(t, run.ID, as.RunID)
	assert.Equal(t, tfresult.Plan, as.Op)
	download(t, as.BundleURL, as.BundleSHA256)

	t.Run("secrets are sealed to the assigned agent", func(t *testing.T) {
		got, err := runproto.OpenSecrets(a1.key, as.Secrets)
		require.NoError(t, err)
		assert.Equal(t, "tenant-a-secret", got.Env["ARM_CLIENT_SECRET"])
		_, err = runproto.OpenSecrets(b1.key, as.Secrets)
		assert.ErrorIs(t, err, runproto.ErrSealed)
		assert.NotContains(t, as.Secrets, "tenant-a-secret")
	})

	t.Run("another tenant's agent cannot report on it", func(t *testing.T) {
		b1.send(&runproto.Logs{RunID: run.ID, ClaimToken: as.ClaimToken, Seq: 0, Lines: []string{"FORGED LINE"}})
		b1.send(&runproto.Result{RunID: run.ID, ClaimToken: as.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Failed, LastSeq: -1})
		s.settled(t)
		r, err := s.api.Run(ctx, "tenant-a", run.ID)
		require.NoError(t, err)
		assert.Equal(t, "planning", r.State)
		assert.Equal(t, "a1", r.Agent)
	})

	a1.setRunning(run.ID)
	a1.send(&runproto.Started{RunID: run.ID, ClaimToken: as.ClaimToken, Phase: runproto.PhasePlan})
	// Taken here, so that a late answer is not mistaken for the apply's
	// below (await drops other messages only while it waits).
	assert.Equal(t, as.ClaimToken, a1.proceed(15*time.Second).ClaimToken, "Terraform starts once the server recorded it")
	// Batches as an agent sends them (one after the other; offsets let any
	// replica place them), one of them delivered twice.
	first, second := []string{"Initializing the backend..."}, []string{"Plan: 1 to add, 0 to change, 0 to destroy."}
	off0, off1 := as.LogOffset, as.LogOffset+runproto.LinesBytes(first)
	a1.send(&runproto.Logs{RunID: run.ID, ClaimToken: as.ClaimToken, Seq: 0, Lines: first, Offset: &off0})
	a1.send(&runproto.Logs{RunID: run.ID, ClaimToken: as.ClaimToken, Seq: 1, Lines: second, Offset: &off1})
	a1.send(&runproto.Logs{RunID: run.ID, ClaimToken: as.ClaimToken, Seq: 0, Lines: first, Offset: &off0})
	workdir := []byte("saved plan and working directory")
	upload(t, as.UploadURL, workdir)
	sum := sha256.Sum256(workdir)
	a1.send(&runproto.Result{RunID: run.ID, ClaimToken: as.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
		Result:          &tfresult.Result{Op: tfresult.Plan, HasChanges: true, Changes: &tfresult.ChangeSummary{Add: 1}},
		WorkdirUploaded: true, WorkdirSHA256: hex.EncodeToString(sum[:]), WorkdirSize: int64(len(workdir)), LastSeq: 1})
	a1.setRunning()

	planned := s.waitRun(t, "tenant-a", run.ID, "planned", 15*time.Second)
	assert.True(t, planned.HasPlan)
	assert.Equal(t, &opsapi.Changes{Add: 1}, planned.PlanResult.Changes)
	logs, err := s.api.Logs(ctx, "tenant-a", run.ID, 0)
	require.NoError(t, err)
	assert.Equal(t, "Initializing the backend...\nPlan: 1 to add, 0 to change, 0 to destroy.\n", logs.Text, "in order, no forged line")
	for _, h := range planned.History {
		assert.NotEqual(t, "b1", h.By)
	}

	t.Run("a write-only upload URL cannot read", func(t *testing.T) {
		resp, err := http.Get(as.UploadURL)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	})
	t.Run("a first plan finds no stored state", func(t *testing.T) {
		require.NotEmpty(t, as.StateURL)
		assert.Empty(t, as.StateUploadURL, "a plan never writes the state")
		resp, err := http.Get(as.StateURL)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	})

	// The apply gets exactly the saved plan; then a1 goes silent mid-apply.
	_, err = s.api.Approve(ctx, "tenant-a", run.ID)
	require.NoError(t, err)
	ap := a1.assignment(15 * time.Second)
	assert.Equal(t, tfresult.Apply, ap.Op)
	assert.Equal(t, workdir, download(t, ap.WorkdirURL, ap.WorkdirSHA256))
	// The apply stores the state it leaves in its claim's own blob (here
	// before it goes silent).
	state := []byte(`{"version":4,"serial":1}`)
	upload(t, ap.StateUploadURL, state)
	assert.WithinDuration(t, time.Now().Add(uploadLinkTTL), ap.UploadExpiresAt, 5*time.Second, "upload links last --upload-link-ttl")
	a1.setRunning(run.ID)
	a1.send(&runproto.Started{RunID: run.ID, ClaimToken: ap.ClaimToken, Phase: runproto.PhaseApply})
	assert.Equal(t, ap.ClaimToken, a1.proceed(15*time.Second).ClaimToken, "Terraform starts once the server recorded it")
	a1.goSilent()

	// The next run of the workspace waits behind it, and says why.
	next, err := s.api.CreateRun(ctx, "tenant-a", "prod", opsclient.OpPlan, "", bytes.NewReader(b))
	require.NoError(t, err)
	assert.Contains(t, next.Waiting, "busy with run "+run.ID)

	// Its Terraform started: never applied again, the run needs attention
	// and keeps the workspace until an operator settles it.
	lost := s.waitRun(t, "tenant-a", run.ID, "needs_attention", 30*time.Second)
	reason := lost.History[len(lost.History)-1].Reason
	assert.Contains(t, reason, "stopped heartbeating")
	assert.Contains(t, reason, "while Terraform was applying")
	assert.Contains(t, reason, "may have changed resources and written part of the state")
	time.Sleep(2 * dispatchTick) // two dispatch ticks go by; nothing else marks them
	w, err := s.api.Run(ctx, "tenant-a", next.ID)
	require.NoError(t, err)
	assert.Equal(t, "queued", w.State, "the workspace waits for a person")
	_, err = s.api.Cancel(ctx, "tenant-a", run.ID, "checked the infrastructure", false)
	require.NoError(t, err)
	s.waitRun(t, "tenant-a", run.ID, "cancelled", 15*time.Second)

	// The workspace is free: the waiting run goes to the tenant's live agent.
	a2 := s.agent(t, "tenant-a", "a2")
	na := a2.assignment(20 * time.Second)
	assert.Equal(t, next.ID, na.RunID)
	got, err := http.Get(na.StateURL)
	require.NoError(t, err)
	got.Body.Close()
	assert.Equal(t, http.StatusNotFound, got.StatusCode, "the state of a claim whose result was never accepted is not the workspace's")

	t.Run("an ended claim changes nothing: late result, logs, renewal, state upload", func(t *testing.T) {
		logBefore, err := s.api.Logs(ctx, "tenant-a", run.ID, 0)
		require.NoError(t, err)
		sum := sha256.Sum256(state)
		a1.send(&runproto.Result{RunID: run.ID, ClaimToken: ap.ClaimToken, Phase: runproto.PhaseApply, Outcome: runproto.Succeeded, LastSeq: -1,
			StateUploaded: true, StateSHA256: hex.EncodeToString(sum[:]), StateSize: int64(len(state))})
		off := ap.LogOffset
		a1.send(&runproto.Logs{RunID: run.ID, ClaimToken: ap.ClaimToken, Seq: 0, Lines: []string{"LATE LINE"}, Offset: &off})
		a1.send(&runproto.Renew{RunID: run.ID, ClaimToken: ap.ClaimToken})
		// Within the link's lifetime the staged blob still takes a write,
		// which no one reads: it was never promoted and never will be.
		if time.Until(ap.UploadExpiresAt) > time.Second {
			assert.Equal(t, http.StatusCreated, tryUpload(t, ap.StateUploadURL, []byte(`{"version":4,"serial":99}`)))
		}
		s.settled(t)
		r, err := s.api.Run(ctx, "tenant-a", run.ID)
		require.NoError(t, err)
		assert.Equal(t, "cancelled", r.State)
		logAfter, err := s.api.Logs(ctx, "tenant-a", run.ID, 0)
		require.NoError(t, err)
		assert.Equal(t, logBefore.Text, logAfter.Text)
		assert.NotContains(t, logAfter.Text, "LATE LINE")
		assert.Nil(t, s.stateOf(t, "tenant-a", "prod"), "no state was promoted")
		versions, err := s.api.StateVersions(ctx, "tenant-a", "prod")
		require.NoError(t, err)
		assert.Empty(t, versions)
		for _, m := range drain(a1) {
			_, isLinks := m.(*runproto.Links)
			assert.False(t, isLinks, "no fresh links for an ended claim")
		}

		// Once the link's lifetime is over, storage itself refuses it.
		time.Sleep(time.Until(ap.UploadExpiresAt) + time.Second)
		assert.Equal(t, http.StatusForbidden, tryUpload(t, ap.StateUploadURL, []byte(`{"version":4,"serial":100}`)))
		assert.Equal(t, http.StatusForbidden, tryUpload(t, as.UploadURL, []byte("another saved plan")), "the plan's link too")
		assert.Nil(t, s.stateOf(t, "tenant-a", "prod"))
	})

	assert.Empty(t, b1.assignments(), "tenant-b's agent never got tenant-a's runs")

	agents, err := s.api.Agents(ctx, "tenant-a")
	require.NoError(t, err)
	byName := map[string]opsapi.Agent{}
	for _, ag := range agents {
		byName[ag.Name] = ag
	}
	assert.Equal(t, opsapi.AgentOffline, byName["a1"].State)
	assert.Equal(t, opsapi.AgentOnline, byName["a2"].State)
	assert.Equal(t, []string{next.ID}, byName["a2"].Running)
	require.NotNil(t, byName["a2"].LastSeen)
}

// TestRestartMidRunLosesNothing: the server dies while an agent plans;
// what the agent sends meanwhile waits on the bus, and the restarted
// server records it.
func TestRestartMidRunLosesNothing(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	a1 := s.agent(t, "tenant-a", "a1")
	_, err := s.api.CreateWorkspace(ctx, "tenant-a", opsapi.CreateWorkspaceRequest{Name: "prod", AutoApply: true})
	require.NoError(t, err)
	run, err := s.api.CreateRun(ctx, "tenant-a", "prod", opsclient.OpPlan, "", bytes.NewReader(bundle(t)))
	require.NoError(t, err)
	as := a1.assignment(15 * time.Second)
	a1.setRunning(run.ID)

	s.rs.Kill() // a crash: nothing is flushed
	<-s.rs.Done()
	off := as.LogOffset
	a1.send(&runproto.Logs{RunID: run.ID, ClaimToken: as.ClaimToken, Seq: 0, Lines: []string{"planned while the server was down"}, Offset: &off})
	workdir := []byte("workdir")
	upload(t, as.UploadURL, workdir)
	sum := sha256.Sum256(workdir)
	a1.send(&runproto.Result{RunID: run.ID, ClaimToken: as.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
		Result:          &tfresult.Result{HasChanges: true},
		WorkdirUploaded: true, WorkdirSHA256: hex.EncodeToString(sum[:]), WorkdirSize: int64(len(workdir)), LastSeq: 0})
	a1.setRunning()

	s.startOpsServer(t)
	// Auto-apply: the restarted server records the plan and assigns the apply.
	ap := a1.assignment(20 * time.Second)
	assert.Equal(t, tfresult.Apply, ap.Op)
	assert.Equal(t, workdir, download(t, ap.WorkdirURL, ap.WorkdirSHA256))
	// The apply renews its upload link (as an agent does when the one it
	// has is half spent), stores its state with it and reports size and
	// SHA-256; the server promotes the state when it accepts the result.
	a1.send(&runproto.Renew{RunID: run.ID, ClaimToken: ap.ClaimToken})
	links := a1.links(15 * time.Second)
	assert.Equal(t, ap.ClaimToken, links.ClaimToken)
	require.NotEmpty(t, links.StateUploadURL)
	state := []byte(`{"version":4,"serial":1}` + "\n")
	upload(t, links.StateUploadURL, state)
	sum = sha256.Sum256(state)
	a1.send(&runproto.Result{RunID: run.ID, ClaimToken: ap.ClaimToken, Phase: runproto.PhaseApply, Outcome: runproto.Succeeded, LastSeq: -1,
		StateUploaded: true, StateSHA256: hex.EncodeToString(sum[:]), StateSize: int64(len(state))})
	s.waitRun(t, "tenant-a", run.ID, "applied", 15*time.Second)
	logs, err := s.api.Logs(ctx, "tenant-a", run.ID, 0)
	require.NoError(t, err)
	assert.Equal(t, "planned while the server was down\n", logs.Text)
	assert.Equal(t, state, s.stateOf(t, "tenant-a", "prod"), "promoted byte for byte")
	versions, err := s.api.StateVersions(ctx, "tenant-a", "prod")
	require.NoError(t, err)
	require.Len(t, versions, 1)
	assert.Equal(t, run.ID+"-c"+ap.ClaimToken, versions[0].Version)
	assert.True(t, versions[0].Current)
	assert.Equal(t, hex.EncodeToString(sum[:]), versions[0].SHA256)

	// Overwriting the promoted claim's staged blob afterwards changes
	// nothing the workspace uses (and the link soon stops working).
	if time.Until(links.ExpiresAt) > time.Second {
		assert.Equal(t, http.StatusCreated, tryUpload(t, links.StateUploadURL, []byte(`{"serial":666}`)))
	}
	assert.Equal(t, state, s.stateOf(t, "tenant-a", "prod"))
}

// TestClaimsGoBackWhenRefusedOrLost: an agent that refuses a run (it is
// shutting down) gives its claim back, and so does one lost before
// Terraform started; the run goes to another agent and completes. What the
// lost agent sends for its old claim when it is back (a restarted agent
// reading its queue) is answered with run.cancel and dropped quietly,
// never dead-lettered.
func TestClaimsGoBackWhenRefusedOrLost(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	a1 := s.agent(t, "tenant-a", "a1")
	_, err := s.api.CreateWorkspace(ctx, "tenant-a", opsapi.CreateWorkspaceRequest{Name: "prod"})
	require.NoError(t, err)
	run, err := s.api.CreateRun(ctx, "tenant-a", "prod", opsclient.OpPlan, "", bytes.NewReader(bundle(t)))
	require.NoError(t, err)
	refused := a1.assignment(15 * time.Second)

	// a1 shuts down: it heartbeats as draining, as the agent does, and
	// refuses the run. (Silent instead, it raced the sweep on a loaded
	// machine: lost 3 s after its last heartbeat, before the refusal
	// arrived.)
	a1.drain()
	a1.send(&runproto.Result{RunID: run.ID, ClaimToken: refused.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Refused,
		Reason: "refused by agent: agent a1 is shutting down", Draining: true, LastSeq: -1})
	back := s.waitRun(t, "tenant-a", run.ID, "queued", 15*time.Second)
	assert.Contains(t, back.History[len(back.History)-1].Reason, "agent a1 gave the run back: refused by agent: agent a1 is shutting down")

	// a2 takes it and is lost before Terraform started.
	a2 := s.agent(t, "tenant-a", "a2")
	lost := a2.assignment(30 * time.Second)
	require.Equal(t, run.ID, lost.RunID)
	a2.goSilent()
	back = s.waitRun(t, "tenant-a", run.ID, "queued", 30*time.Second)
	assert.Contains(t, back.History[len(back.History)-1].Reason, "agent a2 stopped heartbeating")
	assert.Contains(t, back.History[len(back.History)-1].Reason, "before Terraform started")

	// a2 is back: it gets a new claim; the old one may not start.
	a2.comeBack()
	again := a2.assignment(30 * time.Second)
	require.Equal(t, run.ID, again.RunID)
	require.NotEqual(t, lost.ClaimToken, again.ClaimToken)
	a2.send(&runproto.Started{RunID: run.ID, ClaimToken: lost.ClaimToken, Phase: runproto.PhasePlan})
	c := await[*runproto.Cancel](a2, 15*time.Second)
	assert.Equal(t, lost.ClaimToken, c.ClaimToken)
	a2.send(&runproto.Result{RunID: run.ID, ClaimToken: lost.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Cancelled, Reason: c.Reason, LastSeq: -1})

	a2.setRunning(run.ID)
	a2.send(&runproto.Started{RunID: run.ID, ClaimToken: again.ClaimToken, Phase: runproto.PhasePlan})
	assert.Equal(t, again.ClaimToken, a2.proceed(15*time.Second).ClaimToken)
	a2.send(&runproto.Result{RunID: run.ID, ClaimToken: again.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
		Result: &tfresult.Result{Op: tfresult.Plan}, LastSeq: -1})
	done := s.waitRun(t, "tenant-a", run.ID, "no_changes", 15*time.Second)
	assert.Contains(t, done.PlanAgent, "a2")

	_, err = s.rs.WaitOutput("dropping a message of a claim that is no longer open", 10*time.Second)
	require.NoError(t, err)
	assert.NotContains(t, s.rs.Output(), "agent message refused", "nothing went to the error queue")
}
