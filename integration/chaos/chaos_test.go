// Package chaos sends numbered messages through the gateway to a
// connector sidecar with durable dedup and queues runs while it kills
// processes (a gateway, an idp and an ops server replica of two, the
// connector, an agent) and restarts Azurite, then checks that no message is lost, no
// run is stuck, and reports duplicates and figures.
//
// The short profile runs in `make test` (15-35 s); `make chaos` runs
// the long one (BOTE_CHAOS=long). Azurite restarts keep their data
// (azurite.Options.Persist), as Azure Storage does. A message that is
// missing at the end is placed among the faults (when it was sent, when
// it arrived if it arrives late), so a failure says where to look.
package chaos

import (
	"context"
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/integration/platform"
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/bus/storagequeue"
	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/runs"
)

const tenant = "contoso"

func TestMain(m *testing.M) { platform.Main(m) }

// profile is how much chaos a run makes.
type profile struct {
	name     string
	messages int           // numbered messages sent
	runs     int           // plans queued, one workspace each
	rounds   int           // rounds of faults (each kills every kind once)
	pace     time.Duration // between two messages while the faults happen (none after)
	settle   time.Duration // how long everything may take to arrive after the last fault
	// routeLock is the gateways' --route-lock, how long a message whose
	// receive the Azurite restart cut off waits (0: the default, 30 s).
	routeLock time.Duration
}

var profiles = map[string]profile{
	"short": {name: "short", messages: 200, runs: 3, rounds: 1, pace: 75 * time.Millisecond, settle: 90 * time.Second, routeLock: 5 * time.Second},
	"long":  {name: "long", messages: 3000, runs: 20, rounds: 4, pace: 30 * time.Millisecond, settle: 5 * time.Minute},
}

