// Package examples runs the samples in examples/ (built from their own
// module) against the real local gateway the way their README runs them
// by hand: the simple request/reply pair, the chat, and the Node program
// behind the connector sidecar.
package examples

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/platform"
	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/notify"
)

func TestMain(m *testing.M) { procs.Main(m) }

const tenant = "contoso"

// build builds the sample program in examples/<pkg> and returns its path.
func build(t *testing.T, pkg string) string {
	t.Helper()
	path, err := buildSample(t.TempDir(), pkg)
	require.NoError(t, err)
	return path
}

func buildSample(dir, pkg string) (string, error) {
	root, err := procs.RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, strings.ReplaceAll(pkg, "/", "-"))
	cmd := exec.Command("go", "build", "-o", out, "./"+pkg)
	cmd.Dir = filepath.Join(root, "examples")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("cannot build examples/%s: %w: %s", pkg, err, b)
	}
	return out, nil
}

// buildAll starts building the sample programs in examples/<pkgs> at
// once; the returned func waits for them and returns their paths by
// package. It may be called from several tests.
func buildAll(t *testing.T, pkgs ...string) func(t *testing.T) map[string]string {
	dir := t.TempDir()
	paths, errs := make(map[string]string, len(pkgs)), make([]error, len(pkgs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, pkg := range pkgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path, err := buildSample(dir, pkg)
			mu.Lock()
			paths[pkg], errs[i] = path, err
			mu.Unlock()
		}()
	}
	return func(t *testing.T) map[string]string {
		t.Helper()
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
		return paths
	}
}

// start runs a sample program as connector id (and, for a cloud program,
// with the same platform settings).
func start(t *testing.T, p *platform.Platform, path, id string, args ...string) *procs.Process {
	t.Helper()
	return procs.Start(t, procs.Spec{Name: filepath.Base(path) + "-" + id, Path: path, Args: args, Env: p.SampleEnv(tenant, id)})
}

func waitFor(t *testing.T, proc *procs.Process, substr string) {
	t.Helper()
	_, err := proc.WaitOutput(substr, 60*time.Second)
	require.NoError(t, err, "never printed %q:\n%s", substr, proc.Output())
}

