package relaytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/relay/internal/wire"
)

// listenerConn is one listener's control channel.
type listenerConn struct {
	id      string
	hc      *hybridConn
	host    string        // the namespace host it connected to; addresses it is given use it
	ready   bool          // 101 sent; guarded by Server.mu
	wsSet   chan struct{} // closed once ws is set
	ws      *websocket.Conn
	writeMu sync.Mutex
	gone    chan struct{}

	mu      sync.Mutex
	waiting map[string]*rendezvous

	// dropped asks the connection's goroutine to close it: with dropCode, or
	// abruptly when dropCode is -1. It works before the handshake finished.
	dropped  chan struct{}
	dropOnce sync.Once
	dropCode websocket.StatusCode
	dropWhy  string
}

// onHijack calls hook just before the handshake response goes out (net/http
// flushes the 101 inside Hijack).
type onHijack struct {
	http.ResponseWriter
	hook func()
}

func (o onHijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	o.hook()
	return http.NewResponseController(o.ResponseWriter).Hijack()
}

func (l *listenerConn) drop(code websocket.StatusCode, why string) {
	l.dropOnce.Do(func() {
		l.dropCode, l.dropWhy = code, why
		close(l.dropped)
	})
}

func (l *listenerConn) send(ctx context.Context, m wire.Message, body []byte) error {
	select {
	case <-l.wsSet:
	case <-l.gone:
		return errors.New("listener gone")
	case <-ctx.Done():
		return ctx.Err()
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	return wire.Write(ctx, l.ws, m, body)
}

// rendezvous is a pending pairing: a sender's WebSocket waiting for the
// listener to dial in, or an HTTP request waiting for its response.
type rendezvous struct {
	accepted chan acceptResult // kind accept
	req      *wire.Request     // kind request
	body     []byte
	inline   bool // request already sent on the control channel
	resp     chan *response
}

type acceptResult struct {
	ws          *websocket.Conn
	subprotocol string // what the listener chose (its Sec-WebSocket-Protocol)
	status      int
	desc        string
}

type response struct {
	head *wire.Response
	body io.Reader
	done chan struct{}
}

func (s *Server) serveListen(w http.ResponseWriter, r *http.Request, path string) {
	// size: one listener exchange of the fake relay, step by step as the protocol runs.
	s.listens.Add(1)
	s.mu.Lock()
	hc, _ := s.findEntity(path)
	if hc == nil {
		s.mu.Unlock()
		fail(w, http.StatusNotFound, "EndpointNotFound: no hybrid connection at "+path)
		return
	}
	token, _ := tokenFrom(r, false)
	exp, err := s.authorize(token, r.Host, hc, Listen)
	if err != nil {
		s.mu.Unlock()
		ae := err.(*authError)
		fail(w, ae.status, ae.desc)
		return
	}
	if len(hc.listeners) >= MaxListeners {
		s.mu.Unlock()
		fail(w, http.StatusForbidden, "QuotaExceeded: the hybrid connection already has the maximum of 25 listeners (limit reached)")
		return
	}
	l := &listenerConn{id: r.URL.Query().Get(wire.ParamID), hc: hc, host: r.Host, gone: make(chan struct{}), dropped: make(chan struct{}), wsSet: make(chan struct{}), waiting: map[string]*rendezvous{}}
	hc.listeners[l] = struct{}{} // reserve the slot before the handshake
	s.mu.Unlock()

	// The listener counts as connected from the moment its 101 goes out, as
	// in the service; frames for it wait until the socket is set up.
	ws, err := websocket.Accept(onHijack{w, func() {
		s.mu.Lock()
		l.ready = true
		s.mu.Unlock()
	}}, r, &websocket.AcceptOptions{OnPingReceived: func(context.Context, []byte) bool {
		s.pings.Add(1)
		return !s.ignorePings.Load()
	}})
	if err != nil {
		s.removeListener(l)
		return
	}
	ws.SetReadLimit(wire.MaxControlBody + wire.MaxControlHeaders + 4096)
	s.mu.Lock()
	l.ws = ws
	s.mu.Unlock()
	close(l.wsSet)
	defer s.removeListener(l)
	defer ws.CloseNow()
	go func() {
		select {
		case <-l.dropped:
			if l.dropCode < 0 || ws.Close(l.dropCode, l.dropWhy) != nil {
				_ = ws.CloseNow()
			}
		case <-l.gone:
		}
	}()

	// An unrenewed token ends the channel with 1008 (policy violation).
	expire := time.AfterFunc(time.Until(exp), func() {
		_ = ws.Close(websocket.StatusPolicyViolation, "token expired")
	})
	defer expire.Stop()
	s.log.Debug("listener connected", "hc", hc.name, "id", l.id)

	ctx := context.Background()
	for {
		typ, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		if typ == websocket.MessageBinary && len(data) == 0 {
			// Microsoft's hyco-https ends every response with a final
			// binary frame, empty when the response had no body (its
			// OutgoingMessage.end), so a strict relay would drop it after
			// every 204. Whether Azure tolerates it is unverified (see
			// docs/relay.md, "Verify on Azure"); hyco-https is in
			// production use, so we tolerate it too.
			s.emptyFrames.Add(1)
			continue
		}
		var m wire.Message
		if typ != websocket.MessageText || json.Unmarshal(data, &m) != nil {
			_ = ws.Close(websocket.StatusUnsupportedData, "expected a JSON control message")
			return
		}
		switch {
		case m.RenewToken != nil:
			s.mu.Lock()
			refuse := s.refuseRenewals
			newExp, err := s.authorize(m.RenewToken.Token, l.host, hc, Listen)
			s.mu.Unlock()
			if refuse || err != nil {
				_ = ws.Close(websocket.StatusPolicyViolation, "token renewal refused")
				return
			}
			expire.Reset(time.Until(newExp))
			s.renewals.Add(1)
		case m.Response != nil:
			var body []byte
			if m.Response.Body {
				bt, b, err := ws.Read(ctx)
				if err != nil {
					return
				}
				if bt != websocket.MessageBinary || len(b) > wire.MaxControlBody {
					// Bodies over 64 kB must use a rendezvous socket.
					_ = ws.Close(websocket.StatusMessageTooBig, "response body over the control channel limit")
					return
				}
				body = b
			}
			l.mu.Lock()
			rv := l.waiting[m.Response.RequestID]
			l.mu.Unlock()
			if rv != nil {
				select {
				case rv.resp <- &response{head: m.Response, body: bytes.NewReader(body), done: make(chan struct{})}:
				default:
				}
			}
		default:
			_ = ws.Close(websocket.StatusPolicyViolation, "unexpected control message")
			return
		}
	}
}

// register makes a rendezvous findable by id (and, with l, by the
// listener's responses) until the returned function is called. It fails
// when id is already pending (a sender reused its sb-hc-id).
func (s *Server) register(id string, rv *rendezvous, l *listenerConn) (unregister func(), ok bool) {
	s.mu.Lock()
	if _, dup := s.pending[id]; dup {
		s.mu.Unlock()
		return nil, false
	}
	s.pending[id] = rv
	s.mu.Unlock()
	if l != nil {
		l.mu.Lock()
		l.waiting[id] = rv
		l.mu.Unlock()
	}
	return func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
		if l != nil {
			l.mu.Lock()
			delete(l.waiting, id)
			l.mu.Unlock()
		}
	}, true
}

