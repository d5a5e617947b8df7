package relaytest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/relay/internal/wire"
)

// Right is a claim a SAS rule or bearer token grants.
type Right string

// The rights of Relay authorization rules. Manage implies Listen and Send.
const (
	Listen Right = "Listen"
	Send   Right = "Send"
	Manage Right = "Manage"
)

type rule struct {
	key    string
	rights []Right
}

func (r rule) has(need Right) bool {
	for _, g := range r.rights {
		if g == need || g == Manage {
			return true
		}
	}
	return false
}

// authError is a refused token: the status the service would answer with.
type authError struct {
	status int
	desc   string
}

func (e *authError) Error() string { return fmt.Sprintf("%d %s", e.status, e.desc) }

// tokenSource says where a request's relay token was found.
type tokenSource int

const (
	noToken tokenSource = iota
	fromQuery
	fromServiceBusAuthorization
	fromAuthorization
)

// tokenFrom finds the token in the order the protocol document gives for
// HTTP-mode senders ("Request operation"): the sb-hc-token query parameter,
// then the ServiceBusAuthorization header, and only when neither is there
// (and authorization is on) the Authorization header, which otherwise
// passes to the listener as it is. WebSocket handshakes (listen, connect)
// carry the token in the first two only; their Authorization header is a
// connect header like any other.
func tokenFrom(r *http.Request, httpMode bool) (string, tokenSource) {
	if t := r.URL.Query().Get(wire.ParamToken); t != "" {
		return t, fromQuery
	}
	if t := r.Header.Get(wire.HeaderAuthorization); t != "" {
		return t, fromServiceBusAuthorization
	}
	if t := r.Header.Get("Authorization"); httpMode && t != "" {
		return t, fromAuthorization
	}
	return "", noToken
}

// authorize checks a token for an action on a hybrid connection and returns
// when it expires. host is the namespace host the client addressed: the
// token's audience must name it. Holding s.mu is required.
func (s *Server) authorize(token, host string, hc *hybridConn, need Right) (time.Time, error) {
	if token == "" {
		return time.Time{}, &authError{http.StatusUnauthorized, "MissingToken: the request has no authorization token"}
	}
	if g, ok := s.bearer[strings.TrimPrefix(token, "Bearer ")]; ok {
		if !g.has(need) {
			return time.Time{}, &authError{http.StatusForbidden, fmt.Sprintf("Unauthorized access. '%s' claim(s) are required to perform this operation.", need)}
		}
		return g.expires, nil
	}
	rest, ok := strings.CutPrefix(token, "SharedAccessSignature ")
	if !ok {
		return time.Time{}, &authError{http.StatusUnauthorized, "InvalidSignature: malformed token"}
	}
	fields := map[string]string{}
	for _, p := range strings.Split(rest, "&") {
		k, v, _ := strings.Cut(p, "=")
		fields[k] = v // sr stays encoded: the signature covers it as sent
	}
	sr, sig, se, skn := fields["sr"], fields["sig"], fields["se"], fields["skn"]
	if sr == "" || sig == "" || se == "" || skn == "" {
		return time.Time{}, &authError{http.StatusUnauthorized, "InvalidSignature: token lacks sr, sig, se or skn"}
	}
	keyName, _ := url.QueryUnescape(skn)
	rl, ok := hc.rules[keyName]
	if !ok {
		rl, ok = s.rules[keyName]
	}
	if !ok {
		return time.Time{}, &authError{http.StatusUnauthorized, fmt.Sprintf("InvalidSignature: unknown key name %q", keyName)}
	}
	mac := hmac.New(sha256.New, []byte(rl.key))
	mac.Write([]byte(sr + "\n" + se))
	want := mac.Sum(nil)
	gotSig, err := url.QueryUnescape(sig)
	if err != nil {
		return time.Time{}, &authError{http.StatusUnauthorized, "InvalidSignature: sig is not URL-encoded"}
	}
	got, err := base64.StdEncoding.DecodeString(gotSig)
	if err != nil || !hmac.Equal(got, want) {
		return time.Time{}, &authError{http.StatusUnauthorized, "InvalidSignature: the token has an invalid signature"}
	}
	secs, err := strconv.ParseInt(se, 10, 64)
	if err != nil {
		return time.Time{}, &authError{http.StatusUnauthorized, "InvalidSignature: se is not a number"}
	}
	exp := time.Unix(secs, 0)
	if !s.now().Before(exp) {
		return time.Time{}, &authError{http.StatusUnauthorized, "ExpiredToken: the token has expired"}
	}
	res, err := url.QueryUnescape(sr)
	if err != nil {
		return time.Time{}, &authError{http.StatusUnauthorized, "InvalidAudience: sr is not URL-encoded"}
	}
	if !audienceCovers(res, hostname(host), hc.name) {
		return time.Time{}, &authError{http.StatusUnauthorized, fmt.Sprintf("InvalidAudience: the token audience %q does not cover %q", res, hc.name)}
	}
	if !rl.has(need) {
		return time.Time{}, &authError{http.StatusForbidden, fmt.Sprintf("Unauthorized access. '%s' claim(s) are required to perform this operation.", need)}
	}
	return exp, nil
}

// audienceCovers reports whether a token signed for resource is valid for
// the entity: a token is valid for everything under its URI, whatever the
// scheme, case-insensitively.
func audienceCovers(resource, host, entity string) bool {
	norm := func(s string) string {
		s = strings.ToLower(s)
		if i := strings.Index(s, "://"); i >= 0 {
			s = s[i+3:]
		}
		if h, rest, ok := strings.Cut(s, "/"); ok {
			if i := strings.LastIndexByte(h, ':'); i >= 0 {
				h = h[:i]
			}
			s = h + "/" + rest
		} else {
			s += "/"
		}
		if !strings.HasSuffix(s, "/") {
			s += "/"
		}
		return s
	}
	return strings.HasPrefix(norm("http://"+host+"/"+entity), norm(resource))
}

// hostname is host without its port.
func hostname(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}
