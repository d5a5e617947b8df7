package operatorauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/botehq/platform/runtime/accesstoken"
)

// DefaultAlgorithms are the JWS algorithms accepted for operator tokens:
// what real identity providers (Entra ID, Okta, Keycloak) sign with. alg
// "none" and the HMAC family are never accepted, whatever the config says.
var DefaultAlgorithms = []string{"RS256", "ES256"}

var allowedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// maxJWTBytes bounds the size of a token the validator looks at.
const maxJWTBytes = 16 << 10

// JWTConfig configures validation of OAuth2 bearer JWT access tokens issued
// to operators by an identity provider.
type JWTConfig struct {
	// Issuer is the exact iss tokens must carry, e.g.
	// https://login.microsoftonline.com/<tenant>/v2.0.
	Issuer string
	// Audience tokens must name in aud (for Entra ID, the API's application
	// id URI or client id).
	Audience string
	// JWKSURL is where the issuer publishes its keys. If empty it is read
	// once from Issuer + "/.well-known/openid-configuration".
	JWKSURL string
	// Algorithms accepted; default DefaultAlgorithms.
	Algorithms []string
	// RequiredRole, if set, must appear in the token's "roles" claim or in
	// its space-separated "scp" claim.
	RequiredRole string
	// Roles gives principals their grants from the token's "roles" and
	// "groups" claims. Without it OAuth2 principals may do nothing.
	Roles RoleMap
	// HTTPClient fetches discovery and JWKS documents. Default: 10 s timeout.
	HTTPClient *http.Client
	// Leeway absorbs clock skew. Default 30 s.
	Leeway time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives JWKS refresh failures.
	Logger *slog.Logger
}

// Validate reports the first invalid field.
func (c JWTConfig) Validate() error {
	if err := checkURL(c.Issuer); err != nil {
		return fmt.Errorf("Issuer: %w", err)
	}
	if c.Audience == "" {
		return errors.New("Audience is required")
	}
	if c.JWKSURL != "" {
		if err := checkURL(c.JWKSURL); err != nil {
			return fmt.Errorf("JWKSURL: %w", err)
		}
	}
	for _, a := range c.Algorithms {
		if !slices.Contains(allowedAlgorithms, a) {
			return fmt.Errorf("Algorithms: %q is not an asymmetric JWS algorithm (allowed: %s)", a, strings.Join(allowedAlgorithms, ", "))
		}
	}
	if err := c.Roles.Validate(); err != nil {
		return fmt.Errorf("Roles: %w", err)
	}
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		return fmt.Errorf("Leeway: %s must be between 0 and 5m", c.Leeway)
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q must be an absolute http(s) URL", s)
	}
	return nil
}

// JWTValidator validates operator bearer JWTs. Safe for concurrent use.
type JWTValidator struct {
	cfg    JWTConfig
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
}

// operatorClaims are the claims read from an operator token. Names follow
// Entra ID; other providers set sub and may set the rest.
type operatorClaims struct {
	jwt.RegisteredClaims
	Roles             []string `json:"roles,omitempty"`
	Groups            []string `json:"groups,omitempty"`
	Scope             string   `json:"scp,omitempty"`
	ObjectID          string   `json:"oid,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	AppID             string   `json:"azp,omitempty"`
}

// NewJWTValidator sets up the JWKS cache (refreshed in the background until
// ctx ends). If JWKSURL is empty the issuer's discovery document is fetched
// now, and failing that is an error. An unreachable JWKS is not an error at
// start: the first token triggers a fetch.
func NewJWTValidator(ctx context.Context, cfg JWTConfig) (*JWTValidator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid OAuth2 config: %w", err)
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = DefaultAlgorithms
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.JWKSURL == "" {
		u, err := discoverJWKS(ctx, cfg.HTTPClient, cfg.Issuer)
		if err != nil {
			return nil, err
		}
		cfg.JWKSURL = u
	}
	// The shared cache refreshes hourly and at most every 30 s for an
	// unknown kid, never holding a token waiting: garbage tokens cannot
	// hammer the issuer, and a rotation is still picked up under load.
	kf, err := accesstoken.NewKeyCache(ctx, cfg.JWKSURL, cfg.HTTPClient, time.Hour, 30*time.Second, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("cannot set up JWKS cache for %s: %w", cfg.JWKSURL, err)
	}
	return &JWTValidator{
		cfg:  cfg,
		keys: kf,
		parser: jwt.NewParser(
			jwt.WithValidMethods(cfg.Algorithms),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(cfg.Now),
		),
	}, nil
}

// JWKSURL is the JWKS URL in use (configured or discovered).
func (v *JWTValidator) JWKSURL() string { return v.cfg.JWKSURL }

// Verify validates raw and returns the operator it names, with the grants
// the role map gives its roles and groups claims. Errors wrap
// ErrUnauthenticated (bad, expired or foreign token) or ErrForbidden (valid
// token without the required role).
func (v *JWTValidator) Verify(ctx context.Context, raw string) (Principal, error) {
	if len(raw) > maxJWTBytes {
		return Principal{}, fmt.Errorf("%w: token is %d bytes, the limit is %d", ErrUnauthenticated, len(raw), maxJWTBytes)
	}
	var claims operatorClaims
	if _, err := v.parser.ParseWithClaims(raw, &claims, v.keys.KeyfuncCtx(ctx)); err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	if claims.Subject == "" {
		return Principal{}, fmt.Errorf("%w: token has no sub", ErrUnauthenticated)
	}
	if r := v.cfg.RequiredRole; r != "" && !slices.Contains(claims.Roles, r) && !slices.Contains(strings.Fields(claims.Scope), r) {
		return Principal{}, fmt.Errorf("%w: token lacks role or scope %q", ErrForbidden, r)
	}
	name := claims.PreferredUsername
	if name == "" {
		name = claims.Subject
	}
	id := claims.ObjectID
	if id == "" {
		id = claims.Subject
	}
	grants := v.cfg.Roles.Grants(claims.Roles, claims.Groups)
	return Principal{Kind: KindOAuth2, ID: id, Name: name, Grants: grants}, nil
}

// discoverJWKS reads jwks_uri from the issuer's OpenID configuration.
func discoverJWKS(ctx context.Context, client *http.Client, issuer string) (string, error) {
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("cannot discover JWKS of %s: %w", issuer, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("cannot discover JWKS of %s: %w", issuer, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("cannot discover JWKS of %s: %s returned %s", issuer, u, resp.Status)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return "", fmt.Errorf("cannot decode %s: %w", u, err)
	}
	if err := checkURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("cannot discover JWKS of %s: jwks_uri %w", issuer, err)
	}
	return doc.JWKSURI, nil
}