func TestChaos(t *testing.T) {
	name := os.Getenv("BOTE_CHAOS")
	if name == "" {
		name = "short" // make test
	}
	prof, ok := profiles[name]
	require.True(t, ok, "BOTE_CHAOS=%q: want short or long", name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()

	emu, err := azurite.Start(ctx, azurite.Options{Mode: "npm", Persist: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = emu.Stop() })
	heartbeat := []string{"--heartbeat-interval", "1s"}
	var gatewayArgs []string
	if prof.routeLock > 0 {
		gatewayArgs = []string{"--route-lock", prof.routeLock.String()}
	}
	p := platform.New(t, platform.Options{Dir: t.TempDir(), Emulator: emu, Replicas: 2,
		Agents:        []platform.Agent{{Tenant: tenant, ID: "agent-a", Start: true, Args: heartbeat}, {Tenant: tenant, ID: "agent-b", Start: true, Args: heartbeat}},
		Connectors:    []platform.Connector{{Tenant: tenant, ID: "sink"}},
		OpsServerArgs: []string{"--agent-silent-after", "6s", "--sweep-interval", "500ms", "--dispatch-tick", "1s"},
		GatewayArgs:   gatewayArgs,
	})

	// The receiving connector: the connector sidecar with durable dedup,
	// posting to a local program that counts every delivery.
	tl := newTimeline(prof.messages)
	program := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n, err := strconv.Atoi(string(body))
		if err != nil {
			http.Error(w, "not a numbered message", http.StatusBadRequest)
			return
		}
		tl.received(n)
	}))
	t.Cleanup(program.Close)
	sinkArgs := []string{"--dedup-file", filepath.Join(t.TempDir(), "sink-seen"), "--visibility", "2s", "--safety-poll", "1s"}
	sink, err := p.StartConnector(tenant, "sink", program.URL, sinkArgs...)
	require.NoError(t, err)

	// The sending cloud service.
	claims, err := claimcheck.New(ctx, claimcheck.Config{ConnectionString: emu.ConnectionString, CreateContainer: true})
	require.NoError(t, err)
	bus, err := storagequeue.New(storagequeue.Config{ConnectionString: emu.ConnectionString, Claims: claims, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	sender, err := botecloud.New(botecloud.Config{Bus: bus, Service: "chaos", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)

	// Runs: one plan per workspace, a third queued before the faults and
	// the rest while they happen. An operator whose command failed
	// (Azurite down) tries again.
	var ids []string
	queue := func() {
		t.Helper()
		ws := fmt.Sprintf("chaos-%d", len(ids))
		for attempt := 0; ; attempt++ {
			r, err := p.Opsbot(ctx, tenant, nil, "workspaces", "create", ws)
			if err == nil && (r.Code == 0 || strings.Contains(r.Stderr, "exists")) {
				break
			}
			require.Less(t, attempt, 30, "cannot create workspace %s: %v %s", ws, err, r)
			time.Sleep(time.Second)
		}
		for attempt := 0; ; attempt++ {
			r, err := p.Opsbot(ctx, tenant, nil, "plan", "--workspace", ws, "--dir", quick(t), "--detach")
			if id, ok := platform.QueuedRun(r); err == nil && r.Code == 0 && ok {
				ids = append(ids, id)
				return
			}
			require.Less(t, attempt, 30, "cannot queue a plan in %s: %v %s", ws, err, r)
			time.Sleep(time.Second)
		}
	}
	for range max(prof.runs/3, 1) {
		queue()
	}
	during := prof.runs - len(ids)

	// Messages go out one at a time at a steady pace while the faults
	// happen, and the rest eight at a time once they are over (calm): all
	// of them must arrive, but only those sent during the faults meet one.
	var sendErrs atomic.Int64
	send := func(n int) {
		for ctx.Err() == nil {
			sctx, c := context.WithTimeout(ctx, 10*time.Second)
			tl.sending(n)
			_, err := sender.SendToConnector(sctx, tenant, "sink", botecloud.OutMessage{ID: fmt.Sprintf("chaos-%06d", n), ContentType: "text/plain", Body: []byte(strconv.Itoa(n))})
			c()
			tl.sent(n, err)
			if err == nil {
				return
			}
			sendErrs.Add(1) // retried with the same id: a duplicate at most
			time.Sleep(200 * time.Millisecond)
		}
	}
	sent, calm := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sent)
		var wg sync.WaitGroup
		defer wg.Wait()
		slots := make(chan struct{}, 8)
		for n := range prof.messages {
			select {
			case <-calm:
				slots <- struct{}{}
				wg.Add(1)
				go func() {
					defer func() { <-slots; wg.Done() }()
					send(n)
				}()
				continue
			default:
			}
			send(n)
			select {
			case <-calm:
			case <-time.After(prof.pace):
			}
		}
	}()

	faults := map[string]int{}
	fault := func(what string) { faults[what]++; tl.event(what) }
	for round := range prof.rounds {
		time.Sleep(2 * time.Second)
		p.Replica("gateway", 1).Kill()
		fault("gateway replica killed")
		p.Replica("idp", 1).Kill()
		fault("idp replica killed")
		time.Sleep(2 * time.Second)
		p.KillOpsServer()
		fault("ops server replica killed")
		require.NoError(t, p.StartOpsServer())
		tl.event("ops server started")
		sink.Kill()
		fault("connector killed")
		sink, err = p.StartConnector(tenant, "sink", program.URL, sinkArgs...)
		require.NoError(t, err)
		tl.event("connector started")
		victim := []string{"agent-a", "agent-b"}[round%2]
		p.KillAgent(tenant, victim)
		fault("agent killed")
		for range during / prof.rounds / 2 {
			queue()
		}
		tl.event("Azurite stopping")
		require.NoError(t, emu.Restart(ctx))
		fault("Azurite restarted")
		for len(ids) < prof.runs && len(ids) < prof.runs-during+(round+1)*during/prof.rounds {
			queue()
		}
		_, err := p.StartAgent(tenant, victim)
		require.NoError(t, err)
		if round < prof.rounds-1 {
			require.NoError(t, p.RestartReplica("gateway", 1))
			require.NoError(t, p.RestartReplica("idp", 1))
			tl.event("gateway and idp replicas started")
		}
	}
	tl.event("faults over")
	close(calm)
	<-sent

	// Nothing lost: every number arrives; nothing stuck: every run settles.
	deadline := time.Now().Add(prof.settle)
	var missing []int
	for {
		missing = tl.missing()
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	states := map[string]int{}
	var stuck []string
	for _, id := range ids {
		for {
			r, err := p.Run(ctx, tenant, id)
			if err == nil && (runs.State(r.State).Settled() || r.State == string(runs.Planned)) {
				states[r.State]++
				break
			}
			if time.Now().After(deadline) {
				stuck = append(stuck, id)
				break
			}
			time.Sleep(time.Second)
		}
	}
	dups := tl.duplicates()
	t.Logf("chaos %s: %d messages sent, %d lost, %d duplicated (%d send retries); %d runs queued, %d stuck, ended %v; faults %v; %s",
		prof.name, prof.messages, len(missing), dups, sendErrs.Load(), len(ids), len(stuck), states, faults, time.Since(start).Round(time.Second))
	t.Logf("faults at: %s; slowest message: %s", tl.events(), tl.slowest())
	if len(missing) > 0 {
		// Where were they? Watch a while longer: a message that arrives
		// late was held (invisible) somewhere, not lost.
		late := time.Now().Add(3 * time.Minute)
		for _, n := range missing {
			for !tl.arrived(n) && time.Now().Before(late) {
				time.Sleep(500 * time.Millisecond)
			}
			t.Logf("missing message %d: %s", n, tl.story(n))
		}
	}
	assert.Empty(t, missing, "lost messages")
	assert.Empty(t, stuck, "stuck runs")
}

// timeline records when each message was sent and received and when
// each fault happened, so a lost message can be placed among the faults.
type timeline struct {
	start time.Time
	mu    sync.Mutex
	send  []time.Time // first send attempt
	acked []time.Time // send acknowledged
	errs  []string    // failed attempts
	recv  []time.Time // first delivery to the program
	count []int       // deliveries to the program
	log   []string
}

func newTimeline(n int) *timeline {
	return &timeline{start: time.Now(), send: make([]time.Time, n), acked: make([]time.Time, n), errs: make([]string, n),
		recv: make([]time.Time, n), count: make([]int, n)}
}

func (tl *timeline) at(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(tl.start).Round(time.Millisecond).String()
}

func (tl *timeline) event(what string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.log = append(tl.log, tl.at(time.Now())+" "+what)
}

func (tl *timeline) events() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return strings.Join(tl.log, "; ")
}

