package relay

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/relay/internal/wire"
)

// requestDeadline is the relay's deadline for the head of an HTTP response
// (a test hook shortens it).
var requestDeadline = 60 * time.Second

// serveControlRequest answers a request that came whole on the control
// channel. The response goes back on the control channel when it fits,
// otherwise over a rendezvous socket to the request's address, which then
// carries this sender's later requests too.
func (l *Listener) serveControlRequest(ctx context.Context, c *control, req *wire.Request, body []byte) {
	headCtx, cancel := context.WithTimeout(ctx, requestDeadline)
	defer cancel()
	resp, finish, err := l.exchange(headCtx, req, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		l.log.Warn("cannot serve relayed request", "id", req.ID, "err", err)
		_ = c.send(ctx, wire.Message{Response: errorResponse(req.ID, err)}, nil)
		return
	}
	defer finish()
	head, small, fits, err := bufferSmall(resp)
	if err == nil {
		head.RequestID = req.ID
	}
	if err != nil {
		l.log.Warn("cannot read relayed response", "id", req.ID, "err", err)
		_ = c.send(ctx, wire.Message{Response: errorResponse(req.ID, err)}, nil)
		return
	}
	if fits {
		var b []byte
		if head.Body {
			b = small
		}
		if err := c.send(ctx, wire.Message{Response: head}, b); err != nil {
			l.log.Warn("cannot send relayed response", "id", req.ID, "err", err)
		}
		return
	}
	dctx, dcancel := context.WithTimeout(l.ctx, l.cfg.AcceptTimeout)
	ws, err := l.ep.dial(dctx, "request", req.Address, nil)
	dcancel()
	if err != nil {
		l.log.Warn("cannot open rendezvous for large response", "id", req.ID, "err", err)
		return
	}
	ws.SetReadLimit(-1)
	if err := writeResponse(l.ctx, ws, head, io.MultiReader(bytes.NewReader(small), resp.Body)); err != nil {
		l.log.Warn("cannot send relayed response", "id", req.ID, "err", err)
		_ = ws.CloseNow()
		return
	}
	finish()
	go l.serveRendezvous("", ws)
}

// serveRendezvous serves requests arriving on a rendezvous socket, one after
// another, until the relay closes it. address is dialed first when ws is nil.
func (l *Listener) serveRendezvous(address string, ws *websocket.Conn) {
	if ws == nil {
		ctx, cancel := context.WithTimeout(l.ctx, l.cfg.AcceptTimeout)
		var err error
		ws, err = l.ep.dial(ctx, "request", address, nil)
		cancel()
		if err != nil {
			l.log.Warn("cannot open rendezvous for large request", "err", err)
			return
		}
		ws.SetReadLimit(-1)
	}
	defer ws.CloseNow()
	for {
		typ, data, err := ws.Read(l.ctx)
		if err != nil {
			return
		}
		var m wire.Message
		if typ != websocket.MessageText || json.Unmarshal(data, &m) != nil || m.Request == nil {
			l.log.Warn("unexpected frame on rendezvous socket; closing it")
			_ = ws.Close(websocket.StatusUnsupportedData, "expected a request")
			return
		}
		if !l.serveOnRendezvous(ws, m.Request) {
			return
		}
	}
}

func (l *Listener) serveOnRendezvous(ws *websocket.Conn, req *wire.Request) bool {
	// The relay's 60 s deadline is for the response head; bodies stream for
	// as long as they take (the relay only limits idle time between frames).
	headCtx, cancel := context.WithTimeout(l.ctx, requestDeadline)
	defer cancel()
	var body io.Reader = http.NoBody
	size := int64(0)
	if req.Body {
		typ, r, err := ws.Reader(l.ctx)
		if err != nil || typ != websocket.MessageBinary {
			return false
		}
		body, size = r, -1
		defer func() { _, _ = io.Copy(io.Discard, r) }() // the next message must be a request
	}
	resp, finish, err := l.exchange(headCtx, req, body, size)
	if err != nil {
		l.log.Warn("cannot serve relayed request", "id", req.ID, "err", err)
		return writeResponse(l.ctx, ws, errorResponse(req.ID, err), nil) == nil
	}
	defer finish()
	head := responseHead(req.ID, resp)
	if err := writeResponse(l.ctx, ws, head, resp.Body); err != nil {
		l.log.Warn("cannot send relayed response", "id", req.ID, "err", err)
		return false
	}
	return true
}

// writeResponse sends a response frame and streams its body as one binary
// message of 64 kB frames.
func writeResponse(ctx context.Context, ws *websocket.Conn, head *wire.Response, body io.Reader) error {
	if body == nil {
		head.Body = false
	}
	b, err := json.Marshal(wire.Message{Response: head})
	if err != nil {
		return err
	}
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		return err
	}
	if !head.Body {
		return nil
	}
	w, err := ws.Writer(ctx, websocket.MessageBinary)
	if err != nil {
		return err
	}
	buf := make([]byte, wire.MaxControlBody)
	if _, err := io.CopyBuffer(w, body, buf); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}

// bufferSmall reads up to the control channel's limits. fits says whether
// the whole response (headers and body) can go on the control channel.
func bufferSmall(resp *http.Response) (*wire.Response, []byte, bool, error) {
	head := responseHead("", resp) // the caller sets RequestID
	buf := make([]byte, wire.MaxControlBody+1)
	n, err := io.ReadFull(resp.Body, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		err = nil
	case err != nil:
		return nil, nil, false, err
	}
	fits := n <= wire.MaxControlBody && headerSize(head.ResponseHeaders) <= wire.MaxControlHeaders
	head.Body = n > 0 || !fits
	return head, buf[:n], fits, nil
}

