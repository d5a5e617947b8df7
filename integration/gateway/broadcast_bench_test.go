package gateway

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/queueerror"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/gatewayserver/routing"
	"github.com/botehq/platform/runtime/registry"
)

// BenchmarkBroadcast measures a broadcast from publish until every
// subscriber's handler has it (cloud Broadcast → bote-connectors → router →
// one hidden enqueue per subscriber queue → a deliver frame to each
// connector's session → each connector handles, deletes), against its baseline in the same run: the project's own raw
// fan-out on Azurite, one put, get and delete per queue to as many queues,
// with routing.DefaultFanOut requests in flight for the puts and as many for
// the gets and deletes. Rounds alternate between the two so both see the
// same machine load; a round during which Azurite stalled (see stallProbe)
// is reported and left out. Subscriber counts: BOTE_BENCH_SUBSCRIBERS
// (comma-separated, default "100,1000"); BOTE_BENCH_ROUTE_FAN_OUT sets the
// gateway's --route-fan-out and the baseline's requests in flight alike;
// BOTE_BENCH_STALL the stall threshold (1s); BOTE_BENCH_ROUNDS the clean
// rounds wanted of each side (3), after one warm-up round not counted.
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range envCounts(b, "BOTE_BENCH_SUBSCRIBERS", 100, 1000) {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) { benchBroadcast(b, n) })
	}
}

func benchBroadcast(b *testing.B, n int) {
	const tenant, topic = "fleet", "news"
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("s%05d", i)
	}
	var args []string
	fanOut := routing.DefaultFanOut
	if v := os.Getenv("BOTE_BENCH_ROUTE_FAN_OUT"); v != "" { // 16 was the fixed bound before it was a flag
		var err error
		fanOut, err = strconv.Atoi(v)
		require.NoError(b, err, "BOTE_BENCH_ROUTE_FAN_OUT")
		args = append(args, "--route-fan-out", v)
	}
	g := newFleetGateway(b, map[string][]string{tenant: ids}, args...)
	probe := startStallProbe(b, g.emu.ConnectionString)

	var current atomic.Value // message id of the round
	var got atomic.Int64
	all := make(chan struct{}, 1)
	handler := connector.HandlerFunc(func(_ context.Context, m *connector.Message) error {
		if m.ID == current.Load() && got.Add(1) == int64(n) {
			all <- struct{}{}
		}
		return nil
	})
	setup := time.Now()
	startFleet(b, g, tenant, ids, topic, handler)
	b.Logf("%d subscribers connected and subscribed in %s", n, time.Since(setup).Round(time.Second))
	svc := g.cloud("bench", nil)
	raw := newRawFanOut(b, g.emu.ConnectionString, n, fanOut)

	// A round: the baseline, then the same through the gateway; each side's
	// duration, and the longest stall of Azurite during it (0: none).
	type side struct{ took, stall time.Duration }
	settle := time.Second + time.Duration(n)*time.Millisecond // the connectors' deletes trail their handlers
	round := func(r int) (base, viaGateway side) {
		start := time.Now()
		raw.run(b)
		base = side{time.Since(start), probe.worst(start, time.Now())}
		got.Store(0)
		id := fmt.Sprintf("b%d-%d", r, time.Now().UnixNano())
		current.Store(id)
		start = time.Now()
		_, err := svc.Broadcast(ctxFor(b, time.Minute), tenant, topic, botecloud.OutMessage{ID: id, Body: []byte("news")})
		require.NoError(b, err)
		select {
		case <-all:
		case <-time.After(10 * time.Minute): // Azurite's freezes have lasted minutes
			b.Fatalf("broadcast %s reached %d of %d subscribers in 10 minutes", id, got.Load(), n)
		}
		viaGateway = side{time.Since(start), probe.worst(start, time.Now())}
		time.Sleep(settle)
		return base, viaGateway
	}
	// Not counted: the first round of each side pays for connections,
	// caches and the router's first subscription query.
	wr, wg := round(-1)
	b.Logf("warm-up round, not counted: raw %s, routed %s", wr.took.Round(time.Millisecond), wg.took.Round(time.Millisecond))

	var routed, baseline []time.Duration
	var stalled []string
	keep := func(what string, r int, s side, into *[]time.Duration) {
		if s.stall > 0 {
			stalled = append(stalled, fmt.Sprintf("%s round %d (%s; Azurite stalled %s)", what, r, s.took.Round(time.Millisecond), s.stall.Round(time.Millisecond)))
			return
		}
		*into = append(*into, s.took)
	}
	// Rounds until both sides have BOTE_BENCH_ROUNDS (3) that Azurite did
	// not stall, at most three times as many.
	want := envCounts(b, "BOTE_BENCH_ROUNDS", 3)[0]
	for b.Loop() {
		for r := 0; r < 3*want+1 && (len(routed) < want || len(baseline) < want); r++ {
			rawSide, routedSide := round(r)
			keep("raw", r, rawSide, &baseline)
			keep("routed", r, routedSide, &routed)
		}
	}
	if len(routed) == 0 || len(baseline) == 0 {
		b.Logf("every round of one side stalled; no figure (routed %s; raw %s; %d rounds left out)", roundAll(routed), roundAll(baseline), len(stalled))
		for _, s := range stalled {
			b.Logf("left out: %s", s)
		}
		return
	}
	r, base := median(routed), median(baseline)
	// First: without -v, go test keeps only the first lines of a benchmark's log.
	b.Logf("broadcast to %d subscribers: routed p50 %s (%s), raw put+get+delete fan-out p50 %s (%s), ratio %.2f; %d rounds left out",
		n, r.Round(time.Millisecond), roundAll(routed), base.Round(time.Millisecond), roundAll(baseline), float64(r)/float64(base), len(stalled))
	for _, s := range stalled {
		b.Logf("left out: %s", s)
	}
	b.ReportMetric(float64(r.Milliseconds()), "routed-ms")
	b.ReportMetric(float64(base.Milliseconds()), "raw-ms")
	b.ReportMetric(float64(r)/float64(base), "ratio")
}

