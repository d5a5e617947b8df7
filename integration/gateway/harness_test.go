// Package gateway runs the gateway end to end with real processes: the idp
// and gateway binaries on Azurite, cloud services through runtime/botecloud,
// connectors through runtime/connector or the connector sidecar binary. The
// samples (ping/pong, push, chat) and the attacks that must fail live here.
// Each test starts its own processes on a storage account of its own, so
// tests run in parallel (t.Parallel), four at a time unless -parallel says
// otherwise (TestMain; Go's default, GOMAXPROCS, is two on a 2-core
// machine): most of their time is waiting on processes, storage and
// timers. The accounts are served by one Azurite the tests share
// (shared): an account's queues, tables and blobs are its own, and
// an Azurite takes a second of CPU to start. Benchmarks start their own.
package gateway

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/bus/storagequeue"
	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/registry"
)

// parallel is how many tests run at once unless -parallel says otherwise.
const parallel = 4

func TestMain(m *testing.M) {
	procs.Parallel(parallel)
	code := procs.Run(m)
	_ = shared.Stop()
	os.Exit(code)
}

// shared is the Azurite the package's tests share, a storage account each.
var shared = &azurite.Shared{Accounts: 128}

// Connectors registered in every test's gateway.
var registered = map[string][]string{
	"tenant-a": {"a1", "a2", "a3"},
	"tenant-b": {"b1"},
}

// gateway is one running gateway: Azurite, idp, gateway process(es).
type gateway struct {
	t        testing.TB
	fleet    map[string][]string // registered besides the usual ones (benchmarks)
	emu      *azurite.Emulator
	dir      string
	keys     map[string]*ecdsa.PrivateKey // "tenant/connector" → key
	registry string
	idpURL   string
	idp      *procs.Process
	replicas []*replica
}

// replica is one gateway process (runtime/cmd/gateway) of the gateway.
type replica struct {
	URL  string
	Proc *procs.Process
}

func (g *gateway) tokenURL() string { return g.idpURL + "/oauth2/token" }

// writeRegistry writes the registration file with every registered
// connector (keys made on first use), marking those in disabled.
func (g *gateway) writeRegistry(disabled map[string]bool) {
	t := g.t
	t.Helper()
	var regs []registry.Connector
	for _, set := range []map[string][]string{registered, g.fleet} {
		for tenant, ids := range set {
			for _, id := range ids {
				cid := registry.ClientID(tenant, id)
				key := g.keys[cid]
				if key == nil {
					var err error
					key, err = clientauth.GenerateKey()
					require.NoError(t, err)
					g.keys[cid] = key
				}
				jwk, err := clientauth.PublicJWK(key, "")
				require.NoError(t, err)
				regs = append(regs, registry.Connector{Tenant: tenant, ID: id, JWK: jwk, Disabled: disabled[cid]})
			}
		}
	}
	data, err := registry.Marshal(regs)
	require.NoError(t, err)
	g.registry = filepath.Join(g.dir, "registry.json")
	tmp := g.registry + ".tmp"
	require.NoError(t, os.WriteFile(tmp, data, 0o644))
	require.NoError(t, os.Rename(tmp, g.registry))
}

// newGateway starts the idp and one gateway replica (with gatewayArgs) on
// a storage account of the test's own (shared).
func newGateway(t *testing.T, gatewayArgs ...string) *gateway {
	t.Helper()
	return startGateway(t, shared.Account(t), nil, gatewayArgs...)
}

// newFleetGateway is newGateway on an Azurite of its own, with the
// connectors of fleet registered too: benchmarks measure storage requests
// in its log. A fleet (the benchmarks' thousands of connectors) runs on an
// Azurite made for it (azurite.Options.Fleet); BOTE_BENCH_STOCK_AZURITE=1
// runs it on the stock one.
func newFleetGateway(t testing.TB, fleet map[string][]string, gatewayArgs ...string) *gateway {
	t.Helper()
	opts := azurite.Options{Fleet: len(fleet) > 0 && os.Getenv("BOTE_BENCH_STOCK_AZURITE") != "1"}
	return startGateway(t, azurite.NewWith(t, opts), fleet, gatewayArgs...)
}

