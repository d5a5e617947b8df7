// Package connqueue operates the per-connector Storage Queues for the
// gateway: it puts routed messages on a connector's queue (creating the queue
// the first time it is needed), hands a connector a SAS URL for its own
// queue, and extends a message's visibility on a connector's behalf.
//
// The SAS URL is a service SAS for exactly one queue, with read and process
// permissions only (peek, get, delete): a connector can neither add to its
// queue nor touch any other queue, and the URL expires after SASLifetime.
// Extending visibility needs the update permission, which would also allow
// rewriting message text; the gateway does it instead (Extend), so the SAS
// stays read/process only. Queue service SAS must be signed with the account
// key (Azure offers no user delegation SAS for queues), so queue access needs
// a connection string or account key even where everything else uses
// Microsoft Entra ID.
package connqueue

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/queueerror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/sas"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
	"github.com/botehq/platform/runtime/sessionproto"
)

// DefaultSASLifetime is how long a queue SAS URL is valid.
const DefaultSASLifetime = 15 * time.Minute

// clockSkew backdates a SAS start so a connector whose clock runs behind
// can use it at once.
const clockSkew = 5 * time.Minute

// ErrNoSharedKey reports that queue access was asked of a gateway that has
// no account key to sign a SAS with.
var ErrNoSharedKey = errors.New("queue SAS needs the storage account key")

// Config configures Queues. Either ConnectionString, or ServiceURL with
// Client (for Microsoft Entra ID), is required.
type Config struct {
	// ConnectionString of the storage account (account key included).
	ConnectionString string
	// Client is a ready queue service client, used instead of
	// ConnectionString; Key, if set, signs SAS URLs.
	Client *azqueue.ServiceClient
	Key    *azqueue.SharedKeyCredential
	// SASLifetime is how long a granted URL is valid (default 15m, at most
	// 24h).
	SASLifetime time.Duration
	// MessageTTL is how long a routed message waits in a connector's queue
	// (default 7 days; -1 never expires).
	MessageTTL time.Duration
}

// Validate checks the configuration and names the bad field.
func (c Config) Validate() error {
	switch {
	case c.ConnectionString == "" && c.Client == nil:
		return errors.New("connqueue config: ConnectionString or Client is required")
	case c.ConnectionString != "" && c.Client != nil:
		return errors.New("connqueue config: ConnectionString and Client are exclusive")
	case c.SASLifetime < 0 || c.SASLifetime > 24*time.Hour:
		return fmt.Errorf("connqueue config: SASLifetime %s must be between 0 (default) and 24h", c.SASLifetime)
	case c.MessageTTL < -1:
		return fmt.Errorf("connqueue config: MessageTTL %s must be positive, 0 (default) or -1 (never)", c.MessageTTL)
	}
	return nil
}

// Queues operates connector queues.
type Queues struct {
	svc  *azqueue.ServiceClient
	key  *azqueue.SharedKeyCredential
	life time.Duration
	ttl  *int32
	now  func() time.Time
}

// New returns Queues for cfg.
func New(cfg Config) (*Queues, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	q := &Queues{svc: cfg.Client, key: cfg.Key, life: cfg.SASLifetime, now: time.Now}
	if cfg.ConnectionString != "" {
		cs, err := ParseConnectionString(cfg.ConnectionString)
		if err != nil {
			return nil, err
		}
		if q.key, err = azqueue.NewSharedKeyCredential(cs.AccountName, cs.AccountKey); err != nil {
			return nil, fmt.Errorf("cannot use account key: %w", err)
		}
		if q.svc, err = azqueue.NewServiceClientWithSharedKeyCredential(cs.QueueEndpoint, q.key, nil); err != nil {
			return nil, fmt.Errorf("cannot create queue client: %w", err)
		}
	}
	if q.life == 0 {
		q.life = DefaultSASLifetime
	}
	switch {
	case cfg.MessageTTL == -1:
		q.ttl = to.Ptr(int32(-1))
	case cfg.MessageTTL > 0:
		q.ttl = to.Ptr(int32(cfg.MessageTTL / time.Second))
	}
	return q, nil
}