// startFleet starts one connector per id, each with its own HTTP transport
// as if in its own process, subscribes each to topic (none if ""), waits
// for all and returns them.
func startFleet(b *testing.B, g *gateway, tenant string, ids []string, topic string, h connector.Handler) []*connector.Client {
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	b.Cleanup(func() { cancel(); running.Wait() })
	sem := make(chan struct{}, 32)
	errs := make(chan error, len(ids))
	var wg sync.WaitGroup
	var clients []*connector.Client
	for _, id := range ids {
		c, err := connector.New(connector.Config{
			GatewayURL: g.replicas[0].URL, TokenURL: g.tokenURL(), Tenant: tenant, Connector: id, Key: g.keys[registry.ClientID(tenant, id)],
			SafetyPoll: time.Hour, Handler: h,
			// No timeout shorter than Azurite's freezes: a read it answers
			// after the client gave up hides the message for the visibility
			// timeout, and the safety poll is an hour.
			HTTPClient: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 10 * time.Minute},
			Logger:     slog.New(slog.DiscardHandler),
		})
		require.NoError(b, err)
		clients = append(clients, c)
		running.Add(1)
		go func() { defer running.Done(); _ = c.Run(ctx) }()
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
			defer wcancel()
			if err := c.WaitConnected(wctx); err != nil {
				errs <- fmt.Errorf("%s cannot connect: %w", id, err)
				return
			}
			if topic == "" {
				return
			}
			if err := c.Subscribe(wctx, topic); err != nil {
				errs <- fmt.Errorf("%s cannot subscribe: %w", id, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
	return clients
}

// rawFanOut is the baseline: one message put on, read from and deleted
// from each of n queues, as many puts in flight as the router's fan-out
// bound and as many reads and deletes, straight on the Azure SDK.
type rawFanOut struct {
	queues []*azqueue.QueueClient
	fanOut int
}

func newRawFanOut(b *testing.B, connectionString string, n, fanOut int) *rawFanOut {
	// A connection kept for each request in flight, as the gateway's storage
	// client does; the SDK's default keeps 10.
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 2 * fanOut
	svc, err := azqueue.NewServiceClientFromConnectionString(connectionString, &azqueue.ClientOptions{ClientOptions: policy.ClientOptions{Transport: &http.Client{Transport: t}}})
	require.NoError(b, err)
	r := &rawFanOut{fanOut: fanOut}
	for i := range n {
		q := svc.NewQueueClient(fmt.Sprintf("rawbench-%05d", i))
		_, err := q.Create(context.Background(), nil)
		require.NoError(b, err)
		r.queues = append(r.queues, q)
	}
	return r
}

// again runs f up to five times while it fails, as a client that must get
// its request through would: Azurite under a thousand-wide burst resets
// connections at times, beyond the SDK's own retries.
func again(ctx context.Context, f func() error) error {
	err := f()
	for try := 1; err != nil && try < 5 && ctx.Err() == nil; try++ {
		time.Sleep(time.Duration(try) * 200 * time.Millisecond)
		err = f()
	}
	return err
}

func (r *rawFanOut) run(b *testing.B) {
	ctx := ctxFor(b, 10*time.Minute)
	put := make(chan *azqueue.QueueClient, len(r.queues))
	ready := make(chan *azqueue.QueueClient, len(r.queues))
	for _, q := range r.queues {
		put <- q
	}
	close(put)
	var mu sync.Mutex
	var failed error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		failed = cmp.Or(failed, err)
	}
	var puts, reads sync.WaitGroup
	for range r.fanOut {
		puts.Add(1)
		go func() {
			defer puts.Done()
			for q := range put {
				if err := again(ctx, func() error { _, err := q.EnqueueMessage(ctx, "news", nil); return err }); err != nil {
					fail(err)
				}
				ready <- q
			}
		}()
		reads.Add(1)
		go func() {
			defer reads.Done()
			for q := range ready {
				// A read the client retried after a timeout (Azurite stalled)
				// may have hidden the message for its visibility timeout:
				// read until it is back, as a connector would.
				resp, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr(int32(1))})
				for err == nil && len(resp.Messages) == 0 && ctx.Err() == nil {
					time.Sleep(100 * time.Millisecond)
					resp, err = q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr(int32(1))})
				}
				if err != nil || len(resp.Messages) == 0 {
					fail(fmt.Errorf("cannot read back: %w", cmp.Or(err, ctx.Err())))
					continue
				}
				m := resp.Messages[0]
				if err := again(ctx, func() error {
					_, err := q.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil)
					if queueerror.HasCode(err, queueerror.MessageNotFound) {
						return nil // an earlier try that looked lost went through
					}
					return err
				}); err != nil {
					fail(err)
				}
			}
		}()
	}
	puts.Wait()
	close(ready)
	reads.Wait()
	if failed != nil {
		b.Fatalf("raw fan-out: %v", failed)
	}
}

