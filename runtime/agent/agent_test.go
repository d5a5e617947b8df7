package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/tfarchive"
	"github.com/botehq/platform/runtime/tfrun"
)

// sender is a fake gateway: it records every message the agent sends.
type sender struct {
	mu      sync.Mutex
	bodies  [][]byte
	msgs    []runproto.Message
	arrived chan runproto.Message
	// failNext makes that many sends fail (a dropped session).
	failNext int
	// onStarted, if set, is the server's answer to run.started (the
	// fixture lets the agent proceed).
	onStarted func(*runproto.Started)
}

func newSender() *sender { return &sender{arrived: make(chan runproto.Message, 1000)} }

func (s *sender) Send(ctx context.Context, m connector.OutMessage) (string, error) {
	s.mu.Lock()
	if s.failNext > 0 {
		s.failNext--
		s.mu.Unlock()
		return "", connector.ErrNotConnected
	}
	s.mu.Unlock()
	if m.ContentType != runproto.ContentType {
		return "", errors.New("wrong content type")
	}
	msg, err := runproto.Decode(m.Body)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, m.Body)
	s.msgs = append(s.msgs, msg)
	s.mu.Unlock()
	s.arrived <- msg
	s.mu.Lock()
	onStarted := s.onStarted
	s.mu.Unlock()
	if st, ok := msg.(*runproto.Started); ok && onStarted != nil {
		go onStarted(st)
	}
	return m.ID, nil
}

// all returns the messages of one type sent so far.
func all[T runproto.Message](s *sender) []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []T
	for _, m := range s.msgs {
		if t, ok := m.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// waitFor waits for the first message sent that matches.
func waitFor[T runproto.Message](t *testing.T, s *sender, match func(T) bool) T {
	t.Helper()
	timeout := time.After(90 * time.Second)
	for _, m := range all[T](s) {
		if match(m) {
			return m
		}
	}
	for {
		select {
		case m := <-s.arrived:
			if v, ok := m.(T); ok && match(v) {
				return v
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T arrived", zero)
			return zero
		}
	}
}

func resultOf(t *testing.T, s *sender, runID, token string) *runproto.Result {
	t.Helper()
	return waitFor(t, s, func(r *runproto.Result) bool { return r.RunID == runID && r.ClaimToken == token })
}

func batchesOf(s *sender, runID, token string) []*runproto.Logs {
	var out []*runproto.Logs
	for _, l := range all[*runproto.Logs](s) {
		if l.RunID == runID && l.ClaimToken == token {
			out = append(out, l)
		}
	}
	return out
}

// logLines are the lines of a claim in seq order; it checks seqs are 0..n-1
// and that each batch's offset starts where the previous one ended.
func logLines(t *testing.T, s *sender, runID, token string) []string {
	t.Helper()
	var lines []string
	var seq, offset int64
	for _, l := range batchesOf(s, runID, token) {
		require.Equal(t, seq, l.Seq, "log batches out of order")
		require.NotNil(t, l.Offset, "batch %d has no offset", l.Seq)
		require.Equal(t, offset, *l.Offset, "batch %d starts at the wrong offset", l.Seq)
		seq++
		offset += runproto.LinesBytes(l.Lines)
		lines = append(lines, l.Lines...)
	}
	return lines
}

// blobs is a fake Blob storage serving downloads and taking uploads.
type blobs struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
}

func newBlobs(t *testing.T) *blobs {
	b := &blobs{files: map[string][]byte{}}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch r.Method {
		case http.MethodGet:
			data, ok := b.files[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write(data)
		case http.MethodPut:
			if r.Header.Get("x-ms-blob-type") != "BlockBlob" {
				http.Error(w, "x-ms-blob-type missing", http.StatusBadRequest)
				return
			}
			data, _ := io.ReadAll(r.Body)
			b.files[r.URL.Path] = data
			w.WriteHeader(http.StatusCreated)
		default:
			http.Error(w, "unexpected", http.StatusMethodNotAllowed)
		}
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *blobs) put(name string, data []byte) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.files["/"+name] = data
	return b.URL + "/" + name + "?sig=secret-sas"
}

func (b *blobs) get(name string) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.files["/"+name]
}

