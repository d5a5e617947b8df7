package idp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/botehq/platform/runtime/accesstoken"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/registry"
)

const maxJTILength = 256

// denial is a refused token request: the RFC 6749 error the client sees
// and the precise reason the audit log keeps.
type denial struct {
	status      int
	code        string // RFC 6749 error code
	description string // sent to the client
	reason      string // short machine-readable reason for the audit log
	detail      error  // for the audit log only
	retryAfter  time.Duration
}

// authFailed is the one description of every failure that would otherwise
// tell a caller whether a client id exists.
const authFailed = "client authentication failed"

func invalidRequest(reason, description string) *denial {
	return &denial{status: http.StatusBadRequest, code: "invalid_request", description: description, reason: reason}
}

func invalidClient(reason, description string, detail error) *denial {
	return &denial{status: http.StatusUnauthorized, code: "invalid_client", description: description, reason: reason, detail: detail}
}

func rateLimited(reason string, limit float64) *denial {
	retry := time.Duration(math.Ceil(1/limit)) * time.Second
	return &denial{
		status: http.StatusTooManyRequests, code: "temporarily_unavailable",
		description: fmt.Sprintf("rate limit exceeded; retry after %s", retry),
		reason:      reason, retryAfter: retry,
	}
}

// tokenResponse is the RFC 6749 section 5.1 success response.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	clientID, resp, d := s.token(w, r)
	// Values a caller controls are bounded before they reach the log.
	attrs := []any{slog.String("client_id", bounded(clientID, 2*ids.MaxLength+1)), slog.String("remote_addr", r.RemoteAddr)}
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		attrs = append(attrs, slog.String("forwarded_for", bounded(xff, 256))) // as reported, unverified
	}
	if d != nil {
		attrs = append(attrs, slog.String("reason", d.reason), slog.Int("status", d.status))
		if d.detail != nil {
			attrs = append(attrs, slog.String("err", bounded(d.detail.Error(), 512)))
		}
		s.audit.WarnContext(r.Context(), "token request denied", attrs...)
		s.denied.WithLabelValues(d.reason).Inc()
		if d.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(d.retryAfter/time.Second)))
		}
		if d.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		writeJSON(w, d.status, struct {
			Error       string `json:"error"`
			Description string `json:"error_description,omitempty"`
		}{d.code, d.description})
		return
	}
	attrs = append(attrs, slog.String("jti", resp.jti), slog.String("kid", resp.kid), slog.Time("expires_at", resp.expires))
	s.audit.InfoContext(r.Context(), "token issued", attrs...)
	s.issued.Inc()
	writeJSON(w, http.StatusOK, resp.body)
}

type issued struct {
	body    tokenResponse
	jti     string
	kid     string
	expires time.Time
}

// token handles one token request. clientID is the client the request
// claims to be (verified only if d is nil), for the audit log.
func (s *Server) token(w http.ResponseWriter, r *http.Request) (clientID string, resp issued, d *denial) {
	// size: one case per grant type, each checked where it is used.
	now := s.cfg.Now()
	if r.Method != http.MethodPost {
		return "", resp, &denial{status: http.StatusMethodNotAllowed, code: "invalid_request",
			description: "the token endpoint accepts POST only", reason: "method"}
	}
	if !s.global.AllowN(now, 1) {
		return "", resp, rateLimited("global_rate_limit", s.cfg.GlobalRate)
	}
	form, d := s.readForm(w, r)
	if d != nil {
		return "", resp, d
	}
	switch gt := form.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		return "", resp, invalidRequest("no_grant_type", "grant_type is required")
	default:
		return "", resp, &denial{status: http.StatusBadRequest, code: "unsupported_grant_type",
			description: "only grant_type=client_credentials is supported", reason: "unsupported_grant_type"}
	}
	if _, _, basic := r.BasicAuth(); basic || r.Header.Get("Authorization") != "" {
		return "", resp, invalidClient("other_auth_method", "only private_key_jwt client authentication is supported", nil)
	}
	switch at := form.Get("client_assertion_type"); at {
	case clientauth.AssertionType:
	case "":
		return "", resp, invalidRequest("no_assertion_type", "client_assertion_type is required")
	default:
		return "", resp, invalidClient("assertion_type", "client_assertion_type must be "+clientauth.AssertionType, nil)
	}
	assertion := form.Get("client_assertion")
	if assertion == "" {
		return "", resp, invalidRequest("no_assertion", "client_assertion is required")
	}

	claims, conn, d := s.authenticate(assertion, form.Get("client_id"), now)
	if claims != nil {
		clientID = claims.Issuer
	}
	if d != nil {
		return clientID, resp, d
	}
	replayKey := clientID + "\x00" + claims.ID
	if s.replay.seen(replayKey, now) {
		return clientID, resp, invalidClient("replay", "client_assertion was already used", nil)
	}
	if !s.clients.allow(clientID, now) {
		return clientID, resp, rateLimited("client_rate_limit", s.cfg.ClientRate)
	}
	forgetAfter := claims.ExpiresAt.Add(s.cfg.Leeway)
	if !s.replay.use(replayKey, forgetAfter, now) {
		return clientID, resp, invalidClient("replay", "client_assertion was already used", nil)
	}
	if s.cfg.Replay != nil {
		fresh, err := s.cfg.Replay.Use(r.Context(), replayKey, forgetAfter)
		if err != nil {
			// Fail closed: an unchecked assertion could be a replay.
			return clientID, resp, &denial{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
				description: "cannot check the assertion right now", reason: "replay_store", detail: err}
		}
		if !fresh {
			return clientID, resp, invalidClient("replay", "client_assertion was already used", nil)
		}
	}

	key, err := s.cfg.Keys.SigningKey(r.Context())
	if err != nil {
		return clientID, resp, &denial{status: http.StatusInternalServerError, code: "server_error",
			description: "cannot sign tokens right now", reason: "signing_key", detail: err}
	}
	tc, err := accesstoken.NewClaims(s.cfg.Issuer, s.cfg.Audience, conn.Tenant, conn.ID, "", now, s.cfg.TokenTTL)
	if err == nil {
		resp.body.AccessToken, err = accesstoken.Sign(key.Signer, key.ID, tc)
	}
	if err != nil {
		return clientID, resp, &denial{status: http.StatusInternalServerError, code: "server_error",
			description: "cannot sign tokens right now", reason: "sign", detail: err}
	}
	resp.body.TokenType = "Bearer"
	resp.body.ExpiresIn = int64(tc.ExpiresAt.Sub(now) / time.Second)
	resp.jti, resp.kid, resp.expires = tc.ID, key.ID, tc.ExpiresAt.Time
	return clientID, resp, nil
}

