package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/accesstoken"
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/gatewayserver/session"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/sessionproto"
)

// rawSession is a hand-driven protocol session, for sending what the
// connector package never would.
type rawSession struct {
	t     *testing.T
	ws    *websocket.Conn
	hello sessionproto.Hello
}

func (g *gateway) token(t *testing.T, tenant, id string) string {
	t.Helper()
	ts, err := clientauth.NewTokenSource(clientauth.TokenSourceConfig{TokenURL: g.tokenURL(), ClientID: registry.ClientID(tenant, id), Key: g.keys[registry.ClientID(tenant, id)]})
	require.NoError(t, err)
	tok, err := ts.Token(ctxFor(t, 10*time.Second))
	require.NoError(t, err)
	return tok
}

// dialRaw opens a session with token and returns it, or the HTTP status of
// the refused handshake.
func (g *gateway) dialRaw(t *testing.T, token string) (*rawSession, int) {
	t.Helper()
	return g.dialRawQuery(t, token, "")
}

// dialRawQuery is dialRaw with a query string on the session URL.
func (g *gateway) dialRawQuery(t *testing.T, token, query string) (*rawSession, int) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(g.replicas[0].URL, "http") + sessionproto.ConnectPath + query
	hdr := http.Header{}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	ws, resp, err := websocket.Dial(ctxFor(t, 10*time.Second), u, &websocket.DialOptions{HTTPHeader: hdr, Subprotocols: []string{sessionproto.Subprotocol}})
	if err != nil {
		require.NotNil(t, resp, "dial failed without an HTTP answer: %v", err)
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	ws.SetReadLimit(sessionproto.HardFrameLimit)
	s := &rawSession{t: t, ws: ws}
	f := s.read()
	require.Equal(t, sessionproto.TypeHello, f.Type)
	s.hello = *f.Hello
	return s, http.StatusSwitchingProtocols
}

func (s *rawSession) writeRaw(typ websocket.MessageType, data []byte) {
	s.t.Helper()
	require.NoError(s.t, s.ws.Write(ctxFor(s.t, 10*time.Second), typ, data))
}

func (s *rawSession) write(v any) {
	s.t.Helper()
	b, err := json.Marshal(v)
	require.NoError(s.t, err)
	s.writeRaw(websocket.MessageText, b)
}

func (s *rawSession) read() sessionproto.Frame {
	s.t.Helper()
	_, data, err := s.ws.Read(ctxFor(s.t, 10*time.Second))
	require.NoError(s.t, err)
	f, err := sessionproto.Decode(data)
	require.NoError(s.t, err)
	return f
}

// readReply skips nudges.
func (s *rawSession) readReply() sessionproto.Frame {
	s.t.Helper()
	for {
		if f := s.read(); f.Type != sessionproto.TypeNudge {
			return f
		}
	}
}

func requireErrorCode(t *testing.T, f sessionproto.Frame, code string) {
	t.Helper()
	require.Equal(t, sessionproto.TypeError, f.Type, "want error %s, got %+v", code, f)
	assert.Equal(t, code, f.Error.Code, f.Error.Message)
}