// Name returns the queue name of id.
func Name(id ids.ConnectorID) (string, error) { return queuename.For(id) }

// Enqueue puts text (an encoded envelope) on id's queue, creating the queue
// if it does not exist yet.
func (q *Queues) Enqueue(ctx context.Context, id ids.ConnectorID, text string) error {
	name, err := Name(id)
	if err != nil {
		return err
	}
	qc := q.svc.NewQueueClient(name)
	opts := &azqueue.EnqueueMessageOptions{TimeToLive: q.ttl}
	_, err = qc.EnqueueMessage(ctx, text, opts)
	if queueerror.HasCode(err, queueerror.QueueNotFound) {
		if err := q.create(ctx, qc); err != nil {
			return err
		}
		_, err = qc.EnqueueMessage(ctx, text, opts)
	}
	if err != nil {
		return fmt.Errorf("cannot enqueue on %s: %w", name, err)
	}
	return nil
}

// EnqueueHidden puts text on id's queue like Enqueue, hidden for
// visibility, and returns it as a read of the queue would: with the pop
// receipt that deletes or releases it. The gateway hands it to the
// connector's session (sessionproto.TypeDeliver), which saves the
// connector the read; if that fails, the message is on the queue again
// once visibility ends.
func (q *Queues) EnqueueHidden(ctx context.Context, id ids.ConnectorID, text string, visibility time.Duration) (sessionproto.Delivery, error) {
	name, err := Name(id)
	if err != nil {
		return sessionproto.Delivery{}, err
	}
	qc := q.svc.NewQueueClient(name)
	opts := &azqueue.EnqueueMessageOptions{TimeToLive: q.ttl, VisibilityTimeout: to.Ptr(int32(visibility / time.Second))}
	resp, err := qc.EnqueueMessage(ctx, text, opts)
	if queueerror.HasCode(err, queueerror.QueueNotFound) {
		if err := q.create(ctx, qc); err != nil {
			return sessionproto.Delivery{}, err
		}
		resp, err = qc.EnqueueMessage(ctx, text, opts)
	}
	if err != nil {
		return sessionproto.Delivery{}, fmt.Errorf("cannot enqueue on %s: %w", name, err)
	}
	if len(resp.Messages) != 1 || resp.Messages[0].MessageID == nil || resp.Messages[0].PopReceipt == nil {
		return sessionproto.Delivery{}, fmt.Errorf("cannot enqueue on %s: no message id and pop receipt returned", name)
	}
	m := resp.Messages[0]
	return sessionproto.Delivery{MessageID: *m.MessageID, PopReceipt: *m.PopReceipt, Text: text, VisibilitySeconds: int(visibility / time.Second)}, nil
}

// Release makes a hidden message (EnqueueHidden) visible at once.
func (q *Queues) Release(ctx context.Context, id ids.ConnectorID, d sessionproto.Delivery) error {
	_, _, err := q.Extend(ctx, id, d.MessageID, d.PopReceipt, d.Text, 0)
	return err
}

func (q *Queues) create(ctx context.Context, qc *azqueue.QueueClient) error {
	if _, err := qc.Create(ctx, nil); err != nil && !queueerror.HasCode(err, queueerror.QueueAlreadyExists) {
		return fmt.Errorf("cannot create queue: %w", err)
	}
	return nil
}

