package runsserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/secretstore"
	"github.com/botehq/platform/runtime/tfresult"
)

// refusedLine is what opsserver logs for every message of a connector
// that is not a registered agent of its tenant (runtime/dispatch).
const refusedLine = "agent message refused: sender is not a registered agent of its tenant"

// TestOnlyRegisteredAgentsActAsAgents attacks the ops server as a
// registered connector of the tenant that is not an agent ("erp"): it
// heartbeats as an agent with labels of its choosing, waits to be handed
// a run, then reports on the real agent's run with that agent's claim
// token. Everything is refused and logged; it never gets run.assign or
// the tenant's secrets, and the run, its log and the workspace state are
// what the real agent made them. Then an agent claiming wider labels
// than registered serves only the registered ones, and withdrawing an
// agent's role in the registry file stops it at once, without a restart.
func TestOnlyRegisteredAgentsActAsAgents(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	erp := s.agent(t, "tenant-a", "erp")
	erp.setLabels(map[string]string{"env": "prod", "tier": "gold"})

	_, err := s.api.CreateWorkspace(ctx, "tenant-a", opsapi.CreateWorkspaceRequest{Name: "prod"})
	require.NoError(t, err)
	store, err := secretstore.OpenFile(s.secrets)
	require.NoError(t, err)
	require.NoError(t, store.Put(ctx, "tenant-a", "prod", runproto.Secrets{Env: map[string]string{"ARM_CLIENT_SECRET": "tenant-a-secret"}}))
	run, err := s.api.CreateRun(ctx, "tenant-a", "prod", opsclient.OpPlan, "", bytes.NewReader(bundle(t)))
	require.NoError(t, err)

	// Its heartbeats make no agent: they are refused, the run waits,
	// nothing is assigned. Three refused since the run was queued: a
	// dispatch tick went by in between.
	mark := len(s.rs.Output())
	require.Eventually(t, func() bool {
		return countLines(s.rs.Output()[mark:], refusedLine, "connector=erp") >= 3
	}, 15*time.Second, 50*time.Millisecond, "erp's heartbeats are refused")
	r, err := s.api.Run(ctx, "tenant-a", run.ID)
	require.NoError(t, err)
	assert.Equal(t, "queued", r.State)
	assert.Equal(t, "no agent of tenant tenant-a is online", r.Waiting)
	agents, err := s.api.Agents(ctx, "tenant-a")
	require.NoError(t, err)
	for _, a := range agents {
		assert.NotEqual(t, "erp", a.Name, "a connector without the agent role is never listed as an agent")
	}
	assert.Empty(t, erp.assignments())

	// A registered agent gets the run; erp then reports on it with the
	// agent's claim token and says it runs it.
	a1 := s.agent(t, "tenant-a", "a1")
	as := a1.assignment(15 * time.Second)
	require.Equal(t, run.ID, as.RunID)
	a1.setRunning(run.ID)
	erp.setRunning(run.ID)
	off := as.LogOffset
	forged := []byte("forged working directory")
	sum := sha256.Sum256(forged)
	erp.send(&runproto.Started{RunID: run.ID, ClaimToken: as.ClaimToken, Phase: runproto.PhasePlan})
	erp.send(&runproto.Logs{RunID: run.ID, ClaimToken: as.ClaimToken, Seq: 0, Lines: []string{"FORGED LINE"}, Offset: &off})
	erp.send(&runproto.Result{RunID: run.ID, ClaimToken: as.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
		Result:          &tfresult.Result{Op: tfresult.Plan, HasChanges: true},
		WorkdirUploaded: true, WorkdirSHA256: hex.EncodeToString(sum[:]), WorkdirSize: int64(len(forged)), LastSeq: 0})
	s.settled(t)
	r, err = s.api.Run(ctx, "tenant-a", run.ID)
	require.NoError(t, err)
	assert.Equal(t, "planning", r.State)
	assert.Equal(t, "a1", r.Agent)
	logs, err := s.api.Logs(ctx, "tenant-a", run.ID, 0)
	require.NoError(t, err)
	assert.Empty(t, logs.Text, "no forged line")

	// The agent finishes the plan; what is recorded is only its own.
	a1.send(&runproto.Logs{RunID: run.ID, ClaimToken: as.ClaimToken, Seq: 0, Lines: []string{"No changes."}, Offset: &off})
	a1.send(&runproto.Result{RunID: run.ID, ClaimToken: as.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
		Result: &tfresult.Result{Op: tfresult.Plan}, LastSeq: 0})
	a1.setRunning()
	done := s.waitRun(t, "tenant-a", run.ID, "no_changes", 15*time.Second)
	for _, h := range done.History {
		assert.NotEqual(t, "erp", h.By)
	}
	logs, err = s.api.Logs(ctx, "tenant-a", run.ID, 0)
	require.NoError(t, err)
	assert.Equal(t, "No changes.\n", logs.Text)
	resp, err := http.Get(as.StateURL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "no state was written")

	for _, m := range drain(erp) {
		_, isAssign := m.(*runproto.Assign)
		assert.False(t, isAssign, "erp was handed a run")
	}
	out := s.rs.Output()
	assert.GreaterOrEqual(t, strings.Count(out, refusedLine), 5, "heartbeats, started, logs and result are each refused")
	assert.Contains(t, out, "connector=erp")
	assert.NotContains(t, out, "tenant-a-secret")
	page, err := s.api.Audit(ctx, opsclient.AuditQuery{Tenant: "tenant-a", Principal: "connector:erp"})
	require.NoError(t, err)
	actions := map[string]bool{}
	for _, rec := range page.Records {
		assert.Equal(t, "denied", rec.Result)
		actions[rec.Action] = true
	}
	for _, want := range []string{"agent.heartbeat", "run.started", "run.logs", "run.result"} {
		assert.True(t, actions[want], "the refused %s is in tenant-a's audit log", want)
	}

	t.Run("an agent serves only its registered labels", func(t *testing.T) {
		// a2 is registered for env=prod and claims tier=gold as well.
		a2 := s.agent(t, "tenant-a", "a2")
		a2.setLabels(map[string]string{"env": "prod", "tier": "gold"})
		_, err := s.api.CreateWorkspace(ctx, "tenant-a", opsapi.CreateWorkspaceRequest{Name: "gold", Labels: map[string]string{"tier": "gold"}})
		require.NoError(t, err)
		_, err = s.api.CreateWorkspace(ctx, "tenant-a", opsapi.CreateWorkspaceRequest{Name: "eu-prod", Labels: map[string]string{"env": "prod"}})
		require.NoError(t, err)
		_, err = s.rs.WaitOutput("agent heartbeat claims labels its registration does not grant", 15*time.Second)
		require.NoError(t, err)

		gold, err := s.api.CreateRun(ctx, "tenant-a", "gold", opsclient.OpPlan, "", bytes.NewReader(bundle(t)))
		require.NoError(t, err)
		prod, err := s.api.CreateRun(ctx, "tenant-a", "eu-prod", opsclient.OpPlan, "", bytes.NewReader(bundle(t)))
		require.NoError(t, err)
		as := a2.assignment(15 * time.Second)
		assert.Equal(t, prod.ID, as.RunID, "env=prod is registered: a2 serves it")

		// Three more of a2's heartbeats: a dispatch tick went by.
		mark := len(s.rs.Output())
		require.Eventually(t, func() bool {
			return countLines(s.rs.Output()[mark:], "claims labels its registration does not grant", "agent=a2") >= 3
		}, 15*time.Second, 50*time.Millisecond)
		r, err := s.api.Run(ctx, "tenant-a", gold.ID)
		require.NoError(t, err)
		assert.Equal(t, "queued", r.State, "tier=gold is not a2's")
		assert.Contains(t, r.Waiting, "has the labels tier=gold")
		for _, a := range a2.assignments() {
			assert.NotEqual(t, gold.ID, a.RunID)
		}
		agents, err := s.api.Agents(ctx, "tenant-a")
		require.NoError(t, err)
		for _, a := range agents {
			if a.Name == "a2" {
				assert.Equal(t, map[string]string{"env": "prod"}, a.Labels)
			}
		}
	})

	t.Run("withdrawing the agent role takes effect without a restart", func(t *testing.T) {
		setAgentRole(t, s, "tenant-a/a1", false)
		mark := len(s.rs.Output())
		queued, err := s.api.CreateRun(ctx, "tenant-a", "prod", opsclient.OpPlan, "", bytes.NewReader(bundle(t)))
		require.NoError(t, err)
		// Three of a1's heartbeats refused: a dispatch tick went by.
		require.Eventually(t, func() bool {
			return countLines(s.rs.Output()[mark:], refusedLine, "connector=a1") >= 3
		}, 15*time.Second, 50*time.Millisecond, "a1's heartbeats are refused")
		r, err := s.api.Run(ctx, "tenant-a", queued.ID)
		require.NoError(t, err)
		assert.Equal(t, "queued", r.State)
		assert.Empty(t, a1.assignments())
		agents, err := s.api.Agents(ctx, "tenant-a")
		require.NoError(t, err)
		for _, a := range agents {
			if a.Name == "a1" {
				assert.Equal(t, opsapi.AgentDisabled, a.State)
			}
		}

		setAgentRole(t, s, "tenant-a/a1", true)
		as := a1.assignment(15 * time.Second)
		assert.Equal(t, queued.ID, as.RunID, "granted again, a1 gets the waiting run")
	})
}

