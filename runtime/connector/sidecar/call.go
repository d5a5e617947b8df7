package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
)

// Local API request headers of calls and scheduled sends.
const (
	// HeaderTimeout on a local call is how long to wait for the reply.
	HeaderTimeout = "Bote-Timeout"
	// HeaderDelay defers a send (connector.OutMessage.Delay).
	HeaderDelay = "Bote-Delay"
	// HeaderTTL bounds a message's life (connector.OutMessage.TTL).
	HeaderTTL = "Bote-TTL"
)

// Replier answers a call (connector.Client is one).
type Replier interface {
	Reply(ctx context.Context, req *connector.Message, m connector.OutMessage) (string, error)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return envelope.FormatTime(t)
}

// reply sends the local program's 2xx answer to a call back to the caller.
func (d *Deliverer) reply(ctx context.Context, m *connector.Message, resp *http.Response) error {
	if d.Replier == nil {
		return fmt.Errorf("cannot answer call %s: the sidecar has no replier", m.ID)
	}
	limit := d.MaxReplyBytes
	if limit == 0 {
		limit = DefaultMaxSendBytes
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("cannot read the answer to call %s: %w", m.ID, err)
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("cannot answer call %s: the answer exceeds %d bytes", m.ID, limit)
	}
	out := connector.OutMessage{ContentType: resp.Header.Get("Content-Type"), Body: body}
	if _, err := d.Replier.Reply(ctx, m, out); err != nil {
		return fmt.Errorf("cannot answer call %s: %w", m.ID, err)
	}
	return nil
}

// call serves POST /v1/call/{service}: the request is the call, the
// response the reply.
func (a *API) call(w http.ResponseWriter, r *http.Request) {
	timeout := 30 * time.Second
	if v := r.Header.Get(HeaderTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("%s %q must be a positive Go duration such as 5s", HeaderTimeout, v))
			return
		}
		timeout = d
	}
	service := r.PathValue("service")
	if err := (envelope.Identity{Service: service}).Validate(); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	m, ok := a.outMessage(w, r)
	if !ok {
		return
	}
	if m.CorrelationID != "" {
		writeError(w, http.StatusBadRequest, "bad_request", HeaderCorrelationID+" is not allowed on a call: "+connector.ErrCallCorrelated.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	reply, err := a.Gateway.Call(ctx, service, m)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "timeout", err.Error())
		return
	case err != nil:
		writeGatewayError(w, err)
		return
	}
	if reply.ContentType != "" {
		w.Header().Set("Content-Type", reply.ContentType)
	}
	w.Header().Set(HeaderMessageID, reply.ID)
	w.Header().Set(HeaderCorrelationID, reply.CorrelationID)
	_, _ = w.Write(reply.Body)
}
