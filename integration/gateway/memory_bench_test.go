package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/sessionproto"
)

// BenchmarkSessionMemory measures the gateway's memory per idle session:
// one gateway binary on Azurite, idle connector sessions opened in steps
// (BOTE_BENCH_SESSIONS, comma-separated totals, default "100,1000,5000"),
// and at each step, after a forced garbage collection (the gateway's opt-in
// pprof endpoint, /debug/pprof/heap?gc=1), the gateway's resident set
// (VmRSS), Go heap in use and goroutines, against the same gateway with 0
// sessions measured first in the same run. The sessions are plain
// WebSocket clients in this process with tokens from the idp, each reading
// its session as a connector does, so the gateway sees real sessions
// (authenticated, presence recorded, pinged) and the test process stays
// light. With BOTE_BENCH_PROFILE_DIR set, the gateway's heap and goroutine
// profiles at the last step are saved there. With BOTE_BENCH_SETTLE (a
// duration) RSS is read again that long after each measurement, to see
// whether the runtime has meanwhile returned freed pages to the system.
// For each step it also reports the gateway's CPU time and GC cycles while
// the step's sessions were opened (handshakes, token checks, presence
// writes: the allocation-heavy part), to weigh GC settings.
func BenchmarkSessionMemory(b *testing.B) {
	steps := envCounts(b, "BOTE_BENCH_SESSIONS", 100, 1000, 5000)
	const tenant = "idle"
	ids := make([]string, steps[len(steps)-1])
	for i := range ids {
		ids[i] = fmt.Sprintf("m%05d", i)
	}
	pprof := freeLoopbackAddr(b)
	g := newFleetGateway(b, map[string][]string{tenant: ids}, "--pprof-listen", pprof)
	w := g.replicas[0]
	type sample struct {
		sessions                     int
		rss, heap, stack, goroutines float64
		settled                      float64 // RSS after settle more
		cpu, gcs                     float64 // the gateway's CPU seconds and GC cycles so far
	}
	settle := envDuration(b, "BOTE_BENCH_SETTLE")
	measure := func(n int) sample {
		time.Sleep(2 * time.Second) // handshakes and presence writes done
		resp, err := http.Get("http://" + pprof + "/debug/pprof/heap?gc=1")
		require.NoError(b, err)
		_ = resp.Body.Close()
		time.Sleep(time.Second)
		s := sample{sessions: n, rss: vmRSS(b, w.Proc.Pid()), heap: w.metric(b, "go_memstats_heap_inuse_bytes"), stack: w.metric(b, "go_memstats_stack_inuse_bytes"), goroutines: w.metric(b, "go_goroutines"),
			cpu: cpuSeconds(b, w.Proc.Pid()), gcs: w.metric(b, "go_gc_duration_seconds_count")}
		// The runtime returns freed pages to the system in the
		// background, a little at a time: RSS again once the sessions
		// have been idle a while longer.
		time.Sleep(settle)
		s.settled = vmRSS(b, w.Proc.Pid())
		return s
	}
	var samples []sample
	for b.Loop() {
		samples = append(samples, measure(0))
		open := 0
		for _, n := range steps {
			openIdleSessions(b, g, tenant, ids[open:n])
			open = n
			require.Eventually(b, func() bool { return w.metric(b, "bote_gateway_sessions") == float64(n) }, 5*time.Minute, 100*time.Millisecond,
				"the gateway holds %d sessions", n)
			// Quiet: the opening work (presence writes, handshakes) is
			// over once the goroutine count holds still.
			last := -1.0
			require.Eventually(b, func() bool {
				g := w.metric(b, "go_goroutines")
				still := g >= last-2 && g <= last+2
				last = g
				return still
			}, 5*time.Minute, time.Second, "the gateway's goroutines settle after %d sessions opened", n)
			samples = append(samples, measure(n))
		}
		if dir := os.Getenv("BOTE_BENCH_PROFILE_DIR"); dir != "" { // go tool pprof <file>
			for _, p := range []string{"heap", "goroutine"} {
				data := get(b, "http://"+pprof+"/debug/pprof/"+p)
				require.NoError(b, os.WriteFile(filepath.Join(dir, "gateway-"+p+".pb.gz"), []byte(data), 0o644))
			}
		}
	}
	base := samples[0]
	b.Logf("gateway with 0 sessions: RSS %.1f MiB (%.1f MiB %s later), heap in use %.1f MiB, %.0f goroutines", base.rss/(1<<20), base.settled/(1<<20), settle, base.heap/(1<<20), base.goroutines)
	for i, s := range samples[1:] {
		per := func(v, b float64) float64 { return (v - b) / float64(s.sessions) }
		prev := samples[i] // the step before: what opening this step's sessions cost
		b.Logf("%5d sessions: RSS %.1f MiB (+%.1f KiB per session; %s later +%.1f KiB), heap in use %.1f MiB (+%.1f KiB per session), stacks +%.1f KiB per session, %.2f goroutines per session; opening them took %.2f ms CPU per session and %.0f GC cycles",
			s.sessions, s.rss/(1<<20), per(s.rss, base.rss)/1024, settle, per(s.settled, base.settled)/1024, s.heap/(1<<20), per(s.heap, base.heap)/1024, per(s.stack, base.stack)/1024, per(s.goroutines, base.goroutines),
			(s.cpu-prev.cpu)*1000/float64(s.sessions-prev.sessions), s.gcs-prev.gcs-1) // less the forced one
	}
	last := samples[len(samples)-1]
	b.ReportMetric((last.rss-base.rss)/float64(last.sessions)/1024, "RSS-KiB/session")
	b.ReportMetric((last.settled-base.settled)/float64(last.sessions)/1024, "settled-RSS-KiB/session")
	b.ReportMetric((last.heap-base.heap)/float64(last.sessions)/1024, "heap-KiB/session")
}

