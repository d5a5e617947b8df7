// Package agent_test runs the real agent binary against the real gateway
// (idp and gateway processes on Azurite), with the test playing the ops
// server through runtime/botecloud: it puts configuration bundles in Blob
// storage with runtime/artifacts, sends run.assign and run.cancel, and
// checks the run.started, run.logs, run.result and agent.heartbeat that
// come back with the agent's verified identity.
//
// Each test starts its own processes on a storage account of its own,
// served by one Azurite the tests share (sharedAzurite). They mostly wait
// (on processes starting, on heartbeats, on shutdown graces), so they run
// four at a time, not one per CPU as go test's -parallel defaults to (an
// explicit -parallel stands).
package agent_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/integration/tfprovider"
	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/bus/storagequeue"
	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfarchive"
	"github.com/botehq/platform/runtime/tfrun"
)

// sharedAzurite serves each test a storage account of its own.
var sharedAzurite = &azurite.Shared{Accounts: 64}

func TestMain(m *testing.M) {
	procs.Parallel(4)
	wait := func() {}
	// TestProviderInstallation starts once a slot is free: its provider
	// is built meanwhile.
	if run, _, _ := strings.Cut(flag.Lookup("test.run").Value.String(), "/"); run == "" || matches(run, "TestProviderInstallation") {
		wait = tfprovider.Prebuild()
	}
	code := procs.Run(m)
	wait()
	_ = sharedAzurite.Stop()
	os.Exit(code)
}

// matches reports whether the -run pattern matches name.
func matches(pattern, name string) bool {
	ok, err := regexp.MatchString(pattern, name)
	return ok && err == nil
}

const (
	tenant    = "contoso"
	agentID   = "agent-1"
	workspace = "app"
	secret    = "s3cr3t-deploy-token"
	heartbeat = 300 * time.Millisecond
)

// server is the test playing the ops server: the gateway, blob storage and
// what the agent sent.
type server struct {
	t                    testing.TB
	emu                  *azurite.Emulator
	dir                  string
	keyFile              string
	pubKey               *ecdsa.PublicKey
	gatewayURL, tokenURL string
	cloud                *botecloud.Client
	arts                 *artifacts.Store
	signer               *claimcheck.Store

	mu       sync.Mutex
	received []received
}

// received is one message from the agent with its verified sender.
type received struct {
	from envelope.Identity
	at   time.Time
	msg  runproto.Message
	body []byte
}

