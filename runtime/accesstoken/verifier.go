package accesstoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/registry"
)

// Verifier defaults.
const (
	DefaultLeeway                = 30 * time.Second
	DefaultRefreshInterval       = 10 * time.Minute
	DefaultUnknownKeyRefreshRate = 30 * time.Second
	maxLeeway                    = 5 * time.Minute
	unknownKeyFetchTimeout       = 5 * time.Second
)

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Issuer is the idp's issuer URL; tokens must carry it as iss.
	Issuer string
	// Audience tokens must name in aud. Default DefaultAudience.
	Audience string
	// JWKSURL is where the idp publishes its keys
	// (Issuer + "/.well-known/jwks.json").
	JWKSURL string
	// HTTPClient fetches the JWKS. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Leeway absorbs clock skew on exp, nbf and iat. Default DefaultLeeway,
	// at most 5 minutes.
	Leeway time.Duration
	// RefreshInterval is how often the JWKS is fetched in the background.
	// Default DefaultRefreshInterval.
	RefreshInterval time.Duration
	// UnknownKeyRefreshInterval is the least time between two fetches of the
	// JWKS caused by tokens naming a key the cache does not hold, so that
	// garbage tokens cannot make the verifier hammer the idp. A token that
	// arrives while the limit holds is rejected at once, not queued.
	// Default DefaultUnknownKeyRefreshRate.
	UnknownKeyRefreshInterval time.Duration
	// SubjectOnly accepts tokens without tenant and connector claims (for
	// bearer tokens of operators rather than connectors). Claims that are
	// present must still agree with sub.
	SubjectOnly bool
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives JWKS refresh failures. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports the first invalid field.
func (c VerifierConfig) Validate() error {
	if c.Issuer == "" {
		return errors.New("accesstoken config: Issuer is required")
	}
	if c.JWKSURL == "" {
		return errors.New("accesstoken config: JWKSURL is required")
	}
	u, err := url.Parse(c.JWKSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("accesstoken config: JWKSURL %q must be an absolute http(s) URL", c.JWKSURL)
	}
	if c.Leeway < 0 || c.Leeway > maxLeeway {
		return fmt.Errorf("accesstoken config: Leeway %s must be between 0 and %s", c.Leeway, maxLeeway)
	}
	if c.RefreshInterval < 0 {
		return fmt.Errorf("accesstoken config: RefreshInterval %s must not be negative", c.RefreshInterval)
	}
	if c.UnknownKeyRefreshInterval < 0 {
		return fmt.Errorf("accesstoken config: UnknownKeyRefreshInterval %s must not be negative", c.UnknownKeyRefreshInterval)
	}
	return nil
}

func (c *VerifierConfig) setDefaults() {
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.UnknownKeyRefreshInterval == 0 {
		c.UnknownKeyRefreshInterval = DefaultUnknownKeyRefreshRate
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Verifier checks access tokens against the idp's published keys. It is
// safe for concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
}

// NewVerifier fetches the JWKS once and keeps it fresh in the background
// until ctx is done. An unreachable idp at start is not an error: the first
// token verified triggers a fetch, so services may start in any order.
func NewVerifier(ctx context.Context, cfg VerifierConfig) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	kf, err := NewKeyCache(ctx, cfg.JWKSURL, cfg.HTTPClient, cfg.RefreshInterval, cfg.UnknownKeyRefreshInterval, cfg.Logger)
	if err != nil {
		return nil, err
	}
	return &Verifier{
		cfg:  cfg,
		keys: kf,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{Algorithm}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(cfg.Now),
		),
	}, nil
}

// NewKeyCache returns a JWKS-backed key lookup for golang-jwt that fetches
// jwksURL now (failure is logged, not returned), every refreshInterval in the
// background until ctx is done, and again when a token names an unknown kid,
// but at most once per unknownKeyInterval. A token that meets the limit is
// rejected at once unless the limit frees within the fetch timeout (5 s).
// Verifier uses it; it is exported for verifiers of other token families
// (operator tokens) so that they share the same cache behaviour.
func NewKeyCache(ctx context.Context, jwksURL string, client *http.Client, refreshInterval, unknownKeyInterval time.Duration, logger *slog.Logger) (keyfunc.Keyfunc, error) {
	noErrFirst := true
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURL}, keyfunc.Override{
		Client:                    client,
		HTTPTimeout:               client.Timeout,
		NoErrorReturnFirstHTTPReq: &noErrFirst,
		RefreshInterval:           refreshInterval,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(unknownKeyInterval), 1),
		// jwkset bounds both the wait for the limiter and the fetch itself
		// by this one timeout, so it must leave room for a real HTTP round
		// trip on a loaded machine (a millisecond does not). The limiter
		// never sleeps beyond it: a token that would have to wait longer is
		// rejected at once.
		RateLimitWaitMax: unknownKeyFetchTimeout,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				logger.WarnContext(ctx, "cannot refresh JWKS", "url", u, "err", err)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot set up JWKS cache for %s: %w", jwksURL, err)
	}
	return kf, nil
}

// Verify checks rawToken and returns its claims. Errors wrap ErrMissing,
// ErrExpired or ErrInvalid and say why, without echoing the token.
func (v *Verifier) Verify(ctx context.Context, rawToken string) (*Claims, error) {
	if rawToken == "" {
		return nil, fmt.Errorf("%w: empty token", ErrMissing)
	}
	if len(rawToken) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: token is %d bytes, the limit is %d", ErrInvalid, len(rawToken), MaxTokenBytes)
	}
	claims := &Claims{}
	lookup := v.keys.KeyfuncCtx(ctx)
	_, err := v.parser.ParseWithClaims(rawToken, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("token header has no kid")
		}
		key, err := lookup(t)
		if err != nil {
			if errors.Is(err, jwkset.ErrKeyNotFound) {
				return nil, fmt.Errorf("signing key %q is not published by the issuer", kid)
			}
			return nil, err
		}
		pub, ok := key.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("signing key %q is not an EC P-256 key", kid)
		}
		return pub, nil
	})
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, fmt.Errorf("%w: %v", ErrExpired, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := v.checkIdentity(claims); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return claims, nil
}

func (v *Verifier) checkIdentity(c *Claims) error {
	if c.Subject == "" {
		return errors.New("token has no sub")
	}
	if v.cfg.SubjectOnly && c.Tenant == "" && c.Connector == "" {
		return nil
	}
	if c.Tenant == "" || c.Connector == "" {
		return errors.New("token lacks the tenant or connector claim")
	}
	if err := ids.Validate("tenant", c.Tenant); err != nil {
		return err
	}
	if err := ids.Validate("connector", c.Connector); err != nil {
		return err
	}
	if c.Subject != registry.ClientID(c.Tenant, c.Connector) {
		return fmt.Errorf("sub %q does not match tenant %q and connector %q", c.Subject, c.Tenant, c.Connector)
	}
	return nil
}
