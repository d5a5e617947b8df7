package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/secretstore"
)

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

// StartOpsServer starts the ops server (again, after StopOpsServer)
// and waits until it is connected to the relay.
func (p *Platform) StartOpsServer() error {
	p.mu.Lock()
	running := p.opsserver != nil && !exited(p.opsserver)
	p.mu.Unlock()
	if running {
		return errors.New("opsserver is already running")
	}
	proc, err := p.launchOpsServer("opsserver")
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.opsserver = proc
	p.mu.Unlock()
	return nil
}

// launchOpsServer starts an ops server and waits until it listens on
// the relay.
func (p *Platform) launchOpsServer(label string) (*procs.Process, error) {
	args := append([]string{
		"--relay-insecure",
		"--api-keys-file", p.keysFile(),
		"--registry-file", p.RegistryFile,
		"--event-interval", "1s",
		"--shutdown-timeout", "5s",
	}, p.opsServerRunsArgs()...)
	args = append(args, p.opts.OpsServerArgs...)
	proc, err := p.launch("opsserver", label, args, []string{
		// Secrets through the environment, as in production.
		"BOTE_OPSSERVER_CONNECTION_STRING=" + p.ListenConnectionString,
	})
	if err != nil {
		return nil, err
	}
	_, err = proc.WaitOutput("listening on sb://", p.opts.StartTimeout)
	return proc, err
}

// StopOpsServer stops the ops server gracefully (SIGTERM).
func (p *Platform) StopOpsServer() error {
	p.mu.Lock()
	proc := p.opsserver
	p.mu.Unlock()
	if proc == nil {
		return nil
	}
	return proc.Stop()
}

// KillOpsServer ends the ops server at once, as a crash would.
func (p *Platform) KillOpsServer() {
	p.mu.Lock()
	proc := p.opsserver
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

// agentReadyLine is what the agent prints once its gateway session is up
// (runtime/cmd/agent readyLine).
const agentReadyLine = "agent connected "

// opsServerRunsArgs are opsserver's flags for the runs orchestration:
// state and artifacts in Azurite, the gateway's bus.
func (p *Platform) opsServerRunsArgs() []string {
	args := []string{
		"--storage-connection-string", p.Emulator.ConnectionString,
		"--secrets-file", p.secretsFile(),
	}
	if p.GatewayURL != "" { // wake the router when queueing work for agents
		args = append(args, "--gateway-url", p.GatewayURL)
	}
	return args
}

func (p *Platform) secretsFile() string { return filepath.Join(p.Dir, "secrets.json") }

// SetSecrets stores a workspace's deployment secrets in opsserver's
// local secret store (the file it re-reads for every run): env reaches
// the Terraform process as environment variables, vars as input
// variables.
func (p *Platform) SetSecrets(tenant, workspace string, env, vars map[string]string) error {
	store, err := secretstore.OpenFile(p.secretsFile())
	if err != nil {
		return err
	}
	return store.Put(context.Background(), ids.TenantID(tenant), ids.WorkspaceID(workspace), runproto.Secrets{Env: env, Vars: vars})
}

// agentArgs is an agent's command line. Runs get a short cancel grace so
// that tests of cancellation stay quick.
func (p *Platform) agentArgs(a Agent) []string {
	args := []string{
		"--gateway-url", p.GatewayURL,
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