func newServer(t testing.TB) *server {
	t.Helper()
	s := &server{t: t, emu: sharedAzurite.Account(t), dir: t.TempDir()}
	ctx := context.Background()

	key, err := clientauth.GenerateKey()
	require.NoError(t, err)
	s.keyFile = filepath.Join(s.dir, "agent.pem")
	require.NoError(t, clientauth.WriteKeyFile(s.keyFile, key))
	s.pubKey = &key.PublicKey
	jwk, err := clientauth.PublicJWK(key, "")
	require.NoError(t, err)
	regs, err := registry.Marshal([]registry.Connector{{Tenant: tenant, ID: agentID, JWK: jwk, Roles: []string{registry.RoleAgent}}})
	require.NoError(t, err)
	regFile := filepath.Join(s.dir, "registry.json")
	require.NoError(t, os.WriteFile(regFile, regs, 0o644))

	idp := procs.Start(t, procs.Spec{Name: "idp", Path: procs.Build(t, "idp"), Args: []string{
		"--listen", "127.0.0.1:0", "--registry", regFile, "--key-dir", filepath.Join(s.dir, "idp-keys"),
	}})
	idpURL, err := idp.ListenAddr(60 * time.Second)
	require.NoError(t, err)
	s.tokenURL = idpURL + "/oauth2/token"
	gw := procs.Start(t, procs.Spec{Name: "gateway", Path: procs.Build(t, "gateway"), Args: []string{
		"--listen", "127.0.0.1:0", "--storage-connection-string", s.emu.ConnectionString, "--issuer", idpURL,
		"--registry", regFile, "--create-resources", "--shutdown-timeout", "5s",
	}})
	s.gatewayURL, err = gw.ListenAddr(60 * time.Second)
	require.NoError(t, err)

	claims, err := claimcheck.New(ctx, claimcheck.Config{ConnectionString: s.emu.ConnectionString, CreateContainer: true})
	require.NoError(t, err)
	bus, err := storagequeue.New(storagequeue.Config{ConnectionString: s.emu.ConnectionString, Claims: claims, CreateQueues: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	s.cloud, err = botecloud.New(botecloud.Config{Bus: bus, Service: "relayserver", WakeURL: s.gatewayURL, PollMin: 10 * time.Millisecond, PollMax: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.cloud.Run(runCtx, botecloud.HandlerFunc(func(ctx context.Context, m *botecloud.Message) error {
			msg, err := runproto.Decode(m.Body)
			if err != nil {
				return botecloud.Permanent(err)
			}
			r := received{from: m.From, at: time.Now(), msg: msg, body: m.Body}
			s.mu.Lock()
			s.received = append(s.received, r)
			s.mu.Unlock()
			if st, ok := msg.(*runproto.Started); ok {
				// The server's start fence: it lets Terraform start.
				body, err := runproto.Encode(&runproto.Proceed{RunID: st.RunID, ClaimToken: st.ClaimToken})
				if err != nil {
					return botecloud.Permanent(err)
				}
				_, err = s.cloud.SendToConnector(ctx, tenant, agentID, botecloud.OutMessage{ContentType: runproto.ContentType, Body: body})
				return err
			}
			return nil
		}))
	}()
	t.Cleanup(func() { cancel(); <-done; _ = bus.Close(context.Background()) })

	blobs, err := azblob.NewClientFromConnectionString(s.emu.ConnectionString, nil)
	require.NoError(t, err)
	s.arts, err = artifacts.New(ctx, blobs, artifacts.DefaultContainer, true)
	require.NoError(t, err)
	s.signer, err = claimcheck.New(ctx, claimcheck.Config{ConnectionString: s.emu.ConnectionString, Container: artifacts.DefaultContainer})
	require.NoError(t, err)
	return s
}

// startAgent starts the agent binary and waits until it is connected.
func (s *server) startAgent(workDir string, extra ...string) *procs.Process {
	s.t.Helper()
	return s.startAgentEnv(workDir, nil, extra...)
}

// startAgentEnv is startAgent with variables added to its environment.
func (s *server) startAgentEnv(workDir string, env []string, extra ...string) *procs.Process {
	s.t.Helper()
	p := procs.Start(s.t, procs.Spec{Name: "agent", Path: procs.Build(s.t, "agent"), Env: env, Args: append([]string{
		"--gateway-url", s.gatewayURL, "--token-url", s.tokenURL, "--tenant", tenant, "--id", agentID, "--key", s.keyFile,
		"--work-dir", workDir, "--heartbeat-interval", heartbeat.String(), "--cancel-grace", "3s", "--shutdown-grace", "5s",
		"--labels", "env=test", "--log-level", "debug",
	}, extra...)})
	_, err := p.WaitOutput("agent connected", 60*time.Second)
	require.NoError(s.t, err)
	return p
}

// bundle packs testdata/<config> (or the directory config, if absolute)
// into Blob storage for a run.
func (s *server) bundle(run, config string) *envelope.Claim {
	s.t.Helper()
	if !filepath.IsAbs(config) {
		config = filepath.Join("testdata", config)
	}
	var buf bytes.Buffer
	_, err := tfarchive.Pack(config, &buf, tfarchive.PackOptions{Limits: tfarchive.BundleLimits})
	require.NoError(s.t, err)
	a, err := s.arts.Put(context.Background(), artifacts.RunKey{Tenant: tenant, Workspace: workspace, Run: run}, artifacts.Bundle, &buf, tfarchive.BundleLimits.MaxBytes)
	require.NoError(s.t, err)
	c := &envelope.Claim{Container: a.Container, Blob: a.Blob, Size: a.Size, SHA256: a.SHA256}
	require.NoError(s.t, s.signer.Sign(context.Background(), c, 10*time.Minute))
	return c
}

func (s *server) uploadURL(run string) (string, string) {
	s.t.Helper()
	name := fmt.Sprintf("%s/%s/%s/workdir-%s.tar.gz", tenant, workspace, run, envelope.NewID())
	u, _, err := s.signer.UploadURL(context.Background(), name, 10*time.Minute)
	require.NoError(s.t, err)
	return u, name
}

func (s *server) planAssign(run, token, config string, secrets runproto.Secrets) (*runproto.Assign, string) {
	s.t.Helper()
	b := s.bundle(run, config)
	up, name := s.uploadURL(run)
	sealed, err := runproto.SealSecrets(s.pubKey, secrets)
	require.NoError(s.t, err)
	return &runproto.Assign{RunID: run, Tenant: tenant, Workspace: workspace, Op: tfrun.Plan, ClaimToken: token,
		BundleURL: b.URL, BundleSize: b.Size, BundleSHA256: b.SHA256, UploadURL: up, Secrets: sealed, Timeout: runproto.Duration(5 * time.Minute)}, name
}

// applyAssign hands the uploaded working directory of a plan to the agent.
func (s *server) applyAssign(run, token, blobName string, plan *runproto.Result, secrets runproto.Secrets) *runproto.Assign {
	s.t.Helper()
	c := &envelope.Claim{Container: artifacts.DefaultContainer, Blob: blobName, Size: plan.WorkdirSize, SHA256: plan.WorkdirSHA256}
	require.NoError(s.t, s.signer.Sign(context.Background(), c, 10*time.Minute))
	sealed, err := runproto.SealSecrets(s.pubKey, secrets)
	require.NoError(s.t, err)
	return &runproto.Assign{RunID: run, Tenant: tenant, Workspace: workspace, Op: tfrun.Apply, ClaimToken: token,
		WorkdirURL: c.URL, WorkdirSize: c.Size, WorkdirSHA256: c.SHA256, Secrets: sealed}
}

func (s *server) send(m runproto.Message) {
	s.t.Helper()
	body, err := runproto.Encode(m)
	require.NoError(s.t, err)
	_, err = s.cloud.SendToConnector(context.Background(), tenant, agentID, botecloud.OutMessage{ContentType: runproto.ContentType, Body: body})
	require.NoError(s.t, err)
}

// waitFor returns the first message from the agent, received after
// since, that matches.
func waitFor[T runproto.Message](t testing.TB, s *server, timeout time.Duration, since time.Time, match func(T) bool) (T, received) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, r := range s.all() {
			if v, ok := r.msg.(T); ok && !r.at.Before(since) && match(v) {
				return v, r
			}
		}
		if time.Now().After(deadline) {
			var zero T
			t.Fatalf("no matching %T from the agent within %s", zero, timeout)
			return zero, received{}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) all() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.received...)
}

func (s *server) logLines(run, token string) []string {
	var lines []string
	next := int64(0)
	for _, r := range s.all() {
		if l, ok := r.msg.(*runproto.Logs); ok && l.RunID == run && l.ClaimToken == token {
			require.Equal(s.t, next, l.Seq, "log batches out of order")
			next++
			lines = append(lines, l.Lines...)
		}
	}
	return lines
}

// slowApply plans the slow configuration as claim 1 of run and applies it
// as claim 3, returning once the apply's local-exec sleeps.
func (s *server) slowApply(run string) {
	t := s.t
	t.Helper()
	asg, blobName := s.planAssign(run, "1", "slow", runproto.Secrets{})
	s.send(asg)
	plan, _ := waitFor(t, s, 120*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == run && m.ClaimToken == "1" })
	require.Equal(t, runproto.Succeeded, plan.Outcome, plan.Reason)
	s.send(s.applyAssign(run, "3", blobName, plan, runproto.Secrets{}))
	waitFor(t, s, 60*time.Second, time.Time{}, func(m *runproto.Logs) bool {
		return m.RunID == run && m.ClaimToken == "3" && strings.Contains(strings.Join(m.Lines, "\n"), "slow-start")
	})
}

