// Package platform starts the whole platform on loopback as real
// processes, the way an operator's laptop or CI runs it: Azurite, the idp,
// the gateway worker, the test relay (devrelay), the ops server
// (relayserver) and deployment agents, with keys generated and the
// connector registry written in a scratch directory. It also runs the
// opsbot CLI against it.
//
// It is the one place that knows how these processes are wired together;
// `make demo` (integration/cmd/demo), the end-to-end suite
// (integration/e2e) and the runs benchmarks use it. Tests call New, which
// stops everything at cleanup and prints the processes' output when the
// test fails; other programs call Start and Stop.
package platform

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/secretstore"
)

// HybridConnection is the hybrid connection devrelay serves and
// relayserver listens on.
const HybridConnection = "ops"

// Options configure Start.
type Options struct {
	// Dir is the scratch directory for keys, the registry and the
	// processes' files. It must exist. Required.
	Dir string
	// Agents are registered as agents of their tenant (relayserver
	// creates the tenants from the registry); those with Start set are
	// started with the platform, StartAgent starts the others later.
	Agents []Agent
	// Emulator is a running Azurite to use; nil starts a fresh one (and
	// Stop stops it).
	Emulator *azurite.Emulator
	// Binary returns the path of runtime/cmd/<name>; default
	// procs.BuildBinary (which honours $BOTE_BIN_DIR).
	Binary func(name string) (string, error)
	// Output, when set, also receives every process's output, each line
	// prefixed with the process's name.
	Output io.Writer
	// RelayserverArgs and WorkerArgs are added to relayserver's and the
	// worker's command lines.
	RelayserverArgs []string
	WorkerArgs      []string
	// StartTimeout bounds the start of each process (default 60 s).
	StartTimeout time.Duration
	// Connectors are registered plain connectors (no role): programs a
	// test runs itself with KeyFile, e.g. to receive messages.
	Connectors []Connector
	// Replicas is how many idps, workers and relay servers run behind the
	// same storage and bus (default 1). With more than one, idps and
	// workers sit behind a balancer each (IdpURL and WorkerURL are its
	// address; it skips a replica that refuses connections, as the ingress
	// does), the idps share issuer, keys and replay table, and the relay
	// spreads opsbot's requests over the relay servers' listeners.
	Replicas int
}

// Agent is a deployment agent of a tenant.
type Agent struct {
	Tenant string
	ID     string
	// Start the agent with the platform.
	Start bool
	// Capacity is the agent's concurrency limit (default: the agent's).
	Capacity int
	// Labels are the agent's labels: registered (the labels it may
	// serve) and given to the agent.
	Labels map[string]string
	// Args are added to the agent's command line.
	Args []string
}

// Connector is a plain connector of a tenant.
type Connector struct{ Tenant, ID string }

// KeyFile is the private key file of a registered agent or connector.
func (p *Platform) KeyFile(tenant, id string) string {
	return p.keyFiles[registry.ClientID(tenant, id)]
}

// ClientID is the agent's connector client id, "tenant/agent".
func (a Agent) ClientID() string { return registry.ClientID(a.Tenant, a.ID) }

// Validate names the first bad option.
func (o Options) Validate() error {
	if o.Dir == "" {
		return errors.New("platform: Dir is required")
	}
	if st, err := os.Stat(o.Dir); err != nil || !st.IsDir() {
		return fmt.Errorf("platform: Dir %q must be an existing directory", o.Dir)
	}
	seen := map[string]bool{}
	for i, a := range o.Agents {
		if a.Tenant == "" || a.ID == "" {
			return fmt.Errorf("platform: Agents[%d]: Tenant and ID are required", i)
		}
		if seen[a.ClientID()] {
			return fmt.Errorf("platform: Agents[%d]: %s is listed twice", i, a.ClientID())
		}
		seen[a.ClientID()] = true
	}
	return nil
}

