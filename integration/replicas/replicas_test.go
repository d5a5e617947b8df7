// Package replicas runs the platform with two idps, two gateways and two
// ops servers behind one Azurite (idps and gateways behind a balancer
// each, as behind the ingress in Azure) and kills one of each mid-run:
// the run completes, nothing of its log is lost, the operator's opsbot
// following it carries on through the relay to the surviving relay
// server, agents reconnect to the surviving gateway, a new agent gets its
// token from the surviving idp, and the survivors serve the next run.
package replicas

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/platform"
	"github.com/botehq/platform/runtime/opsapi"
)

const tenant = "contoso"

// heartbeat keeps agents' heartbeats well inside --agent-silent-after.
var heartbeat = []string{"--heartbeat-interval", "1s"}

func TestMain(m *testing.M) { platform.Main(m) }

// slow is the e2e suite's slow configuration, sleeping seconds in its apply.
func slow(t *testing.T, seconds int) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "e2e", "testdata", "slow", "main.tf"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), data, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "e2e.auto.tfvars"), fmt.Appendf(nil, "sleep_seconds = %d\n", seconds), 0o644))
	return dir
}

// gated is testdata/gated in a fresh directory: its apply runs until the
// file it returns exists.
func gated(t *testing.T) (dir, gate string) {
	t.Helper()
	dir = t.TempDir()
	data, err := os.ReadFile(filepath.Join("testdata", "gated", "main.tf"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), data, 0o644))
	gate = filepath.Join(t.TempDir(), "gate")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "e2e.auto.tfvars"), fmt.Appendf(nil, "gate = %q\n", gate), 0o644))
	return dir, gate
}

// TestReplicaKilledMidRun: ops server, gateway and idp replica 0 are
// killed (SIGKILL) while an apply runs and agents hold sessions; the apply
// ends once the surviving ops server shows the run still applying and
// both agents heartbeating through the survivors.
func TestReplicaKilledMidRun(t *testing.T) {
	p := platform.New(t, platform.Options{Dir: t.TempDir(), Replicas: 2,
		Agents:        []platform.Agent{{Tenant: tenant, ID: "agent-a", Start: true, Args: heartbeat}, {Tenant: tenant, ID: "agent-b", Start: true, Args: heartbeat}},
		OpsServerArgs: []string{"--agent-silent-after", "6s", "--dispatch-tick", "1s"},
	})
	p.Expect(t, 0, tenant, "workspaces", "create", "app")
	dir, gate := gated(t)
	id := platform.MustQueuedRun(t, p.Expect(t, 10, tenant, "plan", "--workspace", "app", "--dir", dir))
	apply, err := p.StartOpsbot(tenant, "apply", id, "--yes")
	require.NoError(t, err)
	t.Cleanup(func() { _ = apply.Stop() })
	_, err = apply.WaitOutput("slow apply starting", 2*time.Minute)
	require.NoError(t, err, apply.Output())

	for _, kind := range []string{"opsserver", "gateway", "idp"} {
		p.Replica(kind, 0).Kill()
	}
	// The surviving ops server has the run mid-apply and has heard from
	// both agents since (a heartbeat two intervals after the kill went
	// through the surviving gateway); then the apply may end.
	since := time.Now().Add(2 * time.Second)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		r, err := p.Opsbot(t.Context(), tenant, nil, "agents", "list", "-o", "json")
		require.NoError(c, err)
		require.Equal(c, 0, r.Code, "the surviving ops server answers: %s", r)
		var list opsapi.AgentList
		require.NoError(c, json.Unmarshal([]byte(r.Stdout), &list))
		require.Len(c, list.Agents, 2)
		for _, a := range list.Agents {
			require.NotNil(c, a.LastSeen, a.Name)
			assert.True(c, a.LastSeen.After(since), "%s heartbeats through the survivors", a.Name)
		}
		run, err := p.Run(t.Context(), tenant, id)
		require.NoError(c, err)
		assert.Equal(c, "applying", run.State, "the replicas died mid-apply")
	}, 2*time.Minute, 250*time.Millisecond)
	require.NoError(t, os.WriteFile(gate, nil, 0o644))

	select {
	case <-apply.Done():
	case <-time.After(2 * time.Minute):
		t.Fatalf("opsbot apply did not end:\n%s", apply.Output())
	}
	var ee *exec.ExitError
	if err := apply.ExitErr(); errors.As(err, &ee) {
		t.Fatalf("opsbot apply exited %d:\n%s", ee.ExitCode(), apply.Output())
	}
	assert.Contains(t, apply.Output(), "slow apply done", "the follower resumed and saw the end of the log")
	run, err := p.Run(t.Context(), tenant, id)
	require.NoError(t, err)
	assert.Equal(t, "applied", run.State)
	logs := p.Expect(t, 0, tenant, "logs", id)
	assert.Contains(t, logs.Stdout, "slow apply starting")
	assert.Contains(t, logs.Stdout, "slow apply done")

	// A new agent process needs a token (idp 1) and a session (gateway 1).
	require.NoError(t, p.StopAgent(tenant, "agent-a"))
	_, err = p.StartAgent(tenant, "agent-a")
	require.NoError(t, err)
	next := platform.MustQueuedRun(t, p.Expect(t, 10, tenant, "plan", "--workspace", "app", "--dir", slow(t, 0)))
	run, err = p.Run(t.Context(), tenant, next)
	require.NoError(t, err)
	assert.Equal(t, "planned", run.State, "the survivors serve the next run")
}
