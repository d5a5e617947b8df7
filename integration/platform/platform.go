// Package platform starts the whole platform on loopback as real
// processes, the way an operator's laptop or CI runs it: Azurite, the idp,
// the gateway process, the test relay (devrelay), the ops server
// (opsserver) and deployment agents, with keys generated and the
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
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/registry"
)

// HybridConnection is the hybrid connection devrelay serves and
// opsserver listens on.
const HybridConnection = "ops"

// Options configure Start.
type Options struct {
	// Dir is the scratch directory for keys, the registry and the
	// processes' files. It must exist. Required.
	Dir string
	// Agents are registered as agents of their tenant (opsserver
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
	// OpsServerArgs and GatewayArgs are added to opsserver's and the
	// gateway's command lines.
	OpsServerArgs []string
	GatewayArgs   []string
	// StartTimeout bounds the start of each process (default 60 s).
	StartTimeout time.Duration
	// Connectors are registered plain connectors (no role): programs a
	// test runs itself with KeyFile, e.g. to receive messages.
	Connectors []Connector
	// GatewayOnly starts the messaging gateway alone (Azurite, idp,
	// gateway): no relay, ops server or agents, so nothing but the
	// caller's own cloud programs reads the cloud queue (the samples in
	// examples/). Agents must be empty.
	GatewayOnly bool
	// Replicas is how many idps, gateways and ops servers run behind the
	// same storage and bus (default 1). With more than one, idps and
	// gateways sit behind a balancer each (IdpURL and GatewayURL are its
	// address; it skips a replica that refuses connections, as the ingress
	// does), the idps share issuer, keys and replay table, and the relay
	// spreads opsbot's requests over the ops servers' listeners.
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
	if o.GatewayOnly && len(o.Agents) > 0 {
		return errors.New("platform: GatewayOnly starts no agents; Agents must be empty")
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
	// RegistryFile is the connector registry the idp and gateway read.
	RegistryFile string
	// IdpURL and GatewayURL are the gateway's endpoints (the idp's and the gateway process's).
	IdpURL, GatewayURL string
	// RelayNamespace, ListenConnectionString and SendConnectionString are
	// devrelay's.
	RelayNamespace         string
	ListenConnectionString string
	SendConnectionString   string
	// APIKey is an operator API key opsserver accepts.
	APIKey string

	ownEmulator bool
	keyFiles    map[string]string // client id → private key file

	mu        sync.Mutex
	idp       *procs.Process
	gateway   *procs.Process
	devrelay  *procs.Process
	opsserver *procs.Process
	replicas  map[string][]*procs.Process // "idp", "gateway", "opsserver" → replicas 1..n-1
	balancers map[string]*balancer        // "idp", "gateway" → in front of their replicas
	agents    map[string]*procs.Process   // client id → process
	all       []*procs.Process            // everything started, in order
	names     map[*procs.Process]string   // labels for Outputs
	stopped   bool
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
		if out := p.Outputs() + p.azuriteLog(); out != "" {
			err = fmt.Errorf("%w\n%s", err, out)
		}
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

// binaries are the runtime/cmd programs the platform runs.
var binaries = []string{"idp", "gateway", "devrelay", "opsserver", "agent", "opsbot", "connector"}

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
	p, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("cannot start the platform: %v", err)
	}
	t.Cleanup(func() {
		var emuLog string
		if t.Failed() {
			emuLog = p.azuriteLog()
		}
		_ = p.Stop()
		if t.Failed() {
			t.Logf("--- platform processes ---\n%s%s", p.Outputs(), emuLog)
		}
	})
	return p
}

// StartConnector starts the connector sidecar of a registered connector
// (Options.Connectors), posting each message to deliverTo, with args
// added (--dedup-file, ...), and waits until it serves its local API.
func (p *Platform) StartConnector(tenant, id, deliverTo string, args ...string) (*procs.Process, error) {
	proc, err := p.launch("connector", "connector "+registry.ClientID(tenant, id), append([]string{
		"run", "--gateway-url", p.GatewayURL, "--token-url", p.IdpURL + "/oauth2/token",
		"--tenant", tenant, "--connector", id, "--key", p.KeyFile(tenant, id), "--deliver-to", deliverTo,
	}, args...), nil)
	if err != nil {
		return nil, err
	}
	_, err = proc.WaitOutput("listening on http://", p.opts.StartTimeout)
	return proc, err
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