// TestAttackSpoofedIdentityHeaders: a connector claiming another identity
// through headers is refused with a clear error, audited, and nothing
// reaches the cloud; what it may send arrives stamped with its real identity.
func TestAttackSpoofedIdentityHeaders(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("victim", nil)
	s, _ := g.dialRaw(t, g.token(t, "tenant-a", "a1"))
	for i, h := range []string{"bote-tenant", "Bote-Connector", "bote-from", "X-Tenant-Id", "connector_id", "From"} {
		s.write(map[string]any{"type": "send", "id": "s" + string(rune('a'+i)), "message": map[string]any{
			"headers": map[string]string{h: "tenant-b"}, "body": base64.StdEncoding.EncodeToString([]byte("spoof")),
		}})
		requireErrorCode(t, s.readReply(), sessionproto.CodeIdentityHeader)
	}
	// Identity smuggled as extra JSON fields is simply not part of the
	// protocol: the message goes out as a1.
	s.write(map[string]any{"type": "send", "id": "x", "tenant": "tenant-b", "connector": "b1",
		"message": map[string]any{"id": "honest-1", "from": map[string]string{"tenant": "tenant-b", "connector": "b1"}, "tenant": "tenant-b"}})
	ack := s.readReply()
	require.Equal(t, sessionproto.TypeAck, ack.Type, "%+v", ack)
	m := receive(t, svc.arrived, 30*time.Second, "message at the cloud")
	assert.Equal(t, "honest-1", m.ID)
	assert.Equal(t, envelope.Identity{Tenant: "tenant-a", Connector: "a1"}, m.From)
	time.Sleep(500 * time.Millisecond)
	assert.Len(t, svc.all(), 1, "no spoofed message reached the cloud")
	_, err := g.replicas[0].Proc.WaitOutput("identity_header_rejected", 5*time.Second)
	assert.NoError(t, err, "the refusal is in the audit log")
}

// TestAttackQueueSASIsScopedToOwnQueue: the SAS URL a connector gets
// opens its own queue for reading only; another connector's queue, the
// cloud queue and adding messages are all refused by storage.
func TestAttackQueueSASIsScopedToOwnQueue(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("sas", nil)
	for _, c := range []string{"a1", "a2"} { // make both queues exist with a message each
		_, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", c, botecloud.OutMessage{Body: []byte("secret for " + c)})
		require.NoError(t, err)
	}
	own, _ := queuename.For(ids.ConnectorID{Tenant: "tenant-a", Connector: "a1"})
	other, _ := queuename.For(ids.ConnectorID{Tenant: "tenant-a", Connector: "a2"})
	require.Eventually(t, func() bool { return queueLength(t, g, other) == 1 && queueLength(t, g, own) == 1 }, 15*time.Second, 100*time.Millisecond)

	s, _ := g.dialRaw(t, g.token(t, "tenant-a", "a1"))
	s.write(sessionproto.Frame{Type: sessionproto.TypeQueueAccess, ID: "q"})
	f := s.readReply()
	require.Equal(t, sessionproto.TypeQueueAccess, f.Type)
	assert.Equal(t, own, f.QueueAccess.Queue)
	assert.WithinDuration(t, time.Now().Add(15*time.Minute), f.QueueAccess.ExpiresAt, time.Minute, "short-lived")
	sasURL, err := url.Parse(f.QueueAccess.URL)
	require.NoError(t, err)
	assert.Equal(t, "rp", sasURL.Query().Get("sp"), "read and process only")

	ownQ, err := azqueue.NewQueueClientWithNoCredential(f.QueueAccess.URL, nil)
	require.NoError(t, err)
	peek, err := ownQ.PeekMessages(ctxFor(t, 10*time.Second), nil)
	require.NoError(t, err, "the SAS opens the connector's own queue")
	require.Len(t, peek.Messages, 1)

	_, err = ownQ.EnqueueMessage(ctxFor(t, 10*time.Second), "forged", nil)
	assert.Error(t, err, "adding to its own queue is not allowed")

	for _, target := range []string{other, "bote-cloud", "bote-connectors"} {
		u := *sasURL
		u.Path = strings.Replace(u.Path, own, target, 1)
		q, err := azqueue.NewQueueClientWithNoCredential(u.String(), nil)
		require.NoError(t, err)
		_, err = q.DequeueMessages(ctxFor(t, 10*time.Second), &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr(int32(32))})
		assert.Error(t, err, "the SAS of %s must not open %s", own, target)
		_, err = q.PeekMessages(ctxFor(t, 10*time.Second), nil)
		assert.Error(t, err, "the SAS of %s must not peek %s", own, target)
	}
	assert.Equal(t, 1, queueLength(t, g, other), "a2's message is untouched")
}

