package dispatch

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/secretstore"
	"github.com/botehq/platform/runtime/tfresult"
)

// sent is one message the dispatcher sent to an agent.
type sent struct {
	tenant, agent string
	msg           runproto.Message
}

// fakeSender records what is sent; fail makes sends fail; hold, if set,
// is called before each send (outside the lock: it may block).
type fakeSender struct {
	mu   sync.Mutex
	got  []sent
	fail error
	hold func(tenant string)
}

func (f *fakeSender) SendToConnector(_ context.Context, tenant, connector string, m botecloud.OutMessage) (string, error) {
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		hold(tenant)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return "", f.fail
	}
	if m.ContentType != runproto.ContentType {
		return "", fmt.Errorf("content type %q", m.ContentType)
	}
	msg, err := runproto.Decode(m.Body)
	if err != nil {
		return "", err
	}
	f.got = append(f.got, sent{tenant, connector, msg})
	return envelope.NewID(), nil
}

func (f *fakeSender) take() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.got
	f.got = nil
	return out
}

// fakeSigner makes recognisable URLs.
type fakeSigner struct{}

func (fakeSigner) Container() string { return "boteruns" }
func (fakeSigner) Sign(_ context.Context, c *envelope.Claim, ttl time.Duration) error {
	c.URL = "https://blob/" + c.Blob + "?sp=r"
	return nil
}
func (fakeSigner) UploadURL(_ context.Context, blob string, ttl time.Duration) (string, time.Time, error) {
	return "https://blob/" + blob + "?sp=cw", time.Now().Add(ttl), nil
}
func (fakeSigner) ReadURL(_ context.Context, blob string, ttl time.Duration) (string, time.Time, error) {
	return "https://blob/" + blob + "?sp=r", time.Now().Add(ttl), nil
}

// fakeLogs is an append-only log per run with AppendLog's position rule.
type fakeLogs struct {
	mu   sync.Mutex
	logs map[string]*bytes.Buffer
}

func (f *fakeLogs) AppendLog(_ context.Context, key artifacts.RunKey, at int64, data []byte) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.logs[key.Run]
	if b == nil {
		b = &bytes.Buffer{}
		f.logs[key.Run] = b
	}
	switch size := int64(b.Len()); {
	case at < 0 || at == size:
		b.Write(data)
	case at+int64(len(data)) <= size:
		return at + int64(len(data)), nil
	default:
		return 0, artifacts.ErrLogGap
	}
	return int64(b.Len()), nil
}

func (f *fakeLogs) text(run string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.logs[run]; b != nil {
		return b.String()
	}
	return ""
}

// fakeStates records promotions; err, when set, is what PromoteState
// answers.
type fakeStates struct {
	mu       sync.Mutex
	promoted []artifacts.Promotion
	err      error
}

func (f *fakeStates) PromoteState(_ context.Context, p artifacts.Promotion) (artifacts.StateVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return artifacts.StateVersion{}, f.err
	}
	f.promoted = append(f.promoted, p)
	return artifacts.StateVersion{Version: p.Run + "-c" + p.Claim, Current: true}, nil
}

func (f *fakeStates) StateSnapshot(_ context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (string, error) {
	return string(tenant) + "/" + string(workspace) + "/state/versions/snapshot.tfstate", nil
}

func (f *fakeStates) all() []artifacts.Promotion {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.promoted)
}

type env struct {
	t       testing.TB
	states  *fakeStates
	d       *Dispatcher
	m       *runs.Manager
	sender  *fakeSender
	logs    *fakeLogs
	secrets *secretstore.File
	keys    map[string]*ecdsa.PrivateKey
	roleLog *bytes.Buffer // what the dispatcher and manager log (lockedWriter)
	audited *fakeAudit
	dropped int64 // StaleDropped as requireDropped last saw it
	store   *countingStore
	now     time.Time
	mu      sync.Mutex
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// agents registered in every test; "a3" is registered but disabled, and
// "erp" of tenant-a is a registered connector without the agent role; a2
// serves env=prod only.
var agents = map[string][]string{"tenant-a": {"a1", "a2", "a3", "erp"}, "tenant-b": {"b1"}}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, roleLog: &bytes.Buffer{}, audited: &fakeAudit{}, sender: &fakeSender{}, states: &fakeStates{}, logs: &fakeLogs{logs: map[string]*bytes.Buffer{}}, keys: map[string]*ecdsa.PrivateKey{},
		now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	var regs []registry.Connector
	for tenant, ids := range agents {
		for _, id := range ids {
			k, err := clientauth.GenerateKey()
			require.NoError(t, err)
			e.keys[registry.ClientID(tenant, id)] = k
			jwk, err := clientauth.PublicJWK(k, "")
			require.NoError(t, err)
			c := registry.Connector{Tenant: tenant, ID: id, JWK: jwk, Disabled: id == "a3", Roles: []string{registry.RoleAgent}}
			switch id {
			case "erp":
				c.Roles = nil
			case "a2":
				c.Labels = map[string]string{"env": "prod"}
			}
			regs = append(regs, c)
		}
	}
	data, err := registry.Marshal(regs)
	require.NoError(t, err)
	reg, err := registry.Parse(data)
	require.NoError(t, err)

	e.secrets, err = secretstore.OpenFile(t.TempDir() + "/secrets.json")
	require.NoError(t, err)
	store := &countingStore{Store: runstore.NewMemory()}
	e.store = store
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: e.roleLog}, nil))
	e.m, err = runs.New(runs.Config{Store: store, Roster: RegistryRoster(reg), Now: e.clock, Logger: log, SilentAfter: time.Minute})
	require.NoError(t, err)
	e.d, err = New(Config{Manager: e.m, Tenants: store.ListTenants, Sender: e.sender, Signer: fakeSigner{}, Logs: e.logs,
		States: e.states, Keys: reg, Secrets: e.secrets, Audit: e.audited, Logger: log, Now: e.clock, LogWait: 300 * time.Millisecond})
	require.NoError(t, err)
	e.m.Subscribe(e.d.OnChange)
	ctx := context.Background()
	for tenant := range agents {
		_, err := e.m.CreateTenant(ctx, runs.Tenant{ID: ids.TenantID(tenant)})
		require.NoError(t, err)
	}
	_, err = e.m.CreateWorkspace(ctx, runs.Workspace{Tenant: "tenant-a", Name: "prod"})
	require.NoError(t, err)
	return e
}