// runDirs lists the runs' working directories under the agent's work
// directory (one directory per agent process, one per run in it).
func runDirs(t *testing.T, workDir string) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(workDir, "agent-*", "run-*"))
	require.NoError(t, err)
	return dirs
}

func TestPlanAndApplyThroughTheGateway(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	workDir := filepath.Join(s.dir, "work")
	agent := s.startAgent(workDir)
	run1 := runs.NewRunID(time.Now())
	secrets := runproto.Secrets{Env: map[string]string{"DEPLOY_TOKEN": secret}}

	hb, r := waitFor(t, s, 30*time.Second, time.Time{}, func(*runproto.Heartbeat) bool { return true })
	assert.Equal(t, envelope.Identity{Tenant: tenant, Connector: agentID}, r.from, "identity comes from the gateway")
	assert.Equal(t, 1, hb.Capacity)
	assert.Equal(t, map[string]string{"env": "test"}, hb.Labels)
	assert.NotEmpty(t, hb.Version, "the agent reports its build")
	assert.Regexp(t, `^\d+\.\d+\.\d+`, hb.TerraformVersion, "and the terraform it runs")

	asg, blobName := s.planAssign(run1, "2", "ok", secrets)
	sentAt := time.Now()
	s.send(asg)
	started, startedMsg := waitFor(t, s, 60*time.Second, time.Time{}, func(m *runproto.Started) bool { return m.RunID == run1 })
	assert.Equal(t, runproto.PhasePlan, started.Phase)
	plan, planMsg := waitFor(t, s, 120*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == run1 && m.ClaimToken == "2" })
	require.Equal(t, runproto.Succeeded, plan.Outcome, plan.Reason)
	t.Logf("through the gateway: run.assign sent → run.started received %s (download, unpack, secrets); → plan result %s (init, plan, pack, upload)",
		startedMsg.at.Sub(sentAt).Round(time.Millisecond), planMsg.at.Sub(startedMsg.at).Round(time.Millisecond))
	require.True(t, plan.WorkdirUploaded)
	assert.Equal(t, 1, plan.Result.Changes.Add)
	assert.NotEmpty(t, s.logLines(run1, "2"))

	// The uploaded working directory is exactly what the agent reported.
	rc, err := s.arts.Open(context.Background(), tenant, &runs.Artifact{Container: artifacts.DefaultContainer, Blob: blobName, Size: plan.WorkdirSize, SHA256: plan.WorkdirSHA256})
	require.NoError(t, err)
	_, err = bytes.NewBuffer(nil).ReadFrom(rc)
	require.NoError(t, err, "size and SHA-256 of the upload must match the report")
	require.NoError(t, rc.Close())

	s.send(s.applyAssign(run1, "5", blobName, plan, secrets))
	apply, _ := waitFor(t, s, 120*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == run1 && m.ClaimToken == "5" })
	require.Equal(t, runproto.Succeeded, apply.Outcome, apply.Reason)
	assert.JSONEq(t, `"hello from the agent"`, string(apply.Result.Outputs["greeting"].Value))
	lines := strings.Join(s.logLines(run1, "5"), "\n")
	assert.Contains(t, lines, "using token ***")

	for _, r := range s.all() {
		assert.NotContains(t, string(r.body), secret, "a secret reached the server")
		assert.Equal(t, envelope.Identity{Tenant: tenant, Connector: agentID}, r.from)
	}
	assert.Empty(t, runDirs(t, workDir), "working directories left behind")

	for _, line := range strings.Split(agent.Output(), "\n") {
		if strings.Contains(line, "run phase ended") {
			t.Logf("agent: %s", line)
		}
	}

	// The agent's own log (debug level) holds neither the secret nor the
	// SAS links it was given.
	out := agent.Output()
	assert.NotContains(t, out, secret)
	for _, link := range []string{asg.BundleURL, asg.UploadURL} {
		_, query, _ := strings.Cut(link, "?")
		sig, err := url.ParseQuery(query)
		require.NoError(t, err)
		assert.NotContains(t, out, sig.Get("sig"), "a SAS signature was logged")
	}
}

