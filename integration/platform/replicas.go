package platform

import (
	"fmt"
	"path/filepath"

	"github.com/botehq/platform/integration/procs"
)

// startGatewayIdp starts the idp (replica 0), behind a balancer with
// replicas.
func (p *Platform) startGatewayIdp() error {
	var err error
	if p.opts.Replicas > 1 {
		// Replicas sit behind one address each, as behind the ingress in
		// Azure: the idps share their issuer, keys and replay table.
		if p.balancers["idp"], err = newBalancer(); err != nil {
			return err
		}
		if p.balancers["gateway"], err = newBalancer(); err != nil {
			return err
		}
	}
	var idpURL string
	if p.idp, idpURL, err = p.startIdp("idp"); err != nil {
		return err
	}
	p.IdpURL = p.front("idp", 0, idpURL)
	return nil
}

// startGateway starts the gateway process (replica 0) once Azurite and
// the idp are up.
func (p *Platform) startGateway() error {
	var err error
	var gatewayURL string
	p.gateway, gatewayURL, err = p.launchGateway("gateway")
	p.GatewayURL = p.front("gateway", 0, gatewayURL)
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

func (p *Platform) launchGateway(label string) (*procs.Process, string, error) {
	proc, err := p.launch("gateway", label, append([]string{
		"--listen", "127.0.0.1:0",
		"--storage-connection-string", p.Emulator.ConnectionString,
		"--issuer", p.IdpURL,
		"--registry", p.RegistryFile,
		"--create-resources",
		"--shutdown-timeout", "5s",
	}, p.opts.GatewayArgs...), nil)
	if err != nil {
		return nil, "", err
	}
	url, err := proc.ListenAddr(p.opts.StartTimeout)
	return proc, url, err
}

// startReplicas starts idps, gateways and ops servers 1..Replicas-1.
func (p *Platform) startReplicas() error {
	for i := 1; i < p.opts.Replicas; i++ {
		idp, idpURL, err := p.startIdp(fmt.Sprintf("idp-%d", i))
		if err != nil {
			return err
		}
		p.front("idp", i, idpURL)
		gw, gatewayURL, err := p.launchGateway(fmt.Sprintf("gateway-%d", i))
		if err != nil {
			return err
		}
		p.front("gateway", i, gatewayURL)
		rs, err := p.launchOpsServer(fmt.Sprintf("opsserver-%d", i))
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.replicas["idp"] = append(p.replicas["idp"], idp)
		p.replicas["gateway"] = append(p.replicas["gateway"], gw)
		p.replicas["opsserver"] = append(p.replicas["opsserver"], rs)
		p.mu.Unlock()
	}
	return nil
}

// RestartReplica starts replica i (i ≥ 1) of "gateway", "idp" or
// "opsserver" again after it was killed or stopped, on a new port behind
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
	case "gateway":
		proc, url, err = p.launchGateway(label)
	case "idp":
		proc, url, err = p.startIdp(label)
	case "opsserver":
		proc, err = p.launchOpsServer(label)
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

// Replica returns replica i (0 is the one StartOpsServer and the agents'
// gateway are) of "gateway", "idp" or "opsserver", nil if there is none.
func (p *Platform) Replica(kind string, i int) *procs.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case i == 0 && kind == "gateway":
		return p.gateway
	case i == 0 && kind == "idp":
		return p.idp
	case i == 0 && kind == "opsserver":
		return p.opsserver
	case i > 0 && i <= len(p.replicas[kind]):
		return p.replicas[kind][i-1]
	}
	return nil
}
