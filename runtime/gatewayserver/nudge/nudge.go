// Package nudge gets a "you have messages" nudge to the gateway replica that
// holds a connector's session, whichever replica routed the message.
//
// Design (docs/gateway.md, "Nudges across replicas"): every replica has an
// id and its own Storage Queue, "bote-nudge-<replica>". When a session opens,
// the replica records presence in Table Storage (PartitionKey = tenant,
// RowKey = connector, with the replica id and session name). To nudge, a
// replica first tries its own sessions; otherwise it reads the connector's
// presence and puts a small nudge message on the holding replica's queue,
// which that replica polls (50 ms while busy, backing off to 1.5 s when idle,
// so the idle cost is per replica, never per connector). Nudge messages
// expire after a minute: a nudge for a replica that died is worthless, and
// the connector drains its queue when it reconnects anyway.
//
// Storage only, on purpose: it runs on the emulator and in every Azure cloud
// with the storage account the gateway already has. Correctness never
// depends on a nudge; a lost one costs at most the connector's safety poll.
package nudge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/queueerror"

	"github.com/botehq/platform/runtime/gatewayserver/metrics"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/internal/aztable"
)

// DefaultTable is the presence table used when none is configured.
const DefaultTable = "botepresence"

// QueuePrefix starts every replica's nudge queue name.
const QueuePrefix = "bote-nudge-"

// nudgeTTL bounds how long a nudge waits for its replica.
const nudgeTTL = 60 * time.Second

var replicaPattern = regexp.MustCompile(`^[a-z0-9]{1,40}$`)

// Local nudges the sessions of this replica; it reports whether there was
// one. The gateway's session server is one; Run delivers to it.
type Local interface {
	Nudge(id ids.ConnectorID) bool
}

// LocalFunc adapts a function to Local.
type LocalFunc func(id ids.ConnectorID) bool

// Nudge calls f.
func (f LocalFunc) Nudge(id ids.ConnectorID) bool { return f(id) }

// Config configures a Fanout.
type Config struct {
	Queues *azqueue.ServiceClient
	Tables *aztables.ServiceClient
	// Table is the presence table (default DefaultTable).
	Table string
	// Replica identifies this replica: 1 to 40 lowercase letters and digits.
	Replica string
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// PollMin and PollMax bound the interval between reads of this
	// replica's nudge queue (defaults 50ms and 1.5s: an idle replica reads
	// it 2,400 times an hour).
	PollMin, PollMax time.Duration
}

// Validate checks the configuration and names the bad field.
func (c Config) Validate() error {
	switch {
	case c.Queues == nil:
		return errors.New("nudge config: Queues is required")
	case c.Tables == nil:
		return errors.New("nudge config: Tables is required")
	case !replicaPattern.MatchString(c.Replica):
		return fmt.Errorf("nudge config: Replica %q must be 1 to 40 lowercase letters and digits", c.Replica)
	case c.PollMin < 0 || c.PollMax < 0 || (c.PollMax != 0 && c.PollMin > c.PollMax):
		return fmt.Errorf("nudge config: PollMin %s and PollMax %s must be positive with PollMin <= PollMax", c.PollMin, c.PollMax)
	}
	return nil
}

// Fanout records presence and delivers nudges across replicas.
type Fanout struct {
	cfg      Config
	log      *slog.Logger
	presence *aztables.Client
	own      *azqueue.QueueClient
}

// New creates the presence table and this replica's nudge queue.
func New(ctx context.Context, cfg Config) (*Fanout, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if cfg.PollMin == 0 {
		cfg.PollMin = 50 * time.Millisecond
	}
	if cfg.PollMax == 0 {
		cfg.PollMax = 1500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(nil)
	}
	if err := aztable.Create(ctx, cfg.Tables, cfg.Table); err != nil {
		return nil, err
	}
	f := &Fanout{cfg: cfg, log: cfg.Logger, presence: cfg.Tables.NewClient(cfg.Table), own: cfg.Queues.NewQueueClient(QueuePrefix + cfg.Replica)}
	if _, err := f.own.Create(ctx, nil); err != nil && !queueerror.HasCode(err, queueerror.QueueAlreadyExists) {
		return nil, fmt.Errorf("cannot create nudge queue %s: %w", QueuePrefix+cfg.Replica, err)
	}
	return f, nil
}

// Replica returns this replica's id.
func (f *Fanout) Replica() string { return f.cfg.Replica }

type presence struct {
	aztables.Entity
	Replica string
	Session string
}

// Join records that session of id is held by this replica.
func (f *Fanout) Join(ctx context.Context, id ids.ConnectorID, session string) error {
	data, err := json.Marshal(presence{Entity: aztables.Entity{PartitionKey: string(id.Tenant), RowKey: id.Connector}, Replica: f.cfg.Replica, Session: session})
	if err != nil {
		return fmt.Errorf("cannot encode presence: %w", err)
	}
	if _, err := f.presence.UpsertEntity(ctx, data, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}); err != nil {
		return fmt.Errorf("cannot record presence of %s: %w", id, err)
	}
	return nil
}

