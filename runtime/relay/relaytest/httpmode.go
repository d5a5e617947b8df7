package relaytest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/relay/internal/wire"
)

// maxRelayedBody bounds what the test relay buffers of one request body.
const maxRelayedBody = 256 << 20

// serveRelayedHTTP relays a sender's plain HTTP request (HTTP mode): on the
// control channel when it fits, else the listener is told to fetch it over a
// rendezvous socket.
func (s *Server) serveRelayedHTTP(w http.ResponseWriter, r *http.Request) {
	// size: one relayed HTTP exchange of the fake relay, step by step as the protocol runs.
	snd, ok := s.senderEntity(w, r, r.URL.Path, http.StatusBadGateway, true)
	if !ok {
		return
	}
	l := snd.listener
	s.requests.Add(1)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRelayedBody+1))
	if err != nil || len(body) > maxRelayedBody {
		fail(w, http.StatusRequestEntityTooLarge, "request body too large for the test relay")
		return
	}
	// requestHeaders: the sender's headers less the relay's token (the
	// Authorization header only when it was the token) and the RFC 7230
	// ones, with the relay added to Via (protocol document, "Request
	// operation", "Request message" and "HTTP request protocol").
	headers := map[string]string{"Host": r.Host}
	for k, v := range r.Header {
		switch {
		case wire.IsConnectionHeader(k), strings.EqualFold(k, wire.HeaderAuthorization),
			strings.EqualFold(k, "Authorization") && snd.token == fromAuthorization:
			continue
		}
		headers[k] = strings.Join(v, ", ")
	}
	headers["Via"] = via(r.Header.Get("Via"), r.Host)
	q := stripSB(r.URL.Query())
	target := r.URL.EscapedPath()
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	id := newID()
	hc := l.hc
	req := &wire.Request{
		Address:        s.wsScheme() + "://" + l.host + wire.PathPrefix + hc.name + "?" + wire.ParamAction + "=" + wire.ActionRequest + "&" + wire.ParamID + "=" + id,
		ID:             id,
		RequestTarget:  target,
		Method:         r.Method,
		RemoteEndpoint: remoteEndpoint(r),
		RequestHeaders: headers,
		Body:           len(body) > 0,
	}
	size := 0
	for k, v := range headers {
		size += len(k) + len(v) + 4
	}
	inline := len(body) <= wire.MaxControlBody && size <= wire.MaxControlHeaders
	rv := &rendezvous{req: req, body: body, inline: inline, resp: make(chan *response, 1)}
	unregister, _ := s.register(id, rv, l) // a fresh id is never pending
	defer unregister()

	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	if inline {
		var b []byte
		if req.Body {
			b = body
		}
		err = l.send(ctx, wire.Message{Request: req}, b)
	} else {
		s.rvReqs.Add(1)
		err = l.send(ctx, wire.Message{Request: &wire.Request{Address: req.Address, ID: id}}, nil)
	}
	if err != nil {
		fail(w, http.StatusBadGateway, "There are no listeners connected for the endpoint (listener dropped)")
		return
	}
	var resp *response
	select {
	case resp = <-rv.resp:
	case <-l.gone:
		fail(w, http.StatusBadGateway, "the listener disconnected before responding")
		return
	case <-ctx.Done():
		fail(w, http.StatusGatewayTimeout, "The listener did not respond within the request timeout")
		return
	}
	defer close(resp.done)
	for k := range resp.head.ResponseHeaders {
		if wire.IsConnectionHeader(k) {
			// "As with the request, RFC7230 defined headers MUST NOT be
			// used" (protocol document, "Responding to requests"). What
			// Azure does with them is not documented; failing the request
			// makes a listener that sends them fail its tests here.
			s.log.Warn("listener response carries an RFC 7230 header", "header", k)
			fail(w, http.StatusInternalServerError, "the listener's response carries the header "+k+", which the protocol forbids in responseHeaders (RFC 7230)")
			return
		}
	}
	for k, v := range resp.head.ResponseHeaders {
		w.Header().Set(k, v)
	}
	// The relay marks what comes from a listener with Via; its own errors
	// have none ("Whether the response originates from the service or from
	// the listener can be identified through presence of the Via header",
	// protocol document, "HTTP request protocol").
	w.Header().Set("Via", via(w.Header().Get("Via"), r.Host))
	w.WriteHeader(resp.head.StatusCode)
	if resp.head.Body && resp.body != nil {
		copyFlushing(w, resp.body)
	}
}

// copyFlushing streams a response body, flushing as frames arrive so
// streamed responses reach the sender as they are produced.
func copyFlushing(w http.ResponseWriter, r io.Reader) {
	f, _ := w.(http.Flusher)
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if f != nil {
				f.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// serveRequestRendezvous is the listener dialing a request's rendezvous
// address: to fetch a request too large for the control channel, or to send
// a response too large for it.
func (s *Server) serveRequestRendezvous(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rv := s.pending[r.URL.Query().Get(wire.ParamID)]
	s.mu.Unlock()
	if rv == nil || rv.req == nil {
		fail(w, http.StatusNotFound, "the rendezvous is unknown or expired")
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(-1)
	defer ws.CloseNow()
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	if !rv.inline {
		b, _ := json.Marshal(wire.Message{Request: rv.req})
		if ws.Write(ctx, websocket.MessageText, b) != nil {
			return
		}
		if rv.req.Body && ws.Write(ctx, websocket.MessageBinary, rv.body) != nil {
			return
		}
	}
	typ, data, err := ws.Read(ctx)
	if err != nil {
		return
	}
	var m wire.Message
	if typ != websocket.MessageText || json.Unmarshal(data, &m) != nil || m.Response == nil {
		_ = ws.Close(websocket.StatusUnsupportedData, "expected a response")
		return
	}
	resp := &response{head: m.Response, done: make(chan struct{})}
	if m.Response.Body {
		// The deadline is for the response head; the body streams as long
		// as it flows.
		bt, rd, err := ws.Reader(r.Context())
		if err != nil || bt != websocket.MessageBinary {
			return
		}
		resp.body = rd
	}
	select {
	case rv.resp <- resp:
	default:
		return
	}
	select {
	case <-resp.done:
	case <-r.Context().Done():
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
}

func parseStatus(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 {
		return 0, errors.New("bad status")
	}
	return n, nil
}

func asClose(err error, ce *websocket.CloseError) bool { return errors.As(err, ce) }

// via adds the relay, named by the namespace host, to a Via header value
// (RFC 7230, section 5.7.1).
func via(prior, host string) string {
	v := "1.1 " + hostname(host)
	if prior != "" {
		v = prior + ", " + v
	}
	return v
}
