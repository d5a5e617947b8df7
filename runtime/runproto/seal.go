package runproto

import (
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// Sealing algorithms: ECDH-ES with AES key wrap to the agent's P-256 key,
// AES-256-GCM content encryption. Open accepts nothing else.
const (
	KeyAlgorithm      = jose.ECDH_ES_A256KW
	ContentEncryption = jose.A256GCM
)

// ErrSealed reports a JWE that cannot be opened with the key given
// (wrong key, tampered, or another algorithm).
var ErrSealed = errors.New("cannot open sealed secrets")

// Seal encrypts plaintext to pub as a compact JWE.
func Seal(pub *ecdsa.PublicKey, plaintext []byte) (string, error) {
	if pub == nil {
		return "", errors.New("cannot seal: no public key")
	}
	enc, err := jose.NewEncrypter(ContentEncryption, jose.Recipient{Algorithm: KeyAlgorithm, Key: pub}, (&jose.EncrypterOptions{}).WithContentType("application/json"))
	if err != nil {
		return "", fmt.Errorf("cannot seal: %w", err)
	}
	obj, err := enc.Encrypt(plaintext)
	if err != nil {
		return "", fmt.Errorf("cannot seal: %w", err)
	}
	return obj.CompactSerialize()
}

// Open decrypts a compact JWE Seal made for priv's public key.
func Open(priv *ecdsa.PrivateKey, jwe string) ([]byte, error) {
	if priv == nil {
		return nil, fmt.Errorf("%w: no private key", ErrSealed)
	}
	obj, err := jose.ParseEncryptedCompact(jwe, []jose.KeyAlgorithm{KeyAlgorithm}, []jose.ContentEncryption{ContentEncryption})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSealed, err)
	}
	out, err := obj.Decrypt(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSealed, err)
	}
	return out, nil
}

// SealSecrets seals s for pub; "" when s is empty.
func SealSecrets(pub *ecdsa.PublicKey, s Secrets) (string, error) {
	if s.Empty() {
		return "", nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("cannot seal secrets: %w", err)
	}
	return Seal(pub, b)
}

// OpenSecrets opens what SealSecrets made; "" gives empty Secrets.
func OpenSecrets(priv *ecdsa.PrivateKey, jwe string) (Secrets, error) {
	var s Secrets
	if jwe == "" {
		return s, nil
	}
	b, err := Open(priv, jwe)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return Secrets{}, fmt.Errorf("%w: plaintext is not secrets JSON: %w", ErrSealed, err)
	}
	return s, nil
}
