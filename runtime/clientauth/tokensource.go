package clientauth

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultRefreshFraction is the share of a token's lifetime after which
// TokenSource fetches a new one.
const DefaultRefreshFraction = 0.8

// failureBackoff is how long a TokenSource that still holds a valid token
// waits after a failed refresh before trying again.
const failureBackoff = 5 * time.Second

const maxResponseBytes = 64 << 10

// OAuthError is an error response of the token endpoint (RFC 6749 section
// 5.2), or a failure to get a usable response at all (Code empty).
type OAuthError struct {
	StatusCode  int
	Code        string // "invalid_client", "invalid_grant", ...
	Description string
	// RetryAfter is the server's Retry-After, if it sent one.
	RetryAfter time.Duration
}

func (e *OAuthError) Error() string {
	code := e.Code
	if code == "" {
		code = "unexpected response"
	}
	msg := fmt.Sprintf("token endpoint: %s (HTTP %d)", code, e.StatusCode)
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// Temporary reports whether trying again later may succeed (rate limited or
// server trouble), as opposed to a rejected client that needs fixing.
func (e *OAuthError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// TokenSourceConfig configures a TokenSource.
type TokenSourceConfig struct {
	// TokenURL is the idp's token endpoint (issuer + "/oauth2/token").
	TokenURL string
	// ClientID is "tenant/connector".
	ClientID string
	// Key is the connector's private key.
	Key *ecdsa.PrivateKey
	// HTTPClient talks to the idp. Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// RefreshFraction of a token's lifetime after which a new one is
	// fetched. Default DefaultRefreshFraction.
	RefreshFraction float64
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives refresh failures that are bridged by the current
	// token. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports the first invalid field.
func (c TokenSourceConfig) Validate() error {
	u, err := url.Parse(c.TokenURL)
	if c.TokenURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("clientauth config: TokenURL %q must be an absolute http(s) URL", c.TokenURL)
	}
	if c.ClientID == "" {
		return errors.New("clientauth config: ClientID is required")
	}
	if c.Key == nil {
		return errors.New("clientauth config: Key is required")
	}
	if c.RefreshFraction < 0 || c.RefreshFraction >= 1 {
		return fmt.Errorf("clientauth config: RefreshFraction %v must be in (0, 1)", c.RefreshFraction)
	}
	return nil
}

// Token is an access token and when it expires.
type Token struct {
	AccessToken string
	Expiry      time.Time
}

// TokenSource gets access tokens with client assertions, caches the current
// one and fetches the next before it expires. It is safe for concurrent
// use; concurrent callers share one request.
type TokenSource struct {
	cfg TokenSourceConfig
	// sem is held while fetching; a channel so that waiting respects ctx.
	sem chan struct{}

	mu        sync.Mutex
	current   Token
	refreshAt time.Time
	retryAt   time.Time // after a failed refresh while current is valid
}

// NewTokenSource returns a TokenSource for cfg.
func NewTokenSource(cfg TokenSourceConfig) (*TokenSource, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.RefreshFraction == 0 {
		cfg.RefreshFraction = DefaultRefreshFraction
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &TokenSource{cfg: cfg, sem: make(chan struct{}, 1)}, nil
}

// Token returns a valid access token, fetching one if needed.
func (s *TokenSource) Token(ctx context.Context) (string, error) {
	t, err := s.TokenWithExpiry(ctx)
	return t.AccessToken, err
}

// TokenWithExpiry is Token with the token's expiry.
func (s *TokenSource) TokenWithExpiry(ctx context.Context) (Token, error) {
	if t, ok := s.cached(); ok {
		return t, nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return Token{}, fmt.Errorf("cannot get access token: %w", ctx.Err())
	}
	defer func() { <-s.sem }()
	if t, ok := s.cached(); ok { // another caller refreshed meanwhile
		return t, nil
	}

	start := s.cfg.Now()
	t, lifetime, err := s.fetch(ctx, start)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// A refresh that fails early is no outage: keep serving the token we
		// have while it lasts, and retry a little later.
		if s.current.AccessToken != "" && s.cfg.Now().Before(s.current.Expiry) {
			s.retryAt = s.cfg.Now().Add(failureBackoff)
			s.cfg.Logger.WarnContext(ctx, "cannot refresh access token, using the current one until it expires",
				"client_id", s.cfg.ClientID, "expires", s.current.Expiry, "err", err)
			return s.current, nil
		}
		return Token{}, err
	}
	s.current = t
	s.refreshAt = start.Add(time.Duration(float64(lifetime) * s.cfg.RefreshFraction))
	s.retryAt = time.Time{}
	return t, nil
}

// Invalidate drops the cached token, so the next call fetches a new one
// (for a token a service has just rejected).
func (s *TokenSource) Invalidate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current, s.refreshAt, s.retryAt = Token{}, time.Time{}, time.Time{}
}

func (s *TokenSource) cached() (Token, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current.AccessToken == "" {
		return Token{}, false
	}
	now := s.cfg.Now()
	if now.Before(s.refreshAt) || (now.Before(s.retryAt) && now.Before(s.current.Expiry)) {
		return s.current, true
	}
	return Token{}, false
}

func (s *TokenSource) fetch(ctx context.Context, now time.Time) (Token, time.Duration, error) {
	assertion, err := NewAssertion(s.cfg.Key, s.cfg.ClientID, s.cfg.TokenURL, now)
	if err != nil {
		return Token{}, 0, err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {s.cfg.ClientID},
		"client_assertion_type": {AssertionType},
		"client_assertion":      {assertion},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return Token{}, 0, fmt.Errorf("cannot build token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return Token{}, 0, fmt.Errorf("cannot request access token: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return Token{}, 0, fmt.Errorf("cannot read token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Token{}, 0, parseError(resp, body)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return Token{}, 0, &OAuthError{StatusCode: resp.StatusCode, Description: fmt.Sprintf("content type %q, want application/json", mt)}
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return Token{}, 0, &OAuthError{StatusCode: resp.StatusCode, Description: "cannot decode token response: " + err.Error()}
	}
	switch {
	case tr.AccessToken == "":
		return Token{}, 0, &OAuthError{StatusCode: resp.StatusCode, Description: "response has no access_token"}
	case !strings.EqualFold(tr.TokenType, "Bearer"):
		return Token{}, 0, &OAuthError{StatusCode: resp.StatusCode, Description: fmt.Sprintf("token_type %q, want Bearer", tr.TokenType)}
	case tr.ExpiresIn <= 0:
		return Token{}, 0, &OAuthError{StatusCode: resp.StatusCode, Description: "response has no positive expires_in"}
	}
	lifetime := time.Duration(tr.ExpiresIn) * time.Second
	return Token{AccessToken: tr.AccessToken, Expiry: now.Add(lifetime)}, lifetime, nil
}

func parseError(resp *http.Response, body []byte) error {
	e := &OAuthError{StatusCode: resp.StatusCode}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs >= 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	var eb struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		e.Code, e.Description = eb.Error, eb.Description
		return e
	}
	e.Description = strings.TrimSpace(string(body))
	if len(e.Description) > 200 {
		e.Description = e.Description[:200] + "..."
	}
	return e
}