// from delivers m to the dispatcher as the gateway would, from tenant/agent.
func (e *env) from(tenant, agent string, m runproto.Message) error {
	body, err := runproto.Encode(m)
	require.NoError(e.t, err)
	return e.d.Handle(context.Background(), &botecloud.Message{ID: envelope.NewID(), From: envelope.Identity{Tenant: tenant, Connector: agent},
		ContentType: runproto.ContentType, Body: body})
}

func (e *env) heartbeat(tenant, agent string, running ...string) {
	e.t.Helper()
	require.NoError(e.t, e.from(tenant, agent, &runproto.Heartbeat{Capacity: 1, Running: running, Version: "test", TerraformVersion: "1.11.4", ProviderSources: true}))
}

func hash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// enqueue queues a run in tenant-a/prod with a bundle reference.
func (e *env) enqueue(op runs.Operation) runs.Run {
	e.t.Helper()
	id := runs.NewRunID(e.clock())
	q, err := e.m.Enqueue(context.Background(), runs.EnqueueRequest{Tenant: "tenant-a", Workspace: "prod", ID: id, Operation: op, CreatedBy: "alice",
		Bundle: &runs.Artifact{Container: "boteruns", Blob: "tenant-a/prod/" + id + "/bundle-1.tar.gz", Size: 3, SHA256: hash([]byte("abc"))}})
	require.NoError(e.t, err)
	return q.Run
}

// assigned dispatches tenant-a/prod and returns the one assignment sent.
func (e *env) assigned() (sent, *runproto.Assign) {
	e.t.Helper()
	started := e.d.DispatchWorkspace(context.Background(), "tenant-a", "prod")
	require.Len(e.t, started, 1)
	msgs := e.sender.take()
	require.Len(e.t, msgs, 1)
	a, ok := msgs[0].msg.(*runproto.Assign)
	require.True(e.t, ok, "%T", msgs[0].msg)
	return msgs[0], a
}

func (e *env) run(id string) runs.Run {
	e.t.Helper()
	r, err := e.m.GetRun(context.Background(), "tenant-a", id)
	require.NoError(e.t, err)
	return r
}

// requireDropped: a message of the sender's own claim that is no longer
// open is dropped quietly (no error queue) and counted.
func (e *env) requireDropped(err error) {
	e.t.Helper()
	before := e.dropped
	require.NoError(e.t, err)
	e.dropped = e.d.StaleDropped()
	require.Equal(e.t, before+1, e.dropped, "not dropped as stale")
}

func requireRefused(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, ErrRefused)
	assert.True(t, botecloud.IsPermanent(err), "refusals are permanent: dead-lettered, not retried")
}