// bundle packs a testdata configuration and serves it; it returns the
// download link, size and SHA-256.
func (b *blobs) bundle(t *testing.T, config string) (string, int64, string) {
	t.Helper()
	var buf bytes.Buffer
	_, err := tfarchive.Pack(filepath.Join("testdata", config), &buf, tfarchive.PackOptions{Limits: tfarchive.BundleLimits})
	require.NoError(t, err)
	sum := sha256.Sum256(buf.Bytes())
	return b.put("bundles/"+config+t.Name(), buf.Bytes()), int64(buf.Len()), hex.EncodeToString(sum[:])
}

type fixture struct {
	agent  *Agent
	sender *sender
	key    *ecdsa.PrivateKey
	dir    string
	logs   *bytes.Buffer
}

func newFixture(t *testing.T, tf Terraform, opts ...func(*Config)) *fixture {
	t.Helper()
	key, err := clientauth.GenerateKey()
	require.NoError(t, err)
	f := &fixture{sender: newSender(), key: key, dir: filepath.Join(t.TempDir(), "work"), logs: &bytes.Buffer{}}
	if tf == nil {
		tf = realTerraform(t)
	}
	cfg := Config{
		Tenant: "contoso", ID: "agent-1", Key: key, WorkDir: f.dir, Terraform: tf, Sender: f.sender,
		HeartbeatInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: f.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&cfg)
	}
	f.agent, err = New(cfg)
	require.NoError(t, err)
	t.Cleanup(f.agent.Stop)
	f.sender.onStarted = func(st *runproto.Started) {
		_ = f.deliver(t, &runproto.Proceed{RunID: st.RunID, ClaimToken: st.ClaimToken})
	}
	return f
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func realTerraform(t *testing.T) *tfrun.Runner {
	t.Helper()
	r, err := tfrun.New(tfrun.Config{CancelGrace: 3 * time.Second, FlushInterval: 50 * time.Millisecond})
	if err != nil {
		t.Skipf("terraform is not available: %v", err)
	}
	return r
}

// deliver hands m to the agent as the gateway would.
func (f *fixture) deliver(t *testing.T, m runproto.Message) error {
	t.Helper()
	body, err := runproto.Encode(m)
	require.NoError(t, err)
	return f.agent.Handle(context.Background(), &connector.Message{ID: t.Name(), From: envelope.Identity{Service: DefaultServer}, ContentType: runproto.ContentType, Body: body})
}

func (f *fixture) seal(t *testing.T, s runproto.Secrets) string {
	t.Helper()
	jwe, err := runproto.SealSecrets(&f.key.PublicKey, s)
	require.NoError(t, err)
	return jwe
}

// assertClean checks no run's working directory is left behind.
func (f *fixture) assertClean(t *testing.T) {
	t.Helper()
	assert.Empty(t, runDirs(t, f.dir), "working directories left behind")
}

// runDirs lists the runs' directories under a work directory.
func runDirs(t *testing.T, workDir string) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(workDir, processDirPattern, runDirPattern))
	require.NoError(t, err)
	return dirs
}

const (
	envSecret = "tok-3nv-s3cr3t"
	varSecret = "k3y-v4r-s3cr3t"
)

