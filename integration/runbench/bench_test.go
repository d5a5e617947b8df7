// Package runbench measures runs end to end on the real platform
// (package integration/platform: real processes, real terraform, Azurite):
// pickup latency from queued to Terraform started, log line latency from
// the agent to `opsbot logs -f`, and runs per minute with four agents.
// The benchmarks print their figures next to the baseline; they run only
// when asked (see docs/benchmarks.md), never in `make test`:
//
//	cd integration && go test ./runbench/ -run '^$' -bench . -benchtime 1x
//
// BOTE_BENCH_ROUTE_POLL_MAX=1s (say) sets the gateway's --route-poll-max.
package runbench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/platform"
	"github.com/botehq/platform/runtime/opsapi"
)

const tenant = "bench"

// tfeAgentPoll is how often Terraform Enterprise / HCP Terraform agents
// poll for work by default (reference/agents.md): their pickup latency is
// up to this, half of it on average.
const tfeAgentPoll = 30 * time.Second

var (
	platOnce sync.Once
	plat     *platform.Platform
	platErr  error
	platDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if plat != nil {
		_ = plat.Stop()
	}
	if platDir != "" {
		_ = os.RemoveAll(platDir)
	}
	if binCleanup != nil {
		binCleanup()
	}
	os.Exit(code)
}

// binCleanup removes binaries built for the benchmarks.
var binCleanup func()

// thePlatform starts, on first use, a platform with four agents of one
// tenant whose terraform is a wrapper recording when each run's Terraform
// process starts.
func thePlatform(b *testing.B) *platform.Platform {
	b.Helper()
	platOnce.Do(func() {
		if binCleanup, platErr = platform.Binaries(); platErr != nil {
			return
		}
		if platDir, platErr = os.MkdirTemp("", "bote-runbench-"); platErr != nil {
			return
		}
		var wrapper string
		if wrapper, platErr = writeTerraformWrapper(platDir); platErr != nil {
			return
		}
		var agents []platform.Agent
		for i := 1; i <= 4; i++ {
			agents = append(agents, platform.Agent{Tenant: tenant, ID: fmt.Sprintf("agent-%d", i), Start: true, Capacity: 2,
				Args: []string{"--terraform", wrapper}})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		opts := platform.Options{Dir: platDir, Agents: agents}
		// On Storage Queues the gateway polls the connectors' bus queue,
		// waiting up to --route-poll-max (default 1s) while idle; this
		// is where pickup time goes (see docs/benchmarks.md).
		if v := os.Getenv("BOTE_BENCH_ROUTE_POLL_MAX"); v != "" {
			opts.GatewayArgs = []string{"--route-poll-max", v}
		}
		plat, platErr = platform.Start(ctx, opts)
	})
	if platErr != nil {
		b.Fatalf("cannot start the platform: %v", platErr)
	}
	return plat
}

// writeTerraformWrapper writes a terraform that appends the time it
// started (unix ns) to starts.log, then runs the real terraform.
func writeTerraformWrapper(dir string) (string, error) {
	real, err := exec.LookPath("terraform")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "terraform-timed")
	script := fmt.Sprintf("#!/bin/sh\ndate +%%s%%N >> %q\nexec %q \"$@\"\n", filepath.Join(dir, "starts.log"), real)
	return path, os.WriteFile(path, []byte(script), 0o755)
}

