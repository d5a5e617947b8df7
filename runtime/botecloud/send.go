package botecloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/payload"
	"github.com/botehq/platform/runtime/sessionproto"
)

// OutMessage is a message to a connector (connector.OutMessage is its
// counterpart, to the cloud). ID is generated when empty; setting it makes
// a retried send of the same logical message deduplicable downstream.
type OutMessage struct {
	ID            string
	CorrelationID string
	ReplyTo       string
	Headers       map[string]string
	ContentType   string
	Body          []byte
	// DeliverAt or Delay (not both) schedule the message: the gateway routes
	// it, and so a connector gets it, no earlier (Service Bus scheduled
	// messages; on the Storage Queue bus the visibility timeout, at most
	// 7 days ahead, else bus.ErrDelayTooLong).
	DeliverAt time.Time
	Delay     time.Duration
	// TTL, when set, is how long the message stays valid after its
	// delivery time: one not handled by then goes to the error queue with
	// reason "expired", never to a handler.
	TTL time.Duration
}

// Outgoing is the former name of OutMessage.
//
// Deprecated: use OutMessage, named like connector.OutMessage.
type Outgoing = OutMessage

// prepared is a message ready to send: its envelope (application headers
// checked, protocol headers set) and how the bus is to defer it.
type prepared struct {
	env  *envelope.Envelope
	opts *bus.SendOptions
}

// SendToConnector sends msg to one connector of a tenant and returns the
// message id.
func (c *Client) SendToConnector(ctx context.Context, tenant, connector string, msg OutMessage) (string, error) {
	p, err := c.targeted(tenant, connector, msg)
	if err != nil {
		return "", fmt.Errorf("cannot send to connector: %w", err)
	}
	return c.send(ctx, p)
}

// targeted prepares a message to one connector.
func (c *Client) targeted(tenant, connector string, msg OutMessage) (prepared, error) {
	if err := ids.Validate("tenant", tenant); err != nil {
		return prepared{}, err
	}
	if err := ids.Validate("connector", connector); err != nil {
		return prepared{}, err
	}
	p, err := c.prepare(msg)
	if err != nil {
		return prepared{}, err
	}
	p.env.Kind, p.env.Tenant, p.env.Connector = envelope.KindTargeted, tenant, connector
	return p, nil
}

// Broadcast sends msg to every connector of tenant subscribed to topic and
// returns the message id.
func (c *Client) Broadcast(ctx context.Context, tenant, topic string, msg OutMessage) (string, error) {
	if err := ids.Validate("tenant", tenant); err != nil {
		return "", fmt.Errorf("cannot broadcast: %w", err)
	}
	if err := envelope.ValidateTopic(topic); err != nil {
		return "", fmt.Errorf("cannot broadcast: %w", err)
	}
	p, err := c.prepare(msg)
	if err != nil {
		return "", fmt.Errorf("cannot broadcast: %w", err)
	}
	p.env.Kind, p.env.Tenant, p.env.Topic = envelope.KindBroadcast, tenant, topic
	return c.send(ctx, p)
}

// Reply sends msg to the connector that sent req, correlated to it. It is
// how a handler answers a connector's Call: the reply carries the call's
// deadline, and one that arrives after it is discarded.
func (c *Client) Reply(ctx context.Context, req *Message, msg OutMessage) (string, error) {
	if req == nil || !req.From.IsConnector() {
		return "", errors.New("cannot reply: request has no connector sender")
	}
	msg.CorrelationID = req.ID
	p, err := c.targeted(req.From.Tenant, req.From.Connector, msg)
	if err != nil {
		return "", fmt.Errorf("cannot reply to %s: %w", req.ID, err)
	}
	p.env.SetProtocolHeader(envelope.HeaderDeadline, req.Deadline)
	return c.send(ctx, p)
}