func queueLength(t *testing.T, g *gateway, name string) int {
	t.Helper()
	q, err := azqueue.NewQueueClientFromConnectionString(g.emu.ConnectionString, name, nil)
	require.NoError(t, err)
	resp, err := q.PeekMessages(context.Background(), &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr(int32(32))})
	if err != nil {
		return -1
	}
	return len(resp.Messages)
}

// TestAttackCrossTenant: tenant A's token cannot subscribe in, send as, or
// even obtain a token for tenant B.
func TestAttackCrossTenant(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("tenancy", nil)
	a1 := g.connector("tenant-a", "a1")
	b1 := g.connector("tenant-b", "b1")
	require.NoError(t, b1.Subscribe(ctxFor(t, 10*time.Second), "chat"))

	// A raw subscribe naming tenant B lands in A: the frame has no tenant.
	s, _ := g.dialRaw(t, g.token(t, "tenant-a", "a1"))
	s.write(map[string]any{"type": "subscribe", "id": "s", "topic": "chat", "tenant": "tenant-b", "connector": "b1"})
	require.Equal(t, sessionproto.TypeAck, s.readReply().Type)
	_, err := svc.Broadcast(ctxFor(t, 10*time.Second), "tenant-b", "chat", botecloud.OutMessage{Body: []byte("B only")})
	require.NoError(t, err)
	assert.Equal(t, "B only", string(b1.next(t, 10*time.Second).Body))
	a1.none(t, time.Second)

	// Sending: whatever a1 claims, the cloud sees a1.
	_, err = a1.Send(ctxFor(t, 10*time.Second), connector.OutMessage{ReplyTo: "tenant-b/b1", Body: []byte("hi")})
	require.NoError(t, err)
	assert.Equal(t, envelope.Identity{Tenant: "tenant-a", Connector: "a1"}, (<-svc.arrived).From)

	// A connector cannot get a token for B with A's key, nor for a
	// connector that is not registered.
	for _, tc := range []struct{ clientID string }{{"tenant-b/b1"}, {"tenant-b/a1"}} {
		ts, err := clientauth.NewTokenSource(clientauth.TokenSourceConfig{TokenURL: g.tokenURL(), ClientID: tc.clientID, Key: g.keys["tenant-a/a1"]})
		require.NoError(t, err)
		_, err = ts.Token(ctxFor(t, 10*time.Second))
		assert.Error(t, err, "a1's key must not get a token as %s", tc.clientID)
	}
}