func TestAssignGoesToOneAgentOfTheTenantWithSealedSecrets(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, e.secrets.Put(context.Background(), "tenant-a", "prod", runproto.Secrets{Env: map[string]string{"ARM_CLIENT_SECRET": "s3cret"}}))
	e.heartbeat("tenant-b", "b1")
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)

	to, a := e.assigned()
	assert.Equal(t, "tenant-a", to.tenant)
	assert.Equal(t, "a1", to.agent, "the only online agent of tenant-a")
	assert.Equal(t, r.ID, a.RunID)
	assert.Equal(t, tfresult.Plan, a.Op)
	assert.Equal(t, "2", a.ClaimToken, "queued, then claimed: generation 2")
	assert.Equal(t, "https://blob/"+r.Bundle.Blob+"?sp=r", a.BundleURL)
	assert.Equal(t, r.Bundle.SHA256, a.BundleSHA256)
	assert.Equal(t, "https://blob/tenant-a/prod/"+r.ID+"/workdir-c2.tar.gz?sp=cw", a.UploadURL)
	assert.Equal(t, "https://blob/tenant-a/prod/state/versions/snapshot.tfstate?sp=r", a.StateURL, "a plan starts from a snapshot of the workspace's stored state")
	assert.Empty(t, a.StateUploadURL)
	assert.Equal(t, runproto.Duration(runs.DefaultPlanTimeout), a.Timeout)
	assert.NotContains(t, a.Secrets, "s3cret")

	got, err := runproto.OpenSecrets(e.keys["tenant-a/a1"], a.Secrets)
	require.NoError(t, err)
	assert.Equal(t, "s3cret", got.Env["ARM_CLIENT_SECRET"])
	for _, other := range []string{"tenant-a/a2", "tenant-b/b1"} {
		_, err := runproto.OpenSecrets(e.keys[other], a.Secrets)
		assert.ErrorIs(t, err, runproto.ErrSealed, other)
	}

	// Nothing more to start: the workspace is busy.
	assert.Empty(t, e.d.DispatchWorkspace(context.Background(), "tenant-a", "prod"))
	assert.Empty(t, e.sender.take())
}

func TestNoAgentOfTheTenantMeansTheRunWaits(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-b", "b1") // another tenant's agent never gets it
	r := e.enqueue(runs.OpApply)
	assert.Empty(t, e.d.DispatchWorkspace(context.Background(), "tenant-a", "prod"))
	assert.Empty(t, e.sender.take())
	why, err := e.m.Waiting(context.Background(), e.run(r.ID))
	require.NoError(t, err)
	assert.Contains(t, why, "no agent of tenant tenant-a is online")
}

func TestFullLifecyclePlanApproveApply(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()

	e.start("a1", r.ID, a.ClaimToken)
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Seq: 0, Lines: []string{"Plan: 1 to add"}}))
	wd := strings.Repeat("c", 64)
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
		Result: &tfresult.Result{Op: tfresult.Plan, HasChanges: true, Changes: &tfresult.ChangeSummary{Add: 1}}, WorkdirUploaded: true, WorkdirSHA256: wd, WorkdirSize: 99, LastSeq: 0}))
	got := e.run(r.ID)
	require.Equal(t, runs.Planned, got.State)
	require.NotNil(t, got.Plan)
	assert.Equal(t, "tenant-a/prod/"+r.ID+"/workdir-c2.tar.gz", got.Plan.Blob)
	assert.Equal(t, wd, got.Plan.SHA256)

	// A redelivered result is dropped (the plan's claim has ended) and changes nothing.
	e.requireDropped(e.from("tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
		Result: &tfresult.Result{HasChanges: true}, WorkdirUploaded: true, WorkdirSHA256: wd, WorkdirSize: 99, LastSeq: 0}))

	_, err := e.m.Approve(context.Background(), "tenant-a", r.ID, "bob")
	require.NoError(t, err)
	e.heartbeat("tenant-a", "a2") // the apply may go to any agent of the tenant
	_, ap := e.assigned()
	assert.Equal(t, tfresult.Apply, ap.Op)
	assert.Equal(t, "https://blob/"+got.Plan.Blob+"?sp=r", ap.WorkdirURL)
	assert.Equal(t, wd, ap.WorkdirSHA256)
	assert.Equal(t, int64(99), ap.WorkdirSize)
	assert.Empty(t, ap.UploadURL)
	assert.Empty(t, ap.StateURL, "the apply's state comes with its saved plan")
	assert.Equal(t, "https://blob/tenant-a/prod/"+r.ID+"/state-c"+ap.ClaimToken+".tfstate?sp=cw", ap.StateUploadURL, "each claim uploads its own state blob")
	applier := e.run(r.ID).Agent

	// The plan's claim is stale now, even for the agent that planned: its
	// late batch is dropped quietly (no error queue), and not written.
	e.requireDropped(e.from("tenant-a", "a1", &runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Seq: 1, Lines: []string{"late"}}))

	require.NoError(t, e.from("tenant-a", applier, &runproto.Logs{RunID: r.ID, ClaimToken: ap.ClaimToken, Seq: 0, Lines: []string{"Apply complete!"}}))
	require.NoError(t, e.from("tenant-a", applier, &runproto.Result{RunID: r.ID, ClaimToken: ap.ClaimToken, Phase: runproto.PhaseApply, Outcome: runproto.Succeeded,
		Result: &tfresult.Result{Op: tfresult.Apply, Outputs: map[string]tfresult.Output{"x": {Value: []byte(`"1"`)}}}, LastSeq: 0}))
	done := e.run(r.ID)
	assert.Equal(t, runs.Applied, done.State)
	assert.Equal(t, "Plan: 1 to add\nApply complete!\n", e.logs.text(r.ID))
}