// TestPlanUploadApplyOnAnotherAgent plans on one agent, which uploads the
// working directory, and applies that archive on another agent with its
// own key and work directory: "apply on any agent of the tenant".
func TestPlanUploadApplyOnAnotherAgent(t *testing.T) {
	store := newBlobs(t)
	planner := newFixture(t, nil)
	applier := newFixture(t, nil, func(c *Config) { c.ID = "agent-2" })
	secrets := runproto.Secrets{Env: map[string]string{"DEPLOY_TOKEN": envSecret}, Vars: map[string]string{"api_key": varSecret}}

	bundleURL, size, sum := store.bundle(t, "ok")
	require.NoError(t, planner.deliver(t, &runproto.Assign{
		RunID: "run-1", Tenant: "contoso", Workspace: "app", Op: tfrun.Plan, ClaimToken: "2",
		BundleURL: bundleURL, BundleSize: size, BundleSHA256: sum,
		UploadURL: store.URL + "/upload/run-1?sig=w", Secrets: planner.seal(t, secrets), Timeout: runproto.Duration(time.Minute),
	}))
	plan := resultOf(t, planner.sender, "run-1", "2")
	require.Equal(t, runproto.Succeeded, plan.Outcome, plan.Reason)
	require.Equal(t, runproto.PhasePlan, plan.Phase)
	require.NotNil(t, plan.Result)
	assert.True(t, plan.Result.HasChanges)
	require.NotNil(t, plan.Result.Changes)
	assert.Equal(t, 1, plan.Result.Changes.Add)
	require.True(t, plan.WorkdirUploaded)
	// The plan's JSON comes with the result, without the run's secrets.
	require.NotEmpty(t, plan.Plan)
	assert.Contains(t, string(plan.Plan), `"resource_changes"`)
	assert.NotContains(t, string(plan.Plan), varSecret)
	require.NotNil(t, plan.Result.Plan)
	assert.Equal(t, 1, plan.Result.Plan.Add)
	archive := store.get("upload/run-1")
	require.NotEmpty(t, archive)
	archiveSum := sha256.Sum256(archive)
	assert.Equal(t, hex.EncodeToString(archiveSum[:]), plan.WorkdirSHA256)
	assert.Equal(t, int64(len(archive)), plan.WorkdirSize)
	require.NotEmpty(t, logLines(t, planner.sender, "run-1", "2"))
	assert.Equal(t, int64(len(batchesOf(planner.sender, "run-1", "2"))-1), plan.LastSeq)
	started := waitFor(t, planner.sender, func(s *runproto.Started) bool { return s.RunID == "run-1" })
	assert.Equal(t, runproto.PhasePlan, started.Phase)
	planner.assertClean(t)

	assert.Regexp(t, `run phase ended.*outcome=succeeded.*fetch=\S+ terraform=\S+ upload=\S+`, planner.logs.String())

	// The archive holds the configuration and the plan, not the run's variables file.
	names := archiveNames(t, archive)
	assert.Contains(t, names, tfrun.DefaultPlanFile)
	assert.Contains(t, names, "main.tf") // terraform_data needs no provider, so there is no lock file
	for _, n := range names {
		assert.NotContains(t, n, "tfvars", "the run's variables file travelled with the plan")
	}

	require.NoError(t, applier.deliver(t, &runproto.Assign{
		RunID: "run-1", Tenant: "contoso", Workspace: "app", Op: tfrun.Apply, ClaimToken: "5",
		WorkdirURL: store.put("plans/run-1", archive), WorkdirSize: plan.WorkdirSize, WorkdirSHA256: plan.WorkdirSHA256,
		Secrets: applier.seal(t, secrets),
	}))
	apply := resultOf(t, applier.sender, "run-1", "5")
	require.Equal(t, runproto.Succeeded, apply.Outcome, apply.Reason)
	require.Equal(t, runproto.PhaseApply, apply.Phase)
	assert.False(t, apply.WorkdirUploaded)
	assert.Empty(t, apply.Plan, "an apply reports no plan")
	assert.JSONEq(t, `"v1"`, string(apply.Result.Outputs["greeting"].Value))
	assert.Equal(t, tfrun.Output{Sensitive: true}, apply.Result.Outputs["leaky"], "an output holding a secret must be withheld")
	lines := strings.Join(logLines(t, applier.sender, "run-1", "5"), "\n")
	assert.Contains(t, lines, "deploying with *** and ***")
	applier.assertClean(t)

	// No secret in anything either agent sent or logged.
	for _, f := range []*fixture{planner, applier} {
		f.sender.mu.Lock()
		for _, b := range f.sender.bodies {
			assert.NotContains(t, string(b), envSecret)
			assert.NotContains(t, string(b), varSecret)
		}
		f.sender.mu.Unlock()
		assert.NotContains(t, f.logs.String(), envSecret)
		assert.NotContains(t, f.logs.String(), varSecret)
		assert.NotContains(t, f.logs.String(), "sig=", "a SAS link was logged")
	}
}

func archiveNames(t *testing.T, archive []byte) []string {
	t.Helper()
	dir := t.TempDir()
	_, err := tfarchive.Unpack(bytes.NewReader(archive), dir, tfarchive.WorkdirLimits)
	require.NoError(t, err)
	var names []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		names = append(names, filepath.ToSlash(rel))
		return err
	}))
	return names
}