// idpSigningKey loads the idp's current signing key from its key
// directory, to forge tokens that are correctly signed but wrong otherwise.
func idpSigningKey(t *testing.T, g *gateway) (*ecdsa.PrivateKey, string) {
	t.Helper()
	dir := filepath.Join(g.dir, "idp-keys")
	var meta struct {
		Keys []struct {
			ID        string     `json:"kid"`
			Activated *time.Time `json:"activated"`
			Retired   *time.Time `json:"retired"`
		} `json:"keys"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "keys.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &meta))
	for _, k := range meta.Keys {
		if k.Activated != nil && k.Retired == nil {
			key, err := clientauth.LoadKeyFile(filepath.Join(dir, k.ID+".pem"))
			require.NoError(t, err)
			return key, k.ID
		}
	}
	t.Fatal("idp has no active signing key")
	return nil, ""
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestAttackBadTokensAtTheGateway: every token that is not a fresh ES256
// token from the idp for this audience is refused before a session exists.
func TestAttackBadTokensAtTheGateway(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	key, kid := idpSigningKey(t, g)
	now := time.Now()
	sign := func(issuer, audience string, at time.Time, ttl time.Duration) string {
		c, err := accesstoken.NewClaims(issuer, audience, "tenant-a", "a1", "jti-"+at.String(), at, ttl)
		require.NoError(t, err)
		tok, err := accesstoken.Sign(key, kid, c)
		require.NoError(t, err)
		return tok
	}
	claims := map[string]any{"iss": g.idpURL, "sub": "tenant-a/a1", "aud": "bote", "tenant": "tenant-a", "connector": "a1",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": "x"}
	attacker, err := clientauth.GenerateKey()
	require.NoError(t, err)
	forged, err := accesstoken.NewClaims(g.idpURL, "bote", "tenant-a", "a1", "f", now, 5*time.Minute)
	require.NoError(t, err)
	forgedTok, err := accesstoken.Sign(attacker, kid, forged)
	require.NoError(t, err)
	jwks := get(t, g.idpURL+"/.well-known/jwks.json")
	hsInput := b64(map[string]string{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + b64(claims)
	mac := hmac.New(sha256.New, []byte(jwks)) // the classic confusion: public key as HMAC secret
	mac.Write([]byte(hsInput))

	valid := g.token(t, "tenant-a", "a1")
	parts := strings.Split(valid, ".")
	tests := map[string]string{
		"none":                "",
		"garbage":             "not-a-jwt",
		"expired":             sign(g.idpURL, "bote", now.Add(-time.Hour), 10*time.Minute),
		"wrong audience":      sign(g.idpURL, "someone-else", now, 5*time.Minute),
		"wrong issuer":        sign("http://evil.example", "bote", now, 5*time.Minute),
		"not yet valid":       sign(g.idpURL, "bote", now.Add(time.Hour), 10*time.Minute),
		"alg none":            b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64(claims) + ".",
		"HS256 with JWKS key": hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)),
		"ES256 other key":     forgedTok,
		"tampered claims":     parts[0] + "." + b64(map[string]any{"iss": g.idpURL, "sub": "tenant-b/b1", "aud": "bote", "tenant": "tenant-b", "connector": "b1", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix()}) + "." + parts[2],
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			s, status := g.dialRaw(t, tok)
			assert.Nil(t, s)
			assert.Equal(t, http.StatusUnauthorized, status)
		})
	}
	// Control: the real token works, and the gateway still serves.
	s, status := g.dialRaw(t, valid)
	require.Equal(t, http.StatusSwitchingProtocols, status)
	assert.Equal(t, "a1", s.hello.Connector)
	out := g.replicas[0].Proc.Output()
	assert.Contains(t, out, "session_rejected", "refusals are audited")
}

// TestAttackAssertionsAtTheIdP: the end-to-end assertion attacks against
// the real idp: replay, expiry, a key that is not the client's.
func TestAttackAssertionsAtTheIdP(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	post := func(assertion, clientID string) int {
		form := url.Values{
			"grant_type": {"client_credentials"}, "client_id": {clientID},
			"client_assertion_type": {clientauth.AssertionType}, "client_assertion": {assertion},
		}
		resp, err := http.PostForm(g.tokenURL(), form)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	key := g.keys["tenant-a/a1"]
	fresh, err := clientauth.NewAssertion(key, "tenant-a/a1", g.tokenURL(), time.Now())
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, post(fresh, "tenant-a/a1"))
	assert.NotEqual(t, http.StatusOK, post(fresh, "tenant-a/a1"), "replayed assertion")

	old, err := clientauth.NewAssertion(key, "tenant-a/a1", g.tokenURL(), time.Now().Add(-10*time.Minute))
	require.NoError(t, err)
	assert.NotEqual(t, http.StatusOK, post(old, "tenant-a/a1"), "expired assertion")

	stolen, err := clientauth.NewAssertion(key, "tenant-b/b1", g.tokenURL(), time.Now())
	require.NoError(t, err)
	assert.NotEqual(t, http.StatusOK, post(stolen, "tenant-b/b1"), "assertion for b1 signed with a1's key")

	wrongAud, err := clientauth.NewAssertion(key, "tenant-a/a1", "http://elsewhere/oauth2/token", time.Now())
	require.NoError(t, err)
	assert.NotEqual(t, http.StatusOK, post(wrongAud, "tenant-a/a1"), "assertion for another audience")

	parts := strings.Split(fresh, ".")
	none := b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + parts[1] + "."
	assert.NotEqual(t, http.StatusOK, post(none, "tenant-a/a1"), "alg none assertion")
}

// TestAttackMalformedAndOversizeFrames: garbage gets a clear error frame,
// the session and everyone else keep working, and nothing is lost.
func TestAttackMalformedAndOversizeFrames(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("frames", pong)
	a2 := g.connector("tenant-a", "a2")
	s, _ := g.dialRaw(t, g.token(t, "tenant-a", "a1"))

	s.writeRaw(websocket.MessageText, []byte(`{"type":"send","id":"1","message":`))
	requireErrorCode(t, s.readReply(), sessionproto.CodeBadFrame)
	s.writeRaw(websocket.MessageBinary, []byte{0xff, 0x00, 0x13})
	requireErrorCode(t, s.readReply(), sessionproto.CodeBadFrame)
	s.write(map[string]any{"type": "send", "id": "2", "message": map[string]any{"body": "!!not base64!!"}})
	requireErrorCode(t, s.readReply(), sessionproto.CodeBadFrame)
	s.write(map[string]any{"type": "launch", "id": "3"})
	requireErrorCode(t, s.readReply(), sessionproto.CodeUnknownType)
	s.writeRaw(websocket.MessageText, []byte(`{"type":"send","id":"4","message":{"body":"`+strings.Repeat("A", sessionproto.MaxFrameBytes)+`"}}`))
	requireErrorCode(t, s.readReply(), sessionproto.CodeFrameTooLarge)

	// Meanwhile another connector is served normally.
	id, err := a2.Send(ctxFor(t, 10*time.Second), connector.OutMessage{Body: []byte("ping")})
	require.NoError(t, err)
	assert.Equal(t, id, a2.next(t, 10*time.Second).CorrelationID)

	// The abused session still works, and only its valid message got through.
	s.write(sessionproto.Frame{Type: sessionproto.TypeSend, ID: "5", Message: &sessionproto.Message{ID: "valid-after-garbage", Body: []byte("ok")}})
	require.Equal(t, sessionproto.TypeAck, s.readReply().Type)
	require.Eventually(t, func() bool { return len(svc.all()) == 2 }, 10*time.Second, 50*time.Millisecond)
	ids := []string{svc.all()[0].ID, svc.all()[1].ID}
	assert.ElementsMatch(t, []string{id, "valid-after-garbage"}, ids)

	// A frame beyond the hard limit ends that session only (1009).
	_ = s.ws.Write(ctxFor(t, 10*time.Second), websocket.MessageText, make([]byte, sessionproto.HardFrameLimit+1))
	rctx := ctxFor(t, 10*time.Second)
	err = nil
	for err == nil { // frames already on their way (a nudge for the pong) may come first
		_, _, err = s.ws.Read(rctx)
	}
	require.NotErrorIs(t, err, context.DeadlineExceeded, "the session is over")
	if status := websocket.CloseStatus(err); status != -1 { // -1: the close frame raced our write
		assert.Equal(t, websocket.StatusMessageTooBig, status)
	}
	_, err = g.replicas[0].Proc.WaitOutput("message too big", 5*time.Second)
	assert.NoError(t, err)
	_, err = a2.Send(ctxFor(t, 10*time.Second), connector.OutMessage{Body: []byte("ping")})
	require.NoError(t, err)
	a2.next(t, 10*time.Second)
}

// TestAttackTokenOfDisabledConnector: once a connector is disabled in the
// registry, its still-valid token (replayed by whoever holds it) opens no
// session and its open session is ended, well before the token expires.
// (The gateway looks at the registry every 100 ms instead of 5 s.)
func TestAttackTokenOfDisabledConnector(t *testing.T) {
	t.Parallel()
	g := newGateway(t, "--ping-interval", "1s", "--registry-poll", "100ms")
	tok := g.token(t, "tenant-a", "a1")
	s, status := g.dialRaw(t, tok)
	require.Equal(t, http.StatusSwitchingProtocols, status)

	g.writeRegistry(map[string]bool{"tenant-a/a1": true})
	_, _, err := s.ws.Read(ctxFor(t, 20*time.Second))
	assert.Equal(t, websocket.StatusCode(sessionproto.CloseRevoked), websocket.CloseStatus(err))

	again, status := g.dialRaw(t, tok)
	assert.Nil(t, again)
	assert.Equal(t, http.StatusForbidden, status, "the same token, replayed, opens nothing")
	_, err = g.replicas[0].Proc.WaitOutput("session_revoked", 5*time.Second)
	assert.NoError(t, err)

	// Others are unaffected.
	other, status := g.dialRaw(t, g.token(t, "tenant-a", "a2"))
	require.Equal(t, http.StatusSwitchingProtocols, status)
	assert.Equal(t, "a2", other.hello.Connector)
}

// TestAttackForeignUploadClaim: a connector cannot make the cloud read a
// blob that is not its own upload, and a body swapped after the claim was
// sent fails verification instead of reaching a handler.
func TestAttackForeignUploadClaim(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("uploads", nil)
	a2, _ := g.dialRaw(t, g.token(t, "tenant-a", "a2"))
	a2.write(sessionproto.Frame{Type: sessionproto.TypeUpload, ID: "u"})
	up := a2.readReply()
	require.Equal(t, sessionproto.TypeUpload, up.Type, "%+v", up)
	assert.Contains(t, up.Upload.URL, "sp=cw", "write-only")

	a1, _ := g.dialRaw(t, g.token(t, "tenant-a", "a1"))
	sha := strings.Repeat("0", 64)
	for i, blob := range []string{up.Upload.Blob, "2026-11-23/somebody-elses", "../bote-claims/x"} {
		a1.write(sessionproto.Frame{Type: sessionproto.TypeSend, ID: fmt.Sprint(i), Message: &sessionproto.Message{Claim: &sessionproto.Claim{Blob: blob, Size: 1, SHA256: sha}}})
		requireErrorCode(t, a1.readReply(), sessionproto.CodeInvalidMessage)
	}
	// Reading through an upload URL is refused by storage.
	resp, err := http.Get(up.Upload.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.NotEqual(t, http.StatusOK, resp.StatusCode)

	// a2 claims its own upload with a hash that does not match what is
	// there: the cloud never hands it to a handler.
	req, _ := http.NewRequest(http.MethodPut, up.Upload.URL, strings.NewReader("real"))
	req.Header.Set("x-ms-blob-type", "BlockBlob")
	req.Header.Set("x-ms-version", "2021-12-02")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	a2.write(sessionproto.Frame{Type: sessionproto.TypeSend, ID: "s", Message: &sessionproto.Message{Claim: &sessionproto.Claim{Blob: up.Upload.Blob, Size: 4, SHA256: sha}}})
	require.Equal(t, sessionproto.TypeAck, a2.readReply().Type)
	// Acked once it is on bote-cloud; once bote-cloud is empty the cloud
	// service has settled it.
	require.Eventually(t, func() bool { return storedMessages(t, g, bus.QueueCloud) == 0 }, 15*time.Second, 50*time.Millisecond)
	assert.Empty(t, svc.all(), "a claim that does not verify reaches no handler")
}

// spoofVariants spell reserved identity headers with other separators, case
// and an "x" prefix: many servers (CGI, WSGI, Rack, nginx with
// underscores_in_headers) read "bote_from" as "Bote-From".
var spoofVariants = []string{"bote_from", "Bote_Tenant", "bote.connector", "BOTE__FROM", "botefrom", "x_tenant_id", "X.Connector.Id", "x_from"}

// TestAttackHeaderVariants: every spelling of a reserved header is refused
// from a raw session, through the sidecar's local API and by botecloud.Client;
// one put on the bus by other means never reaches the sidecar's local
// program; and nothing but the honest messages arrives anywhere.
func TestAttackHeaderVariants(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("victim", nil)
	sc := g.sidecar("tenant-a", "a2")

	s, _ := g.dialRaw(t, g.token(t, "tenant-a", "a1"))
	for i, h := range spoofVariants {
		s.write(sessionproto.Frame{Type: sessionproto.TypeSend, ID: fmt.Sprint("raw-", i), Message: &sessionproto.Message{
			ID: fmt.Sprint("spoof-raw-", i), Headers: map[string]string{h: "tenant-b"}, Body: []byte("spoof")}})
		requireErrorCode(t, s.readReply(), sessionproto.CodeIdentityHeader)
	}
	for i, h := range spoofVariants {
		status, body := sc.send(t, "spoof", map[string]string{"Bote-Message-Id": fmt.Sprint("spoof-sidecar-", i), "Bote-Header-" + h: "tenant-b"})
		assert.Equal(t, http.StatusBadRequest, status, "%s: %s", h, body)
		assert.Contains(t, body, sessionproto.CodeIdentityHeader, h)
	}
	for _, h := range spoofVariants {
		_, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a2", botecloud.OutMessage{Headers: map[string]string{h: "tenant-b"}, Body: []byte("spoof")})
		assert.ErrorIs(t, err, envelope.ErrReservedHeader, h)
	}

	// A message put on the bus directly (a bus credential, not botecloud.Client)
	// with reserved names never gets past the gateway (TestAttackForgedOnTheBus);
	// one with only '_' names is routed, but the local program sees only
	// the gateway's own Bote-* headers and no name with '_'.
	d := g.busDriver(t)
	headers := map[string]string{"kind": "ping", "trace_id": "t1"}
	require.NoError(t, d.Send(ctxFor(t, 10*time.Second), bus.QueueConnectors, &envelope.Envelope{
		ID: "bypass-1", Kind: envelope.KindTargeted, Tenant: "tenant-a", Connector: "a2",
		From: &envelope.Identity{Service: "intruder"}, Headers: headers, Body: []byte("x"), CreatedAt: time.Now().UTC(),
	}, nil))
	var got http.Header
	select {
	case got = <-sc.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the sidecar's program got nothing")
	}
	var reserved []string
	for k := range got {
		assert.NotContains(t, k, "_", "a name with '_' reached the local program")
		if envelope.IsReservedHeader(k) {
			reserved = append(reserved, k)
		}
	}
	assert.ElementsMatch(t, []string{"Bote-Message-Id", "Bote-Kind", "Bote-From"}, reserved)
	assert.Equal(t, "intruder", got.Get("Bote-From"))
	assert.Equal(t, "bypass-1", got.Get("Bote-Message-Id"))
	assert.Equal(t, "ping", got.Get("Kind"))
	_, err := sc.Proc.WaitOutput("dropped an application header", 5*time.Second)
	assert.NoError(t, err, "the drop is logged at debug level")

	// Honest messages still go through, stamped with the real identity.
	s.write(sessionproto.Frame{Type: sessionproto.TypeSend, ID: "ok", Message: &sessionproto.Message{ID: "honest-raw", Headers: map[string]string{"trace-id": "1"}}})
	require.Equal(t, sessionproto.TypeAck, s.readReply().Type)
	status, body := sc.send(t, "ok", map[string]string{"Bote-Message-Id": "honest-sidecar", "Bote-Header-Trace-Id": "2"})
	require.Equal(t, http.StatusOK, status, body)
	require.Eventually(t, func() bool { return len(svc.all()) == 2 }, 15*time.Second, 50*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	from := map[string]envelope.Identity{}
	for _, m := range svc.all() {
		from[m.ID] = m.From
		for k := range m.Headers {
			assert.False(t, envelope.IsReservedHeader(k), "%s reached the cloud on %s", k, m.ID)
		}
	}
	assert.Equal(t, map[string]envelope.Identity{
		"honest-raw":     {Tenant: "tenant-a", Connector: "a1"},
		"honest-sidecar": {Tenant: "tenant-a", Connector: "a2"},
	}, from, "only the honest messages reached the cloud")
	assert.Len(t, sc.all(), 1, "the program got only the bypass message")
	out := g.replicas[0].Proc.Output()
	assert.GreaterOrEqual(t, strings.Count(out, "identity_header_rejected"), 2*len(spoofVariants), "every refusal is audited")
}

// TestAttackSessionFlood: one token opening 300 sessions holds at most the
// per-connector cap on the gateway, the newest; the older ones are closed
// with 4004; the sessions gauge is exact; and another connector's session
// is never touched.
func TestAttackSessionFlood(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("flood", pong)
	a2 := g.connector("tenant-a", "a2")
	w := g.replicas[0]
	require.Equal(t, 1.0, w.metric(t, "bote_gateway_sessions"))

	const flood, limit = 300, session.DefaultMaxSessionsPerConnector
	tok := g.token(t, "tenant-a", "a1")
	sessions := make([]*rawSession, flood)
	start := time.Now()
	for i := range sessions {
		s, status := g.dialRaw(t, tok)
		require.Equal(t, http.StatusSwitchingProtocols, status, "session %d", i)
		sessions[i] = s
	}
	t.Logf("%d sessions opened with one token in %s", flood, time.Since(start).Round(time.Millisecond))
	for i, s := range sessions[:flood-limit] {
		ctx := ctxFor(t, 10*time.Second)
		var err error
		for err == nil {
			_, _, err = s.ws.Read(ctx)
		}
		require.Equal(t, websocket.StatusCode(sessionproto.CloseSessionLimit), websocket.CloseStatus(err), "session %d: %v", i, err)
	}
	require.Eventually(t, func() bool { return w.metric(t, "bote_gateway_sessions") == float64(1+limit) }, 15*time.Second, 100*time.Millisecond,
		"the gauge counts a2 and the %d newest sessions", limit)
	assert.Equal(t, float64(flood-limit), w.metric(t, "bote_gateway_sessions_evicted_total"))

	// The newest sessions work; so does a2, on the session it had.
	for i, s := range sessions[flood-limit:] {
		s.write(sessionproto.Frame{Type: sessionproto.TypeSend, ID: "s", Message: &sessionproto.Message{ID: fmt.Sprint("newest-", i), Body: []byte("hi")}})
		require.Equal(t, sessionproto.TypeAck, s.readReply().Type)
	}
	id, err := a2.Send(ctxFor(t, 10*time.Second), connector.OutMessage{Body: []byte("ping")})
	require.NoError(t, err)
	assert.Equal(t, id, a2.next(t, 10*time.Second).CorrelationID)
	require.Eventually(t, func() bool { return len(svc.all()) == limit+1 }, 15*time.Second, 50*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	assert.Len(t, svc.all(), limit+1, "nothing else reached the cloud")
	assert.Equal(t, 1.0+float64(limit), w.metric(t, "bote_gateway_sessions"))

	out := w.Proc.Output()
	assert.Equal(t, flood-limit, strings.Count(out, `"event":"session_evicted"`), "every eviction is audited")
	a2Opened := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"msg":"session opened"`) && strings.Contains(line, `"connector":"a2"`) {
			a2Opened++
		}
	}
	assert.Equal(t, 1, a2Opened, "a2 kept its one session")
}