func headerSize(h map[string]string) int {
	n := 0
	for k, v := range h {
		n += len(k) + len(v) + 4
	}
	return n
}

// responseHead turns an http.Response into a response frame. It carries
// no RFC 7230 header, Content-Length included ("RFC7230 defined headers
// MUST NOT be used", protocol document): the relay frames the body for the
// sender. 502 and 504 are the relay's own statuses and must not come from a
// listener; they become 500 with the original reason kept in the
// description.
func responseHead(id string, resp *http.Response) *wire.Response {
	h := map[string]string{}
	for k, v := range resp.Header {
		if !wire.IsConnectionHeader(k) {
			h[k] = strings.Join(v, ", ")
		}
	}
	code, desc := resp.StatusCode, http.StatusText(resp.StatusCode)
	if code == http.StatusBadGateway || code == http.StatusGatewayTimeout {
		desc = fmt.Sprintf("%d %s from the application", code, desc)
		code = http.StatusInternalServerError
	}
	return &wire.Response{RequestID: id, StatusCode: code, StatusDescription: desc, ResponseHeaders: h, Body: true}
}

func errorResponse(id string, err error) *wire.Response {
	code := http.StatusInternalServerError
	if errors.Is(err, context.DeadlineExceeded) {
		code = http.StatusServiceUnavailable
	}
	return &wire.Response{RequestID: id, StatusCode: code, StatusDescription: "listener: " + err.Error()}
}

// exchange hands the request to whoever calls Accept (http.Server) as an
// HTTP/1.1 exchange on an in-memory connection and reads the response head
// within ctx. The body may take longer: it ends with the listener or when
// finish releases the connection after the body has been consumed.
func (l *Listener) exchange(ctx context.Context, r *wire.Request, body io.Reader, size int64) (*http.Response, func(), error) {
	hreq, err := toHTTPRequest(r, l.ep.hc, body, size)
	if err != nil {
		return nil, nil, err
	}
	server, client := net.Pipe()
	// The sender's address when the relay says it (http.Request.RemoteAddr).
	remote := cmp.Or(r.RemoteEndpoint.HostPort(), "request/"+r.ID)
	conn := &requestConn{Conn: server, local: l.Addr(), remote: relayAddr{s: remote}}
	select {
	case l.conns <- conn:
	case <-ctx.Done():
		_ = client.Close()
		return nil, nil, fmt.Errorf("cannot hand request %s to the server: %w", r.ID, ctx.Err())
	}
	stopHead := context.AfterFunc(ctx, func() { _ = client.Close() })
	stopLife := context.AfterFunc(l.ctx, func() { _ = client.Close() })
	finish := func() { stopHead(); stopLife(); _ = client.Close() }
	go func() {
		// The server may answer without reading the whole body and close;
		// the write error that follows is expected.
		_ = hreq.Write(client)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(client), hreq)
	if err != nil {
		finish()
		return nil, nil, fmt.Errorf("cannot read the server's response to request %s: %w", r.ID, err)
	}
	stopHead()
	return resp, finish, nil
}

// toHTTPRequest builds the request http.Server will read. The relayed path
// loses the hybrid connection name so handlers see the same paths whether a
// request came in HTTP mode or over a relayed stream. The relay strips
// Content-Length (an RFC 7230 header): a body that came on the control
// channel has the length of its frame, one streamed from a rendezvous has
// none (ContentLength -1), as on Azure.
func toHTTPRequest(r *wire.Request, hc string, body io.Reader, size int64) (*http.Request, error) {
	// The method goes into the request line as is: anything but an HTTP
	// token (RFC 9110 section 9.1) could rewrite what the server reads.
	if !isToken(r.Method) {
		return nil, fmt.Errorf("cannot relay request: method %q is not an HTTP token", r.Method)
	}
	target := r.RequestTarget
	if target == "" {
		target = "/"
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, fmt.Errorf("cannot parse request target %q: %w", target, err)
	}
	u.Path = stripEntity(u.Path, hc)
	if u.RawPath != "" {
		u.RawPath = stripEntity(u.RawPath, hc)
	}
	q := u.Query()
	changed := false
	for k := range q {
		if strings.HasPrefix(strings.ToLower(k), "sb-hc-") {
			q.Del(k)
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	hreq := &http.Request{
		Method:     r.Method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Close:      true,
	}
	for k, v := range r.RequestHeaders {
		hreq.Header.Set(k, v)
	}
	hreq.Host = hreq.Header.Get("Host")
	if hreq.Host == "" {
		hreq.Host = "relay"
	}
	for k := range hreq.Header {
		if wire.IsConnectionHeader(k) {
			hreq.Header.Del(k)
		}
	}
	hreq.Header.Del("Expect") // the relay already has the body
	if hreq.Header.Get("User-Agent") == "" {
		hreq.Header.Set("User-Agent", "") // keep Request.Write from inventing one
	}
	hreq.Body = io.NopCloser(body)
	hreq.ContentLength = size
	if size == 0 {
		hreq.Body = http.NoBody
	}
	return hreq, nil
}

// requestConn is the server side of one relayed HTTP exchange.
type requestConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *requestConn) LocalAddr() net.Addr  { return c.local }
func (c *requestConn) RemoteAddr() net.Addr { return c.remote }

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