func (tl *timeline) sending(n int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.send[n].IsZero() {
		tl.send[n] = time.Now()
	}
}

func (tl *timeline) sent(n int, err error) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if err != nil {
		tl.errs[n] += fmt.Sprintf(" [%s %v]", tl.at(time.Now()), err)
		return
	}
	tl.acked[n] = time.Now()
}

func (tl *timeline) received(n int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if n < 0 || n >= len(tl.recv) {
		return
	}
	tl.count[n]++
	if tl.recv[n].IsZero() {
		tl.recv[n] = time.Now()
	}
}

// missing lists the messages the program has not received.
func (tl *timeline) missing() []int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []int
	for n, c := range tl.count {
		if c == 0 {
			out = append(out, n)
		}
	}
	return out
}

// duplicates counts the deliveries beyond the first.
func (tl *timeline) duplicates() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	dups := 0
	for _, c := range tl.count {
		dups += max(c-1, 0)
	}
	return dups
}

func (tl *timeline) arrived(n int) bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return !tl.recv[n].IsZero()
}

// slowest names the message that took longest from its acknowledged send
// to the program (a message held when a fault hit waits for its lock or
// visibility timeout).
func (tl *timeline) slowest() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	worst, took := -1, time.Duration(0)
	for n := range tl.recv {
		if d := tl.recv[n].Sub(tl.acked[n]); !tl.recv[n].IsZero() && !tl.acked[n].IsZero() && d > took {
			worst, took = n, d
		}
	}
	if worst < 0 {
		return "none arrived"
	}
	return fmt.Sprintf("%d, sent at %s, arrived %s later", worst, tl.at(tl.acked[worst]), took.Round(time.Millisecond))
}

func (tl *timeline) story(n int) string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return fmt.Sprintf("send started %s, acknowledged %s, errors%s, received %s", tl.at(tl.send[n]), tl.at(tl.acked[n]), tl.errs[n], tl.at(tl.recv[n]))
}

// quick is the e2e suite's quick configuration in a fresh directory.
func quick(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "e2e", "testdata", "quick", "main.tf"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), data, 0o644))
	return dir
}