// openIdleSessions opens a session for each id and keeps reading it (so
// pings are answered) until the benchmark ends.
func openIdleSessions(b *testing.B, g *gateway, tenant string, ids []string) {
	ctx, cancel := context.WithCancel(context.Background())
	var readers sync.WaitGroup
	b.Cleanup(func() { cancel(); readers.Wait() })
	url := "ws" + strings.TrimPrefix(g.replicas[0].URL, "http") + sessionproto.ConnectPath
	sem := make(chan struct{}, 32)
	errs := make(chan error, len(ids))
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ts, err := clientauth.NewTokenSource(clientauth.TokenSourceConfig{TokenURL: g.tokenURL(), ClientID: registry.ClientID(tenant, id), Key: g.keys[registry.ClientID(tenant, id)]})
			if err != nil {
				errs <- err
				return
			}
			tok, err := ts.Token(ctx)
			if err != nil {
				errs <- fmt.Errorf("%s: cannot get a token: %w", id, err)
				return
			}
			ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
				HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}, Subprotocols: []string{sessionproto.Subprotocol},
			})
			if resp != nil && resp.Body != nil {
				_ = resp.Body.Close()
			}
			if err != nil {
				errs <- fmt.Errorf("%s: cannot connect: %w", id, err)
				return
			}
			readers.Add(1)
			go func() {
				defer readers.Done()
				defer ws.CloseNow()
				for {
					if _, _, err := ws.Read(ctx); err != nil {
						return
					}
				}
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
}

func vmRSS(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(b, err)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			require.NoError(b, err)
			return kb * 1024
		}
	}
	b.Fatalf("no VmRSS for process %d", pid)
	return 0
}

// cpuSeconds is the user and system CPU time process pid has used.
func cpuSeconds(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(b, err)
	// The fields after the command (in parentheses, which may hold spaces):
	// utime and stime are the 12th and 13th, in clock ticks (100 per second
	// on Linux).
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	utime, err := strconv.ParseFloat(fields[11], 64)
	require.NoError(b, err)
	stime, err := strconv.ParseFloat(fields[12], 64)
	require.NoError(b, err)
	return (utime + stime) / 100
}

func freeLoopbackAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	addr := ln.Addr().String()
	require.NoError(b, ln.Close())
	return addr
}
