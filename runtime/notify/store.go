package notify

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/ids"
)

// Delivery is one event to one destination, with its attempts.
type Delivery struct {
	// ID is the event's id and the destination's: enqueueing it twice
	// stores it once.
	ID          string       `json:"id"`
	Tenant      ids.TenantID `json:"tenant"`
	Destination string       `json:"destination"`
	Event       Event        `json:"event"`
	Created     time.Time    `json:"created"`
	State       State        `json:"state"`
	// Due is when the next attempt may start.
	Due time.Time `json:"due"`
	// Tries counts the attempts; Attempts keeps the first and the latest.
	Tries    int       `json:"tries"`
	Attempts []Attempt `json:"attempts,omitempty"`
	// LeaseUntil: a notifier is sending it until then.
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	ETag       string    `json:"-"`
}

// State of a delivery.
type State string

// Delivery states.
const (
	Pending   State = "pending"
	Delivered State = "delivered"
	// GaveUp: every attempt failed (MaxAttempts), or the destination was
	// deleted.
	GaveUp State = "failed"
)

// Attempt is one try of a delivery.
type Attempt struct {
	At time.Time `json:"at"`
	// Status is the response's status code, 0 when there was none.
	Status   int           `json:"status"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
}

// maxAttemptsKept bounds the attempts a delivery keeps (the first and the
// latest ones).
const maxAttemptsKept = 20

func (d *Delivery) addAttempt(a Attempt) {
	d.Tries++
	d.Attempts = append(d.Attempts, a)
	if n := len(d.Attempts); n > maxAttemptsKept {
		d.Attempts = append(d.Attempts[:1], d.Attempts[n-maxAttemptsKept+1:]...)
	}
}

// Store keeps destinations and deliveries: Table (Azure Table Storage)
// and Memory (tests).
type Store interface {
	AddDestination(ctx context.Context, d Destination) error
	Destinations(ctx context.Context, tenant ids.TenantID) ([]Destination, error)
	DeleteDestination(ctx context.Context, tenant ids.TenantID, id string) error
	// Enqueue stores pending deliveries in the outbox and the log; one
	// already stored is left as it is.
	Enqueue(ctx context.Context, ds []Delivery) error
	// Due returns up to limit pending deliveries of every tenant due at
	// now whose lease (if any) has expired.
	Due(ctx context.Context, now time.Time, limit int) ([]Delivery, error)
	// Lease marks d (as read, with its ETag) being sent until until;
	// ErrConflict if another notifier changed it first.
	Lease(ctx context.Context, d Delivery, until time.Time) (Delivery, error)
	// Record stores d after an attempt (d as leased): a pending one goes
	// back to the outbox with its new Due, a delivered or failed one
	// leaves it; the log has it either way.
	Record(ctx context.Context, d Delivery) error
	// Deliveries lists the log of a destination ("": every destination
	// of the tenant), newest first, at most limit.
	Deliveries(ctx context.Context, tenant ids.TenantID, destination string, limit int) ([]Delivery, error)
}

// newest sorts deliveries newest first and cuts them to limit.
func newest(ds []Delivery, limit int) []Delivery {
	slices.SortFunc(ds, func(a, b Delivery) int { return cmp.Or(b.Created.Compare(a.Created), cmp.Compare(b.ID, a.ID)) })
	return ds[:min(len(ds), limit)]
}

// Memory is an in-memory Store for tests.
type Memory struct {
	mu     sync.Mutex
	dests  map[destKey]Destination
	outbox map[string]Delivery // by ID
	log    map[string]Delivery
	etag   int
}

var _ Store = (*Memory)(nil)

// destKey is a tenant's destination id.
type destKey struct {
	tenant ids.TenantID
	id     string
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{dests: map[destKey]Destination{}, outbox: map[string]Delivery{}, log: map[string]Delivery{}}
}

func (m *Memory) nextETag() string { m.etag++; return strconv.Itoa(m.etag) }

func clone[T any](v T) T {
	b, _ := json.Marshal(v)
	var out T
	_ = json.Unmarshal(b, &out)
	return out
}

// AddDestination implements Store.
func (m *Memory) AddDestination(_ context.Context, d Destination) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := destKey{d.Tenant, d.ID}
	if _, ok := m.dests[k]; ok {
		return fmt.Errorf("notification %s/%s: %w", d.Tenant, d.ID, ErrExists)
	}
	m.dests[k] = clone(d)
	return nil
}

// Destinations implements Store.
func (m *Memory) Destinations(_ context.Context, tenant ids.TenantID) ([]Destination, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Destination
	for k, d := range m.dests {
		if k.tenant == tenant {
			out = append(out, clone(d))
		}
	}
	slices.SortFunc(out, func(a, b Destination) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// DeleteDestination implements Store.
func (m *Memory) DeleteDestination(_ context.Context, tenant ids.TenantID, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := destKey{tenant, id}
	if _, ok := m.dests[k]; !ok {
		return fmt.Errorf("tenant %s has no notification %s: %w", tenant, id, ErrNotFound)
	}
	delete(m.dests, k)
	return nil
}

// Enqueue implements Store.
func (m *Memory) Enqueue(_ context.Context, ds []Delivery) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range ds {
		if _, ok := m.log[d.ID]; ok {
			continue
		}
		d.ETag = m.nextETag()
		m.outbox[d.ID], m.log[d.ID] = clone(d), clone(d)
	}
	return nil
}

// Due implements Store.
func (m *Memory) Due(_ context.Context, now time.Time, limit int) ([]Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Delivery
	for _, d := range m.outbox {
		if !d.Due.After(now) && !d.LeaseUntil.After(now) {
			c := clone(d)
			c.ETag = d.ETag
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b Delivery) int { return a.Due.Compare(b.Due) })
	return out[:min(len(out), limit)], nil
}

// Lease implements Store.
func (m *Memory) Lease(_ context.Context, d Delivery, until time.Time) (Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.outbox[d.ID]
	if !ok || cur.ETag != d.ETag {
		return Delivery{}, fmt.Errorf("delivery %s: %w", d.ID, ErrConflict)
	}
	d.LeaseUntil, d.ETag = until, m.nextETag()
	m.outbox[d.ID] = clone(d)
	m.outbox[d.ID] = withETag(m.outbox[d.ID], d.ETag)
	return d, nil
}

func withETag(d Delivery, etag string) Delivery { d.ETag = etag; return d }

// Record implements Store.
func (m *Memory) Record(_ context.Context, d Delivery) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.outbox[d.ID]
	if !ok || cur.ETag != d.ETag {
		return fmt.Errorf("delivery %s: %w", d.ID, ErrConflict)
	}
	if d.State == Pending {
		m.outbox[d.ID] = withETag(clone(d), m.nextETag())
	} else {
		delete(m.outbox, d.ID)
	}
	m.log[d.ID] = clone(d)
	return nil
}

// Deliveries implements Store.
func (m *Memory) Deliveries(_ context.Context, tenant ids.TenantID, destination string, limit int) ([]Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Delivery
	for _, d := range m.log {
		if d.Tenant == tenant && (destination == "" || d.Destination == destination) {
			out = append(out, clone(d))
		}
	}
	return newest(out, limit), nil
}
