// Package opsclient is the typed Go client of the ops server API (package
// opsapi), used by the opsbot CLI. It is transport-agnostic: give it the
// relay sender's transports (relay.Sender for requests, its
// StreamTransport for WebSockets) to go through Azure Relay, or plain HTTP
// transports for an ops server's local port.
//
// Errors keep their cause: relay failures unwrap to relay.ErrNoListener,
// relay.ErrUnauthorized, relay.ErrUnreachable and friends; the API's own
// refusals are *APIError, which unwraps to ErrUnauthorized or ErrForbidden
// for 401 and 403; a stream that dropped ends with ErrStreamEnded or
// ErrStreamBroken. Resumable says which errors a follow may resume after,
// by type, and FollowRun and FollowEvents are the one loop that resumes
// dropped streams (the CLI has none of its own).
package opsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// maxBody bounds a response body the client reads.
const maxBody = 16 << 20

// Errors *APIError unwraps to.
var (
	// ErrUnauthorized: the API refused the operator credential (401).
	ErrUnauthorized = errors.New("operator credential refused")
	// ErrForbidden: the credential is valid but may not do this (403):
	// it lacks the role in the tenant, is not an admin, or would approve
	// its own run in a four-eyes workspace (APIError.Reason says which).
	ErrForbidden = errors.New("operator may not do this")
)

// APIError is an error response from the ops API.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
	RequestID  string
	// Reason, MissingRole and Tenant explain a 403 (see opsapitypes.ErrorDetail).
	Reason, MissingRole, Tenant string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("ops API answered %d", e.StatusCode)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RequestID != "" {
		s += " (request id " + e.RequestID + ")"
	}
	return s
}

// Unwrap maps 401 and 403 to ErrUnauthorized and ErrForbidden.
func (e *APIError) Unwrap() error {
	switch e.StatusCode {
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	}
	return nil
}

// Config configures a Client.
type Config struct {
	// BaseURL is the API's root. Through the relay its host is ignored
	// (use "http://relay"); for a local port it is that port's URL.
	BaseURL string
	// Transport carries requests. Through the relay: the *relay.Sender
	// (HTTP mode, 60 s deadline). Default http.DefaultTransport.
	Transport http.RoundTripper
	// StreamTransport carries WebSockets. Through the relay: the sender's
	// StreamTransport (no deadline). Default Transport.
	StreamTransport http.RoundTripper
	// Credential is the operator's API key or OAuth2 access token.
	Credential string
	// TokenSource, instead of Credential, returns an access token for each
	// request (it should cache; azidentity credentials do).
	TokenSource func(ctx context.Context) (string, error)
	// Timeout bounds each request (not streams). Default 30 s.
	Timeout time.Duration
	// UploadTimeout bounds a bundle upload (CreateRun). Default 10 min.
	UploadTimeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("opsclient config: BaseURL: %q must be an absolute http(s) URL", c.BaseURL)
	}
	if (c.Credential == "") == (c.TokenSource == nil) {
		return errors.New("opsclient config: Credential or TokenSource: exactly one is required")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("opsclient config: Timeout: %s must not be negative", c.Timeout)
	}
	if c.UploadTimeout < 0 {
		return fmt.Errorf("opsclient config: UploadTimeout: %s must not be negative", c.UploadTimeout)
	}
	return nil
}

// Client calls the ops API. Safe for concurrent use.
type Client struct {
	cfg    Config
	base   *url.URL
	http   *http.Client
	upload *http.Client
	stream *http.Client
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if cfg.StreamTransport == nil {
		cfg.StreamTransport = cfg.Transport
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.UploadTimeout == 0 {
		cfg.UploadTimeout = 10 * time.Minute
	}
	base, _ := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	return &Client{
		cfg:    cfg,
		base:   base,
		http:   &http.Client{Transport: cfg.Transport, Timeout: cfg.Timeout},
		upload: &http.Client{Transport: cfg.Transport, Timeout: cfg.UploadTimeout},
		stream: &http.Client{Transport: cfg.StreamTransport},
	}, nil
}

func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	return u.String()
}

// ErrNoToken wraps a TokenSource failure.
var ErrNoToken = errors.New("cannot get an operator access token")

func (c *Client) header(ctx context.Context) (http.Header, error) {
	cred := c.cfg.Credential
	if c.cfg.TokenSource != nil {
		var err error
		if cred, err = c.cfg.TokenSource(ctx); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoToken, err)
		}
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+cred)
	h.Set("Accept", "application/json")
	if c.cfg.UserAgent != "" {
		h.Set("User-Agent", c.cfg.UserAgent)
	}
	return h, nil
}

// get fetches path and decodes a 200 JSON body into out.
func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path, q), nil)
	if err != nil {
		return err
	}
	if req.Header, err = c.header(ctx); err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return unwrapURLError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("cannot read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return apiError(resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("cannot decode response of %s: %w", path, err)
	}
	return nil
}

// unwrapURLError drops net/http's *url.Error wrapper, whose message repeats
// the URL; the relay's typed errors stay reachable either way.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("request timed out: %w: %v", context.DeadlineExceeded, ue.Err)
		}
		return ue.Err
	}
	return err
}

func apiError(status int, body []byte) error {
	var eb opsapitypes.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code == "" {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		return &APIError{StatusCode: status, Message: msg}
	}
	d := eb.Error
	return &APIError{StatusCode: status, Code: d.Code, Message: d.Message, RequestID: d.RequestID, Reason: d.Reason, MissingRole: d.MissingRole, Tenant: d.Tenant}
}

// Status returns GET /v1/status.
func (c *Client) Status(ctx context.Context) (*opsapitypes.Status, error) {
	var st opsapitypes.Status
	if err := c.get(ctx, "/v1/status", nil, &st); err != nil {
		return nil, fmt.Errorf("cannot get status: %w", err)
	}
	return &st, nil
}

// Agents returns the agents of GET /v1/agents, optionally only one
// tenant's.
func (c *Client) Agents(ctx context.Context, tenant string) ([]opsapitypes.Agent, error) {
	list, err := c.AgentList(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return list.Agents, nil
}

// AgentList returns GET /v1/agents, optionally only one tenant's, with the
// deployed agent version when the server knows it.
func (c *Client) AgentList(ctx context.Context, tenant string) (*opsapitypes.AgentList, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	var list opsapitypes.AgentList
	if err := c.get(ctx, "/v1/agents", q, &list); err != nil {
		return nil, fmt.Errorf("cannot list agents: %w", err)
	}
	return &list, nil
}