// TestAgentKilledMidRun kills the agent during a long apply: its
// heartbeats stop (how the server finds out), the restarted agent removes
// what the dead one left, reports no running run, and runs the next
// assignment; a late cancel of the lost claim changes nothing.
func TestAgentKilledMidRun(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	workDir := filepath.Join(s.dir, "work")
	agent := s.startAgent(workDir)
	runSlow, run2 := runs.NewRunID(time.Now()), runs.NewRunID(time.Now())

	s.slowApply(runSlow)
	hbRunning, _ := waitFor(t, s, 30*time.Second, time.Time{}, func(m *runproto.Heartbeat) bool { return len(m.Running) == 1 })
	assert.Equal(t, []string{runSlow}, hbRunning.Running)
	require.Len(t, runDirs(t, workDir), 1, "the apply's working directory")
	deadDirs, err := filepath.Glob(filepath.Join(workDir, "agent-*"))
	require.NoError(t, err)
	require.Len(t, deadDirs, 1)

	agent.Kill()
	<-agent.Done()
	killedAt := time.Now()
	time.Sleep(10 * heartbeat)
	for _, r := range s.all() {
		if _, ok := r.msg.(*runproto.Heartbeat); ok {
			// One sent just before the kill may reach the server late on a
			// loaded machine; a live agent would send ten in the window.
			assert.True(t, r.at.Before(killedAt.Add(5*heartbeat)), "a heartbeat after the agent died")
		}
		if res, ok := r.msg.(*runproto.Result); ok {
			assert.NotEqual(t, "3", res.ClaimToken, "a dead agent reported a result")
		}
	}

	restartedAt := time.Now()
	s.startAgent(workDir)
	hb, _ := waitFor(t, s, 30*time.Second, restartedAt, func(m *runproto.Heartbeat) bool { return true })
	assert.Empty(t, hb.Running, "the restarted agent runs nothing the dead one had")
	assert.Empty(t, runDirs(t, workDir), "the dead agent's working directory was not removed at start")
	assert.NoDirExists(t, deadDirs[0])

	// The server, having seen the heartbeats stop, failed the run and
	// cancels the lost claim; a new run goes through.
	s.send(&runproto.Cancel{RunID: runSlow, ClaimToken: "3", Reason: "agent went silent"})
	asg2, _ := s.planAssign(run2, "1", "ok", runproto.Secrets{Env: map[string]string{"DEPLOY_TOKEN": secret}})
	s.send(asg2)
	res, _ := waitFor(t, s, 120*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == run2 })
	assert.Equal(t, runproto.Succeeded, res.Outcome, res.Reason)
	for _, r := range s.all() {
		if res, ok := r.msg.(*runproto.Result); ok {
			assert.NotEqual(t, "3", res.ClaimToken, "the lost claim must not be reported by the new process")
		}
	}
}