func TestForgedReportsAreRefused(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	e.heartbeat("tenant-b", "b1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()
	result := &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Failed, LastSeq: -1}

	tests := []struct {
		name, tenant, agent string
		msg                 runproto.Message
	}{
		{"another tenant's agent with the right token", "tenant-b", "b1", result},
		{"another agent of the tenant", "tenant-a", "a2", result},
		{"the agent with a made-up token", "tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: "1", Phase: runproto.PhasePlan, Outcome: runproto.Failed}},
		{"the agent with a future token", "tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: "9", Phase: runproto.PhasePlan, Outcome: runproto.Failed}},
		{"the agent reporting the wrong phase", "tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhaseApply, Outcome: runproto.Succeeded}},
		{"logs from another tenant", "tenant-b", "b1", &runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Lines: []string{"forged"}}},
		{"an unknown run", "tenant-a", "a1", &runproto.Started{RunID: "run-00000000000000zz", ClaimToken: "2", Phase: runproto.PhasePlan}},
		{"a disabled agent", "tenant-a", "a3", &runproto.Heartbeat{Capacity: 1}},
		{"an unregistered connector", "tenant-a", "ghost", &runproto.Heartbeat{Capacity: 1}},
		{"an agent sending a server message", "tenant-a", "a1", &runproto.Cancel{RunID: r.ID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireRefused(t, e.from(tt.tenant, tt.agent, tt.msg))
			got := e.run(r.ID)
			assert.Equal(t, runs.Planning, got.State)
			assert.Equal(t, "a1", got.Agent)
		})
	}
	assert.Empty(t, e.logs.text(r.ID), "no forged line reached the log")
}

func TestMalformedMessagesAreDeadLettered(t *testing.T) {
	e := newEnv(t)
	from := envelope.Identity{Tenant: "tenant-a", Connector: "a1"}
	tests := []struct {
		name string
		m    botecloud.Message
	}{
		{"no connector identity", botecloud.Message{From: envelope.Identity{Service: "svc"}, ContentType: runproto.ContentType, Body: []byte(`{"type":"agent.heartbeat","capacity":1}`)}},
		{"other content type", botecloud.Message{From: from, ContentType: "text/plain", Body: []byte(`hi`)}},
		{"not json", botecloud.Message{From: from, ContentType: runproto.ContentType, Body: []byte(`{`)}},
		{"unknown type", botecloud.Message{From: from, ContentType: runproto.ContentType, Body: []byte(`{"type":"run.explode"}`)}},
		{"bad heartbeat", botecloud.Message{From: from, ContentType: runproto.ContentType, Body: []byte(`{"type":"agent.heartbeat","capacity":500}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.d.Handle(context.Background(), &tt.m)
			require.Error(t, err)
			assert.True(t, botecloud.IsPermanent(err), err.Error())
		})
	}
}

func TestLogBatchesInOrderOnceEach(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()
	batch := func(seq int64) *runproto.Logs {
		return &runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Seq: seq, Lines: []string{fmt.Sprintf("line %d", seq)}}
	}
	// Batches arrive out of order and concurrently (the bus handles
	// several messages at once), and one twice.
	var wg sync.WaitGroup
	for _, seq := range []int64{2, 1, 0, 1} {
		wg.Go(func() { assert.NoError(t, e.from("tenant-a", "a1", batch(seq))) })
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	require.NoError(t, e.from("tenant-a", "a1", batch(0)))
	assert.Equal(t, "line 0\nline 1\nline 2\n", e.logs.text(r.ID))

	// A batch whose predecessor is nowhere here (written by another
	// replica, or before a restart) goes at the end after a short grace;
	// a late predecessor is not lost either.
	require.NoError(t, e.from("tenant-a", "a1", batch(4)))
	require.NoError(t, e.from("tenant-a", "a1", batch(3)))
	require.NoError(t, e.from("tenant-a", "a1", batch(4)))
	assert.Equal(t, "line 0\nline 1\nline 2\nline 4\nline 3\n", e.logs.text(r.ID))
}

func TestLogBatchesWithOffsetsGoExactlyThere(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()
	assert.Zero(t, a.LogOffset, "a new run's log is empty")
	var off int64
	var batches []*runproto.Logs
	for seq := range int64(3) {
		lines := []string{fmt.Sprintf("line %d", seq)}
		batches = append(batches, &runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Seq: seq, Lines: lines, Offset: ptr(a.LogOffset + off)})
		off += runproto.LinesBytes(lines)
	}
	// Batch 2 first: the log has a gap before it, so the bus brings it back.
	require.Error(t, e.from("tenant-a", "a1", batches[2]))
	require.NoError(t, e.from("tenant-a", "a1", batches[0]))
	require.NoError(t, e.from("tenant-a", "a1", batches[1]))
	require.NoError(t, e.from("tenant-a", "a1", batches[2]))
	// A redelivery, even to a process that never saw it, is written once.
	e.d.cursors = map[string]*cursor{}
	require.NoError(t, e.from("tenant-a", "a1", batches[1]))
	assert.Equal(t, "line 0\nline 1\nline 2\n", e.logs.text(r.ID))

	// The apply's assignment says where its log starts.
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
		Result: &tfresult.Result{HasChanges: true}, WorkdirUploaded: true, WorkdirSHA256: strings.Repeat("d", 64), WorkdirSize: 1, LastSeq: 2}))
	_, err := e.m.Approve(context.Background(), "tenant-a", r.ID, "bob")
	require.NoError(t, err)
	_, ap := e.assigned()
	assert.Equal(t, int64(len("line 0\nline 1\nline 2\n")), ap.LogOffset)
}

func ptr[T any](v T) *T { return &v }

func TestResultWaitsForItsLogs(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()
	errc := make(chan error, 1)
	go func() {
		errc <- e.from("tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Failed, LastSeq: 0})
	}()
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, runs.Planning, e.run(r.ID).State, "the result waits for log batch 0")
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Seq: 0, Lines: []string{"Error: boom"}}))
	require.NoError(t, <-errc)
	assert.Equal(t, runs.Failed, e.run(r.ID).State)
}

func TestPlanWithChangesButNoUploadFails(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
		Result: &tfresult.Result{HasChanges: true}, LastSeq: -1}))
	got := e.run(r.ID)
	assert.Equal(t, runs.Failed, got.State)
	assert.Contains(t, got.LastReason(), "did not upload")
}

func TestCancelReachesTheAgent(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()
	_, err := e.m.Cancel(context.Background(), runs.CancelRequest{Tenant: "tenant-a", Run: r.ID, By: "bob"})
	require.NoError(t, err)
	o := <-e.d.outbox
	assert.Equal(t, "a1", o.agent)
	c := o.msg.(*runproto.Cancel)
	assert.Equal(t, r.ID, c.RunID)
	assert.Equal(t, a.ClaimToken, c.ClaimToken)
	assert.Contains(t, c.Reason, "cancelled by bob")

	// The heartbeat repeats it until the agent confirms.
	e.heartbeat("tenant-a", "a1", r.ID)
	msgs := e.sender.take()
	require.Len(t, msgs, 1)
	assert.IsType(t, &runproto.Cancel{}, msgs[0].msg)
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Cancelled,
		Reason: c.Reason, LastSeq: -1}))
	done := e.run(r.ID)
	assert.Equal(t, runs.Cancelled, done.State)
	assert.Equal(t, "cancelled by bob; agent stopped planning", done.LastReason(), "the echoed reason is not repeated")
}

// TestLostAgentsClaimGoesToAnotherAgent: an agent lost before Terraform
// started gives its claim back; a restarted agent reading the stale
// assignment is told to drop it, and its messages of that claim are
// dropped quietly, never dead-lettered.
func TestLostAgentsClaimGoesToAnotherAgent(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()
	e.enqueue(runs.OpApply)

	e.advance(2 * time.Minute)
	_, err := e.m.SweepSilentAgents(context.Background())
	require.NoError(t, err)
	got := e.run(r.ID)
	assert.Equal(t, runs.Queued, got.State)
	assert.Contains(t, got.LastReason(), "stopped heartbeating")
	assert.Contains(t, got.LastReason(), "before Terraform started")

	// a1 restarts and reads the assignment from its queue: it may not start.
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Started{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan}))
	msgs := e.sender.take()
	require.Len(t, msgs, 1)
	c, ok := msgs[0].msg.(*runproto.Cancel)
	require.True(t, ok, "%T", msgs[0].msg)
	assert.Equal(t, a.ClaimToken, c.ClaimToken)
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Cancelled, Reason: c.Reason, LastSeq: -1}))
	assert.EqualValues(t, 2, e.d.StaleDropped())
	assert.Equal(t, runs.Queued, e.run(r.ID).State)

	// The run goes to a live agent, before the run queued after it.
	e.heartbeat("tenant-a", "a2")
	to, na := e.assigned()
	assert.Equal(t, "a2", to.agent)
	assert.Equal(t, r.ID, na.RunID)
	assert.NotEqual(t, a.ClaimToken, na.ClaimToken)
}

// TestRefusedAssignmentGoesBack: an agent at its limit or shutting down
// refuses; the claim goes back to the queue, and a draining agent gets
// no further run.
func TestRefusedAssignmentGoesBack(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan,
		Outcome: runproto.Refused, Reason: "refused by agent: agent a1 is shutting down", Draining: true, LastSeq: -1}))
	got := e.run(r.ID)
	assert.Equal(t, runs.Queued, got.State)
	assert.Equal(t, "agent a1 gave the run back: refused by agent: agent a1 is shutting down", got.LastReason())
	assert.Empty(t, e.d.DispatchWorkspace(context.Background(), "tenant-a", "prod"), "a draining agent gets no run")

	e.heartbeat("tenant-a", "a2")
	to, na := e.assigned()
	assert.Equal(t, "a2", to.agent)
	assert.Equal(t, r.ID, na.RunID)

	// A refusal after Terraform was let start is a lie: refused.
	e.start("a2", r.ID, na.ClaimToken)
	requireRefused(t, e.from("tenant-a", "a2", &runproto.Result{RunID: r.ID, ClaimToken: na.ClaimToken, Phase: runproto.PhasePlan,
		Outcome: runproto.Refused, Reason: "no", LastSeq: -1}))
}

// start is the agent's run.started; the server must let it proceed.
func (e *env) start(agent, runID, token string) {
	e.t.Helper()
	require.NoError(e.t, e.from("tenant-a", agent, &runproto.Started{RunID: runID, ClaimToken: token, Phase: runproto.PhasePlan}))
	msgs := e.sender.take()
	require.Len(e.t, msgs, 1)
	assert.Equal(e.t, &runproto.Proceed{RunID: runID, ClaimToken: token}, msgs[0].msg)
	require.NotNil(e.t, e.run(runID).TerraformStarted)
}

func TestLostAssignmentIsSentAgain(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()

	e.heartbeat("tenant-a", "a1") // too soon: the assignment may be in flight
	assert.Empty(t, e.sender.take())
	e.advance(DefaultResendAfter + time.Second)
	e.heartbeat("tenant-a", "a1")
	msgs := e.sender.take()
	require.Len(t, msgs, 1)
	again := msgs[0].msg.(*runproto.Assign)
	assert.Equal(t, r.ID, again.RunID)
	assert.Equal(t, a.ClaimToken, again.ClaimToken, "the same claim")

	e.advance(DefaultResendAfter + time.Second)
	e.heartbeat("tenant-a", "a1", r.ID) // running it: nothing to resend
	assert.Empty(t, e.sender.take())
}

func TestUndeliverableAssignmentFailsTheRun(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	e.sender.fail = errors.New("bus down")
	assert.Len(t, e.d.DispatchWorkspace(context.Background(), "tenant-a", "prod"), 1)
	got := e.run(r.ID)
	assert.Equal(t, runs.Failed, got.State)
	assert.Contains(t, got.LastReason(), "bus down")
}

func TestConfigValidate(t *testing.T) {
	e := newEnv(t)
	good := e.d.cfg
	tests := []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"no manager", func(c *Config) { c.Manager = nil }, "Manager"},
		{"no tenants", func(c *Config) { c.Tenants = nil }, "Tenants"},
		{"no sender", func(c *Config) { c.Sender = nil }, "Sender"},
		{"no signer", func(c *Config) { c.Signer = nil }, "Signer"},
		{"no logs", func(c *Config) { c.Logs = nil }, "Logs"},
		{"no states", func(c *Config) { c.States = nil }, "States"},
		{"no keys", func(c *Config) { c.Keys = nil }, "Keys"},
		{"negative tick", func(c *Config) { c.Tick = -1 }, "Tick"},
		{"huge ttl", func(c *Config) { c.URLTTL = 30 * 24 * time.Hour }, "URLTTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mut(&c)
			assert.ErrorContains(t, c.Validate(), tt.want)
		})
	}
}

func TestSubscribeWakesFollowers(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	ch, stop := e.d.Subscribe(r.ID)
	defer stop()
	_, a := e.assigned()
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("no wake-up on claim")
	}
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Lines: []string{"x"}}))
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("no wake-up on logs")
	}
}

func TestRunLoopDispatchesOnEnqueueAndTellsAgents(t *testing.T) {
	e := newEnv(t)
	e.d.cfg.SweepEvery = -1
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.d.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply) // OnChange kicks the workspace
	var a *runproto.Assign
	require.Eventually(t, func() bool {
		for _, m := range e.sender.take() {
			if as, ok := m.msg.(*runproto.Assign); ok && m.agent == "a1" {
				a = as
			}
		}
		return a != nil
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, r.ID, a.RunID)

	// A cancel goes out through the loop's outbox.
	_, err := e.m.Cancel(context.Background(), runs.CancelRequest{Tenant: "tenant-a", Run: r.ID, By: "bob"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for _, m := range e.sender.take() {
			if c, ok := m.msg.(*runproto.Cancel); ok && c.RunID == r.ID {
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond)
}

func TestHeartbeatRecordsTheAgentAndTerraformVersions(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	agents, err := e.m.ListAgents(context.Background(), "tenant-a")
	require.NoError(t, err)
	require.Len(t, agents, 1)
	assert.Equal(t, "test", agents[0].Version)
	assert.Equal(t, "1.11.4", agents[0].TerraformVersion)
}

// applyClaimed takes a run through its plan to a claimed apply on a1 and
// returns it with the apply's assignment.
func (e *env) applyClaimed() (runs.Run, *runproto.Assign) {
	e.t.Helper()
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()
	require.NoError(e.t, e.from("tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
		Result: &tfresult.Result{HasChanges: true}, WorkdirUploaded: true, WorkdirSHA256: strings.Repeat("c", 64), WorkdirSize: 99, LastSeq: -1}))
	_, err := e.m.Approve(context.Background(), "tenant-a", r.ID, "bob")
	require.NoError(e.t, err)
	_, ap := e.assigned()
	require.Equal(e.t, tfresult.Apply, ap.Op)
	return e.run(r.ID), ap
}

func stateResult(r runs.Run, token string, outcome runproto.Outcome) *runproto.Result {
	return &runproto.Result{RunID: r.ID, ClaimToken: token, Phase: runproto.PhaseApply, Outcome: outcome,
		Result: &tfresult.Result{Op: tfresult.Apply}, StateUploaded: true, StateSHA256: strings.Repeat("5", 64), StateSize: 42, LastSeq: -1}
}

func TestApplyStateIsPromotedOnlyWithItsAcceptedResult(t *testing.T) {
	e := newEnv(t)
	r, ap := e.applyClaimed()

	// Another agent of the tenant, and the plan's ended claim, cannot
	// promote a state.
	requireRefused(t, e.from("tenant-a", "a2", stateResult(r, ap.ClaimToken, runproto.Succeeded)))
	e.requireDropped(e.from("tenant-a", r.Agent, stateResult(r, "2", runproto.Succeeded)))
	assert.Empty(t, e.states.all())

	// A failed apply's state is promoted too: it may have changed resources.
	// It sent one log batch, which the bus holds back.
	failed := stateResult(r, ap.ClaimToken, runproto.Failed)
	failed.LastSeq = 0
	require.NoError(t, e.from("tenant-a", r.Agent, failed))
	assert.Equal(t, runs.Failed, e.run(r.ID).State)
	assert.Equal(t, []artifacts.Promotion{{Tenant: "tenant-a", Workspace: "prod", Run: r.ID, Claim: ap.ClaimToken, Size: 42, SHA256: strings.Repeat("5", 64)}}, e.states.all())

	// After the run's end, no result (even the same one again) is taken.
	e.requireDropped(e.from("tenant-a", r.Agent, stateResult(r, ap.ClaimToken, runproto.Failed)))
	e.requireDropped(e.from("tenant-a", r.Agent, stateResult(r, ap.ClaimToken, runproto.Succeeded)))
	e.requireDropped(e.from("tenant-a", r.Agent, &runproto.Started{RunID: r.ID, ClaimToken: ap.ClaimToken, Phase: runproto.PhaseApply}))
	requireRefused(t, e.from("tenant-a", "a2", &runproto.Logs{RunID: r.ID, ClaimToken: ap.ClaimToken, Seq: 0, Lines: []string{"forged"}}))
	// A log batch the bus held back past the agent's own result still goes
	// in for a while; after lateLogGrace nothing does.
	require.NoError(t, e.from("tenant-a", r.Agent, &runproto.Logs{RunID: r.ID, ClaimToken: ap.ClaimToken, Seq: 0, Lines: []string{"held back"}}))
	e.advance(lateLogGrace)
	e.requireDropped(e.from("tenant-a", r.Agent, &runproto.Logs{RunID: r.ID, ClaimToken: ap.ClaimToken, Seq: 1, Lines: []string{"late"}}))
	assert.Len(t, e.states.all(), 1)
	assert.Equal(t, runs.Failed, e.run(r.ID).State)
	assert.Equal(t, "held back\n", e.logs.text(r.ID))
}

func TestLogsOfAClaimEndedBySweepAreDropped(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()
	e.advance(2 * time.Minute) // a1 falls silent
	_, err := e.m.SweepSilentAgents(context.Background())
	require.NoError(t, err)
	require.Equal(t, runs.Queued, e.run(r.ID).State)
	e.requireDropped(e.from("tenant-a", "a1", &runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Seq: 0, Lines: []string{"after the sweep"}}))
	assert.Empty(t, e.logs.text(r.ID))
}

func TestStateThatCannotBePromotedFailsTheApply(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"checksum differs", fmt.Errorf("%w: SHA-256 differs", artifacts.ErrCorrupt)},
		{"nothing uploaded", fmt.Errorf("%w: state-c5.tfstate", artifacts.ErrNotFound)},
		{"another claim promoted meanwhile", artifacts.ErrConflict},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r, ap := e.applyClaimed()
			e.states.err = tt.err
			require.NoError(t, e.from("tenant-a", r.Agent, stateResult(r, ap.ClaimToken, runproto.Succeeded)))
			got := e.run(r.ID)
			assert.Equal(t, runs.Failed, got.State)
			assert.Contains(t, got.LastReason(), "the workspace state was not changed")
		})
	}
	t.Run("storage unreachable is retried", func(t *testing.T) {
		e := newEnv(t)
		r, ap := e.applyClaimed()
		e.states.err = errors.New("connection refused")
		err := e.from("tenant-a", r.Agent, stateResult(r, ap.ClaimToken, runproto.Succeeded))
		require.Error(t, err)
		assert.False(t, botecloud.IsPermanent(err))
		assert.Equal(t, runs.Applying, e.run(r.ID).State, "nothing recorded: the bus brings the result back")
	})
}

func TestUploadLinksLastUploadTTLAndAreRenewedOnlyForAnOpenClaim(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, plan := e.assigned()
	require.NotEmpty(t, plan.UploadURL)
	assert.WithinDuration(t, time.Now().Add(DefaultUploadTTL), plan.UploadExpiresAt, time.Minute,
		"an upload link lasts UploadTTL, not until the phase's deadline (1 h)")

	require.NoError(t, e.from("tenant-a", "a1", &runproto.Renew{RunID: r.ID, ClaimToken: plan.ClaimToken}))
	msgs := e.sender.take()
	require.Len(t, msgs, 1)
	links, ok := msgs[0].msg.(*runproto.Links)
	require.True(t, ok, "%T", msgs[0].msg)
	assert.Equal(t, "https://blob/tenant-a/prod/"+r.ID+"/workdir-c"+plan.ClaimToken+".tar.gz?sp=cw", links.UploadURL)
	assert.Empty(t, links.StateUploadURL)
	assert.Equal(t, "a1", msgs[0].agent)

	// Only the claim's agent, and only while the claim is open.
	requireRefused(t, e.from("tenant-a", "a2", &runproto.Renew{RunID: r.ID, ClaimToken: plan.ClaimToken}))
	requireRefused(t, e.from("tenant-b", "b1", &runproto.Renew{RunID: r.ID, ClaimToken: plan.ClaimToken}))
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: plan.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
		Result: &tfresult.Result{HasChanges: true}, WorkdirUploaded: true, WorkdirSHA256: strings.Repeat("c", 64), WorkdirSize: 99, LastSeq: -1}))
	e.requireDropped(e.from("tenant-a", "a1", &runproto.Renew{RunID: r.ID, ClaimToken: plan.ClaimToken}))
	assert.Empty(t, e.sender.take(), "no links for an ended claim")

	_, err := e.m.Approve(context.Background(), "tenant-a", r.ID, "bob")
	require.NoError(t, err)
	_, ap := e.assigned()
	require.NoError(t, e.from("tenant-a", e.run(r.ID).Agent, &runproto.Renew{RunID: r.ID, ClaimToken: ap.ClaimToken}))
	msgs = e.sender.take()
	require.Len(t, msgs, 1)
	links = msgs[0].msg.(*runproto.Links)
	assert.Equal(t, "https://blob/tenant-a/prod/"+r.ID+"/state-c"+ap.ClaimToken+".tfstate?sp=cw", links.StateUploadURL)
	assert.Empty(t, links.UploadURL)
}

// TestClaimEndedWhileItsResultWaitsPromotesNothing: an apply's result
// waits for its log batches (LogWait); an operator force-cancels the run
// meanwhile. The claim has ended, so its state is not promoted: the
// workspace is free, and another run may already plan from the state as
// it was.
func TestClaimEndedWhileItsResultWaitsPromotesNothing(t *testing.T) {
	e := newEnv(t)
	r, ap := e.applyClaimed()
	res := stateResult(r, ap.ClaimToken, runproto.Succeeded)
	res.LastSeq = 3 // batches that never come: the result waits LogWait
	done := make(chan error, 1)
	go func() { done <- e.from("tenant-a", "a1", res) }()
	time.Sleep(100 * time.Millisecond)
	_, err := e.m.Cancel(context.Background(), runs.CancelRequest{Tenant: "tenant-a", Run: r.ID, By: "bob", Force: true})
	require.NoError(t, err)
	require.NoError(t, <-done, "a result of a claim that ended is dropped quietly")
	assert.Empty(t, e.states.all(), "the ended claim's state was promoted")
	assert.Equal(t, runs.Cancelled, e.run(r.ID).State)
}

// TestNoLogBatchBeyondTheResultsLast: a result names its claim's last log
// batch. A batch the bus held back (at most that one) still goes in after
// the result; one beyond it cannot exist and is refused, so nothing is
// appended to a run that ended.
func TestNoLogBatchBeyondTheResultsLast(t *testing.T) {
	e := newEnv(t)
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()
	off0 := a.LogOffset
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Seq: 0, Lines: []string{"first"}, Offset: &off0}))
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Failed, LastSeq: 1}))
	require.Equal(t, runs.Failed, e.run(r.ID).State)
	off1 := off0 + runproto.LinesBytes([]string{"first"})
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Seq: 1, Lines: []string{"held back"}, Offset: &off1}))
	off2 := off1 + runproto.LinesBytes([]string{"held back"})
	requireRefused(t, e.from("tenant-a", "a1", &runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Seq: 2, Lines: []string{"after the end"}, Offset: &off2}))
	requireRefused(t, e.from("tenant-a", "a1", &runproto.Logs{RunID: r.ID, ClaimToken: a.ClaimToken, Seq: 7, Lines: []string{"after the end"}}))
	assert.Equal(t, "first\nheld back\n", e.logs.text(r.ID))
}
