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

	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/sessionproto"
)

// Outgoing is a message to send. ID is generated when empty; setting it
// makes a retried send of the same logical message deduplicable downstream.
type Outgoing struct {
	ID            string
	CorrelationID string
	ReplyTo       string
	Headers       map[string]string
	ContentType   string
	Body          []byte
}

// SendToConnector sends msg to one connector of a tenant and returns the
// message id.
func (c *Client) SendToConnector(ctx context.Context, tenant, connector string, msg Outgoing) (string, error) {
	env, err := c.targeted(tenant, connector, msg)
	if err != nil {
		return "", fmt.Errorf("cannot send to connector: %w", err)
	}
	return c.sendChecked(ctx, env)
}

// targeted builds a message to one connector, its application headers
// checked (identity and routing are never headers), so that the client
// may add its protocol headers.
func (c *Client) targeted(tenant, connector string, msg Outgoing) (*envelope.Envelope, error) {
	if err := ids.Validate("tenant", tenant); err != nil {
		return nil, err
	}
	if err := ids.Validate("connector", connector); err != nil {
		return nil, err
	}
	env := c.envelope(msg)
	env.Kind, env.Tenant, env.Connector = envelope.KindTargeted, tenant, connector
	if err := envelope.CheckConnectorHeaders(env.Headers); err != nil {
		return nil, err
	}
	return env, nil
}

// Broadcast sends msg to every connector of tenant subscribed to topic and
// returns the message id.
func (c *Client) Broadcast(ctx context.Context, tenant, topic string, msg Outgoing) (string, error) {
	if err := ids.Validate("tenant", tenant); err != nil {
		return "", fmt.Errorf("cannot broadcast: %w", err)
	}
	if err := envelope.ValidateTopic(topic); err != nil {
		return "", fmt.Errorf("cannot broadcast: %w", err)
	}
	env := c.envelope(msg)
	env.Kind, env.Tenant, env.Topic = envelope.KindBroadcast, tenant, topic
	return c.send(ctx, env)
}

// Reply sends msg to the connector that sent req, correlated to it. It is
// how a handler answers a connector's Call: the reply carries the call's
// deadline, and one that arrives after it is discarded.
func (c *Client) Reply(ctx context.Context, req *Message, msg Outgoing) (string, error) {
	if req == nil || !req.From.IsConnector() {
		return "", errors.New("cannot reply: request has no connector sender")
	}
	msg.CorrelationID = req.ID
	env, err := c.targeted(req.From.Tenant, req.From.Connector, msg)
	if err != nil {
		return "", fmt.Errorf("cannot reply to %s: %w", req.ID, err)
	}
	env.SetProtocolHeader(envelope.HeaderDeadline, req.Deadline)
	return c.sendChecked(ctx, env)
}

func (c *Client) envelope(msg Outgoing) *envelope.Envelope {
	id := msg.ID
	if id == "" {
		id = envelope.NewID()
	}
	return &envelope.Envelope{
		ID:            id,
		CorrelationID: msg.CorrelationID,
		ReplyTo:       msg.ReplyTo,
		From:          &envelope.Identity{Service: c.cfg.Service},
		Headers:       maps.Clone(msg.Headers),
		ContentType:   msg.ContentType,
		Body:          msg.Body,
		CreatedAt:     c.now().UTC(),
	}
}

func (c *Client) send(ctx context.Context, env *envelope.Envelope) (string, error) {
	// Same rule as for connectors: identity and routing are never headers.
	if err := envelope.CheckConnectorHeaders(env.Headers); err != nil {
		return "", fmt.Errorf("cannot send %s: %w", env.ID, err)
	}
	return c.sendChecked(ctx, env)
}

// sendChecked signs and sends env, whose application headers were checked
// before the client added its protocol headers.
func (c *Client) sendChecked(ctx context.Context, env *envelope.Envelope) (string, error) {
	if c.cfg.SigningKey != nil {
		if err := env.Sign(c.cfg.SigningKey); err != nil {
			return "", err
		}
	}
	if err := env.Validate(); err != nil {
		return "", fmt.Errorf("cannot send %s: %w", env.ID, err)
	}
	if err := c.cfg.Bus.Send(ctx, c.cfg.ConnectorsQueue, env, nil); err != nil {
		return "", err
	}
	c.wake()
	return env.ID, nil
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// wake tells the worker that bote-connectors has a message (Config.WakeURL)
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
		c.log.Warn("cannot wake the worker", "err", err)
		return
	}
	resp, err := c.cfg.WakeClient.Do(req)
	if err != nil {
		c.log.Debug("cannot wake the worker; its route poll will find the message", "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		c.log.Debug("worker refused the wake; its route poll will find the message", "status", resp.Status)
	}
}
