package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/botehq/platform/runtime/buildinfo"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/retry"
)

// Config configures a Notifier.
type Config struct {
	Store Store // required
	// AllowPrivate lets webhooks reach loopback, private and link-local
	// addresses (tests, local use). Without it they are refused when
	// dialled: a webhook must not reach the server's own network or the
	// cloud's metadata endpoint.
	AllowPrivate bool
	// Poll is how often the outbox is read when nothing woke the
	// notifier (deliveries enqueued on other replicas, retries); default
	// 5 s.
	Poll time.Duration
	// RetryBase and RetryMax bound the delay between attempts (default
	// 10 s and 10 min, doubling with jitter); MaxAttempts ends a delivery
	// as failed (default 10).
	RetryBase, RetryMax time.Duration
	MaxAttempts         int
	// Timeout bounds one request (default 10 s); Lease how long a
	// notifier holds a delivery it sends (default 1 min, above Timeout).
	Timeout, Lease time.Duration
	Logger         *slog.Logger
	Now            func() time.Time
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("notify config: Store is required")
	case c.Poll < 0 || c.RetryBase < 0 || c.RetryMax < 0 || c.Timeout < 0 || c.Lease < 0 || c.MaxAttempts < 0:
		return errors.New("notify config: durations and MaxAttempts must not be negative")
	case c.Lease != 0 && c.Timeout != 0 && c.Lease <= c.Timeout:
		return fmt.Errorf("notify config: Lease %s must be longer than Timeout %s", c.Lease, c.Timeout)
	}
	return nil
}

// Notifier enqueues events for a tenant's destinations and delivers them.
type Notifier struct {
	cfg    Config
	client *http.Client
	wake   chan struct{}
}

// New returns a Notifier; Run delivers.
func New(cfg Config) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.Poll, 5*time.Second)
	def(&cfg.RetryBase, 10*time.Second)
	def(&cfg.RetryMax, 10*time.Minute)
	def(&cfg.Timeout, 10*time.Second)
	def(&cfg.Lease, max(time.Minute, 2*cfg.Timeout))
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: guard(cfg.AllowPrivate)}
	client := &http.Client{
		Timeout: cfg.Timeout,
		// No proxy, not even from HTTPS_PROXY (which the relay's own
		// connections honour): through a proxy the guard would check the
		// proxy's address, and the proxy would reach whatever the
		// webhook names.
		Transport: &http.Transport{DialContext: dialer.DialContext, Proxy: nil, TLSHandshakeTimeout: cfg.Timeout},
		// A redirect is an answer, not a delivery: it is never followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Notifier{cfg: cfg, client: client, wake: make(chan struct{}, 1)}, nil
}

// guard refuses connections to addresses a webhook must not reach.
func guard(allowPrivate bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || allowPrivate {
			return nil
		}
		if !public(ip) {
			return fmt.Errorf("webhook address %s is not public", ip)
		}
		return nil
	}
}

// notPublic are the ranges a webhook must not reach besides loopback,
// private, link-local, multicast and unspecified addresses.
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),        // this network (Linux dials 0.x locally)
	netip.MustParsePrefix("100.64.0.0/10"),    // shared address space (carrier-grade NAT)
	netip.MustParsePrefix("168.63.129.16/32"), // Azure's WireServer: every Azure VM and container reaches it
	netip.MustParsePrefix("192.0.0.0/24"),     // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),    // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),      // reserved, and the broadcast address
}