// prepare builds the envelope of msg. Identity and routing are never
// headers (the same rule as for connectors); the client's own protocol
// headers are added after that check.
func (c *Client) prepare(msg OutMessage) (prepared, error) {
	if err := envelope.CheckConnectorHeaders(msg.Headers); err != nil {
		return prepared{}, err
	}
	now := c.now().UTC()
	delay, expires, err := envelope.Schedule(msg.DeliverAt, msg.Delay, msg.TTL, now)
	if err != nil {
		return prepared{}, err
	}
	id := msg.ID
	if id == "" {
		id = envelope.NewID()
	}
	p := prepared{env: &envelope.Envelope{
		ID:            id,
		CorrelationID: msg.CorrelationID,
		ReplyTo:       msg.ReplyTo,
		From:          &envelope.Identity{Service: c.cfg.Service},
		Headers:       maps.Clone(msg.Headers),
		ContentType:   msg.ContentType,
		Body:          msg.Body,
		CreatedAt:     now,
	}}
	if delay > 0 {
		p.opts = &bus.SendOptions{Delay: delay}
	}
	p.env.SetProtocolHeader(envelope.HeaderExpiresAt, expires)
	return p, nil
}

// send encodes the body (compression, encryption), signs and sends a
// prepared message.
func (c *Client) send(ctx context.Context, p prepared) (string, error) {
	env := p.env
	if err := c.encodeBody(ctx, env); err != nil {
		return "", fmt.Errorf("cannot send %s: %w", env.ID, err)
	}
	if c.cfg.SigningKey != nil {
		if err := env.Sign(c.cfg.SigningKey); err != nil {
			return "", err
		}
	}
	if err := env.Validate(); err != nil {
		return "", fmt.Errorf("cannot send %s: %w", env.ID, err)
	}
	if err := c.cfg.Bus.Send(ctx, c.cfg.ConnectorsQueue, env, p.opts); err != nil {
		return "", err
	}
	c.wake()
	return env.ID, nil
}

// encodeBody compresses and, for one connector with a registered key,
// encrypts env's body, and says so in the protocol headers.
func (c *Client) encodeBody(ctx context.Context, env *envelope.Envelope) error {
	opts := payload.Options{CompressAbove: c.cfg.CompressAbove}
	if env.Kind == envelope.KindTargeted && c.cfg.ConnectorKey != nil {
		key, err := c.cfg.ConnectorKey(ctx, env.Tenant, env.Connector)
		if err != nil {
			return fmt.Errorf("cannot get the key of %s/%s: %w", env.Tenant, env.Connector, err)
		}
		opts.To, opts.MessageID, opts.Recipient = key, env.ID, env.Tenant+"/"+env.Connector
	}
	e, err := payload.Encode(env.Body, opts)
	if err != nil {
		return err
	}
	env.Body = e.Body
	env.SetProtocolValue(envelope.HeaderContentEncoding, e.ContentEncoding)
	env.SetProtocolValue(envelope.HeaderEncryption, e.Encryption)
	return nil
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// wake tells the gateway that bote-connectors has a message (Config.WakeURL)
// without holding up the send. Wakes coalesce: while one is in flight,
// any number of sends make one more, sent after it, so the last send is
// always followed by a wake that started after it.
func (c *Client) wake() {
	if c.cfg.WakeURL == "" {
		return
	}
	c.mu.Lock()
	if c.waking {
		c.wakeAgain = true
		c.mu.Unlock()
		return
	}
	c.waking = true
	c.mu.Unlock()
	go func() {
		for {
			c.postWake()
			c.mu.Lock()
			if !c.wakeAgain {
				c.waking = false
				c.mu.Unlock()
				return
			}
			c.wakeAgain = false
			c.mu.Unlock()
		}
	}()
}

func (c *Client) postWake() {
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(c.cfg.WakeURL, "/")+sessionproto.WakePath, nil)
	if err != nil {
		c.log.Warn("cannot wake the gateway", "err", err)
		return
	}
	resp, err := c.cfg.WakeClient.Do(req)
	if err != nil {
		c.log.Debug("cannot wake the gateway; its route poll will find the message", "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		c.log.Debug("gateway refused the wake; its route poll will find the message", "status", resp.Status)
	}
}
