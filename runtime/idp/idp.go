// Package idp is the token service connectors authenticate with: an OAuth2
// authorization server for the client credentials grant with private_key_jwt
// client authentication (RFC 6749, RFC 7523), that issues short-lived ES256
// access tokens (package accesstoken) and publishes its keys as a JWKS and
// an OpenID discovery document.
//
// Clients are the connectors of the registry file (package registry); each
// proves its identity with an ES256 assertion signed by its registered key.
// An assertion is accepted once: its jti is remembered until it expires.
// Every issuance and every refusal is written to an audit log.
//
// Routes, relative to the issuer URL:
//
//	POST /oauth2/token
//	GET  /.well-known/jwks.json
//	GET  /.well-known/openid-configuration
//	GET  /healthz, /readyz, /metrics
package idp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/botehq/platform/runtime/accesstoken"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/signingkeys"
)

// Paths of the endpoints, relative to the issuer.
const (
	TokenPath     = "/oauth2/token"
	JWKSPath      = "/.well-known/jwks.json"
	DiscoveryPath = "/.well-known/openid-configuration"
)

// Defaults.
const (
	DefaultMaxAssertionLifetime = 5 * time.Minute
	DefaultLeeway               = 30 * time.Second
	DefaultClientRate           = 1.0 // tokens per second per client
	DefaultClientBurst          = 10
	// DefaultGlobalRate and DefaultGlobalBurst let a fleet of 5,000
	// connectors whose tokens all expired during an outage get new ones at
	// once when it ends (a token costs one ECDSA verification, one
	// signature and, with a shared replay table, one Table Storage insert:
	// ~0.1 ms of CPU, 1,000/s is a twentieth of a storage account's
	// request target), and sustain 1,000 a second after that.
	DefaultGlobalRate   = 1000.0 // token requests per second, all clients
	DefaultGlobalBurst  = 5000
	DefaultMaxBodyBytes = 16 << 10
	maxTokenTTL         = time.Hour
)

// Clients looks up registered connectors by client id ("tenant/connector").
// *registry.Registry and *registry.Watcher implement it.
type Clients interface {
	Lookup(clientID string) (registry.Connector, bool)
}