// startGateway starts the idp and one gateway replica on emu.
func startGateway(t testing.TB, emu *azurite.Emulator, fleet map[string][]string, gatewayArgs ...string) *gateway {
	t.Helper()
	g := &gateway{t: t, fleet: fleet, emu: emu, dir: t.TempDir(), keys: map[string]*ecdsa.PrivateKey{}}
	g.writeRegistry(nil)

	g.idp = procs.Start(t, procs.Spec{Name: "idp", Path: procs.Build(t, "idp"), Args: []string{
		"--listen", "127.0.0.1:0", "--registry", g.registry, "--key-dir", filepath.Join(g.dir, "idp-keys"),
		"--client-rate", "100", "--client-burst", "100",
	}})
	g.idpURL = listenURL(t, g.idp)
	g.startReplica(gatewayArgs...)
	return g
}

// startReplica starts one more gateway process (replica) and returns it.
func (g *gateway) startReplica(extra ...string) *replica {
	t := g.t
	t.Helper()
	args := append([]string{
		"--listen", "127.0.0.1:0",
		"--storage-connection-string", g.emu.ConnectionString,
		"--issuer", g.idpURL,
		"--registry", g.registry,
		"--create-resources",
		"--replica", fmt.Sprintf("w%d%d", time.Now().UnixNano()%1e6, len(g.replicas)),
		"--shutdown-timeout", "5s",
	}, extra...)
	p := procs.Start(t, procs.Spec{Name: fmt.Sprintf("gateway%d", len(g.replicas)+1), Path: procs.Build(t, "gateway"), Args: args})
	w := &replica{URL: listenURL(t, p), Proc: p}
	g.replicas = append(g.replicas, w)
	return w
}

func listenURL(t testing.TB, p *procs.Process) string {
	t.Helper()
	url, err := p.ListenAddr(60 * time.Second)
	require.NoError(t, err)
	return url
}

// cloudService is a cloud service on the gateway's bus.
type cloudService struct {
	*botecloud.Client
	mu       sync.Mutex
	received []*botecloud.Message
	arrived  chan *botecloud.Message
}

func (g *gateway) cloud(name string, handler func(ctx context.Context, c *cloudService, m *botecloud.Message) error) *cloudService {
	return g.cloudWith(name, nil, handler)
}