func TestSamples(t *testing.T) {
	t.Parallel()
	// The samples build while the platforms start.
	bins := buildAll(t, "simple/cloud", "simple/connector", "chat/cloud", "chat/connector")
	var wg sync.WaitGroup
	defer wg.Wait()
	parallel := func(name string, f func(t *testing.T)) {
		wg.Add(1)
		go func() { defer wg.Done(); t.Run(name, f) }()
	}

	parallel("failed call", func(t *testing.T) {
		// On a platform of its own, as it spends seconds waiting: its
		// program reads the queues of the cloud programs of the other
		// subtests, and would take their messages.
		p := platform.New(t, platform.Options{GatewayOnly: true, Connectors: []platform.Connector{{Tenant: tenant, ID: "sample-1"}}})
		simpleCloud := bins(t)["simple/cloud"]
		// No connector answers as "nobody": the call fails and the sample
		// says so in its exit status, not only in its output.
		cloud := start(t, p, simpleCloud, "sample-1", "-connector", "nobody", "-count", "1", "-timeout", "2s")
		waitFor(t, cloud, "call 1: ")
		select {
		case <-cloud.Done():
		case <-time.After(60 * time.Second):
			t.Fatalf("the sample did not exit after its failed call:\n%s", cloud.Output())
		}
		require.Error(t, cloud.ExitErr(), cloud.Output())
		require.Contains(t, cloud.Output(), "1 of 1 calls failed")
	})

	p := platform.New(t, platform.Options{GatewayOnly: true, Connectors: []platform.Connector{
		{Tenant: tenant, ID: "sample-1"}, {Tenant: tenant, ID: "sample-2"}, {Tenant: tenant, ID: "sample-3"},
	}})
	paths := bins(t)
	simpleCloud, simpleConn := paths["simple/cloud"], paths["simple/connector"]
	chatCloud, chatMember := paths["chat/cloud"], paths["chat/connector"]

	t.Run("simple", func(t *testing.T) {
		conn := start(t, p, simpleConn, "sample-1", "-count", "2")
		waitFor(t, conn, "connected as contoso/sample-1")
		cloud := start(t, p, simpleCloud, "sample-1", "-connector", "sample-1", "-count", "2", "-timeout", "60s")
		waitFor(t, cloud, "contoso/sample-1 answered: pong from sample-1: ping 2")
		waitFor(t, conn, "simple answered: pong: hello 2")
		waitFor(t, conn, "simple asks: ping 1")
	})

	// One after the other: a connector's message to the cloud goes to
	// whichever cloud program reads first.
	t.Run("chat", func(t *testing.T) {
		cloud := start(t, p, chatCloud, "sample-1")
		waitFor(t, cloud, "chat service running")
		listener := start(t, p, chatMember, "sample-2")
		waitFor(t, listener, "joined chat as sample-2")
		speaker := start(t, p, chatMember, "sample-1", "-say", "hello, chat")
		waitFor(t, speaker, "joined chat as sample-1")
		waitFor(t, listener, "sample-1: hello, chat")
		waitFor(t, cloud, "contoso/sample-1: hello, chat")
	})

	t.Run("sidecar", func(t *testing.T) {
		node, err := exec.LookPath("node")
		if err != nil {
			t.Skip("node is not installed: the Node sidecar sample cannot run")
		}
		root, err := procs.RepoRoot()
		require.NoError(t, err)
		port := procs.FreePort(t)
		sidecar, err := p.StartConnector(tenant, "sample-3", "http://127.0.0.1:"+strconv.Itoa(port)+"/inbox")
		require.NoError(t, err)
		addr, err := sidecar.ListenAddr(30 * time.Second)
		require.NoError(t, err)
		cloud := start(t, p, simpleCloud, "sample-3", "-connector", "sample-3", "-count", "0")
		app := procs.Start(t, procs.Spec{Name: "node-app", Path: node, Args: []string{filepath.Join(root, "examples", "sidecar", "app.js")},
			Env: []string{"PORT=" + strconv.Itoa(port), "SIDECAR=" + addr}})
		waitFor(t, app, "cloud answered (200): pong: hello from node")
		waitFor(t, cloud, "contoso/sample-3 asks: hello from node")
		// A second process of the "simple" service calls while the first
		// still reads bote-cloud: the reply goes to the caller's own reply
		// queue (docs/messaging.md, "Replicas"). It used to go to either,
		// and on a loaded machine went to the other one every time until it
		// was dead-lettered as poison.
		caller := start(t, p, simpleCloud, "sample-3", "-connector", "sample-3", "-count", "1", "-timeout", "60s")
		waitFor(t, caller, "contoso/sample-3 answered: node answers: PING 1")
		waitFor(t, app, "simple says: ping 1")
	})
}

// TestWebhookReceiver: the receiver docs/notifications.md runs against
// make demo accepts a request signed as the server signs it, once per
// delivery id, and refuses a bad signature.
func TestWebhookReceiver(t *testing.T) {
	t.Parallel()
	const secret = "whsec_test"
	port := procs.FreePort(t)
	recv := procs.Start(t, procs.Spec{Name: "webhook", Path: build(t, "webhook"), Args: []string{"-addr", "127.0.0.1:" + strconv.Itoa(port)},
		Env: []string{"BOTE_WEBHOOK_SECRET=" + secret}})
	waitFor(t, recv, "listening on")
	body := []byte(`{"id":"e1","type":"run.applied","tenant":"contoso","workspace":"demo","message":"run run-1 applied"}`)
	post := func(id, sig string) int {
		req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(port)+"/", bytes.NewReader(body))
		require.NoError(t, err)
		now := time.Now()
		req.Header.Set(notify.HeaderID, id)
		req.Header.Set(notify.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(notify.HeaderSignature, cmp.Or(sig, notify.Sign(secret, now, body)))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusNoContent, post("e1.hook", ""))
	waitFor(t, recv, "run.applied contoso/demo: run run-1 applied")
	require.Equal(t, http.StatusNoContent, post("e1.hook", ""))
	waitFor(t, recv, "duplicate e1.hook")
	require.Equal(t, http.StatusUnauthorized, post("e2.hook", "v1=00"))
	waitFor(t, recv, "refused e2.hook: signature does not match")
}