// TestCancelDuringApply cancels an apply stuck in a long local-exec: the
// phase ends cancelled, quickly, with its working directory removed.
func TestCancelDuringApply(t *testing.T) {
	store := newBlobs(t)
	f := newFixture(t, nil)
	bundleURL, _, _ := store.bundle(t, "slow")
	require.NoError(t, f.deliver(t, &runproto.Assign{RunID: "run-slow", Tenant: "contoso", Workspace: "app", Op: tfrun.Plan, ClaimToken: "1",
		BundleURL: bundleURL, UploadURL: store.URL + "/upload/slow"}))
	plan := resultOf(t, f.sender, "run-slow", "1")
	require.Equal(t, runproto.Succeeded, plan.Outcome, plan.Reason)

	require.NoError(t, f.deliver(t, &runproto.Assign{RunID: "run-slow", Tenant: "contoso", Workspace: "app", Op: tfrun.Apply, ClaimToken: "4",
		WorkdirURL: store.put("plans/slow", store.get("upload/slow")), WorkdirSize: plan.WorkdirSize, WorkdirSHA256: plan.WorkdirSHA256}))
	waitFor(t, f.sender, func(l *runproto.Logs) bool {
		return l.ClaimToken == "4" && strings.Contains(strings.Join(l.Lines, "\n"), "slow-start")
	})
	assert.Equal(t, []string{"run-slow"}, f.agent.Running())

	// A cancel for another claim of the run is stale: ignored.
	require.NoError(t, f.deliver(t, &runproto.Cancel{RunID: "run-slow", ClaimToken: "1"}))
	start := time.Now()
	require.NoError(t, f.deliver(t, &runproto.Cancel{RunID: "run-slow", ClaimToken: "4", Reason: "cancelled by bob"}))
	res := resultOf(t, f.sender, "run-slow", "4")
	assert.Equal(t, runproto.Cancelled, res.Outcome)
	assert.Equal(t, "cancelled by bob", res.Reason)
	assert.True(t, res.Result.Cancelled)
	assert.Less(t, time.Since(start), 20*time.Second, "cancel must not wait for the sleep")
	assert.Empty(t, f.agent.Running())
	f.assertClean(t)
}

// TestInvalidConfigurationFails: Terraform's diagnostics reach the server.
func TestInvalidConfigurationFails(t *testing.T) {
	store := newBlobs(t)
	f := newFixture(t, nil)
	bundleURL, _, _ := store.bundle(t, "invalid")
	require.NoError(t, f.deliver(t, &runproto.Assign{RunID: "run-bad", Tenant: "contoso", Workspace: "app", Op: tfrun.Plan, ClaimToken: "1",
		BundleURL: bundleURL, UploadURL: store.URL + "/upload/bad"}))
	res := resultOf(t, f.sender, "run-bad", "1")
	assert.Equal(t, runproto.Failed, res.Outcome)
	require.NotNil(t, res.Result)
	assert.True(t, res.Result.Failed)
	require.NotEmpty(t, res.Result.Diagnostics)
	assert.Equal(t, "error", res.Result.Diagnostics[0].Severity)
	assert.Contains(t, res.Result.Diagnostics[0].Summary, "Reference to undeclared input variable")
	assert.Equal(t, "terraform plan failed: Reference to undeclared input variable (main.tf line 2)", res.Reason,
		"the reason is Terraform's diagnostic, not its exit status and stderr")
	assert.False(t, res.WorkdirUploaded)
	assert.Nil(t, store.get("upload/bad"))
	f.assertClean(t)
}