// cloudWith is cloud with the client's configuration adjusted by mod.
func (g *gateway) cloudWith(name string, mod func(*botecloud.Config), handler func(ctx context.Context, c *cloudService, m *botecloud.Message) error) *cloudService {
	t := g.t
	t.Helper()
	claims, err := claimcheck.New(context.Background(), claimcheck.Config{ConnectionString: g.emu.ConnectionString, CreateContainer: true})
	require.NoError(t, err)
	d, err := storagequeue.New(storagequeue.Config{ConnectionString: g.emu.ConnectionString, Claims: claims, CreateQueues: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	cfg := botecloud.Config{Bus: d, Service: name, PollMin: 10 * time.Millisecond, PollMax: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	if len(g.replicas) > 0 {
		cfg.WakeURL = g.replicas[0].URL // wake the router after each send
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := botecloud.New(cfg)
	require.NoError(t, err)
	cs := &cloudService{Client: c, arrived: make(chan *botecloud.Message, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx, botecloud.HandlerFunc(func(ctx context.Context, m *botecloud.Message) error {
			cs.mu.Lock()
			cs.received = append(cs.received, m)
			cs.mu.Unlock()
			cs.arrived <- m
			if handler != nil {
				return handler(ctx, cs, m)
			}
			return nil
		}))
	}()
	t.Cleanup(func() { cancel(); <-done; _ = d.Close(context.Background()) })
	return cs
}

// pong is a cloud handler that answers every message with "pong".
func pong(ctx context.Context, c *cloudService, m *botecloud.Message) error {
	_, err := c.Reply(ctx, m, botecloud.OutMessage{Body: []byte("pong")})
	return err
}

func (c *cloudService) all() []*botecloud.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*botecloud.Message(nil), c.received...)
}

// conn is a connector run through the connector package.
type conn struct {
	*connector.Client
	name    string
	arrived chan *connector.Message
	mu      sync.Mutex
	got     []*connector.Message
}

type connOpt func(*connector.Config)

func (g *gateway) connector(tenant, id string, opts ...connOpt) *conn {
	return g.connectorAt(g.replicas[0], tenant, id, opts...)
}

func (g *gateway) connectorAt(w *replica, tenant, id string, opts ...connOpt) *conn {
	t := g.t
	t.Helper()
	c := &conn{name: tenant + "/" + id, arrived: make(chan *connector.Message, 100)}
	cfg := connector.Config{
		GatewayURL: w.URL, TokenURL: g.tokenURL(), Tenant: tenant, Connector: id, Key: g.keys[registry.ClientID(tenant, id)],
		// An hour: in these tests every message must arrive by nudge or by
		// the drain on connect, never by the safety poll.
		SafetyPoll: time.Hour,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
		Handler: connector.HandlerFunc(func(_ context.Context, m *connector.Message) error {
			c.mu.Lock()
			c.got = append(c.got, m)
			c.mu.Unlock()
			c.arrived <- m
			return nil
		}),
		Logger: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	client, err := connector.New(cfg)
	require.NoError(t, err)
	c.Client = client
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = client.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.NoError(t, client.WaitConnected(ctxFor(t, 30*time.Second)), "%s cannot connect", c.name)
	return c
}

func (c *conn) received() []*connector.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*connector.Message(nil), c.got...)
}

// next waits for the next message.
func (c *conn) next(t testing.TB, within time.Duration) *connector.Message {
	t.Helper()
	select {
	case m := <-c.arrived:
		return m
	case <-time.After(within):
		t.Fatalf("%s received nothing within %s", c.name, within)
		return nil
	}
}

// none asserts that nothing arrives for a while.
func (c *conn) none(t *testing.T, during time.Duration) {
	t.Helper()
	select {
	case m := <-c.arrived:
		t.Fatalf("%s received %q (id %s) it must not get", c.name, m.Body, m.ID)
	case <-time.After(during):
	}
}

// receive waits for a value on ch, failing the test (not hanging it) when
// none comes within d.
func receive[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("no %s within %s", what, d)
		var zero T
		return zero
	}
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// sidecar is a running connector sidecar binary and the local program it
// delivers to.
type sidecar struct {
	API      string // the sidecar's local API base URL
	Proc     *procs.Process
	spec     procs.Spec
	mu       sync.Mutex
	received []http.Header // headers of every delivery, in order
	arrived  chan http.Header
}

// sidecar starts the connector binary for tenant/id with a local program
// that records what it is delivered, and waits until it is connected.
func (g *gateway) sidecar(tenant, id string) *sidecar {
	return g.sidecarAt(g.replicas[0], tenant, id)
}

// sidecarAt is sidecar connected to gateway replica w, with extra flags.
func (g *gateway) sidecarAt(w *replica, tenant, id string, extra ...string) *sidecar {
	t := g.t
	t.Helper()
	sc := &sidecar{arrived: make(chan http.Header, 100)}
	program := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := r.Header.Clone()
		sc.mu.Lock()
		sc.received = append(sc.received, h)
		sc.mu.Unlock()
		sc.arrived <- h
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(program.Close)
	keyFile := filepath.Join(g.dir, "sidecar-"+tenant+"-"+id+".pem")
	require.NoError(t, clientauth.WriteKeyFile(keyFile, g.keys[registry.ClientID(tenant, id)]))
	sc.spec = procs.Spec{Name: "sidecar-" + id, Path: procs.Build(t, "connector"), Args: append([]string{
		"run", "--gateway-url", w.URL, "--token-url", g.tokenURL(), "--tenant", tenant, "--connector", id,
		"--key", keyFile, "--deliver-to", program.URL, "--listen", "127.0.0.1:0", "--safety-poll", "1h", "--log-level", "debug",
	}, extra...)}
	sc.start(t)
	return sc
}

// start starts the sidecar process (again) and waits until it is connected.
func (sc *sidecar) start(t testing.TB) {
	t.Helper()
	sc.Proc = procs.Start(t, sc.spec)
	sc.API = listenURL(t, sc.Proc)
	require.Eventually(t, func() bool {
		resp, err := http.Get(sc.API + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "sidecar %s does not connect", sc.spec.Name)
}

// send posts body to the sidecar's local API with headers and returns the
// status and the answer.
func (sc *sidecar) send(t *testing.T, body string, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, sc.API+"/v1/send", strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range headers {
		req.Header[k] = []string{v} // as given: no canonicalisation
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (sc *sidecar) all() []http.Header {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return append([]http.Header(nil), sc.received...)
}

// metric reads one unlabelled sample from a replica's /metrics.
func (w *replica) metric(t testing.TB, name string) float64 {
	t.Helper()
	f, ok := w.sample(t, name)
	if !ok {
		t.Fatalf("gateway replica has no metric %s", name)
	}
	return f
}

// counter reads one sample (name with its labels) of a counter from a
// replica's /metrics: 0 until the counter is first counted.
func (w *replica) counter(t testing.TB, name string) float64 {
	t.Helper()
	f, _ := w.sample(t, name)
	return f
}

func (w *replica) sample(t testing.TB, name string) (float64, bool) {
	t.Helper()
	for _, line := range strings.Split(get(t, w.URL+"/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(t, err)
			return f, true
		}
	}
	return 0, false
}