// TestCancelAndRefusals: a cancel through the gateway stops Terraform; an
// assignment naming another tenant is refused; the agent stops gracefully.
func TestCancelAndRefusals(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	workDir := filepath.Join(s.dir, "work")
	agent := s.startAgent(workDir)
	runC, runX := runs.NewRunID(time.Now()), runs.NewRunID(time.Now())

	s.slowApply(runC)
	cancelAt := time.Now()
	s.send(&runproto.Cancel{RunID: runC, ClaimToken: "3", Reason: "cancelled by bob"})
	res, _ := waitFor(t, s, 60*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == runC && m.ClaimToken == "3" })
	assert.Equal(t, runproto.Cancelled, res.Outcome)
	assert.Less(t, time.Since(cancelAt), 30*time.Second)

	other, _ := s.planAssign(runX, "1", "ok", runproto.Secrets{})
	other.Tenant = "fabrikam"
	s.send(other)
	refused, _ := waitFor(t, s, 60*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == runX })
	assert.Equal(t, runproto.Failed, refused.Outcome)
	assert.Contains(t, refused.Reason, "refused by agent")

	require.NoError(t, agent.Stop(), "graceful stop\n%s", agent.Output())
	dirs, err := filepath.Glob(filepath.Join(workDir, "agent-*"))
	require.NoError(t, err)
	assert.Empty(t, dirs, "a stopped agent leaves nothing in its work directory")
}

// TestGracefulShutdownCancelsAfterGrace stops the agent (SIGTERM) during a
// long apply: it keeps heartbeating, cancels the apply once the shutdown
// grace is over, reports it cancelled and exits cleanly.
func TestGracefulShutdownCancelsAfterGrace(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	workDir := filepath.Join(s.dir, "work")
	agent := s.startAgent(workDir, "--shutdown-grace", "2s")
	run := runs.NewRunID(time.Now())
	s.slowApply(run)

	stopAt := time.Now()
	require.NoError(t, agent.Stop(), "the agent must exit cleanly\n%s", agent.Output())
	res, _ := waitFor(t, s, 30*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == run && m.ClaimToken == "3" })
	assert.Equal(t, runproto.Cancelled, res.Outcome)
	assert.Contains(t, res.Reason, "shut down")
	assert.GreaterOrEqual(t, time.Since(stopAt), 2*time.Second, "the run got the shutdown grace")
	hb, _ := waitFor(t, s, 5*time.Second, stopAt.Add(heartbeat), func(m *runproto.Heartbeat) bool { return true })
	assert.Equal(t, []string{run}, hb.Running, "heartbeats go on while the run finishes")
	assert.Empty(t, runDirs(t, workDir))
}

