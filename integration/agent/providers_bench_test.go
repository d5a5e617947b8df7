package agent_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/tfprovider"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfproviders"
)

// BenchmarkPlanWithAProvider: a run's pickup to plan finished (the
// server sends run.assign → it receives the plan's run.result) through
// the real gateway, for a configuration with its lock file using the
// test provider from a loopback network mirror, on an agent without the
// plugin cache (every init downloads the provider, as every run did
// before the cache), on one with it, and on one with it that leaves the
// providers out of the saved plan. BOTE_BENCH_PROVIDER_MB pads the
// provider (tfprovider.Pad).
//
//	cd integration && go test ./agent/ -run '^$' -bench PlanWithAProvider -benchtime 1x
func BenchmarkPlanWithAProvider(b *testing.B) {
	bin := tfprovider.Binary(b)
	if mb, _ := strconv.Atoi(os.Getenv("BOTE_BENCH_PROVIDER_MB")); mb > 0 {
		bin = tfprovider.Pad(bin, mb<<20)
	}
	s := newServer(b)
	mirror := tfprovider.ServeNetworkMirror(b, bin, "1.0.0")
	ws := tfproviders.Sources{NetworkMirror: mirror.URL}
	env := []string{"SSL_CERT_FILE=" + mirror.CAFile}
	const plans = 5
	fmt.Printf("provider: %.1f MB executable; %d plans per agent, one at a time\n", float64(len(bin))/1e6, plans)
	for b.Loop() {
		var config string
		for i, c := range []struct {
			name string
			args []string
		}{
			{"before: no plugin cache", []string{"--plugin-cache-dir", "off"}},
			{"after: plugin cache (cold for the first plan)", nil},
			{"after: plugin cache, --plan-without-providers", []string{"--plan-without-providers"}},
		} {
			agent := s.startAgentEnv(filepath.Join(s.dir, fmt.Sprintf("bench-%d", i)), env, append(c.args, "--provider-direct=false")...)
			if config == "" {
				res, _, _ := s.plan(b, "provider", ws)
				require.Equal(b, runproto.Succeeded, res.Outcome, res.Reason)
				config = withLockFile(b, res.Result.LockFile.Content)
			}
			var total []time.Duration
			var workdir int64
			served := mirror.Served.Load()
			for range plans {
				run := runs.NewRunID(time.Now())
				asg, _ := s.planAssign(run, "1", config, runproto.Secrets{})
				asg.Providers = ws
				sent := time.Now()
				s.send(asg)
				res, r := waitFor(b, s, 120*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == run })
				require.Equal(b, runproto.Succeeded, res.Outcome, res.Reason)
				total, workdir = append(total, r.at.Sub(sent)), res.WorkdirSize
			}
			tf, up := phaseTimes(b, agent.Output())
			fmt.Printf("  %-48s pickup → plan finished: median %6s (first %6s)  agent: terraform %6s, pack+upload %6s  from mirror %5.1f MB/plan  saved workdir %5.1f MB\n",
				c.name, median(total).Round(time.Millisecond), total[0].Round(time.Millisecond), median(tf).Round(time.Millisecond), median(up).Round(time.Millisecond),
				float64(mirror.Served.Load()-served)/plans/1e6, float64(workdir)/1e6)
			require.NoError(b, agent.Stop())
		}
	}
}

// phaseTimes reads the terraform and upload times of the plans the
// agent logged ("run phase ended"; the last five).
func phaseTimes(b testing.TB, log string) (tf, upload []time.Duration) {
	for _, line := range strings.Split(log, "\n") {
		var e struct {
			Msg       string `json:"msg"`
			Terraform int64  `json:"terraform"`
			Upload    int64  `json:"upload"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "run phase ended" {
			tf, upload = append(tf, time.Duration(e.Terraform)), append(upload, time.Duration(e.Upload))
		}
	}
	require.NotEmpty(b, tf, "the agent logged no phase")
	return tf[max(0, len(tf)-5):], upload[max(0, len(upload)-5):]
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
