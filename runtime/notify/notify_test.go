package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/notify"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfresult"
)

// receiver is a webhook on loopback that verifies every request and
// answers the first fail ones with 500.
type receiver struct {
	t      *testing.T
	secret string
	fail   int

	mu       sync.Mutex
	calls    int
	received map[string]int // delivery id → times received, verified
	events   []notify.Event
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	err := notify.Verify(rc.secret, r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature), body, time.Now())
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.calls++
	if err != nil {
		rc.t.Errorf("webhook not verified: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if rc.calls <= rc.fail {
		http.Error(w, "try later", http.StatusInternalServerError)
		return
	}
	var ev notify.Event
	require.NoError(rc.t, json.Unmarshal(body, &ev))
	rc.received[r.Header.Get(notify.HeaderID)]++
	rc.events = append(rc.events, ev)
	w.WriteHeader(http.StatusNoContent)
}

func newReceiver(t *testing.T, secret string, fail int) (*receiver, string) {
	rc := &receiver{t: t, secret: secret, fail: fail, received: map[string]int{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv.URL
}

func newNotifier(t *testing.T, store notify.Store, allowPrivate bool) *notify.Notifier {
	n, err := notify.New(notify.Config{Store: store, AllowPrivate: allowPrivate, Poll: 10 * time.Millisecond,
		RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond, MaxAttempts: 4, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	return n
}

func plannedRun() (runs.Run, runs.Transition) {
	at := time.Now().UTC()
	r := runs.Run{ID: "run-0000000000000001", Tenant: "contoso", Workspace: "prod", Operation: runs.OpApply, State: runs.Planned, CreatedBy: "alice",
		PlanResult: &tfresult.Result{HasChanges: true, Changes: &tfresult.ChangeSummary{Add: 2, Remove: 1}},
		Policy:     &runs.PolicyCheck{Results: []runs.PolicyResult{{Policy: "tags", Version: 2, Enforcement: runs.Advisory, Messages: []string{"untagged"}}}},
		History: []runs.Transition{{To: runs.Queued, At: at}, {From: runs.Queued, To: runs.Planning, At: at},
			{From: runs.Planning, To: runs.Planned, At: at.Add(time.Second), By: "a1", Reason: "plan saved"}}}
	return r, r.History[2]
}

// TestWebhooksAreSignedRetriedAndLogged: real webhooks on a loopback
// server that fails the first two attempts with 500: the third delivers,
// every request carries a valid signature, and the log shows each
// attempt's status.
func TestWebhooksAreSignedRetriedAndLogged(t *testing.T) {
	ctx := context.Background()
	store := notify.NewMemory()
	secret := notify.NewSecret()
	rc, url := newReceiver(t, secret, 2)
	require.NoError(t, store.AddDestination(ctx, notify.Destination{Tenant: "contoso", ID: "ops-chat", URL: url, Secret: secret}))
	require.NoError(t, store.AddDestination(ctx, notify.Destination{Tenant: "contoso", ID: "other-ws", URL: url, Secret: secret, Workspace: "dev"}))
	require.NoError(t, store.AddDestination(ctx, notify.Destination{Tenant: "contoso", ID: "applies-only", URL: url, Secret: secret, Events: []notify.EventType{notify.Applied}}))
	n := newNotifier(t, store, true)
	r, tr := plannedRun()
	n.RunTransition(ctx, r, tr)
	n.RunTransition(ctx, r, tr) // a change reported twice enqueues once

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Run(runCtx) }()
	require.Eventually(t, func() bool {
		ds, err := store.Deliveries(ctx, "contoso", "ops-chat", 10)
		require.NoError(t, err)
		return len(ds) == 2 && ds[0].State == notify.Delivered && ds[1].State == notify.Delivered
	}, 10*time.Second, 10*time.Millisecond)
	stop()
	<-done

	rc.mu.Lock()
	defer rc.mu.Unlock()
	assert.Equal(t, 4, rc.calls, "two 500s, then one delivery of each event")
	assert.Equal(t, map[string]int{"run-0000000000000001-2-run_policy_failed.ops-chat": 1, "run-0000000000000001-2-run_needs_approval.ops-chat": 1}, rc.received)
	types := []notify.EventType{rc.events[0].Type, rc.events[1].Type}
	assert.ElementsMatch(t, []notify.EventType{notify.NeedsApproval, notify.PolicyFailed}, types)
	for _, ev := range rc.events {
		assert.Equal(t, ids.WorkspaceID("prod"), ev.Workspace)
		assert.Equal(t, 2, ev.Run.Add)
		assert.Equal(t, 1, ev.Run.Destroy)
		if ev.Type == notify.PolicyFailed {
			assert.Equal(t, []notify.PolicyInfo{{Policy: "tags", Version: 2, Enforcement: "advisory", Messages: []string{"untagged"}}}, ev.Policy)
		}
	}
	ds, err := store.Deliveries(ctx, "contoso", "", 10)
	require.NoError(t, err)
	require.Len(t, ds, 2, "other-ws and applies-only want none of these")
	var statuses []int
	for _, d := range ds {
		for _, a := range d.Attempts {
			statuses = append(statuses, a.Status)
		}
	}
	assert.ElementsMatch(t, []int{500, 500, 204, 204}, statuses)
}

func TestDeliveryGivesUpAndRefusesPrivateAddresses(t *testing.T) {
	ctx := context.Background()
	store := notify.NewMemory()
	_, url := newReceiver(t, "s", 100)
	require.NoError(t, store.AddDestination(ctx, notify.Destination{Tenant: "contoso", ID: "down", URL: url, Secret: "s"}))
	n := newNotifier(t, store, true)
	ev := notify.Event{ID: "e1", Type: notify.Applied, Tenant: "contoso", Workspace: "prod"}
	require.NoError(t, n.Notify(ctx, ev))
	require.Eventually(t, func() bool {
		_, err := n.DeliverDue(ctx)
		require.NoError(t, err)
		ds, _ := store.Deliveries(ctx, "contoso", "down", 1)
		return ds[0].State == notify.GaveUp
	}, 10*time.Second, 5*time.Millisecond)
	ds, _ := store.Deliveries(ctx, "contoso", "down", 1)
	assert.Len(t, ds[0].Attempts, 4, "MaxAttempts")
	assert.Contains(t, ds[0].Attempts[3].Error, "500 Internal Server Error: try later")

	// Without AllowPrivate, loopback is refused when dialled.
	strict := newNotifier(t, store, false)
	require.NoError(t, strict.Notify(ctx, notify.Event{ID: "e2", Type: notify.Applied, Tenant: "contoso", Workspace: "prod"}))
	_, err := strict.DeliverDue(ctx)
	require.NoError(t, err)
	ds, _ = store.Deliveries(ctx, "contoso", "down", 1)
	assert.Contains(t, ds[0].Attempts[0].Error, "is not public")

	// A deleted destination's deliveries end.
	require.NoError(t, strict.Notify(ctx, notify.Event{ID: "e3", Type: notify.Applied, Tenant: "contoso", Workspace: "prod"}))
	require.NoError(t, store.DeleteDestination(ctx, "contoso", "down"))
	require.Eventually(t, func() bool {
		_, _ = strict.DeliverDue(ctx)
		ds, _ := store.Deliveries(ctx, "contoso", "down", 1)
		return ds[0].State == notify.GaveUp && ds[0].ID == "e3.down"
	}, 5*time.Second, 5*time.Millisecond)
}

// TestDeliveredOnceAcrossNotifiers: notifiers on one store (replicas)
// racing for the same outbox deliver each event once.
func TestDeliveredOnceAcrossNotifiers(t *testing.T) {
	ctx := context.Background()
	store := notify.NewMemory()
	rc, url := newReceiver(t, "s", 0)
	require.NoError(t, store.AddDestination(ctx, notify.Destination{Tenant: "contoso", ID: "hook", URL: url, Secret: "s"}))
	ns := []*notify.Notifier{newNotifier(t, store, true), newNotifier(t, store, true), newNotifier(t, store, true)}
	for i := range 30 {
		require.NoError(t, ns[0].Notify(ctx, notify.Event{ID: "ev" + string(rune('a'+i)), Type: notify.Applied, Tenant: "contoso", Workspace: "prod"}))
	}
	var wg sync.WaitGroup
	for _, n := range ns {
		wg.Go(func() {
			for range 5 {
				_, err := n.DeliverDue(ctx)
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	assert.Len(t, rc.received, 30)
	for id, n := range rc.received {
		assert.Equal(t, 1, n, id)
	}
}

func TestVerify(t *testing.T) {
	now := time.Now()
	body := []byte(`{"id":"e"}`)
	sig := notify.Sign("s", now, body)
	ts := func(t time.Time) string { return json.Number(itoa(t.Unix())).String() }
	require.NoError(t, notify.Verify("s", ts(now), sig, body, now))
	assert.ErrorContains(t, notify.Verify("other", ts(now), sig, body, now), "signature does not match")
	assert.ErrorContains(t, notify.Verify("s", ts(now), sig, []byte(`{"id":"f"}`), now), "signature does not match")
	assert.ErrorContains(t, notify.Verify("s", ts(now), sig, body, now.Add(6*time.Minute)), "outside the replay window")
	assert.ErrorContains(t, notify.Verify("s", "yesterday", sig, body, now), "bad Bote-Webhook-Timestamp")
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestDestinationValidate(t *testing.T) {
	ok := notify.Destination{Tenant: "contoso", ID: "hook", URL: "https://hooks.example.com/x"}
	require.NoError(t, ok.Validate(false))
	for name, mut := range map[string]func(*notify.Destination){
		"http":      func(d *notify.Destination) { d.URL = "http://hooks.example.com/x" },
		"relative":  func(d *notify.Destination) { d.URL = "/x" },
		"userinfo":  func(d *notify.Destination) { d.URL = "https://u:p@hooks.example.com/x" },
		"bad event": func(d *notify.Destination) { d.Events = []notify.EventType{"run.exploded"} },
		"bad id":    func(d *notify.Destination) { d.ID = "a/b" },
	} {
		d := ok
		mut(&d)
		assert.Error(t, d.Validate(false), name)
	}
}

// TestWebhookAddressIsPublic: the addresses a webhook may not reach,
// whichever way they are written (IPv4-mapped, NAT64, 6to4), including
// Azure's WireServer, which is a public address reachable from inside
// every Azure VM and container.
func TestWebhookAddressIsPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true, "::ffff:8.8.8.8": true, "64:ff9b::808:808": true, "2002:808:808::1": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false,
		"0.0.0.0": false, "0.1.2.3": false, "100.64.0.1": false, "168.63.129.16": false, "198.18.0.1": false,
		"255.255.255.255": false, "224.0.0.1": false, "::1": false, "::": false, "fd00::1": false, "fe80::1": false,
		"::ffff:127.0.0.1": false, "::ffff:169.254.169.254": false, "64:ff9b::a9fe:a9fe": false, "64:ff9b::7f00:1": false,
		"2002:a9fe:a9fe::1": false, "2002:7f00:1::": false, "::a9fe:a9fe": false, "::ffff:168.63.129.16": false,
	} {
		assert.Equal(t, want, notify.Public(netip.MustParseAddr(addr)), addr)
	}
}

// TestWebhooksIgnoreProxyEnvironment: through HTTPS_PROXY the guard would
// check the proxy's address, not the webhook's.
func TestWebhooksIgnoreProxyEnvironment(t *testing.T) {
	assert.False(t, notify.Proxied(newNotifier(t, notify.NewMemory(), false)))
}

// TestAttemptErrorsHideTheQuery: the HTTP client's errors name the URL;
// the delivery log (operators) and the server's log do not show the
// token a receiver put in its query.
func TestAttemptErrorsHideTheQuery(t *testing.T) {
	ctx := context.Background()
	store := notify.NewMemory()
	require.NoError(t, store.AddDestination(ctx, notify.Destination{Tenant: "contoso", ID: "tok", URL: "http://127.0.0.1:1/hook?token=s3cr3t#frag", Secret: "s"}))
	n := newNotifier(t, store, false)
	require.NoError(t, n.Notify(ctx, notify.Event{ID: "e1", Type: notify.Applied, Tenant: "contoso", Workspace: "prod"}))
	_, err := n.DeliverDue(ctx)
	require.NoError(t, err)
	ds, err := store.Deliveries(ctx, "contoso", "tok", 1)
	require.NoError(t, err)
	require.Len(t, ds[0].Attempts, 1)
	assert.Contains(t, ds[0].Attempts[0].Error, `"http://127.0.0.1:1/hook?…"`)
	assert.Contains(t, ds[0].Attempts[0].Error, "is not public")
	assert.NotContains(t, ds[0].Attempts[0].Error, "s3cr3t")
	assert.Equal(t, "https://h/x", notify.RedactURL("https://h/x"))
	assert.Equal(t, "https://h/x?…", notify.RedactURL("https://h/x?"))
}

// TestSlowWebhookDoesNotHoldOtherTenants: a tenant whose webhook never
// answers (each attempt waits out Timeout) with many deliveries due does
// not hold another tenant's notification behind them: a round sends
// several at once and takes a few of each tenant in turn.
func TestSlowWebhookDoesNotHoldOtherTenants(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	fast, fastURL := newReceiver(t, "s", 0)
	store := notify.NewMemory()
	require.NoError(t, store.AddDestination(ctx, notify.Destination{Tenant: "aaa", ID: "hang", URL: hang.URL, Secret: "s"}))
	require.NoError(t, store.AddDestination(ctx, notify.Destination{Tenant: "zzz", ID: "fast", URL: fastURL, Secret: "s"}))
	n, err := notify.New(notify.Config{Store: store, AllowPrivate: true, Timeout: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	for i := range 40 {
		require.NoError(t, n.Notify(ctx, notify.Event{ID: fmt.Sprint("a", i), Type: notify.Applied, Tenant: "aaa", Workspace: "prod"}))
	}
	require.NoError(t, n.Notify(ctx, notify.Event{ID: "z", Type: notify.Applied, Tenant: "zzz", Workspace: "prod"}))
	go func() { _, _ = n.DeliverDue(ctx) }()
	assert.Eventually(t, func() bool {
		fast.mu.Lock()
		defer fast.mu.Unlock()
		return fast.received["z.fast"] == 1
	}, 2*time.Second, 10*time.Millisecond, "zzz's webhook waited behind aaa's (40 × 500 ms one at a time)")
}

// ctxStore is a Memory store that, like the table store, refuses to
// record under a context that ended.
type ctxStore struct{ *notify.Memory }

func (s ctxStore) Record(ctx context.Context, d notify.Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Memory.Record(ctx, d)
}

// TestShutdownDuringAnAttemptLeavesTheDeliveryDue: a notifier stopped
// while its webhook is answering records the attempt anyway, unleased and
// due at once, so the next notifier (after a restart) sends it without
// waiting out the lease (CI: the e2e webhook test waited a whole minute).
func TestShutdownDuringAnAttemptLeavesTheDeliveryDue(t *testing.T) {
	ctx := context.Background()
	arrived := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // so the server sees the client go away
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(slow.Close)
	store := ctxStore{notify.NewMemory()}
	require.NoError(t, store.AddDestination(ctx, notify.Destination{Tenant: "contoso", ID: "chat", URL: slow.URL, Secret: "s"}))
	n, err := notify.New(notify.Config{Store: store, AllowPrivate: true, Poll: 10 * time.Millisecond, RetryBase: time.Hour, Lease: time.Hour,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, n.Notify(ctx, notify.Event{ID: "e1", Type: notify.Applied, Tenant: "contoso", Workspace: "prod"}))

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Run(runCtx) }()
	<-arrived
	stop()
	<-done

	due, err := store.Due(ctx, time.Now().Add(time.Second), 10)
	require.NoError(t, err)
	require.Len(t, due, 1, "the interrupted delivery is due again at once, neither leased for an hour nor put off by the retry delay")
	assert.Equal(t, notify.Pending, due[0].State)
	assert.Len(t, due[0].Attempts, 1, "the interrupted attempt is in its log")
}