// stallProbe asks Azurite for a queue's properties every 50 ms and keeps
// the probes that took longer than stallThreshold. Azurite freezes for
// seconds at times (its periodic clean-up of queue data once thousands of
// messages have passed); a round overlapping such a freeze measures
// Azurite, not the code, and is reported instead of averaged in.
type stallProbe struct {
	mu       sync.Mutex
	stalls   [][2]time.Time // start, end of each slow probe
	inFlight time.Time      // start of the probe under way
}

// stallThreshold is far beyond a probe's wait behind the benchmark's own
// requests (tens of milliseconds on a quiet machine) and well below
// Azurite's freezes (tens of seconds). On a loaded machine a probe can
// wait seconds behind a thousand-wide burst (Azurite serves one request
// at a time): BOTE_BENCH_STALL raises it.
var stallThreshold = time.Second

func startStallProbe(b *testing.B, connectionString string) *stallProbe {
	if d := envDuration(b, "BOTE_BENCH_STALL"); d > 0 {
		stallThreshold = d
	}
	svc, err := azqueue.NewServiceClientFromConnectionString(connectionString, nil)
	require.NoError(b, err)
	q := svc.NewQueueClient("stallprobe")
	_, err = q.Create(context.Background(), nil)
	require.NoError(b, err)
	p := &stallProbe{inFlight: time.Now().Add(time.Hour)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			start := time.Now()
			p.mu.Lock()
			p.inFlight = start
			p.mu.Unlock()
			_, _ = q.GetProperties(ctx, nil)
			end := time.Now()
			p.mu.Lock()
			if end.Sub(start) > stallThreshold && ctx.Err() == nil {
				p.stalls = append(p.stalls, [2]time.Time{start, end})
			}
			p.inFlight = time.Now().Add(time.Hour) // none
			p.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return p
}

// worst returns the longest stall overlapping [from, to], 0 if none,
// counting a probe that is still waiting.
func (p *stallProbe) worst(from, to time.Time) time.Duration {
	time.Sleep(100 * time.Millisecond) // the probe in flight at `to` has started
	p.mu.Lock()
	defer p.mu.Unlock()
	var worst time.Duration
	if w := time.Since(p.inFlight); w > stallThreshold && p.inFlight.Before(to) {
		worst = w
	}
	for _, s := range p.stalls {
		if s[1].After(from) && s[0].Before(to) {
			worst = max(worst, s[1].Sub(s[0]))
		}
	}
	return worst
}

// envCounts reads a comma-separated list of positive counts from the
// environment variable name, or returns def.
func envCounts(b *testing.B, name string, def ...int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		require.NoError(b, err, name)
		require.Positive(b, n, name)
		out = append(out, n)
	}
	return out
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func roundAll(d []time.Duration) string {
	var out []string
	for _, x := range d {
		out = append(out, x.Round(time.Millisecond).String())
	}
	return strings.Join(out, ", ")
}