// embedding are IPv6 ranges whose last 32 bits are an IPv4 address that
// the network may reach (NAT64, IPv4-compatible), and 6to4, whose bits 16
// to 48 are one.
var (
	nat64     = []netip.Prefix{netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("64:ff9b:1::/48"), netip.MustParsePrefix("::/96")}
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// public reports whether a webhook may connect to ip.
func public(ip netip.Addr) bool {
	ip = ip.Unmap() // ::ffff:10.0.0.1 is 10.0.0.1
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(ip) {
			return false
		}
	}
	if ip.Is6() {
		b := ip.As16()
		for _, p := range nat64 {
			if p.Contains(ip) {
				return public(netip.AddrFrom4([4]byte(b[12:16])))
			}
		}
		if sixToFour.Contains(ip) {
			return public(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	return true
}

// Notify enqueues ev for every destination of its tenant that wants it.
func (n *Notifier) Notify(ctx context.Context, ev Event) error {
	dests, err := n.cfg.Store.Destinations(ctx, ev.Tenant)
	if err != nil {
		return fmt.Errorf("cannot read the notifications of tenant %s: %w", ev.Tenant, err)
	}
	now := n.cfg.Now().UTC()
	var ds []Delivery
	for _, d := range dests {
		if d.Wants(ev) {
			ds = append(ds, Delivery{ID: ev.ID + "." + d.ID, Tenant: ev.Tenant, Destination: d.ID, Event: ev, Created: now, State: Pending, Due: now})
		}
	}
	if len(ds) == 0 {
		return nil
	}
	if err := n.cfg.Store.Enqueue(ctx, ds); err != nil {
		return fmt.Errorf("cannot enqueue event %s: %w", ev.ID, err)
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run delivers due deliveries until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	t := time.NewTicker(n.cfg.Poll)
	defer t.Stop()
	for {
		sent, err := n.DeliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			n.cfg.Logger.WarnContext(ctx, "cannot deliver notifications", "err", err)
		}
		if sent > 0 && err == nil && ctx.Err() == nil {
			continue // more may be due: what a round left, or a retry
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-n.wake:
		}
	}
}

// Bounds of one round of DeliverDue.
const (
	// dueWindow is how many due deliveries a round reads (one page of a
	// table query): a tenant with more due than that can still delay
	// the others, one with fewer cannot.
	dueWindow = 1000
	// roundSize is how many it attempts, at most perTenant of one
	// tenant, senders at once: a webhook that answers slowly (or never,
	// up to Timeout) holds one sender, not every tenant's notifications
	// behind it. Run starts the next round at once after one that
	// attempted something.
	roundSize = 50
	perTenant = 8
	senders   = 8
)

// DeliverDue sends what is due now, once each across notifiers, and
// returns how many it attempted.
func (n *Notifier) DeliverDue(ctx context.Context) (int, error) {
	due, err := n.cfg.Store.Due(ctx, n.cfg.Now(), dueWindow)
	if err != nil {
		return 0, err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		sent int
		errs []error
		sem  = make(chan struct{}, senders)
	)
	for _, d := range fair(due) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ok, err := n.deliver(ctx, d)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				sent++
			}
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	return sent, errors.Join(errs...)
}

// fair picks a round's deliveries from due: the tenants in turn, at most
// perTenant of each, at most roundSize in all.
func fair(due []Delivery) []Delivery {
	byTenant := map[ids.TenantID][]Delivery{}
	var tenants []ids.TenantID
	for _, d := range due {
		if byTenant[d.Tenant] == nil {
			tenants = append(tenants, d.Tenant)
		}
		if len(byTenant[d.Tenant]) < perTenant {
			byTenant[d.Tenant] = append(byTenant[d.Tenant], d)
		}
	}
	var out []Delivery
	for i := range perTenant {
		for _, t := range tenants {
			if ds := byTenant[t]; i < len(ds) && len(out) < roundSize {
				out = append(out, ds[i])
			}
		}
	}
	return out
}

// recordTimeout bounds recording an attempt after the notifier's context
// ended.
const recordTimeout = 5 * time.Second

// deliver leases d, attempts it and records the attempt; false when
// another notifier has it.
func (n *Notifier) deliver(ctx context.Context, d Delivery) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err // shutting down: no new attempt
	}
	d, err := n.cfg.Store.Lease(ctx, d, n.cfg.Now().Add(n.cfg.Lease))
	if errors.Is(err, ErrConflict) {
		return false, nil // another notifier has it
	}
	if err != nil {
		return false, err
	}
	n.attempt(ctx, &d)
	// Recorded also when ctx ended during the attempt (a shutdown): left
	// leased, the delivery would wait out its lease after the restart.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := n.cfg.Store.Record(rctx, d); err != nil {
		// The lease expires and the delivery is tried again.
		n.cfg.Logger.WarnContext(ctx, "cannot record a notification attempt", "delivery", d.ID, "err", err)
	}
	return true, nil
}

// attempt sends d once and sets its state and next due time.
func (n *Notifier) attempt(ctx context.Context, d *Delivery) {
	start := n.cfg.Now()
	a := Attempt{At: start.UTC()}
	status, err := n.send(ctx, d)
	a.Status, a.Duration = status, n.cfg.Now().Sub(start)
	if err != nil {
		a.Error = err.Error()
	}
	d.addAttempt(a)
	d.LeaseUntil = time.Time{}
	switch {
	case err == nil:
		d.State = Delivered
	case errors.Is(err, ErrNotFound), d.Tries >= n.cfg.MaxAttempts:
		d.State = GaveUp
	case ctx.Err() != nil:
		// Cut short by this notifier's shutdown, not refused by the
		// receiver: due again at once, for the next notifier to start.
		d.Due = n.cfg.Now().UTC()
	default:
		d.Due = n.cfg.Now().Add(n.cfg.RetryBase + retry.Backoff(n.cfg.RetryBase, n.cfg.RetryMax, d.Tries-1)).UTC()
	}
	n.cfg.Logger.InfoContext(ctx, "notification attempted", "tenant", d.Tenant, "destination", d.Destination, "delivery", d.ID,
		"status", a.Status, "state", d.State, "attempt", d.Tries, "err", err)
}

// send posts d's event to its destination, signed.
func (n *Notifier) send(ctx context.Context, d *Delivery) (int, error) {
	dests, err := n.cfg.Store.Destinations(ctx, d.Tenant)
	if err != nil {
		return 0, err
	}
	var dest *Destination
	for i := range dests {
		if dests[i].ID == d.Destination {
			dest = &dests[i]
		}
	}
	if dest == nil {
		return 0, fmt.Errorf("notification %s was deleted: %w", d.Destination, ErrNotFound)
	}
	body, err := json.Marshal(d.Event)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dest.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	ts := n.cfg.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bote-ops-webhooks/"+buildinfo.Read().Version)
	req.Header.Set(HeaderID, d.ID)
	req.Header.Set(HeaderTimestamp, fmt.Sprint(ts.Unix()))
	req.Header.Set(HeaderSignature, Sign(dest.Secret, ts, body))
	resp, err := n.client.Do(req)
	if err != nil {
		// The error names the URL, and the delivery log is read by
		// operators who may not see the receiver's token.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = RedactURL(ue.URL)
		}
		return 0, err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(strings.ToValidUTF8(string(snippet), "?"))
		return resp.StatusCode, fmt.Errorf("the webhook answered %s: %s", resp.Status, msg)
	}
	return resp.StatusCode, nil
}

// retryWait waits before enqueueing again.
func retryWait(ctx context.Context, attempt int) error {
	return retry.Sleep(ctx, 100*time.Millisecond+retry.Backoff(100*time.Millisecond, time.Second, attempt))
}
