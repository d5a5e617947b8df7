package agent

import (
	"context"
	"errors"
	"time"

	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/retry"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/sessionproto"
)

func (a *Agent) heartbeats(ctx context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		a.heartbeat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Agent) heartbeat(ctx context.Context) {
	hb := &runproto.Heartbeat{Capacity: a.cfg.Concurrency, Running: a.Running(), Labels: a.cfg.Labels, Version: a.cfg.Version, TerraformVersion: a.cfg.TerraformVersion, Draining: a.isDraining(), ProviderSources: true}
	// A heartbeat older than an interval is worthless: do not queue them.
	ctx, cancel := context.WithTimeout(ctx, a.cfg.HeartbeatInterval)
	defer cancel()
	if err := a.send(ctx, hb, ""); err != nil && ctx.Err() == nil {
		a.log.Warn("cannot send heartbeat", "err", err)
	}
}

// send encodes and sends one message; id, if set, makes retries
// recognisable as the same message.
func (a *Agent) send(ctx context.Context, m runproto.Message, id string) error {
	body, err := runproto.Encode(m)
	if err != nil {
		return err
	}
	if id == "" {
		id = envelope.NewID()
	}
	_, err = a.cfg.Sender.Send(ctx, connector.OutMessage{ID: id, ContentType: runproto.ContentType, Body: body})
	return err
}

// sendReliably sends m until the gateway took it, retrying with backoff,
// until the agent gives up delivering (shutdown bound).
func (a *Agent) sendReliably(m runproto.Message) error {
	id := envelope.NewID()
	for attempt := 1; ; attempt++ {
		err := a.send(a.deliver, m, id)
		switch {
		case err == nil:
			return nil
		case permanent(err), a.deliver.Err() != nil:
			return err
		}
		a.log.Warn("cannot send; retrying", "type", runproto.TypeOf(m), "attempt", attempt, "err", err)
		if retry.Sleep(a.deliver, retry.Backoff(100*time.Millisecond, 10*time.Second, attempt-1)) != nil {
			return err
		}
	}
}

// permanent reports a send error that a retry cannot fix: the message
// itself is refused.
func permanent(err error) bool {
	var de *runproto.DecodeError
	var pe *sessionproto.Error
	if errors.As(err, &de) {
		return true
	}
	if errors.As(err, &pe) {
		switch pe.Code {
		case sessionproto.CodeBadFrame, sessionproto.CodeFrameTooLarge, sessionproto.CodeUnknownType, sessionproto.CodeIdentityHeader, sessionproto.CodeInvalidMessage:
			return true
		}
	}
	return false
}

func (a *Agent) sendResult(r *runproto.Result) {
	if err := a.sendReliably(r); err != nil {
		a.log.Error("cannot report run result", "run", r.RunID, "claim", r.ClaimToken, "outcome", r.Outcome, "err", err)
	}
}