// Platform is a running platform.
type Platform struct {
	opts Options
	// Emulator is the Azurite every process uses.
	Emulator *azurite.Emulator
	// Dir is the scratch directory.
	Dir string
	// RegistryFile is the connector registry the idp and worker read.
	RegistryFile string
	// IdpURL and WorkerURL are the gateway's endpoints.
	IdpURL, WorkerURL string
	// RelayNamespace, ListenConnectionString and SendConnectionString are
	// devrelay's.
	RelayNamespace         string
	ListenConnectionString string
	SendConnectionString   string
	// APIKey is an operator API key relayserver accepts.
	APIKey string

	ownEmulator bool
	keyFiles    map[string]string // client id → private key file

	mu          sync.Mutex
	idp         *procs.Process
	worker      *procs.Process
	devrelay    *procs.Process
	relayserver *procs.Process
	replicas    map[string][]*procs.Process // "idp", "worker", "relayserver" → replicas 1..n-1
	balancers   map[string]*balancer        // "idp", "worker" → in front of their replicas
	agents      map[string]*procs.Process   // client id → process
	all         []*procs.Process            // everything started, in order
	names       map[*procs.Process]string   // labels for Outputs
	stopped     bool
}

// Start brings the platform up. On error, whatever started is stopped,
// and the error carries the processes' output.
func Start(ctx context.Context, opts Options) (*Platform, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Binary == nil {
		opts.Binary = procs.BuildBinary
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	p := &Platform{
		opts: opts, Dir: opts.Dir, Emulator: opts.Emulator,
		keyFiles: map[string]string{},
		agents:   map[string]*procs.Process{}, names: map[*procs.Process]string{}, replicas: map[string][]*procs.Process{},
		balancers: map[string]*balancer{},
	}
	if err := p.start(ctx); err != nil {
		if out := p.Outputs(); out != "" {
			err = fmt.Errorf("%w\n%s", err, out)
		}
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

func (p *Platform) start(ctx context.Context) error {
	if p.Emulator == nil {
		var err error
		if p.Emulator, err = azurite.Start(ctx, azurite.Options{}); err != nil {
			return fmt.Errorf("cannot start Azurite: %w", err)
		}
		p.ownEmulator = true
	}
	if err := p.writeKeys(); err != nil {
		return err
	}
	if err := p.startGateway(); err != nil {
		return err
	}
	if err := p.startRelay(); err != nil {
		return err
	}
	if err := p.StartRelayserver(); err != nil {
		return err
	}
	if err := p.startReplicas(); err != nil {
		return err
	}
	for _, a := range p.opts.Agents {
		if a.Start {
			if _, err := p.StartAgent(a.Tenant, a.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// binaries are the runtime/cmd programs the platform runs.
var binaries = []string{"idp", "worker", "devrelay", "relayserver", "agent", "opsbot", "connector"}

// Binaries makes the platform's programs available to a whole test binary
// (call it from TestMain): those in $BOTE_BIN_DIR (`make build`), or else
// built once, with one go build, into a temporary directory that becomes
// $BOTE_BIN_DIR until cleanup removes it.
func Binaries() (cleanup func(), err error) {
	if os.Getenv("BOTE_BIN_DIR") != "" {
		return func() {}, nil
	}
	root, err := procs.RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bote-bin-")
	if err != nil {
		return nil, fmt.Errorf("cannot create a directory for the binaries: %w", err)
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, b := range binaries {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join(root, "runtime")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot build the platform's binaries: %w\n%s", err, out)
	}
	os.Setenv("BOTE_BIN_DIR", dir)
	return func() {
		os.Unsetenv("BOTE_BIN_DIR")
		os.RemoveAll(dir)
	}, nil
}

// New starts a platform for a test: it fails the test if the platform
// cannot start, stops it at cleanup and logs every process's output when
// the test failed. opts.Dir defaults to a temporary directory.
func New(t testing.TB, opts Options) *Platform {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Emulator == nil {
		opts.Emulator = azurite.New(t)
	}
	p, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("cannot start the platform: %v", err)
	}
	t.Cleanup(func() {
		_ = p.Stop()
		if t.Failed() {
			t.Logf("--- platform processes ---\n%s", p.Outputs())
		}
	})
	return p
}

// StartConnector starts the connector sidecar of a registered connector
// (Options.Connectors), posting each message to deliverTo, with args
// added (--dedup-file, ...), and waits until it serves its local API.
func (p *Platform) StartConnector(tenant, id, deliverTo string, args ...string) (*procs.Process, error) {
	proc, err := p.launch("connector", "connector "+registry.ClientID(tenant, id), append([]string{
		"run", "--worker-url", p.WorkerURL, "--token-url", p.IdpURL + "/oauth2/token",
		"--tenant", tenant, "--connector", id, "--key", p.KeyFile(tenant, id), "--deliver-to", deliverTo,
	}, args...), nil)
	if err != nil {
		return nil, err
	}
	_, err = proc.WaitOutput("listening on http://", p.opts.StartTimeout)
	return proc, err
}

// Main is TestMain for a package of tests that start platforms: the
// programs are built once for the whole test binary (Binaries).
func Main(m *testing.M) {
	os.Exit(func() int {
		cleanup, err := Binaries()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer cleanup()
		return m.Run()
	}())
}

// writeKeys makes a key per agent, the connector registry and the
// operator API keys file.
func (p *Platform) writeKeys() error {
	var regs []registry.Connector
	register := func(c registry.Connector) error {
		key, err := clientauth.GenerateKey()
		if err != nil {
			return err
		}
		file := filepath.Join(p.Dir, "keys", c.Tenant+"-"+c.ID+".pem")
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return fmt.Errorf("cannot create the keys directory: %w", err)
		}
		if err := clientauth.WriteKeyFile(file, key); err != nil {
			return err
		}
		if c.JWK, err = clientauth.PublicJWK(key, ""); err != nil {
			return err
		}
		p.keyFiles[registry.ClientID(c.Tenant, c.ID)] = file
		regs = append(regs, c)
		return nil
	}
	for _, a := range p.opts.Agents {
		if err := register(registry.Connector{Tenant: a.Tenant, ID: a.ID, Roles: []string{registry.RoleAgent}, Labels: a.Labels}); err != nil {
			return err
		}
	}
	for _, c := range p.opts.Connectors {
		if err := register(registry.Connector{Tenant: c.Tenant, ID: c.ID}); err != nil {
			return err
		}
	}
	data, err := registry.Marshal(regs)
	if err != nil {
		return fmt.Errorf("cannot write the connector registry: %w", err)
	}
	p.RegistryFile = filepath.Join(p.Dir, "registry.json")
	if err := os.WriteFile(p.RegistryFile, data, 0o644); err != nil {
		return fmt.Errorf("cannot write the connector registry: %w", err)
	}

	kf := &operatorauth.KeysFile{Version: operatorauth.KeysFileVersion}
	if p.APIKey, err = kf.AddKey("operator", "platform operator", operatorauth.Grants{Admin: true}, time.Now()); err != nil {
		return fmt.Errorf("cannot create an operator API key: %w", err)
	}
	if err := kf.Save(p.keysFile()); err != nil {
		return fmt.Errorf("cannot write the operator API keys: %w", err)
	}
	return nil
}

func (p *Platform) keysFile() string { return filepath.Join(p.Dir, "operator-keys.json") }

// launch starts runtime/cmd/<binary> as label and remembers it.
func (p *Platform) launch(binary, label string, args, env []string) (*procs.Process, error) {
	path, err := p.opts.Binary(binary)
	if err != nil {
		return nil, err
	}
	return p.launchPath(label, path, args, env)
}

func (p *Platform) launchPath(label, path string, args, env []string) (*procs.Process, error) {
	spec := procs.Spec{Name: label, Path: path, Args: args, Env: env, Dir: p.Dir, StopGrace: 15 * time.Second}
	if p.opts.Output != nil {
		spec.Output = &prefixWriter{w: p.opts.Output, prefix: label + " | "}
	}
	proc, err := procs.Launch(spec)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.all = append(p.all, proc)
	p.names[proc] = label
	p.mu.Unlock()
	return proc, nil
}

func (p *Platform) startGateway() error {
	var err error
	if p.opts.Replicas > 1 {
		// Replicas sit behind one address each, as behind the ingress in
		// Azure: the idps share their issuer, keys and replay table.
		if p.balancers["idp"], err = newBalancer(); err != nil {
			return err
		}
		if p.balancers["worker"], err = newBalancer(); err != nil {
			return err
		}
	}
	var idpURL string
	if p.idp, idpURL, err = p.startIdp("idp"); err != nil {
		return err
	}
	p.IdpURL = p.front("idp", 0, idpURL)
	var workerURL string
	p.worker, workerURL, err = p.startWorker("worker")
	p.WorkerURL = p.front("worker", 0, workerURL)
	return err
}

// front puts replica i at url behind kind's balancer and returns the
// address clients use: the balancer's, or url without replicas.
func (p *Platform) front(kind string, i int, url string) string {
	b := p.balancers[kind]
	if b == nil || url == "" {
		return url
	}
	_ = b.set(i, url)
	return b.URL()
}

func (p *Platform) startIdp(label string) (*procs.Process, string, error) {
	args := []string{
		"--listen", "127.0.0.1:0", "--registry", p.RegistryFile, "--key-dir", filepath.Join(p.Dir, "idp-keys"),
		"--client-rate", "100", "--client-burst", "100",
	}
	if b := p.balancers["idp"]; b != nil {
		args = append(args, "--issuer", b.URL(), "--replay-connection-string", p.Emulator.ConnectionString)
	}
	proc, err := p.launch("idp", label, args, nil)
	if err != nil {
		return nil, "", err
	}
	url, err := proc.ListenAddr(p.opts.StartTimeout)
	return proc, url, err
}

func (p *Platform) startWorker(label string) (*procs.Process, string, error) {
	proc, err := p.launch("worker", label, append([]string{
		"--listen", "127.0.0.1:0",
		"--storage-connection-string", p.Emulator.ConnectionString,
		"--issuer", p.IdpURL,
		"--registry", p.RegistryFile,
		"--create-resources",
		"--shutdown-timeout", "5s",
	}, p.opts.WorkerArgs...), nil)
	if err != nil {
		return nil, "", err
	}
	url, err := proc.ListenAddr(p.opts.StartTimeout)
	return proc, url, err
}

// startReplicas starts workers and relay servers 1..Replicas-1.
func (p *Platform) startReplicas() error {
	for i := 1; i < p.opts.Replicas; i++ {
		idp, idpURL, err := p.startIdp(fmt.Sprintf("idp-%d", i))
		if err != nil {
			return err
		}
		p.front("idp", i, idpURL)
		w, workerURL, err := p.startWorker(fmt.Sprintf("worker-%d", i))
		if err != nil {
			return err
		}
		p.front("worker", i, workerURL)
		rs, err := p.launchRelayserver(fmt.Sprintf("relayserver-%d", i))
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.replicas["idp"] = append(p.replicas["idp"], idp)
		p.replicas["worker"] = append(p.replicas["worker"], w)
		p.replicas["relayserver"] = append(p.replicas["relayserver"], rs)
		p.mu.Unlock()
	}
	return nil
}

// RestartReplica starts replica i (i ≥ 1) of "worker", "idp" or
// "relayserver" again after it was killed or stopped, on a new port behind
// the same balancer.
func (p *Platform) RestartReplica(kind string, i int) error {
	p.mu.Lock()
	n := len(p.replicas[kind])
	p.mu.Unlock()
	if i < 1 || i > n {
		return fmt.Errorf("no %s replica %d", kind, i)
	}
	if old := p.Replica(kind, i); !exited(old) {
		return fmt.Errorf("%s replica %d is still running", kind, i)
	}
	var (
		proc *procs.Process
		err  error
	)
	label := fmt.Sprintf("%s-%d", kind, i)
	var url string
	switch kind {
	case "worker":
		proc, url, err = p.startWorker(label)
	case "idp":
		proc, url, err = p.startIdp(label)
	case "relayserver":
		proc, err = p.launchRelayserver(label)
	default:
		return fmt.Errorf("no replicas of %q", kind)
	}
	if err != nil {
		return err
	}
	p.front(kind, i, url)
	p.mu.Lock()
	p.replicas[kind][i-1] = proc
	p.mu.Unlock()
	return nil
}

// Replica returns replica i (0 is the one StartRelayserver and the agents'
// worker are) of "worker" or "relayserver", nil if there is none.
func (p *Platform) Replica(kind string, i int) *procs.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case i == 0 && kind == "worker":
		return p.worker
	case i == 0 && kind == "idp":
		return p.idp
	case i == 0 && kind == "relayserver":
		return p.relayserver
	case i > 0 && i <= len(p.replicas[kind]):
		return p.replicas[kind][i-1]
	}
	return nil
}

func (p *Platform) startRelay() error {
	listenKey, sendKey := randomKey(), randomKey()
	var err error
	p.devrelay, err = p.launch("devrelay", "devrelay", []string{
		"--listen", "127.0.0.1:0", "--hybrid-connection", HybridConnection,
		"--listen-key", listenKey, "--send-key", sendKey,
	}, nil)
	if err != nil {
		return err
	}
	value := func(key string) (string, error) {
		line, err := p.devrelay.WaitOutput(key+"=", p.opts.StartTimeout)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(line[strings.Index(line, key+"=")+len(key)+1:]), nil
	}
	if p.RelayNamespace, err = value("RELAY_NAMESPACE"); err != nil {
		return err
	}
	if p.ListenConnectionString, err = value("RELAY_LISTEN_CONNECTION_STRING"); err != nil {
		return err
	}
	p.SendConnectionString, err = value("RELAY_SEND_CONNECTION_STRING")
	return err
}

// StartRelayserver starts the ops server (again, after StopRelayserver)
// and waits until it is connected to the relay.
func (p *Platform) StartRelayserver() error {
	p.mu.Lock()
	running := p.relayserver != nil && !exited(p.relayserver)
	p.mu.Unlock()
	if running {
		return errors.New("relayserver is already running")
	}
	proc, err := p.launchRelayserver("relayserver")
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.relayserver = proc
	p.mu.Unlock()
	return nil
}

// launchRelayserver starts a relay server and waits until it listens on
// the relay.
func (p *Platform) launchRelayserver(label string) (*procs.Process, error) {
	args := append([]string{
		"--relay-insecure",
		"--api-keys-file", p.keysFile(),
		"--registry-file", p.RegistryFile,
		"--event-interval", "1s",
		"--shutdown-timeout", "5s",
	}, p.relayserverRunsArgs()...)
	args = append(args, p.opts.RelayserverArgs...)
	proc, err := p.launch("relayserver", label, args, []string{
		// Secrets through the environment, as in production.
		"BOTE_RELAYSERVER_CONNECTION_STRING=" + p.ListenConnectionString,
	})
	if err != nil {
		return nil, err
	}
	_, err = proc.WaitOutput("listening on sb://", p.opts.StartTimeout)
	return proc, err
}

// StopRelayserver stops the ops server gracefully (SIGTERM).
func (p *Platform) StopRelayserver() error {
	p.mu.Lock()
	proc := p.relayserver
	p.mu.Unlock()
	if proc == nil {
		return nil
	}
	return proc.Stop()
}

// KillRelayserver ends the ops server at once, as a crash would.
func (p *Platform) KillRelayserver() {
	p.mu.Lock()
	proc := p.relayserver
	p.mu.Unlock()
	if proc != nil {
		proc.Kill()
	}
}

// agentSpec finds a registered agent.
func (p *Platform) agentSpec(tenant, id string) (Agent, bool) {
	i := slices.IndexFunc(p.opts.Agents, func(a Agent) bool { return a.Tenant == tenant && a.ID == id })
	if i < 0 {
		return Agent{}, false
	}
	return p.opts.Agents[i], true
}

// StartAgent starts a registered agent (again, after StopAgent or
// KillAgent) and waits until it is connected to the gateway.
func (p *Platform) StartAgent(tenant, id string) (*procs.Process, error) {
	a, ok := p.agentSpec(tenant, id)
	if !ok {
		return nil, fmt.Errorf("agent %s/%s is not registered (Options.Agents)", tenant, id)
	}
	p.mu.Lock()
	old := p.agents[a.ClientID()]
	p.mu.Unlock()
	if old != nil && !exited(old) {
		return nil, fmt.Errorf("agent %s is already running", a.ClientID())
	}
	args := append(p.agentArgs(a), a.Args...)
	proc, err := p.launch("agent", "agent "+a.ClientID(), args, nil)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.agents[a.ClientID()] = proc
	p.mu.Unlock()
	if _, err := proc.WaitOutput(agentReadyLine, p.opts.StartTimeout); err != nil {
		return nil, err
	}
	if err := p.waitOnline(a); err != nil {
		return nil, err
	}
	return proc, nil
}

// waitOnline waits until the ops server lists the agent online, that is
// until its first heartbeat went through the gateway: from then on runs
// are dispatched to it.
func (p *Platform) waitOnline(a Agent) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.StartTimeout)
	defer cancel()
	for {
		r, err := p.Opsbot(ctx, a.Tenant, nil, "agents", "list", "-o", "json")
		if err == nil && r.Code == 0 {
			var list opsapi.AgentList
			if json.Unmarshal([]byte(r.Stdout), &list) == nil && slices.ContainsFunc(list.Agents, func(ag opsapi.Agent) bool {
				return ag.Tenant == a.Tenant && ag.Name == a.ID && ag.State == opsapi.AgentOnline
			}) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent %s did not come online at the ops server within %s (last opsbot agents list: %v %s)", a.ClientID(), p.opts.StartTimeout, err, r)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Agent returns an agent's process (nil if never started).
func (p *Platform) Agent(tenant, id string) *procs.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.agents[registry.ClientID(tenant, id)]
}

// StopAgent stops an agent gracefully.
func (p *Platform) StopAgent(tenant, id string) error {
	if proc := p.Agent(tenant, id); proc != nil {
		return proc.Stop()
	}
	return nil
}

// KillAgent ends an agent at once (SIGKILL), as a crash or a power cut
// would.
func (p *Platform) KillAgent(tenant, id string) {
	if proc := p.Agent(tenant, id); proc != nil {
		proc.Kill()
	}
}

// Stop stops every process, newest first, and Azurite if Start started
// it. It is safe to call twice.
func (p *Platform) Stop() error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil
	}
	p.stopped = true
	all := slices.Clone(p.all)
	p.mu.Unlock()
	var errs []error
	for i := len(all) - 1; i >= 0; i-- {
		_ = all[i].Stop() // exit statuses of killed processes are expected
	}
	for _, b := range p.balancers {
		b.close()
	}
	if p.ownEmulator && p.Emulator != nil {
		if err := p.Emulator.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("cannot stop Azurite: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Outputs returns every process's output, for a failed test's log.
func (p *Platform) Outputs() string {
	p.mu.Lock()
	all := slices.Clone(p.all)
	names := maps.Clone(p.names)
	p.mu.Unlock()
	var b strings.Builder
	for _, proc := range all {
		fmt.Fprintf(&b, "=== %s (pid %d) ===\n%s\n", names[proc], proc.Pid(), proc.Output())
	}
	return b.String()
}

// OpsbotEnv is the environment that points opsbot at this platform
// through the relay, with the operator API key (and tenant, unless "").
func (p *Platform) OpsbotEnv(tenant string) []string {
	env := []string{
		"OPSBOT_NAMESPACE=" + p.SendConnectionString,
		"OPSBOT_RELAY_INSECURE=true",
		"OPSBOT_API_KEY=" + p.APIKey,
		"OPSBOT_TIMEOUT=30s",
	}
	if tenant != "" {
		env = append(env, "OPSBOT_TENANT="+tenant)
	}
	return env
}

// Result is a finished opsbot invocation.
type Result struct {
	Code           int
	Stdout, Stderr string
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// queuedRun matches opsbot's "Run run-… queued" line (plan, destroy).
var queuedRun = regexp.MustCompile(`Run (run-[0-9a-v]+) queued`)

// QueuedRun returns the id of the run a plan or destroy command queued.
func QueuedRun(r Result) (string, bool) {
	m := queuedRun.FindStringSubmatch(r.Stderr)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// Expect runs opsbot as tenant's operator for a test or benchmark and
// fails it unless opsbot exits with code.
func (p *Platform) Expect(tb testing.TB, code int, tenant string, args ...string) Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := p.Opsbot(ctx, tenant, nil, args...)
	if err != nil {
		tb.Fatal(err)
	}
	if r.Code != code {
		tb.Fatalf("opsbot %s: want exit %d, got %s", strings.Join(args, " "), code, r)
	}
	return r
}

// MustQueuedRun is QueuedRun for a test: it fails tb without a run id.
func MustQueuedRun(tb testing.TB, r Result) string {
	tb.Helper()
	id, ok := QueuedRun(r)
	if !ok {
		tb.Fatalf("no run id in opsbot's output:\n%s", r)
	}
	return id
}

// Run returns a run as the ops API has it (opsbot runs show -o json).
func (p *Platform) Run(ctx context.Context, tenant, id string) (*opsapi.Run, error) {
	r, err := p.Opsbot(ctx, tenant, nil, "runs", "show", id, "-o", "json")
	if err != nil {
		return nil, err
	}
	if r.Code != 0 {
		return nil, fmt.Errorf("opsbot runs show %s: %s", id, r)
	}
	var run opsapi.Run
	if err := json.Unmarshal([]byte(r.Stdout), &run); err != nil {
		return nil, fmt.Errorf("cannot decode opsbot runs show -o json: %w", err)
	}
	return &run, nil
}

// OpsbotCmd returns an opsbot command against the platform, as tenant's
// operator, in a clean environment (no config file or OPSBOT_* variable
// of the caller's leaks in); the caller sets its output and runs it.
func (p *Platform) OpsbotCmd(ctx context.Context, tenant string, args ...string) (*exec.Cmd, error) {
	path, err := p.opts.Binary("opsbot")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(p.opsbotBaseEnv(), p.OpsbotEnv(tenant)...)
	cmd.Dir = p.Dir
	return cmd, nil
}

// Opsbot runs the CLI to completion against the platform, as tenant's
// operator, and returns its exit code and output. env entries are added
// last (so they win).
func (p *Platform) Opsbot(ctx context.Context, tenant string, env []string, args ...string) (Result, error) {
	cmd, err := p.OpsbotCmd(ctx, tenant, args...)
	if err != nil {
		return Result{}, err
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return Result{ee.ExitCode(), out.String(), errOut.String()}, nil
	case err != nil:
		return Result{}, fmt.Errorf("cannot run opsbot: %w", err)
	}
	return Result{0, out.String(), errOut.String()}, nil
}

// StartOpsbot starts a long-running opsbot (logs -f, a plan that follows)
// as a process the caller waits for or stops; Stop stops it too.
func (p *Platform) StartOpsbot(tenant string, args ...string) (*procs.Process, error) {
	path, err := p.opts.Binary("opsbot")
	if err != nil {
		return nil, err
	}
	env := append(p.OpsbotEnv(tenant), p.isolatedHome()...)
	return p.launchPath("opsbot", path, args, env)
}

// opsbotBaseEnv is a clean environment: no stray config file or
// OPSBOT_* variable of the developer's shell leaks in.
func (p *Platform) opsbotBaseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPSBOT_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, p.isolatedHome()...)
}

// isolatedHome keeps the developer's opsbot config file out.
func (p *Platform) isolatedHome() []string {
	return []string{"HOME=" + p.Dir, "XDG_CONFIG_HOME=" + filepath.Join(p.Dir, "xdg")}
}

func exited(proc *procs.Process) bool {
	select {
	case <-proc.Done():
		return true
	default:
		return false
	}
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.StdEncoding.EncodeToString(b)
}

// prefixWriter prefixes every line written to w.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (pw *prefixWriter) Write(b []byte) (int, error) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.buf = append(pw.buf, b...)
	for {
		i := bytes.IndexByte(pw.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(pw.w, "%s%s\n", pw.prefix, pw.buf[:i]); err != nil {
			return len(b), nil // the echo is best effort; the process must not block on it
		}
		pw.buf = pw.buf[i+1:]
	}
	return len(b), nil
}

// agentReadyLine is what the agent prints once its gateway session is up
// (runtime/cmd/agent readyLine).
const agentReadyLine = "agent connected "

// relayserverRunsArgs are relayserver's flags for the runs orchestration:
// state and artifacts in Azurite, the gateway's bus.
func (p *Platform) relayserverRunsArgs() []string {
	args := []string{
		"--storage-connection-string", p.Emulator.ConnectionString,
		"--secrets-file", p.secretsFile(),
	}
	if p.WorkerURL != "" { // wake the router when queueing work for agents
		args = append(args, "--worker-url", p.WorkerURL)
	}
	return args
}

func (p *Platform) secretsFile() string { return filepath.Join(p.Dir, "secrets.json") }

// SetSecrets stores a workspace's deployment secrets in relayserver's
// local secret store (the file it re-reads for every run): env reaches
// the Terraform process as environment variables, vars as input
// variables.
func (p *Platform) SetSecrets(tenant, workspace string, env, vars map[string]string) error {
	store, err := secretstore.OpenFile(p.secretsFile())
	if err != nil {
		return err
	}
	return store.Put(context.Background(), tenant, workspace, runproto.Secrets{Env: env, Vars: vars})
}

// agentArgs is an agent's command line. Runs get a short cancel grace so
// that tests of cancellation stay quick.
func (p *Platform) agentArgs(a Agent) []string {
	args := []string{
		"--worker-url", p.WorkerURL,
		"--issuer", p.IdpURL,
		"--tenant", a.Tenant,
		"--id", a.ID,
		"--key", p.keyFiles[a.ClientID()],
		"--work-dir", filepath.Join(p.Dir, "agents", a.Tenant, a.ID),
		"--cancel-grace", "5s",
		"--shutdown-grace", "5s",
	}
	if a.Capacity > 0 {
		args = append(args, "--concurrency", fmt.Sprint(a.Capacity))
	}
	if len(a.Labels) > 0 {
		var kvs []string
		for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
			kvs = append(kvs, k+"="+a.Labels[k])
		}
		args = append(args, "--labels", strings.Join(kvs, ","))
	}
	return args
}
