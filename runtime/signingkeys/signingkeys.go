// Package signingkeys keeps the ES256 keys the idp signs access tokens with.
//
// The idp needs two things from a key store, and Store is exactly those: the
// key to sign with now, and the public keys verifiers must accept now. A
// store rotates keys with overlap:
//
//   - the next key is published in the JWKS ahead of use, so verifiers that
//     refresh their cache periodically know it before the first token it
//     signs reaches them;
//   - the retired key stays published until every token it signed has
//     expired, then it is dropped.
//
// FileStore keeps keys as PEM files plus a metadata file in a directory, so
// they survive restarts. A Key Vault store can satisfy the same interface:
// Key.Signer is a crypto.Signer, which a remote key implements as well as a
// local one.
package signingkeys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"

	"github.com/go-jose/go-jose/v4"

	"github.com/botehq/platform/runtime/accesstoken"
)

// Store is a source of signing keys.
type Store interface {
	// SigningKey returns the key to sign new tokens with.
	SigningKey(ctx context.Context) (Key, error)
	// PublicKeys returns every key a verifier must accept now: the signing
	// key, the next one if already published, and retired keys whose tokens
	// may still be valid.
	PublicKeys(ctx context.Context) ([]PublicKey, error)
}

// Key is a private signing key.
type Key struct {
	ID     string
	Signer crypto.Signer // EC P-256
}

// PublicKey is a published verification key.
type PublicKey struct {
	ID  string
	Key *ecdsa.PublicKey
}

// JWKS renders keys as a JSON Web Key Set (RFC 7517) with alg ES256 and use
// sig on every key.
func JWKS(keys []PublicKey) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Key, KeyID: k.ID, Algorithm: accesstoken.Algorithm, Use: "sig"})
	}
	out, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("cannot render JWKS: %w", err)
	}
	return out, nil
}