// Leave clears id's presence if it still names session: a connector that
// already reconnected to another replica keeps its newer record.
func (f *Fanout) Leave(ctx context.Context, id ids.ConnectorID, session string) error {
	p, etag, err := f.lookup(ctx, id)
	if err != nil || p == nil || p.Replica != f.cfg.Replica || p.Session != session {
		return err
	}
	_, err = f.presence.DeleteEntity(ctx, string(id.Tenant), id.Connector, &aztables.DeleteEntityOptions{IfMatch: &etag})
	if err != nil && !isStatus(err, 404, 412) {
		return fmt.Errorf("cannot clear presence of %s: %w", id, err)
	}
	return nil
}

func (f *Fanout) lookup(ctx context.Context, id ids.ConnectorID) (*presence, azcore.ETag, error) {
	resp, err := f.presence.GetEntity(ctx, string(id.Tenant), id.Connector, nil)
	if isStatus(err, 404) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("cannot read presence of %s: %w", id, err)
	}
	var p presence
	if err := json.Unmarshal(resp.Value, &p); err != nil {
		return nil, "", fmt.Errorf("cannot decode presence of %s: %w", id, err)
	}
	return &p, resp.ETag, nil
}

type wire struct {
	Tenant    string `json:"t"`
	Connector string `json:"c"`
}

// Nudge tells id's session on another replica that its queue has
// messages, through that replica's nudge queue; the caller has tried its
// own sessions first (LocalFirst). A connector without a session, or one
// whose session presence puts on this replica, is not an error.
func (f *Fanout) Nudge(ctx context.Context, id ids.ConnectorID) error {
	p, _, err := f.lookup(ctx, id)
	if err != nil || p == nil || p.Replica == f.cfg.Replica || !replicaPattern.MatchString(p.Replica) {
		return err
	}
	data, err := json.Marshal(wire{Tenant: string(id.Tenant), Connector: id.Connector})
	if err != nil {
		return fmt.Errorf("cannot encode nudge: %w", err)
	}
	q := f.cfg.Queues.NewQueueClient(QueuePrefix + p.Replica)
	_, err = q.EnqueueMessage(ctx, string(data), &azqueue.EnqueueMessageOptions{TimeToLive: to.Ptr(int32(nudgeTTL / time.Second))})
	if queueerror.HasCode(err, queueerror.QueueNotFound) {
		f.log.Debug("presence names a replica that is gone", "connector", id.String(), "replica", p.Replica)
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot nudge %s via replica %s: %w", id, p.Replica, err)
	}
	f.cfg.Metrics.Nudges.WithLabelValues("remote").Inc()
	return nil
}

// Run reads this replica's nudge queue until ctx ends, passing each nudge to
// the local sessions.
func (f *Fanout) Run(ctx context.Context, local Local) error {
	if local == nil {
		return errors.New("nudge: Run needs the Local sessions to deliver to")
	}
	wait := f.cfg.PollMin
	for {
		n, err := f.poll(ctx, local)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			f.log.Warn("cannot read nudge queue", "err", err)
		}
		if n > 0 {
			wait = f.cfg.PollMin
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, f.cfg.PollMax)
	}
}

func (f *Fanout) poll(ctx context.Context, local Local) (int, error) {
	resp, err := f.own.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr(int32(32)), VisibilityTimeout: to.Ptr(int32(30))})
	if err != nil {
		return 0, err
	}
	for _, m := range resp.Messages {
		var w wire
		if m.MessageText != nil && json.Unmarshal([]byte(*m.MessageText), &w) == nil {
			if id, err := ids.ParseConnectorID(w.Tenant, w.Connector); err == nil {
				local.Nudge(id)
			}
		}
		if m.MessageID == nil || m.PopReceipt == nil {
			continue
		}
		if _, err := f.own.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil); err != nil {
			f.log.Debug("cannot delete nudge", "err", err)
		}
	}
	return len(resp.Messages), nil
}

// Close deletes this replica's nudge queue (at graceful shutdown; after a
// crash the queue stays, empty once its nudges expire).
func (f *Fanout) Close(ctx context.Context) error {
	if _, err := f.own.Delete(ctx, nil); err != nil && !queueerror.HasCode(err, queueerror.QueueNotFound) {
		return fmt.Errorf("cannot delete nudge queue: %w", err)
	}
	return nil
}

func isStatus(err error, codes ...int) bool {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	for _, c := range codes {
		if re.StatusCode == c {
			return true
		}
	}
	return false
}

// LocalFirst nudges a connector's session on this replica (Local) if it
// is here, else through the replica presence names (Remote): the gateway's
// router nudges through it.
type LocalFirst struct {
	Local  Local
	Remote *Fanout
}

// Nudge tells id's session that its queue has messages.
func (n LocalFirst) Nudge(ctx context.Context, id ids.ConnectorID) error {
	if n.Local.Nudge(id) {
		return nil
	}
	return n.Remote.Nudge(ctx, id)
}