// TestStateCarriesOverBetweenRuns: the local state an apply leaves is
// stored, so the next plan (on another agent) sees the resources and a
// destroy plans to remove them instead of finding nothing.
func TestStateCarriesOverBetweenRuns(t *testing.T) {
	store := newBlobs(t)
	one := newFixture(t, nil)
	two := newFixture(t, nil, func(c *Config) { c.ID = "agent-2" })
	secrets := runproto.Secrets{Env: map[string]string{"DEPLOY_TOKEN": envSecret}, Vars: map[string]string{"api_key": varSecret}}
	stateURL := store.URL + "/state/app?sig=r"
	bundleURL, size, sum := store.bundle(t, "ok")

	planApply := func(f *fixture, run string, op tfrun.Operation) *runproto.Result {
		t.Helper()
		require.NoError(t, f.deliver(t, &runproto.Assign{
			RunID: run, Tenant: "contoso", Workspace: "app", Op: op, ClaimToken: "1",
			BundleURL: bundleURL, BundleSize: size, BundleSHA256: sum, StateURL: stateURL,
			UploadURL: store.URL + "/upload/" + run + "?sig=w", Secrets: f.seal(t, secrets),
		}))
		plan := resultOf(t, f.sender, run, "1")
		require.Equal(t, runproto.Succeeded, plan.Outcome, plan.Reason)
		if !plan.Result.HasChanges {
			return plan
		}
		archive := store.get("upload/" + run)
		require.NoError(t, f.deliver(t, &runproto.Assign{
			RunID: run, Tenant: "contoso", Workspace: "app", Op: tfrun.Apply, ClaimToken: "2",
			WorkdirURL: store.put("plans/"+run, archive), WorkdirSize: plan.WorkdirSize, WorkdirSHA256: plan.WorkdirSHA256,
			StateUploadURL: store.URL + "/state/app?sig=w", Secrets: f.seal(t, secrets),
		}))
		apply := resultOf(t, f.sender, run, "2")
		require.Equal(t, runproto.Succeeded, apply.Outcome, apply.Reason)
		stored := store.get("state/app")
		sum := sha256.Sum256(stored)
		assert.True(t, apply.StateUploaded, "the result says the state was stored")
		assert.Equal(t, int64(len(stored)), apply.StateSize)
		assert.Equal(t, hex.EncodeToString(sum[:]), apply.StateSHA256, "the server checks what it promotes against this")
		return plan
	}

	first := planApply(one, "run-1", tfrun.Plan)
	assert.Equal(t, 1, first.Result.Changes.Add)
	state := store.get("state/app")
	require.NotEmpty(t, state, "the apply stored the workspace state")
	assert.Contains(t, string(state), "terraform_data")
	assert.NotContains(t, string(state), envSecret, "environment secrets never reach the state")

	again := planApply(two, "run-2", tfrun.Plan)
	assert.False(t, again.Result.HasChanges, "the next plan, on another agent, starts from the stored state")

	destroy := planApply(two, "run-3", tfrun.PlanDestroy)
	require.NotNil(t, destroy.Result.Changes)
	assert.Equal(t, 1, destroy.Result.Changes.Remove, "a destroy finds the resources to remove")
	assert.NotContains(t, string(store.get("state/app")), `"type": "terraform_data"`, "the destroy's apply stored the emptied state")
	one.assertClean(t)
	two.assertClean(t)
}

// TestStateStorageFailuresFailTheRunClearly: a state that cannot be read
// fails the plan before Terraform runs; a state that cannot be stored
// fails the apply (the operator must know the next plan would start from
// stale state). Both say why and leave nothing behind.
func TestStateStorageFailuresFailTheRunClearly(t *testing.T) {
	store := newBlobs(t)
	// Storage that is down for reads and refuses writes (a 503 on upload
	// would be retried by the blob client for seconds before the same
	// failure).
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		http.Error(w, "no", http.StatusForbidden)
	}))
	t.Cleanup(refusing.Close)
	f := newFixture(t, nil)
	bundleURL, size, sum := store.bundle(t, "ok")
	secrets := runproto.Secrets{Vars: map[string]string{"api_key": varSecret}}

	require.NoError(t, f.deliver(t, &runproto.Assign{
		RunID: "run-1", Tenant: "contoso", Workspace: "app", Op: tfrun.Plan, ClaimToken: "1",
		BundleURL: bundleURL, BundleSize: size, BundleSHA256: sum, StateURL: refusing.URL + "/state?sig=r",
		UploadURL: store.URL + "/upload/run-1?sig=w", Secrets: f.seal(t, secrets),
	}))
	plan := resultOf(t, f.sender, "run-1", "1")
	assert.Equal(t, runproto.Failed, plan.Outcome)
	assert.Contains(t, plan.Reason, "cannot download the workspace state: blob storage answered 503")
	assert.NotContains(t, plan.Reason, "sig=", "no SAS token in the reason")
	f.assertClean(t)

	require.NoError(t, f.deliver(t, &runproto.Assign{
		RunID: "run-2", Tenant: "contoso", Workspace: "app", Op: tfrun.Plan, ClaimToken: "1",
		BundleURL: bundleURL, BundleSize: size, BundleSHA256: sum,
		UploadURL: store.URL + "/upload/run-2?sig=w", Secrets: f.seal(t, secrets),
	}))
	plan = resultOf(t, f.sender, "run-2", "1")
	require.Equal(t, runproto.Succeeded, plan.Outcome, plan.Reason)
	require.NoError(t, f.deliver(t, &runproto.Assign{
		RunID: "run-2", Tenant: "contoso", Workspace: "app", Op: tfrun.Apply, ClaimToken: "2",
		WorkdirURL: store.put("plans/run-2", store.get("upload/run-2")), WorkdirSize: plan.WorkdirSize, WorkdirSHA256: plan.WorkdirSHA256,
		StateUploadURL: refusing.URL + "/state?sig=w", Secrets: f.seal(t, secrets),
	}))
	apply := resultOf(t, f.sender, "run-2", "2")
	assert.Equal(t, runproto.Failed, apply.Outcome)
	assert.Contains(t, apply.Reason, "cannot store the workspace state")
	assert.NotContains(t, apply.Reason, "sig=")
	f.assertClean(t)
}

