// Package sidecar bridges a connector to a local program over plain HTTP,
// so a program in any language can be a connector: messages from the cloud
// are POSTed to the program (Deliverer), and the program POSTs to the
// sidecar to send to the cloud or manage subscriptions (API).
//
// Delivery (sidecar → program): POST <deliver-to> with the body as is and
//
//	Content-Type          the message's content type
//	Bote-Message-Id       stable id; deduplicate on it
//	Bote-Correlation-Id   set on replies
//	Bote-Kind             targeted or broadcast
//	Bote-Topic            the topic of a broadcast
//	Bote-From             the cloud service that sent it
//	Bote-Deadline         set on a call (RFC 3339): the caller gives up
//	                      then, and so does the delivery
//	Bote-Expires-At       the message's time to live, when it has one
//	<name>                each application header, as is, except names
//	                      with '_' and names reserved in any spelling
//	                      (see Deliverer)
//
// The Bote-* headers come from the envelope's fields only (the connector
// has checked that it is addressed to this connector and sent by a cloud
// service); none of them can come from the message's own headers.
//
// A 2xx answer means handled (the message is deleted); anything else, or no
// answer within the timeout, means "try again later". When the message is
// a call (Bote-Deadline is set), the 2xx answer is the reply: its body
// and Content-Type go back to the calling service, correlated.
//
// Local API (program → sidecar), on a loopback address:
//
//	POST   /v1/send               body = message body; Content-Type kept;
//	                              Bote-Message-Id, Bote-Correlation-Id and
//	                              Bote-Reply-To set those fields;
//	                              Bote-Header-<name> sets application header
//	                              <name>; Bote-Delay and Bote-TTL (Go
//	                              durations) schedule it and bound its
//	                              life. 200 {"id": "..."} once the bus has
//	                              it; 400 with {"code","message"} when the
//	                              gateway refuses; 503 when not connected.
//	POST   /v1/call/{service}     a call to a cloud service: body,
//	                              Content-Type and Bote-Header-<name> as
//	                              for send; Bote-Timeout (a Go duration,
//	                              default 30s) is the deadline;
//	                              Bote-Correlation-Id is refused (400:
//	                              the service would take the call for a
//	                              reply). 200 with
//	                              the reply's body and Content-Type,
//	                              Bote-Message-Id and Bote-Correlation-Id;
//	                              504 when no reply came in time.
//	PUT    /v1/subscriptions/{topic}   subscribe (204)
//	DELETE /v1/subscriptions/{topic}   unsubscribe (204)
//	GET    /healthz               200 when connected, else 503
package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/sessionproto"
)

// Local API request headers.
const (
	HeaderMessageID     = "Bote-Message-Id"
	HeaderCorrelationID = "Bote-Correlation-Id"
	HeaderReplyTo       = "Bote-Reply-To"
	HeaderPrefix        = "Bote-Header-"
)

// DefaultMaxSendBytes bounds a local send's body unless API.MaxBytes says
// otherwise. Bodies over connector.MaxInlineBytes are uploaded by claim
// check, so this is about the sidecar's memory, not the session.
const DefaultMaxSendBytes = 64 << 20

// Deliverer is a connector.Handler that POSTs each message to a URL.
//
// It never forwards an application header whose name contains '_' (CGI,
// WSGI, Rack, nginx with underscores_in_headers and others read "bote_from"
// as "Bote-From", so such a name could pass for the gateway's own) nor one
// that is reserved in any spelling (envelope.IsReservedHeader): the gateway
// refuses both from connectors and botecloud.Client, but a message put on the
// bus by other means may carry them. The first one dropped is logged at
// debug level.
type Deliverer struct {
	URL    string
	Client *http.Client
	Logger *slog.Logger // default slog.Default()
	// Replier sends a call's reply: the local program's answer. Required
	// to answer calls (connector.Client is one); without it a call fails.
	Replier Replier
	// MaxReplyBytes bounds a reply read from the local program (default
	// DefaultMaxSendBytes).
	MaxReplyBytes int64

	dropOnce sync.Once
}