// Grant returns a read/process SAS URL for id's own queue. It makes no
// storage request (granting is frequent; idle cost matters): the queue may
// not exist until the first message is routed to it, which a reader sees as
// "QueueNotFound", meaning empty.
func (q *Queues) Grant(_ context.Context, id ids.ConnectorID) (sessionproto.QueueAccess, error) {
	if q.key == nil {
		return sessionproto.QueueAccess{}, ErrNoSharedKey
	}
	name, err := Name(id)
	if err != nil {
		return sessionproto.QueueAccess{}, err
	}
	qc := q.svc.NewQueueClient(name)
	now := q.now().UTC()
	expiry := now.Add(q.life).Truncate(time.Second)
	proto := sas.ProtocolHTTPS
	if strings.HasPrefix(qc.URL(), "http://") { // the emulator; Azure is HTTPS only
		proto = sas.ProtocolHTTPSandHTTP
	}
	perms := sas.QueuePermissions{Read: true, Process: true}
	params, err := sas.QueueSignatureValues{
		Protocol:    proto,
		StartTime:   now.Add(-clockSkew).Truncate(time.Second),
		ExpiryTime:  expiry,
		Permissions: perms.String(),
		QueueName:   name,
	}.SignWithSharedKey(q.key)
	if err != nil {
		return sessionproto.QueueAccess{}, fmt.Errorf("cannot sign queue SAS: %w", err)
	}
	return sessionproto.QueueAccess{Queue: name, URL: qc.URL() + "?" + params.Encode(), ExpiresAt: expiry}, nil
}

// Extend makes a received message invisible for visibility more from now
// (0: visible now) and returns its new pop receipt. The message must be on id's own queue:
// the queue name comes from the verified identity, never from the caller.
// text must be the message's text: the service replaces the text on every
// update (azqueue offers no visibility-only update), so a connector can at
// most rewrite messages addressed to itself.
func (q *Queues) Extend(ctx context.Context, id ids.ConnectorID, messageID, popReceipt, text string, visibility time.Duration) (string, time.Time, error) {
	name, err := Name(id)
	if err != nil {
		return "", time.Time{}, err
	}
	secs := int32(visibility / time.Second)
	if visibility < 0 || visibility > 7*24*time.Hour {
		return "", time.Time{}, fmt.Errorf("visibility %s must be between 0 (visible now) and 7 days", visibility)
	}
	resp, err := q.svc.NewQueueClient(name).UpdateMessage(ctx, messageID, popReceipt, text, &azqueue.UpdateMessageOptions{VisibilityTimeout: &secs})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("cannot extend message %s on %s: %w", messageID, name, err)
	}
	var next time.Time
	if resp.TimeNextVisible != nil {
		next = *resp.TimeNextVisible
	}
	if resp.PopReceipt == nil {
		return "", time.Time{}, fmt.Errorf("cannot extend message %s on %s: no pop receipt returned", messageID, name)
	}
	return *resp.PopReceipt, next, nil
}

// ConnectionString is the part of an Azure Storage connection string the
// gateway needs.
type ConnectionString struct {
	AccountName   string
	AccountKey    string
	QueueEndpoint string
	TableEndpoint string
	BlobEndpoint  string
}

// ParseConnectionString reads an account-key connection string, with
// explicit endpoints (the emulator) or derived from EndpointSuffix.
func ParseConnectionString(s string) (ConnectionString, error) {
	kv := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return ConnectionString{}, errors.New("connection string: a part is not key=value")
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	cs := ConnectionString{
		AccountName: kv["accountname"], AccountKey: kv["accountkey"],
		QueueEndpoint: kv["queueendpoint"], TableEndpoint: kv["tableendpoint"], BlobEndpoint: kv["blobendpoint"],
	}
	if cs.AccountName == "" || cs.AccountKey == "" {
		return ConnectionString{}, errors.New("connection string: AccountName and AccountKey are required")
	}
	scheme := kv["defaultendpointsprotocol"]
	if scheme == "" {
		scheme = "https"
	}
	suffix := kv["endpointsuffix"]
	for svc, ep := range map[string]*string{"queue": &cs.QueueEndpoint, "table": &cs.TableEndpoint, "blob": &cs.BlobEndpoint} {
		if *ep == "" {
			if suffix == "" {
				return ConnectionString{}, fmt.Errorf("connection string: %sEndpoint or EndpointSuffix is required", svc)
			}
			*ep = fmt.Sprintf("%s://%s.%s.%s", scheme, cs.AccountName, svc, suffix)
		}
		if _, err := url.Parse(*ep); err != nil {
			return ConnectionString{}, fmt.Errorf("connection string: %s endpoint: %w", svc, err)
		}
		*ep = strings.TrimSuffix(*ep, "/")
	}
	return cs, nil
}
