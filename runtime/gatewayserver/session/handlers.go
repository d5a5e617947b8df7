package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/sessionproto"
)

func (c *conn) reject(ctx context.Context, id, code, msg string) {
	c.srv.metrics.Rejected.WithLabelValues(code).Inc()
	c.log().Info("frame rejected", "code", code, "request", id, "reason", msg)
	if err := c.write(ctx, sessionproto.ErrorFrame(id, code, msg)); err != nil {
		c.log().Debug("cannot write error frame", "err", err)
	}
}

func (c *conn) write(ctx context.Context, f sessionproto.Frame) error {
	data, err := sessionproto.Encode(f)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.srv.cfg.WriteTimeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, data)
}

func (c *conn) handle(ctx context.Context, f sessionproto.Frame) {
	if c.leaving.Load() {
		c.reject(ctx, f.ID, sessionproto.CodeShuttingDown, "gateway is shutting down; reconnect and retry")
		return
	}
	if f.ID == "" && f.Type != sessionproto.TypeNudge {
		c.reject(ctx, "", sessionproto.CodeBadFrame, "request frame has no id")
		return
	}
	rctx, cancel := context.WithTimeout(ctx, c.srv.cfg.RequestTimeout)
	defer cancel()
	var reply sessionproto.Frame
	var err error
	switch f.Type {
	case sessionproto.TypeSend:
		reply, err = c.send(rctx, f)
	case sessionproto.TypeSubscribe, sessionproto.TypeUnsubscribe:
		reply, err = c.subscription(rctx, f)
	case sessionproto.TypeQueueAccess:
		reply, err = c.queueAccess(rctx, f)
	case sessionproto.TypeAuth:
		reply, err = c.reauth(rctx, f)
	case sessionproto.TypeUpload:
		reply, err = c.upload(rctx, f)
	case sessionproto.TypeExtend:
		reply, err = c.extend(rctx, f)
	case sessionproto.TypeDeadLetter:
		reply, err = c.deadLetter(rctx, f)
	default:
		err = &sessionproto.Error{Code: sessionproto.CodeUnknownType, Message: fmt.Sprintf("unknown frame type %q", f.Type)}
	}
	if err != nil {
		var perr *sessionproto.Error
		if !errors.As(err, &perr) {
			c.log().Warn("request failed", "type", f.Type, "request", f.ID, "err", err)
			perr = &sessionproto.Error{Code: sessionproto.CodeUnavailable, Message: "the request could not be completed; retry"}
		}
		c.reject(ctx, f.ID, perr.Code, perr.Message)
		return
	}
	reply.ID = f.ID
	if err := c.write(ctx, reply); err != nil {
		c.log().Info("cannot write reply", "type", f.Type, "request", f.ID, "err", err)
	}
}

func (c *conn) send(ctx context.Context, f sessionproto.Frame) (sessionproto.Frame, error) {
	m := f.Message
	if m == nil {
		return sessionproto.Frame{}, &sessionproto.Error{Code: sessionproto.CodeBadFrame, Message: "send frame has no message"}
	}
	if m.Claim != nil && len(m.Body) > 0 {
		return sessionproto.Frame{}, &sessionproto.Error{Code: sessionproto.CodeInvalidMessage, Message: "body and claim are exclusive"}
	}
	if err := envelope.CheckConnectorHeaders(m.Headers); err != nil {
		if errors.Is(err, envelope.ErrReservedHeader) {
			c.srv.log.Warn("audit: identity_header_rejected", "audit", true, "event", "identity_header_rejected",
				"tenant", c.id.Tenant, "connector", c.id.Connector, "session", c.name, "remote", c.remote, "err", err)
			return sessionproto.Frame{}, &sessionproto.Error{Code: sessionproto.CodeIdentityHeader, Message: err.Error()}
		}
		return sessionproto.Frame{}, &sessionproto.Error{Code: sessionproto.CodeInvalidMessage, Message: err.Error()}
	}
	if len(m.ID) > envelope.MaxIDLength || len(m.CorrelationID) > envelope.MaxIDLength {
		return sessionproto.Frame{}, &sessionproto.Error{Code: sessionproto.CodeInvalidMessage,
			Message: fmt.Sprintf("id and correlation_id are limited to %d characters", envelope.MaxIDLength)}
	}
	id, err := c.srv.cfg.Sender.SendToCloud(ctx, c.id, *m)
	if err != nil {
		return sessionproto.Frame{}, err
	}
	c.srv.metrics.Sent.Inc()
	return sessionproto.Frame{Type: sessionproto.TypeAck, MessageID: id}, nil
}