// terraformStarts returns when a Terraform process started, in order.
// Working directories are not named after runs, so runs that go one at a
// time are matched to the first start after their creation.
func terraformStarts(b *testing.B) []time.Time {
	b.Helper()
	data, err := os.ReadFile(filepath.Join(platDir, "starts.log"))
	require.NoError(b, err)
	var out []time.Time
	for _, line := range strings.Fields(string(data)) {
		if n, err := strconv.ParseInt(line, 10, 64); err == nil {
			out = append(out, time.Unix(0, n))
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// assignmentsReceived returns when an agent logged each run's first
// assignment (its JSON log: "msg":"run assigned", "run", "time").
func assignmentsReceived(b *testing.B) map[string]time.Time {
	b.Helper()
	out := map[string]time.Time{}
	for i := 1; i <= 4; i++ {
		for _, line := range strings.Split(plat.Agent(tenant, fmt.Sprintf("agent-%d", i)).Output(), "\n") {
			var entry struct {
				Time time.Time `json:"time"`
				Msg  string    `json:"msg"`
				Run  string    `json:"run"`
			}
			if json.Unmarshal([]byte(line), &entry) != nil || entry.Msg != "run assigned" {
				continue
			}
			if _, seen := out[entry.Run]; !seen {
				out[entry.Run] = entry.Time
			}
		}
	}
	return out
}

func transitionAt(r opsapi.Run, to string) time.Time {
	for _, h := range r.History {
		if h.To == to {
			return h.At
		}
	}
	return time.Time{}
}

func expect(b *testing.B, code int, args ...string) platform.Result {
	b.Helper()
	return plat.Expect(b, code, tenant, args...)
}

func runID(b *testing.B, r platform.Result) string {
	b.Helper()
	return platform.MustQueuedRun(b, r)
}

func show(b *testing.B, id string) opsapi.Run {
	b.Helper()
	run, err := plat.Run(context.Background(), tenant, id)
	require.NoError(b, err)
	return *run
}

// configDir writes a one-resource configuration.
func configDir(b *testing.B, body string) string {
	b.Helper()
	dir := b.TempDir()
	require.NoError(b, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(body), 0o644))
	return dir
}

const quickConfig = `resource "terraform_data" "x" {
  input = "bench"
}
`

const changingConfig = `variable "input" {}
resource "terraform_data" "x" {
  input = var.input
}
`

// BenchmarkPickupLatency: from a run queued (its creation on the server)
// to its Terraform process started on an idle agent. Runs go one at a
// time (each followed to its end), so every run finds idle agents and the
// first Terraform start after its creation is its own.
func BenchmarkPickupLatency(b *testing.B) {
	thePlatform(b)
	expect(b, 0, "workspaces", "create", "pickup", "--auto-apply")
	dir := configDir(b, quickConfig)
	const runs = 20
	var ids []string
	for b.Loop() {
		for range runs {
			r := expect(b, 0, "plan", "--workspace", "pickup", "--dir", dir)
			ids = append(ids, runID(b, r))
		}
	}
	starts := terraformStarts(b)
	received := assignmentsReceived(b)
	var lat, claim, deliver, prepare []time.Duration
	for _, id := range ids {
		run := show(b, id)
		i := slices.IndexFunc(starts, func(t time.Time) bool { return !t.Before(run.CreatedAt) })
		require.GreaterOrEqual(b, i, 0, "no Terraform start recorded after run %s was created", id)
		lat = append(lat, starts[i].Sub(run.CreatedAt))
		// Where the time goes: the claim on the server, the assignment's
		// trip through the gateway, the agent's preparation (bundle
		// download and unpack, working directory).
		claimed := transitionAt(run, "planning")
		got, ok := received[id]
		require.True(b, ok, "agent log has no assignment of %s", id)
		claim = append(claim, claimed.Sub(run.CreatedAt))
		deliver = append(deliver, got.Sub(claimed))
		prepare = append(prepare, starts[i].Sub(got))
	}
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	fmt.Printf("pickup latency, queued → terraform started, %d runs: p50 %s, p99 %s (target p50 ≤ 100ms); "+
		"Terraform Enterprise agents poll every %s: p50 ≈ %s, p99 ≈ %s\n",
		len(lat), p50.Round(time.Millisecond), p99.Round(time.Millisecond), tfeAgentPoll, tfeAgentPoll/2, tfeAgentPoll*99/100)
	for _, seg := range []struct {
		what string
		d    []time.Duration
	}{
		{"queued → claimed (server: dispatch, Table transaction)", claim},
		{"claimed → assignment received by the agent (gateway: bus queue, router, connector queue)", deliver},
		{"received → terraform started (agent: bundle download, unpack, working directory)", prepare},
	} {
		fmt.Printf("  %-90s p50 %6s  p99 %6s\n", seg.what, percentile(seg.d, 50).Round(time.Millisecond), percentile(seg.d, 99).Round(time.Millisecond))
	}
}

// BenchmarkLogLineLatency: a provisioner prints a line with its clock
// every 50 ms; `opsbot logs -f`, following through the relay, timestamps
// each line as it arrives.
func BenchmarkLogLineLatency(b *testing.B) {
	thePlatform(b)
	expect(b, 0, "workspaces", "create", "loglat", "--auto-apply")
	dir := configDir(b, `resource "terraform_data" "ticker" {
  input = "ticks"
  provisioner "local-exec" {
    command = "i=0; while [ $i -lt 100 ]; do echo tick $(date +%s%N); i=$((i+1)); sleep 0.05; done"
  }
}
`)
	var lat []time.Duration
	for b.Loop() {
		r := expect(b, 0, "plan", "--workspace", "loglat", "--dir", dir, "--detach")
		id := runID(b, r)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cmd, err := plat.OpsbotCmd(ctx, tenant, "logs", "-f", id)
		require.NoError(b, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(b, err)
		require.NoError(b, cmd.Start())
		tick := regexp.MustCompile(`tick (\d{19})`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			arrived := time.Now()
			if m := tick.FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.ParseInt(m[1], 10, 64)
				lat = append(lat, arrived.Sub(time.Unix(0, n)))
			}
		}
		_ = cmd.Wait()
		cancel()
	}
	require.NotEmpty(b, lat, "no tick lines arrived")
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	fmt.Printf("log line latency, agent's terraform → opsbot logs -f through the relay, %d lines: p50 %s, p99 %s, max %s (target p99 ≤ 1s)\n",
		len(lat), p50.Round(time.Millisecond), p99.Round(time.Millisecond), slices.Max(lat).Round(time.Millisecond))
}

// BenchmarkRunsPerMinute: 16 auto-apply runs over 8 workspaces, 4 agents
// of capacity 2; from the first upload to the last run applied.
func BenchmarkRunsPerMinute(b *testing.B) {
	thePlatform(b)
	const workspaces, perWorkspace = 8, 2
	for w := range workspaces {
		expect(b, 0, "workspaces", "create", fmt.Sprintf("rpm-%d", w), "--auto-apply")
	}
	// Every run sets its own input: state is kept between runs, so the same
	// configuration twice would end the second run with no changes.
	dir := configDir(b, changingConfig)
	var rate float64
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		var mu sync.Mutex
		var ids []string
		var wg sync.WaitGroup
		for w := range workspaces {
			wg.Go(func() {
				for i := range perWorkspace {
					input := fmt.Sprintf("input=%d-%d-%d", w, i, time.Now().UnixNano())
					r := expect(b, 0, "plan", "--workspace", fmt.Sprintf("rpm-%d", w), "--dir", dir, "--var", input, "--detach")
					mu.Lock()
					ids = append(ids, runID(b, r))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, id := range ids {
			for {
				run := show(b, id)
				if run.Terminal() {
					require.Equal(b, "applied", run.State, "run %s", id)
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		total = time.Since(start)
		rate = float64(len(ids)) / total.Minutes()
	}
	b.ReportMetric(rate, "runs/min")
	fmt.Printf("throughput: %d runs (plan + apply each) on 4 agents × capacity 2 in %s: %.1f runs/min\n",
		workspaces*perWorkspace, total.Round(time.Millisecond), rate)
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}
