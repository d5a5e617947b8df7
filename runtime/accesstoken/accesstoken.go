// Package accesstoken is the contract of the access tokens the idp issues to
// connectors, and the verifier every service that accepts them uses: the
// gateway for connector sessions, the ops server for bearer tokens.
//
// An access token is a JWT signed with ES256 whose header names the signing
// key (kid). Its claims are iss (the idp's issuer URL), sub (the client id
// "tenant/connector"), aud, exp, iat, nbf, jti and the two identity claims
// "tenant" and "connector", which always agree with sub. The idp builds them
// with NewClaims and signs them with Sign; services check them with a
// Verifier, which fetches the idp's JWKS, caches it, and refreshes it at most
// once per interval when a token names a key it does not know.
package accesstoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/botehq/platform/runtime/registry"
)

// Algorithm is the only JWS algorithm access tokens are signed with.
const Algorithm = "ES256"

// DefaultAudience is the audience of access tokens unless configured
// otherwise.
const DefaultAudience = "bote"

// DefaultTTL is the default lifetime of an access token.
const DefaultTTL = 10 * time.Minute

// MaxTokenBytes bounds the size of a token a Verifier will look at.
const MaxTokenBytes = 8 << 10

// Errors callers branch on. Every error Verify returns wraps exactly one of
// them.
var (
	// ErrMissing reports a request or call without a token.
	ErrMissing = errors.New("no access token")
	// ErrExpired reports a token that was valid but has expired: the client
	// should get a new one.
	ErrExpired = errors.New("access token expired")
	// ErrInvalid reports a token that is not, and never was, acceptable: bad
	// signature, unknown key, wrong algorithm, issuer or audience, missing or
	// inconsistent claims.
	ErrInvalid = errors.New("invalid access token")
)

// Claims are the claims of an access token.
type Claims struct {
	Tenant    string `json:"tenant"`
	Connector string `json:"connector"`
	jwt.RegisteredClaims
}

// ClientID is the client id the token was issued to ("tenant/connector").
func (c *Claims) ClientID() string { return c.Subject }

// NewClaims builds the claims of a token issued at now to the connector
// (tenant, connector), valid for ttl. jti must be unique per token; if empty
// a random one is drawn.
func NewClaims(issuer, audience, tenant, connector, jti string, now time.Time, ttl time.Duration) (*Claims, error) {
	if jti == "" {
		var err error
		if jti, err = RandomID(); err != nil {
			return nil, err
		}
	}
	now = now.Truncate(time.Second)
	return &Claims{
		Tenant:    tenant,
		Connector: connector,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   registry.ClientID(tenant, connector),
			Audience:  jwt.ClaimStrings{audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
	}, nil
}

// RandomID returns 128 random bits, base64url encoded, for jti values.
func RandomID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("cannot draw a random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Sign signs claims with ES256 under key id kid. signer must hold an EC
// P-256 private key; it may be remote (a Key Vault key behind crypto.Signer),
// so only its Sign method is used, with a SHA-256 digest, and its ASN.1 DER
// signature is converted to the fixed-size JWS form.
func Sign(signer crypto.Signer, kid string, claims jwt.Claims) (string, error) {
	if kid == "" {
		return "", errors.New("cannot sign token: empty key id")
	}
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve.Params().BitSize != 256 {
		return "", fmt.Errorf("cannot sign token: key %s is not an EC P-256 key", kid)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = kid
	signing, err := tok.SigningString()
	if err != nil {
		return "", fmt.Errorf("cannot encode token: %w", err)
	}
	digest := sha256.Sum256([]byte(signing))
	der, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("cannot sign token with key %s: %w", kid, err)
	}
	sig, err := derToJWS(der)
	if err != nil {
		return "", fmt.Errorf("cannot sign token with key %s: %w", kid, err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// derToJWS converts an ASN.1 ECDSA signature to the 64-byte r||s form of
// RFC 7518 section 3.4.
func derToJWS(der []byte) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R == nil || sig.S == nil {
		return nil, errors.New("signer returned a malformed ECDSA signature")
	}
	out := make([]byte, 64)
	if sig.R.BitLen() > 256 || sig.S.BitLen() > 256 {
		return nil, errors.New("signer returned an ECDSA signature too long for P-256")
	}
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out, nil
}

// FromRequest returns the bearer token of an HTTP request's Authorization
// header. It returns an error wrapping ErrMissing if there is none and
// ErrInvalid if the header is malformed.
func FromRequest(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", fmt.Errorf("%w: no Authorization header", ErrMissing)
	case 1:
	default:
		return "", fmt.Errorf("%w: more than one Authorization header", ErrInvalid)
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: Authorization header is not a Bearer token", ErrInvalid)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", fmt.Errorf("%w: empty Bearer token", ErrMissing)
	}
	return token, nil
}