func (c *conn) subscription(ctx context.Context, f sessionproto.Frame) (sessionproto.Frame, error) {
	if err := envelope.ValidateTopic(f.Topic); err != nil {
		return sessionproto.Frame{}, &sessionproto.Error{Code: sessionproto.CodeInvalidTopic, Message: err.Error()}
	}
	var err error
	if f.Type == sessionproto.TypeSubscribe {
		err = c.srv.cfg.Subscriptions.Subscribe(ctx, string(c.id.Tenant), f.Topic, c.id.Connector)
	} else {
		err = c.srv.cfg.Subscriptions.Unsubscribe(ctx, string(c.id.Tenant), f.Topic, c.id.Connector)
	}
	if err != nil {
		return sessionproto.Frame{}, err
	}
	c.log().Info(f.Type+"d", "topic", f.Topic)
	return sessionproto.Frame{Type: sessionproto.TypeAck, Topic: f.Topic}, nil
}

func (c *conn) queueAccess(ctx context.Context, _ sessionproto.Frame) (sessionproto.Frame, error) {
	qa, err := c.srv.cfg.QueueAccess.Grant(ctx, c.id)
	if err != nil {
		return sessionproto.Frame{}, err
	}
	return sessionproto.Frame{Type: sessionproto.TypeQueueAccess, QueueAccess: &qa}, nil
}

func (c *conn) extend(ctx context.Context, f sessionproto.Frame) (sessionproto.Frame, error) {
	e := f.Extend
	if e == nil || e.MessageID == "" || e.PopReceipt == "" || e.Text == "" || e.VisibilitySeconds < 0 || e.VisibilitySeconds > 7*24*3600 {
		return sessionproto.Frame{}, &sessionproto.Error{Code: sessionproto.CodeBadFrame, Message: "extend needs message_id, pop_receipt, text and visibility_seconds between 0 (release) and 604800"}
	}
	if len(e.Text) > envelope.MaxQueueMessageBytes {
		return sessionproto.Frame{}, &sessionproto.Error{Code: sessionproto.CodeInvalidMessage, Message: "text exceeds the queue message limit"}
	}
	pop, next, err := c.srv.cfg.QueueAccess.Extend(ctx, c.id, e.MessageID, e.PopReceipt, e.Text, time.Duration(e.VisibilitySeconds)*time.Second)
	if err != nil {
		return sessionproto.Frame{}, err
	}
	return sessionproto.Frame{Type: sessionproto.TypeExtend, Extend: &sessionproto.Extend{MessageID: e.MessageID, PopReceipt: pop, NextVisible: next}}, nil
}

func (c *conn) deadLetter(ctx context.Context, f sessionproto.Frame) (sessionproto.Frame, error) {
	d := f.DeadLetter
	if d == nil || d.Reason == "" {
		return sessionproto.Frame{}, &sessionproto.Error{Code: sessionproto.CodeBadFrame, Message: "dead_letter needs a reason"}
	}
	if err := c.srv.cfg.Sender.DeadLetter(ctx, c.id, *d); err != nil {
		return sessionproto.Frame{}, err
	}
	c.log().Warn("connector dead-lettered a message", "reason", d.Reason, "message", d.MessageID, "dequeue_count", d.DequeueCount)
	return sessionproto.Frame{Type: sessionproto.TypeAck}, nil
}

func (c *conn) reauth(ctx context.Context, f sessionproto.Frame) (sessionproto.Frame, error) {
	p, err := c.srv.cfg.Verifier.Verify(ctx, f.Token)
	if err != nil {
		c.srv.log.Warn("audit: reauth_rejected", "audit", true, "event", "reauth_rejected", "tenant", c.id.Tenant, "connector", c.id.Connector, "session", c.name, "err", err)
		return sessionproto.Frame{}, &sessionproto.Error{Code: sessionproto.CodeUnauthorized, Message: "token rejected"}
	}
	if p.Identity != c.id {
		c.srv.log.Warn("audit: reauth_identity_mismatch", "audit", true, "event", "reauth_identity_mismatch", "tenant", c.id.Tenant, "connector", c.id.Connector, "session", c.name, "token_tenant", p.Tenant, "token_connector", p.Connector)
		return sessionproto.Frame{}, &sessionproto.Error{Code: sessionproto.CodeUnauthorized, Message: "token names another identity than this session"}
	}
	c.expires.Store(p.Expires.UnixNano())
	return sessionproto.Frame{Type: sessionproto.TypeAck}, nil
}

func (c *conn) upload(ctx context.Context, _ sessionproto.Frame) (sessionproto.Frame, error) {
	if c.srv.cfg.Uploads == nil {
		return sessionproto.Frame{}, &sessionproto.Error{Code: sessionproto.CodeUnknownType, Message: "this gateway takes no uploads"}
	}
	u, err := c.srv.cfg.Uploads.UploadURL(ctx, c.id)
	if err != nil {
		return sessionproto.Frame{}, err
	}
	return sessionproto.Frame{Type: sessionproto.TypeUpload, Upload: &u}, nil
}