func (s *Server) removeListener(l *listenerConn) {
	s.mu.Lock()
	delete(l.hc.listeners, l)
	s.mu.Unlock()
	close(l.gone)
	s.log.Debug("listener left", "hc", l.hc.name, "id", l.id)
}

// sender is a sender's request that passed the relay's checks.
type sender struct {
	hc       *hybridConn
	suffix   string        // the path after the entity name
	listener *listenerConn // the one chosen to serve it
	token    tokenSource   // where its token was (noToken when anonymous)
}

// senderEntity resolves the entity of a sender's request, checks its token
// and picks a listener; it answers the sender itself when one fails.
func (s *Server) senderEntity(w http.ResponseWriter, r *http.Request, path string, noListener int, httpMode bool) (sender, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hc, suffix := s.findEntity(path)
	if hc == nil {
		fail(w, http.StatusNotFound, "EndpointNotFound: no hybrid connection at "+path)
		return sender{}, false
	}
	src := noToken
	if hc.clientAuth {
		var token string
		token, src = tokenFrom(r, httpMode)
		if _, err := s.authorize(token, r.Host, hc, Send); err != nil {
			ae := err.(*authError)
			fail(w, ae.status, ae.desc)
			return sender{}, false
		}
	}
	l := pickListener(hc)
	if l == nil {
		fail(w, noListener, "There are no listeners connected for the endpoint")
		return sender{}, false
	}
	return sender{hc: hc, suffix: suffix, listener: l, token: src}, true
}