// readForm reads the urlencoded body: bounded, parameters not repeated
// (RFC 6749 section 3.2).
func (s *Server) readForm(w http.ResponseWriter, r *http.Request) (url.Values, *denial) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, invalidRequest("content_type", "the body must be application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			d := invalidRequest("body_too_large", fmt.Sprintf("the body exceeds %d bytes", s.cfg.MaxBodyBytes))
			d.status = http.StatusRequestEntityTooLarge
			return nil, d
		}
		return nil, invalidRequest("read_body", "cannot read the body")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, invalidRequest("malformed_body", "the body is not valid form encoding")
	}
	for k, v := range form {
		if len(v) > 1 {
			return nil, invalidRequest("repeated_parameter", fmt.Sprintf("parameter %q is repeated", k))
		}
	}
	return form, nil
}

// authenticate checks a client assertion (RFC 7523 section 3) and returns
// its claims and the connector it authenticates. claims is returned, with
// an unverified Issuer, even on some failures so the audit log can name the
// claimed client.
func (s *Server) authenticate(assertion, formClientID string, now time.Time) (*jwt.RegisteredClaims, registry.Connector, *denial) {
	var none registry.Connector
	claims := &jwt.RegisteredClaims{}
	unverified, _, err := jwt.NewParser().ParseUnverified(assertion, claims)
	if err != nil {
		return nil, none, invalidClient("malformed_assertion", "client_assertion is not a well-formed JWT", err)
	}
	if alg := unverified.Method.Alg(); alg != accesstoken.Algorithm {
		return claims, none, invalidClient("assertion_alg", "client_assertion must be signed with ES256", fmt.Errorf("alg %q", alg))
	}
	clientID := claims.Issuer
	if _, _, ok := registry.SplitClientID(clientID); !ok {
		return claims, none, invalidClient("assertion_iss", "client_assertion iss must be the client id", fmt.Errorf("iss %q", clientID))
	}
	if claims.Subject != clientID {
		return claims, none, invalidClient("assertion_sub", "client_assertion sub must equal iss", fmt.Errorf("sub %q, iss %q", claims.Subject, clientID))
	}
	if formClientID != "" && formClientID != clientID {
		return claims, none, invalidClient("client_id_mismatch", "client_id does not match the client_assertion", fmt.Errorf("client_id %q", formClientID))
	}
	conn, ok := s.cfg.Clients.Lookup(clientID)
	key, refusal := conn.PublicKey(), ""
	switch {
	case !ok:
		key, refusal = s.decoy, "unknown_client"
	case conn.Disabled:
		key, refusal = s.decoy, "disabled_client"
	}

	// The signature is checked even for a client that cannot succeed (against
	// a decoy key), so that response time does not tell which ids exist.
	verified := &jwt.RegisteredClaims{}
	_, err = jwt.NewParser(
		jwt.WithValidMethods([]string{accesstoken.Algorithm}),
		jwt.WithIssuer(clientID),
		jwt.WithSubject(clientID),
		jwt.WithAudience(s.tokenURL),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(s.cfg.Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	).ParseWithClaims(assertion, verified, func(*jwt.Token) (any, error) { return key, nil })
	if refusal != "" {
		return claims, none, invalidClient(refusal, authFailed, nil)
	}
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return claims, none, invalidClient("bad_signature", authFailed, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return claims, none, invalidClient("assertion_expired", "client_assertion has expired", err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return claims, none, invalidClient("assertion_no_exp", "client_assertion must have exp", err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return claims, none, invalidClient("assertion_aud", "client_assertion aud must be "+s.tokenURL, err)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		return claims, none, invalidClient("assertion_not_yet_valid", "client_assertion is not valid yet (check the client clock)", err)
	default:
		return claims, none, invalidClient("invalid_assertion", "client_assertion is invalid", err)
	}
	if len(verified.Audience) != 1 {
		return claims, none, invalidClient("assertion_aud", "client_assertion aud must be "+s.tokenURL+" alone", nil)
	}
	if ahead := verified.ExpiresAt.Sub(now); ahead > s.cfg.MaxAssertionLifetime+s.cfg.Leeway {
		return claims, none, invalidClient("assertion_exp_too_far", fmt.Sprintf("client_assertion exp may be at most %s ahead", s.cfg.MaxAssertionLifetime),
			fmt.Errorf("exp %s ahead", ahead.Round(time.Second)))
	}
	if verified.ID == "" || len(verified.ID) > maxJTILength {
		return claims, none, invalidClient("assertion_jti", fmt.Sprintf("client_assertion must have a jti of 1 to %d characters", maxJTILength), nil)
	}
	return verified, conn, nil
}

func bounded(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	out, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "cannot encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(out, '\n'))
}