// Handle delivers m; a non-2xx answer is an error, so m comes back later.
func (d *Deliverer) Handle(ctx context.Context, m *connector.Message) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(m.Body))
	if err != nil {
		return fmt.Errorf("cannot deliver %s: %w", m.ID, err)
	}
	for k, v := range m.Headers {
		if strings.Contains(k, "_") || envelope.IsReservedHeader(k) {
			d.dropOnce.Do(func() {
				log := d.Logger
				if log == nil {
					log = slog.Default()
				}
				log.Debug("dropped an application header the local program could read as another (logged once)", "header", k, "message", m.ID)
			})
			continue
		}
		req.Header.Set(k, v)
	}
	if m.ContentType != "" {
		req.Header.Set("Content-Type", m.ContentType)
	}
	// Identity and routing headers come from the message's verified fields
	// only: each is set, or removed when its field is empty, so no header
	// from the message can stand in for one.
	for k, v := range map[string]string{
		envelope.HeaderMessageID:     m.ID,
		envelope.HeaderCorrelationID: m.CorrelationID,
		envelope.HeaderKind:          string(m.Kind),
		envelope.HeaderTopic:         m.Topic,
		envelope.HeaderFrom:          m.From.String(),
		envelope.HeaderDeadline:      formatTime(m.Deadline),
		envelope.HeaderExpiresAt:     formatTime(m.ExpiresAt),
	} {
		req.Header.Del(k)
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	client := d.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot deliver %s: %w", m.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("cannot deliver %s: %s answered %s", m.ID, d.URL, resp.Status)
	}
	if m.Deadline.IsZero() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	return d.reply(ctx, m, resp)
}

// Gateway is what the local API needs of a connector.Client.
type Gateway interface {
	Send(ctx context.Context, m connector.OutMessage) (string, error)
	Call(ctx context.Context, service string, m connector.OutMessage) (*connector.Message, error)
	Subscribe(ctx context.Context, topic string) error
	Unsubscribe(ctx context.Context, topic string) error
	Connected() bool
}

// API serves the local HTTP API.
type API struct {
	Gateway Gateway
	// Wait bounds how long a request waits for a session (default 10s).
	Wait time.Duration
	// MaxBytes bounds a send's body (default DefaultMaxSendBytes).
	MaxBytes int64
}

// Handler returns the API's routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/send", a.send)
	mux.HandleFunc("POST /v1/call/{service}", a.call)
	mux.HandleFunc("PUT /v1/subscriptions/{topic}", a.subscription(true))
	mux.HandleFunc("DELETE /v1/subscriptions/{topic}", a.subscription(false))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.Gateway.Connected() {
			writeError(w, http.StatusServiceUnavailable, "not_connected", "no session with the gateway")
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

func (a *API) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	wait := a.Wait
	if wait == 0 {
		wait = 10 * time.Second
	}
	return context.WithTimeout(r.Context(), wait)
}

// outMessage reads the message a local request sends; on failure it has
// written the error answer.
func (a *API) outMessage(w http.ResponseWriter, r *http.Request) (connector.OutMessage, bool) {
	limit := a.MaxBytes
	if limit == 0 {
		limit = DefaultMaxSendBytes
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "cannot read body")
		return connector.OutMessage{}, false
	}
	if int64(len(body)) > limit {
		writeError(w, http.StatusRequestEntityTooLarge, sessionproto.CodeInvalidMessage, fmt.Sprintf("body exceeds %d bytes", limit))
		return connector.OutMessage{}, false
	}
	m := connector.OutMessage{
		ID: r.Header.Get(HeaderMessageID), CorrelationID: r.Header.Get(HeaderCorrelationID),
		ReplyTo: r.Header.Get(HeaderReplyTo), ContentType: r.Header.Get("Content-Type"), Body: body,
	}
	for name, d := range map[string]*time.Duration{HeaderDelay: &m.Delay, HeaderTTL: &m.TTL} {
		if v := r.Header.Get(name); v != "" {
			if *d, err = time.ParseDuration(v); err != nil || *d <= 0 {
				writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("%s %q must be a positive Go duration such as 90s", name, v))
				return connector.OutMessage{}, false
			}
		}
	}
	for k, vs := range r.Header {
		if name, ok := cutPrefixFold(k, HeaderPrefix); ok && len(vs) > 0 {
			if m.Headers == nil {
				m.Headers = map[string]string{}
			}
			m.Headers[strings.ToLower(name)] = vs[0]
		}
	}
	return m, true
}

func (a *API) send(w http.ResponseWriter, r *http.Request) {
	m, ok := a.outMessage(w, r)
	if !ok {
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	id, err := a.Gateway.Send(ctx, m)
	if err != nil {
		writeGatewayError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"id": id})
}

func (a *API) subscription(subscribe bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := a.ctx(r)
		defer cancel()
		op := a.Gateway.Unsubscribe
		if subscribe {
			op = a.Gateway.Subscribe
		}
		if err := op(ctx, r.PathValue("topic")); err != nil {
			writeGatewayError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func writeGatewayError(w http.ResponseWriter, err error) {
	var perr *sessionproto.Error
	switch {
	case errors.As(err, &perr):
		writeError(w, http.StatusBadRequest, perr.Code, perr.Message)
	case errors.Is(err, connector.ErrNotConnected):
		writeError(w, http.StatusServiceUnavailable, "not_connected", err.Error())
	default:
		writeError(w, http.StatusBadGateway, sessionproto.CodeUnavailable, err.Error())
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(sessionproto.Error{Code: code, Message: msg})
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) <= len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}