// TestUploadLinksAreRenewedBeforeTheyExpire: an upload link with less
// than half its lifetime left is not used; the agent asks for fresh ones
// and uploads with those, or fails the phase when none come.
func TestUploadLinksAreRenewedBeforeTheyExpire(t *testing.T) {
	store := newBlobs(t)
	f := newFixture(t, nil)
	bundleURL, size, sum := store.bundle(t, "ok")
	assign := func(run string) *runproto.Assign {
		return &runproto.Assign{
			RunID: run, Tenant: "contoso", Workspace: "app", Op: tfrun.Plan, ClaimToken: "1",
			BundleURL: bundleURL, BundleSize: size, BundleSHA256: sum, Secrets: f.seal(t, runproto.Secrets{Vars: map[string]string{"api_key": varSecret}}),
			UploadURL: store.URL + "/stale/" + run + "?sig=w", UploadExpiresAt: time.Now().Add(50 * time.Millisecond),
		}
	}

	require.NoError(t, f.deliver(t, assign("run-1")))
	waitFor(t, f.sender, func(r *runproto.Renew) bool { return r.RunID == "run-1" && r.ClaimToken == "1" })
	require.NoError(t, f.deliver(t, &runproto.Links{RunID: "run-1", ClaimToken: "1", UploadURL: store.URL + "/fresh/run-1?sig=w2", ExpiresAt: time.Now().Add(time.Hour)}))
	plan := resultOf(t, f.sender, "run-1", "1")
	require.Equal(t, runproto.Succeeded, plan.Outcome, plan.Reason)
	assert.True(t, plan.WorkdirUploaded)
	assert.NotEmpty(t, store.get("fresh/run-1"), "uploaded with the renewed link")
	assert.Empty(t, store.get("stale/run-1"), "never with the one about to expire")

	defer func(w, a time.Duration) { renewWait, renewAsk = w, a }(renewWait, renewAsk)
	renewWait, renewAsk = 500*time.Millisecond, 100*time.Millisecond
	require.NoError(t, f.deliver(t, assign("run-2")))
	plan = resultOf(t, f.sender, "run-2", "1")
	assert.Equal(t, runproto.Failed, plan.Outcome)
	assert.Contains(t, plan.Reason, "cannot upload the saved plan: the server sent no fresh upload link")
	assert.Empty(t, store.get("stale/run-2"))
	f.assertClean(t)
}

// TestRunMessagesOnlyFromTheOpsServer: the gateway carries messages of
// every cloud service on it, and each may address any connector. Only the
// ops server's run messages count: an assignment another service sends
// (its own bundle, its own run.proceed, secrets sealed to the agent's
// public key, which anyone may have) never reaches Terraform, and its
// run.cancel or run.links change no run.
func TestRunMessagesOnlyFromTheOpsServer(t *testing.T) {
	tf := newFakeTerraform()
	f := newFixture(t, tf)
	intruder := func(m runproto.Message) {
		t.Helper()
		body, err := runproto.Encode(m)
		require.NoError(t, err)
		require.NoError(t, f.agent.Handle(context.Background(), &connector.Message{ID: envelope.NewID(), From: envelope.Identity{Service: "intruder"},
			ContentType: runproto.ContentType, Body: body}))
	}
	asg := planAssign(t, newBlobs(t), "run-0123456789abcdef", "1")
	asg.Secrets = f.seal(t, runproto.Secrets{Env: map[string]string{"FORGED": "x"}})
	intruder(asg)
	intruder(&runproto.Proceed{RunID: asg.RunID, ClaimToken: asg.ClaimToken})
	intruder(&runproto.Cancel{RunID: asg.RunID, ClaimToken: asg.ClaimToken, Reason: "forged"})
	time.Sleep(200 * time.Millisecond)
	assert.Empty(t, all[runproto.Message](f.sender), "nothing of the forged run went out: no run.started, no result")
	assert.Empty(t, f.agent.Running())
	tf.mu.Lock()
	defer tf.mu.Unlock()
	assert.Empty(t, tf.jobs, "Terraform never ran")
	assert.Contains(t, f.logs.String(), "dropping a run message that is not from the ops server")
}