// Config configures a Server.
type Config struct {
	// Issuer is the public base URL of the idp, without a trailing slash.
	// It is the iss of every token, and assertions must name Issuer +
	// TokenPath as their aud.
	Issuer string
	// Audience of issued tokens. Default accesstoken.DefaultAudience.
	Audience string
	// TokenTTL is the lifetime of issued tokens. Default
	// accesstoken.DefaultTTL, at most an hour. The key store must keep a
	// retired key at least this long.
	TokenTTL time.Duration
	// Keys signs tokens and lists the published keys. Required.
	Keys signingkeys.Store
	// Replay, if set, is the record of used assertions shared by every
	// replica (package replay); without it each replica remembers only
	// what it saw itself.
	Replay ReplayStore
	// Clients are the registered connectors. Required.
	Clients Clients
	// MaxAssertionLifetime refuses assertions whose exp is further ahead.
	// Default DefaultMaxAssertionLifetime.
	MaxAssertionLifetime time.Duration
	// Leeway absorbs client clock skew on exp and iat. Default
	// DefaultLeeway, at most a minute.
	Leeway time.Duration
	// ClientRate and ClientBurst bound the tokens one client obtains
	// (token bucket). Defaults DefaultClientRate and DefaultClientBurst.
	ClientRate  float64
	ClientBurst int
	// GlobalRate and GlobalBurst bound token requests of all callers
	// together, before any is authenticated: the guard against floods of
	// garbage. Defaults DefaultGlobalRate and DefaultGlobalBurst.
	GlobalRate  float64
	GlobalBurst int
	// MaxBodyBytes bounds a token request body. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger for operational logs; audit records go to it too, marked with
	// audit=true. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Metrics receives the idp's Prometheus collectors and is served at
	// /metrics. Default: a fresh registry with the Go and process
	// collectors.
	Metrics *prometheus.Registry
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	u, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "":
		return errors.New("idp config: Issuer is required")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return fmt.Errorf("idp config: Issuer %q must be an absolute http(s) URL", c.Issuer)
	case strings.HasSuffix(c.Issuer, "/") || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("idp config: Issuer %q must have no trailing slash, query or fragment", c.Issuer)
	case c.TokenTTL < 0 || c.TokenTTL > maxTokenTTL:
		return fmt.Errorf("idp config: TokenTTL %s must be between 1s and %s", c.TokenTTL, maxTokenTTL)
	case c.TokenTTL > 0 && c.TokenTTL < time.Second:
		return fmt.Errorf("idp config: TokenTTL %s must be at least 1s", c.TokenTTL)
	case c.Keys == nil:
		return errors.New("idp config: Keys is required")
	case c.Clients == nil:
		return errors.New("idp config: Clients is required")
	case c.MaxAssertionLifetime < 0 || c.MaxAssertionLifetime > 10*time.Minute:
		return fmt.Errorf("idp config: MaxAssertionLifetime %s must be between 0 and 10m", c.MaxAssertionLifetime)
	case c.Leeway < 0 || c.Leeway > time.Minute:
		return fmt.Errorf("idp config: Leeway %s must be between 0 and 1m", c.Leeway)
	case c.ClientRate < 0:
		return fmt.Errorf("idp config: ClientRate %v must not be negative", c.ClientRate)
	case c.ClientBurst < 0:
		return fmt.Errorf("idp config: ClientBurst %d must not be negative", c.ClientBurst)
	case c.GlobalRate < 0:
		return fmt.Errorf("idp config: GlobalRate %v must not be negative", c.GlobalRate)
	case c.GlobalBurst < 0:
		return fmt.Errorf("idp config: GlobalBurst %d must not be negative", c.GlobalBurst)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("idp config: MaxBodyBytes %d must not be negative", c.MaxBodyBytes)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Audience == "" {
		c.Audience = accesstoken.DefaultAudience
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = accesstoken.DefaultTTL
	}
	if c.MaxAssertionLifetime == 0 {
		c.MaxAssertionLifetime = DefaultMaxAssertionLifetime
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.ClientRate == 0 {
		c.ClientRate = DefaultClientRate
	}
	if c.ClientBurst == 0 {
		c.ClientBurst = DefaultClientBurst
	}
	if c.GlobalRate == 0 {
		c.GlobalRate = DefaultGlobalRate
	}
	if c.GlobalBurst == 0 {
		c.GlobalBurst = DefaultGlobalBurst
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
		c.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
}

// ReplayStore records used client assertions across replicas.
type ReplayStore interface {
	// Use records key until forgetAfter and reports false if it was
	// already recorded.
	Use(ctx context.Context, key string, forgetAfter time.Time) (bool, error)
}

// Server is the token service. It is an http.Handler.
type Server struct {
	cfg      Config
	tokenURL string
	audit    *slog.Logger
	global   *rate.Limiter
	clients  *clientLimiters
	replay   *replayCache
	mux      *http.ServeMux
	issued   prometheus.Counter
	denied   *prometheus.CounterVec
	decoy    *ecdsa.PublicKey // verifies assertions of unknown clients
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	decoy, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cannot generate decoy key: %w", err)
	}
	s := &Server{
		decoy:    &decoy.PublicKey,
		cfg:      cfg,
		tokenURL: cfg.Issuer + TokenPath,
		audit:    cfg.Logger.With(slog.Bool("audit", true)),
		global:   rate.NewLimiter(rate.Limit(cfg.GlobalRate), cfg.GlobalBurst),
		clients:  newClientLimiters(rate.Limit(cfg.ClientRate), cfg.ClientBurst),
		replay:   newReplayCache(),
		mux:      http.NewServeMux(),
		issued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bote_idp_tokens_issued_total", Help: "Access tokens issued.",
		}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bote_idp_token_requests_denied_total", Help: "Token requests refused, by reason.",
		}, []string{"reason"}),
	}
	if err := errors.Join(cfg.Metrics.Register(s.issued), cfg.Metrics.Register(s.denied)); err != nil {
		return nil, fmt.Errorf("cannot register idp metrics: %w", err)
	}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{Registry: cfg.Metrics}))
	s.mux.HandleFunc(TokenPath, s.handleToken)
	s.mux.HandleFunc("GET "+JWKSPath, s.handleJWKS)
	s.mux.HandleFunc("GET "+DiscoveryPath, s.handleDiscovery)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	return s, nil
}

// TokenURL is the token endpoint, the aud every assertion must carry.
func (s *Server) TokenURL() string { return s.tokenURL }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	keys, err := s.cfg.Keys.PublicKeys(r.Context())
	if err != nil {
		s.cfg.Logger.ErrorContext(r.Context(), "cannot list signing keys", "err", err)
		http.Error(w, "signing keys unavailable", http.StatusServiceUnavailable)
		return
	}
	out, err := signingkeys.JWKS(keys)
	if err != nil {
		s.cfg.Logger.ErrorContext(r.Context(), "cannot render JWKS", "err", err)
		http.Error(w, "signing keys unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	// Short: verifiers must see the next key well before it signs.
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Write(out)
}

// Discovery is the OpenID Provider metadata the idp publishes.
type Discovery struct {
	Issuer                            string   `json:"issuer"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
}

// Discovery returns the server's discovery document.
func (s *Server) Discovery() Discovery {
	es256 := []string{accesstoken.Algorithm}
	return Discovery{
		Issuer:                            s.cfg.Issuer,
		TokenEndpoint:                     s.tokenURL,
		JWKSURI:                           s.cfg.Issuer + JWKSPath,
		GrantTypesSupported:               []string{"client_credentials"},
		ResponseTypesSupported:            []string{"token"},
		SubjectTypesSupported:             []string{"public"},
		TokenEndpointAuthMethodsSupported: []string{"private_key_jwt"},
		TokenEndpointAuthSigningAlgs:      es256,
		IDTokenSigningAlgValuesSupported:  es256,
		ClaimsSupported:                   []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "tenant", "connector"},
	}
}

func (s *Server) handleDiscovery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, s.Discovery())
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.cfg.Keys.SigningKey(ctx); err != nil {
		s.cfg.Logger.WarnContext(ctx, "not ready: no signing key", "err", err)
		http.Error(w, "no signing key", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ready")
}
