package relay_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/relay/relaytest"
)

// Targets from issue 4.
const (
	targetAddedP50   = time.Millisecond
	targetThroughput = 0.5 // of direct
)

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func benchRelay(b *testing.B) (*relaytest.Server, relay.ListenerConfig, *relay.Sender) {
	s := relaytest.NewServer(relaytest.Options{})
	b.Cleanup(s.Close)
	ln, lk := s.NewRule(relaytest.Listen)
	sn, sk := s.NewRule(relaytest.Send)
	lc := relay.ListenerConfig{Namespace: s.Namespace(), HybridConnection: "hc", Credential: relay.NewSASCredential(ln, lk), Insecure: true}
	snd, err := relay.NewSender(relay.SenderConfig{Namespace: s.Namespace(), HybridConnection: "hc", Credential: relay.NewSASCredential(sn, sk), Insecure: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(snd.CloseIdleConnections)
	return s, lc, snd
}

func timeGet(b *testing.B, c *http.Client, url string) time.Duration {
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(start)
}

// BenchmarkLatency measures small-request latency through the test relay, in
// HTTP mode and over a relayed stream, against direct loopback HTTP, the
// three interleaved in one run so they share the machine's noise.
func BenchmarkLatency(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"status":"ok"}`) })
	_, lc, snd := benchRelay(b)
	l, err := relay.Listen(context.Background(), lc)
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go func() { _ = srv.Serve(l) }()
	b.Cleanup(func() { _ = srv.Close() })
	direct := httptest.NewServer(handler)
	b.Cleanup(direct.Close)

	httpMode := &http.Client{Transport: snd}
	stream := &http.Client{Transport: snd.StreamTransport()}
	plain := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for range 50 { // warm pools and tokens
		timeGet(b, httpMode, "http://ops/status")
		timeGet(b, stream, "http://ops/status")
		timeGet(b, plain, direct.URL+"/status")
	}
	var dh, ds, dd []time.Duration
	b.ResetTimer()
	for range b.N {
		dh = append(dh, timeGet(b, httpMode, "http://ops/status"))
		ds = append(ds, timeGet(b, stream, "http://ops/status"))
		dd = append(dd, timeGet(b, plain, direct.URL+"/status"))
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	p50h, p50s, p50d := percentile(dh, .5), percentile(ds, .5), percentile(dd, .5)
	b.ReportMetric(us(p50d), "direct-p50-µs")
	b.ReportMetric(us(percentile(dd, .99)), "direct-p99-µs")
	b.ReportMetric(us(p50h), "relay-http-p50-µs")
	b.ReportMetric(us(percentile(dh, .99)), "relay-http-p99-µs")
	b.ReportMetric(us(p50s), "relay-stream-p50-µs")
	b.ReportMetric(us(percentile(ds, .99)), "relay-stream-p99-µs")
	b.ReportMetric(0, "ns/op")
	verdict := func(added time.Duration) string {
		if added <= targetAddedP50 {
			return "meets"
		}
		return "MISSES"
	}
	b.Logf("n=%d: added p50 HTTP mode %v (%s the ≤ %v target), stream %v (%s)", b.N,
		p50h-p50d, verdict(p50h-p50d), targetAddedP50, p50s-p50d, verdict(p50s-p50d))
}

// BenchmarkThroughput moves bulk data over a relayed WebSocket and over a
// direct loopback WebSocket (same library, same 64 KiB writes). The two
// alternate in rounds so both see the same background load.
func BenchmarkThroughput(b *testing.B) {
	const chunk = 64 << 10
	const perOp = 1 << 20
	const rounds = 4
	_, lc, snd := benchRelay(b)
	l, err := relay.Listen(context.Background(), lc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	// sink reads rounds of [8-byte length][payload] and acknowledges each.
	sink := func(c net.Conn) {
		defer c.Close()
		var hdr [8]byte
		for {
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint64(hdr[:]))); err != nil {
				return
			}
			if _, err := c.Write([]byte{1}); err != nil {
				return
			}
		}
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			sink(c)
		}
	}()
	direct := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		sink(websocket.NetConn(context.Background(), ws, websocket.MessageBinary))
	}))
	b.Cleanup(direct.Close)

	total := int64(max(b.N, rounds)) * perOp
	per := total / rounds
	buf := make([]byte, chunk)
	send := func(c net.Conn) time.Duration {
		start := time.Now()
		var hdr [8]byte
		binary.BigEndian.PutUint64(hdr[:], uint64(per))
		if _, err := c.Write(hdr[:]); err != nil {
			b.Fatal(err)
		}
		for sent := int64(0); sent < per; sent += chunk {
			if _, err := c.Write(buf[:min(chunk, per-sent)]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := io.ReadFull(c, buf[:1]); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	rc, err := snd.Dial(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	dws, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(direct.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	dc := websocket.NetConn(context.Background(), dws, websocket.MessageBinary)
	defer dc.Close()

	var relayed, straight time.Duration
	b.ResetTimer()
	for range rounds {
		relayed += send(rc)
		straight += send(dc)
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(total) / d.Seconds() / 1e6 }
	ratio := mbps(relayed) / mbps(straight)
	b.ReportMetric(mbps(relayed), "relay-MB/s")
	b.ReportMetric(mbps(straight), "direct-MB/s")
	b.ReportMetric(ratio*100, "relay-%-of-direct")
	b.ReportMetric(0, "ns/op")
	verdict := "meets"
	if ratio < targetThroughput {
		verdict = "MISSES"
	}
	b.Logf("%d MiB each way in %d alternating rounds: relayed %.0f MB/s, direct %.0f MB/s, %.0f%% (%s the ≥ %.0f%% target)",
		total>>20, rounds, mbps(relayed), mbps(straight), ratio*100, verdict, targetThroughput*100)
}