// setAgentRole rewrites the registry file with the agent role of clientID
// granted or withdrawn, and waits until opsserver loaded it.
func setAgentRole(t *testing.T, s *server, clientID string, agent bool) {
	t.Helper()
	file := filepath.Join(s.dir, "registry.json")
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	reg, err := registry.Parse(data)
	require.NoError(t, err)
	cs := reg.Connectors()
	for i, c := range cs {
		if c.ClientID() == clientID {
			cs[i].Roles = nil
			if agent {
				cs[i].Roles = []string{registry.RoleAgent}
			}
		}
	}
	data, err = registry.Marshal(cs)
	require.NoError(t, err)
	loaded := strings.Count(s.rs.Output(), "connector registry loaded")
	require.NoError(t, os.WriteFile(file, data, 0o644))
	require.Eventually(t, func() bool { return strings.Count(s.rs.Output(), "connector registry loaded") > loaded },
		15*time.Second, 100*time.Millisecond, "opsserver reloads the registry")
}

// drain returns what arrived at a fake agent so far.
func drain(a *agent) []runproto.Message {
	var out []runproto.Message
	for {
		select {
		case m := <-a.got:
			out = append(out, m)
		default:
			return out
		}
	}
}

// countLines counts the lines of out that contain every one of subs.
func countLines(out string, subs ...string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if !slices.ContainsFunc(subs, func(sub string) bool { return !strings.Contains(l, sub) }) {
			n++
		}
	}
	return n
}
