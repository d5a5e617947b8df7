// Package clientauth is the client side of the idp: a connector's private
// key file, the public JWK it registers, the ES256 client assertions it
// proves its identity with (RFC 7523 private_key_jwt), and a TokenSource
// that exchanges them for access tokens and keeps one fresh.
package clientauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/botehq/platform/runtime/accesstoken"
)

// AssertionType is the client_assertion_type of a JWT client assertion.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// AssertionLifetime is how long an assertion made by NewAssertion is valid.
const AssertionLifetime = 60 * time.Second

// GenerateKey generates a new EC P-256 private key.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cannot generate key: %w", err)
	}
	return key, nil
}

// WriteKeyFile writes key to path as a PKCS #8 PEM file readable by its
// owner only. It refuses to overwrite an existing file, so that a key
// already registered is never lost by accident.
func WriteKeyFile(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("cannot encode private key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create key file: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("cannot write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("cannot write key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write key file %s: %w", path, err)
	}
	return nil
}

// LoadKeyFile reads an EC P-256 private key from a PEM file (PKCS #8
// "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY").
func LoadKeyFile(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read key file: %w", err)
	}
	key, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return key, nil
}

// ParseKeyPEM parses an EC P-256 private key from PEM (PKCS #8 or SEC 1).
func ParseKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block is %q, want \"PRIVATE KEY\" or \"EC PRIVATE KEY\"", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot parse private key: %w", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("must be an EC P-256 private key (ES256), got %T", key)
	}
	return ec, nil
}

// Thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url) of pub,
// used as its key id.
func Thumbprint(pub *ecdsa.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("cannot compute JWK thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// PublicJWK renders the public half of key as the JWK to put in the
// connector registry. An empty kid means the RFC 7638 thumbprint.
func PublicJWK(key *ecdsa.PrivateKey, kid string) ([]byte, error) {
	if key == nil {
		return nil, errors.New("cannot render JWK: no key")
	}
	if kid == "" {
		var err error
		if kid, err = Thumbprint(&key.PublicKey); err != nil {
			return nil, err
		}
	}
	out, err := jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: accesstoken.Algorithm, Use: "sig"}.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("cannot render JWK: %w", err)
	}
	return out, nil
}

// NewAssertion makes a client assertion for clientID: an ES256 JWT with
// iss = sub = clientID, aud = tokenURL, iat = now, exp = now +
// AssertionLifetime and a random jti, so it can be used exactly once.
func NewAssertion(key *ecdsa.PrivateKey, clientID, tokenURL string, now time.Time) (string, error) {
	if key == nil {
		return "", errors.New("cannot make assertion: no key")
	}
	jti, err := accesstoken.RandomID()
	if err != nil {
		return "", err
	}
	kid, err := Thumbprint(&key.PublicKey)
	if err != nil {
		return "", err
	}
	now = now.Truncate(time.Second)
	claims := jwt.RegisteredClaims{
		Issuer:    clientID,
		Subject:   clientID,
		Audience:  jwt.ClaimStrings{tokenURL},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(AssertionLifetime)),
		ID:        jti,
	}
	out, err := accesstoken.Sign(key, kid, claims)
	if err != nil {
		return "", fmt.Errorf("cannot make assertion: %w", err)
	}
	return out, nil
}
