package gateway

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
)

// BenchmarkDeliveryLatency measures cloud→connector delivery (cloud send
// → bote-connectors → router → connector queue → delivery frame or nudge
// → connector → handler) on loopback, one message at a time, 40 per
// iteration after 5 of warm-up, and reports p50/p99. It also counts every
// storage request Azurite logged while the 40 were routed, by kind, and
// prints the operations per routed message (every request on the
// connector's queue, plus the bus queue's put and delete of each message
// and the one receive that returned it; the router's empty polls of
// bote-connectors are its idle cost, not a per-message one) against the
// raw baseline measured in the same run: 40 put+get+delete round trips on
// a queue of their own, straight on the Azure SDK. The connector's safety
// poll is an hour: every delivery rides the session. The gateway runs with
// its default flags: the cloud service wakes the router after each send
// (its route poll is 5 s). Figures depend on the machine; the assertions
// only guard against the session path breaking. A measurement, so a
// benchmark (make bench): `go test ./gateway/ -run '^$' -bench
// DeliveryLatency -benchtime 1x`.
func BenchmarkDeliveryLatency(b *testing.B) {
	g := newFleetGateway(b, nil)
	svc := g.cloud("latency", nil)
	a1 := g.connector("tenant-a", "a1")
	q, _ := queuename.For(ids.ConnectorID{Tenant: "tenant-a", Connector: "a1"})
	raw := newRawFanOut(b, g.emu.ConnectionString, 1, 1).queues[0]
	const n = 40
	for range b.N {
		for range 5 { // warm-up: queue created, SAS granted
			_, err := svc.SendToConnector(ctxFor(b, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte("t")})
			require.NoError(b, err)
			a1.next(b, 10*time.Second)
		}
		time.Sleep(200 * time.Millisecond) // the warm-up's requests are in the log
		from := len(g.emu.Logs())
		var took []time.Duration
		for range n {
			start := time.Now()
			id, err := svc.SendToConnector(ctxFor(b, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte("t")})
			require.NoError(b, err)
			m := a1.next(b, 10*time.Second)
			require.Equal(b, id, m.ID)
			took = append(took, time.Since(start))
		}
		time.Sleep(500 * time.Millisecond) // the last delete is in the log
		routed := classifyRequests(g.emu.Logs()[from:], q)
		from = len(g.emu.Logs())
		var rawTook []time.Duration
		for range n {
			start := time.Now()
			rawRoundTrip(b, raw)
			rawTook = append(rawTook, time.Since(start))
		}
		time.Sleep(500 * time.Millisecond)
		rawCount := classifyRequests(g.emu.Logs()[from:], "rawbench-00000")

		perMsg := float64(routed.perMessage()+n) / n // + the bus receive of each
		rawPerMsg := float64(rawCount.perMessage()) / n
		b.Logf("storage requests while routing %d messages: %s", n, routed)
		b.Logf("raw baseline, %d put+get+delete: %s", n, rawCount)
		b.Logf("storage operations per routed message: %.2f (raw put+get+delete, same run: %.2f; ratio %.2f)", perMsg, rawPerMsg, perMsg/rawPerMsg)
		b.ReportMetric(perMsg, "storage-ops/msg")
		b.ReportMetric(rawPerMsg, "raw-ops/msg")
		slices.Sort(took)
		slices.Sort(rawTook)
		p50, p99 := took[n/2], took[n*99/100]
		b.Logf("cloud→connector latency over %d messages: p50 %s, p99 %s, min %s, max %s", n, p50.Round(time.Millisecond), p99.Round(time.Millisecond), took[0].Round(time.Millisecond), took[n-1].Round(time.Millisecond))
		b.Logf("raw put+get+delete round trip: p50 %s, p99 %s", rawTook[n/2].Round(100*time.Microsecond), rawTook[n*99/100].Round(100*time.Microsecond))
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		assert.Less(b, p50, 2*time.Second)
		assert.Equal(b, n, routed["connector delete"], "one delete per message")
	}
}

// rawRoundTrip puts, gets and deletes one message on q.
func rawRoundTrip(b *testing.B, q *azqueue.QueueClient) {
	ctx := ctxFor(b, 10*time.Second)
	_, err := q.EnqueueMessage(ctx, "t", nil)
	require.NoError(b, err)
	resp, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr(int32(1))})
	require.NoError(b, err)
	require.Len(b, resp.Messages, 1)
	_, err = q.DeleteMessage(ctx, *resp.Messages[0].MessageID, *resp.Messages[0].PopReceipt, nil)
	require.NoError(b, err)
}

// requestCounts counts Azurite requests by kind: "bus put", "bus
// receive", "bus delete" (on bote-connectors), "connector put", "connector
// get", "connector delete", "connector update" (on the connector's queue)
// and "other METHOD /path" for anything else.
type requestCounts map[string]int

// classifyRequests classifies the request lines of an Azurite debug log;
// queue is the connector's queue.
func classifyRequests(log, queue string) requestCounts {
	c := requestCounts{}
	for _, line := range strings.Split(log, "\n") {
		i := strings.Index(line, " HTTP/1.1\"")
		if i < 0 {
			continue
		}
		j := strings.LastIndex(line[:i], "\"")
		if j < 0 {
			continue
		}
		method, target, _ := strings.Cut(line[j+1:i], " ")
		path, _, _ := strings.Cut(target, "?")
		segs := strings.Split(strings.Trim(path, "/"), "/") // account, queue, "messages", id
		var who string
		switch {
		case len(segs) >= 3 && segs[1] == queue && segs[2] == "messages":
			who = "connector"
		case len(segs) >= 3 && segs[1] == bus.QueueConnectors && segs[2] == "messages":
			who = "bus"
		default:
			c["other "+method+" "+strings.Join(segs[min(1, len(segs)):], "/")]++
			continue
		}
		switch {
		case method == "POST":
			c[who+" put"]++
		case method == "GET":
			c[who+" get"]++
		case method == "DELETE":
			c[who+" delete"]++
		case method == "PUT":
			c[who+" update"]++
		default:
			c[who+" "+method]++
		}
	}
	return c
}

// perMessage is the count routing makes per message: everything on the
// connector's queue and the bus puts and deletes (bus gets include the
// router's empty polls).
func (c requestCounts) perMessage() int {
	n := 0
	for k, v := range c {
		if strings.HasPrefix(k, "connector ") || k == "bus put" || k == "bus delete" {
			n += v
		}
	}
	return n
}

func (c requestCounts) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
	}
	return strings.Join(parts, ", ")
}