// serveConnect pairs a sender's WebSocket with a listener: it sends the
// listener an accept frame and holds the sender's handshake until the
// listener has dialed the rendezvous address.
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request, path string) {
	snd, ok := s.senderEntity(w, r, path, http.StatusNotFound, false)
	if !ok {
		return
	}
	l := snd.listener
	// "If the ID was supplied by the sender client, it is the sender
	// supplied value, otherwise it is a system generated value" (protocol
	// document, "Accept handshake").
	id := r.URL.Query().Get(wire.ParamID)
	if id == "" {
		id = newID()
	}
	rv := &rendezvous{accepted: make(chan acceptResult, 1)}
	unregister, ok := s.register(id, rv, nil)
	if !ok {
		fail(w, http.StatusBadRequest, "a connection with sb-hc-id "+id+" is already pending")
		return
	}
	defer unregister()

	q := stripSB(r.URL.Query())
	q.Set(wire.ParamAction, wire.ActionAccept)
	q.Set(wire.ParamID, id)
	address := s.wsScheme() + "://" + l.host + wire.PathPrefix + snd.hc.name + snd.suffix + "?" + q.Encode()
	// connectHeaders are "all HTTP headers that have been supplied to the
	// Relay endpoint by the sender" (protocol document), the WebSocket
	// handshake's included, as in the .NET SDK's example accept frame
	// (ListenerCommand.cs); Microsoft's hyco-ws listener refuses an accept
	// without Sec-WebSocket-Key. Only the relay's own token is removed.
	headers := map[string]string{"Host": r.Host}
	for k, v := range r.Header {
		if http.CanonicalHeaderKey(k) == http.CanonicalHeaderKey(wire.HeaderAuthorization) {
			continue
		}
		headers[k] = strings.Join(v, ", ")
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RendezvousTimeout)
	defer cancel()
	if err := l.send(ctx, wire.Message{Accept: &wire.Accept{Address: address, ID: id, ConnectHeaders: headers, RemoteEndpoint: remoteEndpoint(r)}}, nil); err != nil {
		fail(w, http.StatusNotFound, "There are no listeners connected for the endpoint (listener dropped)")
		return
	}
	var res acceptResult
	select {
	case res = <-rv.accepted:
	case <-ctx.Done():
		fail(w, http.StatusGatewayTimeout, "the listener did not accept the connection in time")
		return
	}
	if res.ws == nil {
		fail(w, res.status, res.desc)
		return
	}
	sws, err := websocket.Accept(w, r, s.streamAccept(res.subprotocol))
	if err != nil {
		_ = res.ws.CloseNow()
		return
	}
	pump(sws, res.ws)
}

// serveAccept is the listener dialing a rendezvous address, to accept or,
// with sb-hc-statusCode, to reject; a rejection is answered 410 Gone.
func (s *Server) serveAccept(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	rv := s.pending[q.Get(wire.ParamID)]
	delete(s.pending, q.Get(wire.ParamID))
	s.mu.Unlock()
	if rv == nil || rv.accepted == nil {
		fail(w, http.StatusNotFound, "the rendezvous is unknown or expired")
		return
	}
	code, desc := q.Get(wire.ParamStatusCode), q.Get(wire.ParamStatusDescription)
	if code == "" {
		// Microsoft's Node SDK (hyco-ws, hyco-https) rejects with the
		// unprefixed names, unlike the protocol document; accept both.
		code, desc = q.Get("statusCode"), q.Get("statusDescription")
	}
	if code != "" {
		status := http.StatusBadRequest
		if n, err := parseStatus(code); err == nil {
			status = n
		}
		rv.accepted <- acceptResult{status: status, desc: desc}
		fail(w, http.StatusGone, "rejected")
		return
	}
	// The listener accepts a subprotocol by naming it in its own handshake;
	// the relay echoes it to both sides ("it sets the header as the
	// WebSocket is established", protocol document; .NET's
	// RelayedHttpListenerContext.AcceptAsync, hyco-ws's accept).
	sub := strings.TrimSpace(r.Header.Get("Sec-WebSocket-Protocol"))
	ws, err := websocket.Accept(w, r, s.streamAccept(sub))
	if err != nil {
		rv.accepted <- acceptResult{status: http.StatusBadGateway, desc: "listener handshake failed"}
		return
	}
	rv.accepted <- acceptResult{ws: ws, subprotocol: sub}
}

// pump relays messages both ways, keeping their type, until one side closes;
// its close code is passed on to the other.
func pump(a, b *websocket.Conn) {
	a.SetReadLimit(-1)
	b.SetReadLimit(-1)
	var wg sync.WaitGroup
	wg.Add(2)
	copyDir := func(dst, src *websocket.Conn) {
		defer wg.Done()
		ctx := context.Background()
		buf := make([]byte, 64<<10)
		for {
			typ, rd, err := src.Reader(ctx)
			if err != nil {
				if code := websocket.CloseStatus(err); code != -1 {
					var ce websocket.CloseError
					reason := ""
					if asClose(err, &ce) {
						reason = ce.Reason
					}
					if dst.Close(code, reason) != nil {
						_ = dst.CloseNow()
					}
				} else {
					_ = dst.CloseNow()
				}
				return
			}
			wr, err := dst.Writer(ctx, typ)
			if err != nil {
				_ = src.CloseNow()
				return
			}
			if _, err := io.CopyBuffer(wr, onlyReader{rd}, buf); err != nil {
				_ = src.CloseNow()
				_ = dst.CloseNow()
				return
			}
			if err := wr.Close(); err != nil {
				_ = src.CloseNow()
				return
			}
		}
	}
	go copyDir(a, b)
	go copyDir(b, a)
	wg.Wait()
}

func stripSB(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		if !strings.HasPrefix(strings.ToLower(k), "sb-hc-") {
			out[k] = v
		}
	}
	return out
}

// onlyReader hides WriterTo/ReaderFrom so io.CopyBuffer uses the buffer.
type onlyReader struct{ io.Reader }

// remoteEndpoint is the sender's address as the service reports it to the
// listener, in accept and request commands alike (the .NET SDK reads it
// from both).
func remoteEndpoint(r *http.Request) *wire.RemoteEndpoint {
	host, port, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return nil
	}
	p, _ := strconv.Atoi(port)
	return &wire.RemoteEndpoint{Address: host, Port: p}
}