// TestSecondSignalCancelsRunsAtOnce: the first SIGTERM lets running runs
// finish (here up to a 10-minute grace); a second one cancels them now
// (cmd/internal/program routes it to the agent's urgent stop).
func TestSecondSignalCancelsRunsAtOnce(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	workDir := filepath.Join(s.dir, "work")
	agent := s.startAgent(workDir, "--shutdown-grace", "10m")
	run := runs.NewRunID(time.Now())
	s.slowApply(run) // sleeps 120 s once started

	require.NoError(t, agent.Signal(syscall.SIGTERM))
	_, err := agent.WaitOutput("finishing running runs", 30*time.Second)
	require.NoError(t, err)
	require.NoError(t, agent.Signal(syscall.SIGTERM))
	res, _ := waitFor(t, s, 60*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == run && m.ClaimToken == "3" })
	assert.Equal(t, runproto.Cancelled, res.Outcome, res.Reason)
	select {
	case <-agent.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("the agent did not exit\n%s", agent.Output())
	}
	assert.NoError(t, agent.ExitErr(), agent.Output())
	assert.Contains(t, agent.Output(), "second signal: cancelling running runs")
}

// TestRunMessagesFromAnotherServiceAreDropped: another cloud service on
// the gateway (any service may address any connector) sends the agent a
// run.assign of its own, with secrets sealed to the agent's public key,
// then run.proceed and run.links. The real agent never starts it: no
// run.started, no result, no working directory. The ops server's own
// runs go on as before.
func TestRunMessagesFromAnotherServiceAreDropped(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	workDir := filepath.Join(s.dir, "work")
	agent := s.startAgent(workDir)
	claims, err := claimcheck.New(context.Background(), claimcheck.Config{ConnectionString: s.emu.ConnectionString})
	require.NoError(t, err)
	bus, err := storagequeue.New(storagequeue.Config{ConnectionString: s.emu.ConnectionString, Claims: claims, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	intruder, err := botecloud.New(botecloud.Config{Bus: bus, Service: "intruder", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	forge := func(m runproto.Message) {
		body, err := runproto.Encode(m)
		require.NoError(t, err)
		_, err = intruder.SendToConnector(context.Background(), tenant, agentID, botecloud.OutMessage{ContentType: runproto.ContentType, Body: body})
		require.NoError(t, err)
	}
	forged := runs.NewRunID(time.Now())
	asg, _ := s.planAssign(forged, "1", "ok", runproto.Secrets{Env: map[string]string{"FORGED": "1"}})
	forge(asg)
	forge(&runproto.Proceed{RunID: forged, ClaimToken: "1"})
	forge(&runproto.Links{RunID: forged, ClaimToken: "1", UploadURL: asg.UploadURL, ExpiresAt: time.Now().Add(time.Hour)})

	// The ops server's run is taken; by its result the forged messages,
	// sent before, have been read.
	run := runs.NewRunID(time.Now())
	ok, _ := s.planAssign(run, "1", "ok", runproto.Secrets{})
	s.send(ok)
	res, _ := waitFor(t, s, 120*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == run })
	assert.Equal(t, runproto.Succeeded, res.Outcome, res.Reason)
	for _, r := range s.all() {
		switch m := r.msg.(type) {
		case *runproto.Started:
			assert.NotEqual(t, forged, m.RunID, "the forged run never started")
		case *runproto.Result:
			assert.NotEqual(t, forged, m.RunID, "the forged run never ran")
		}
	}
	assert.Equal(t, 3, strings.Count(agent.Output(), "dropping a run message that is not from the ops server"))
	assert.Contains(t, agent.Output(), `"from":"intruder"`)
}
