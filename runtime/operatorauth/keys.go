package operatorauth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"
)

// KeyPrefix starts every API key, so that a key is recognisable in a
// secret scanner and cannot be confused with a JWT.
const KeyPrefix = "obk_"

// KeysFileVersion is the format version of the keys file.
const KeysFileVersion = 1

const (
	secretBytes = 32
	saltBytes   = 16
)

// KeysFile is the on-disk list of API keys. It holds only salted hashes; the
// keys themselves are shown once, when created.
//
//	{"version": 1, "keys": [
//	  {"id": "alice-laptop", "salt": "<base64>", "sha256": "<base64>",
//	   "created": "2026-01-02T15:04:05Z", "description": "..."}]}
type KeysFile struct {
	Version int        `json:"version"`
	Keys    []KeyEntry `json:"keys"`
}

// KeyEntry is one API key as stored: sha256 is SHA-256(salt || secret).
//
// A fast hash is enough here because the secret is 256 random bits, not a
// password: there is nothing to brute-force. The salt keeps two entries with
// the same secret from looking alike.
type KeyEntry struct {
	ID          string    `json:"id"`
	Salt        []byte    `json:"salt"`
	SHA256      []byte    `json:"sha256"`
	Created     time.Time `json:"created,omitzero"`
	Description string    `json:"description,omitempty"`
	// Rotated is when the secret was last replaced (RotateKey).
	Rotated time.Time `json:"rotated,omitzero"`
	// Disabled keys stay listed (for audit) but authenticate nobody.
	Disabled bool `json:"disabled,omitempty"`
	// Revoked is when RevokeKey disabled the key.
	Revoked time.Time `json:"revoked,omitzero"`
	// Grants are what the key may do: admin, or a role per tenant. A key
	// without grants authenticates but is refused everywhere (403).
	Grants
}

// Validate reports the first invalid field of the file.
func (f KeysFile) Validate() error {
	if f.Version != KeysFileVersion {
		return fmt.Errorf("version is %d, want %d", f.Version, KeysFileVersion)
	}
	seen := map[string]bool{}
	for i, k := range f.Keys {
		if err := ValidateKeyID(k.ID); err != nil {
			return fmt.Errorf("keys[%d].id: %w", i, err)
		}
		if seen[k.ID] {
			return fmt.Errorf("keys[%d].id: duplicate key id %q", i, k.ID)
		}
		seen[k.ID] = true
		if len(k.Salt) < saltBytes {
			return fmt.Errorf("keys[%d].salt: %d bytes, want at least %d", i, len(k.Salt), saltBytes)
		}
		if len(k.SHA256) != sha256.Size {
			return fmt.Errorf("keys[%d].sha256: %d bytes, want %d", i, len(k.SHA256), sha256.Size)
		}
		if err := k.Grants.Validate(); err != nil {
			return fmt.Errorf("keys[%d].%w", i, err)
		}
	}
	return nil
}

// ParseKeysFile decodes and validates a keys file. Unknown fields are
// errors, so that a typo never silently disables a key.
func ParseKeysFile(data []byte) (*KeysFile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f KeysFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("cannot decode keys file: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("invalid keys file: %w", err)
	}
	return &f, nil
}

// LoadKeysFile reads a keys file. A missing file is an error.
func LoadKeysFile(path string) (*KeysFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read keys file: %w", err)
	}
	f, err := ParseKeysFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Save writes the file atomically (temporary file and rename) with mode
// 0600, keys sorted by id.
func (f *KeysFile) Save(path string) error {
	sort.Slice(f.Keys, func(i, j int) bool { return f.Keys[i].ID < f.Keys[j].ID })
	if err := f.Validate(); err != nil {
		return fmt.Errorf("cannot save keys file: %w", err)
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode keys file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keys-*.json")
	if err != nil {
		return fmt.Errorf("cannot save keys file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot save keys file: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot save keys file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot save keys file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot save keys file: %w", err)
	}
	return nil
}

// NewKey draws a new API key with the given id and grants and returns the
// key (to show once to its owner) and the entry to store.
func NewKey(id, description string, g Grants, now time.Time) (apiKey string, entry KeyEntry, err error) {
	if err := ValidateKeyID(id); err != nil {
		return "", KeyEntry{}, err
	}
	if err := g.Validate(); err != nil {
		return "", KeyEntry{}, err
	}
	entry = KeyEntry{ID: id, Created: now.UTC().Truncate(time.Second), Description: description, Grants: g.Clone()}
	apiKey, err = entry.newSecret()
	if err != nil {
		return "", KeyEntry{}, err
	}
	return apiKey, entry, nil
}

// newSecret draws a new secret and salt for e and returns the API key.
func (e *KeyEntry) newSecret() (string, error) {
	secret := make([]byte, secretBytes)
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("cannot draw a key: %w", err)
	}
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("cannot draw a salt: %w", err)
	}
	s := base64.RawURLEncoding.EncodeToString(secret)
	e.Salt, e.SHA256 = salt, hashSecret(salt, s)
	return KeyPrefix + e.ID + "." + s, nil
}

// AddKey creates a key with the given id and grants in f and returns it.
// An existing id is an error (ErrKeyExists).
func (f *KeysFile) AddKey(id, description string, g Grants, now time.Time) (string, error) {
	if f.find(id) >= 0 {
		return "", fmt.Errorf("%w: key id %q already exists", ErrKeyExists, id)
	}
	apiKey, entry, err := NewKey(id, description, g, now)
	if err != nil {
		return "", err
	}
	f.Keys = append(f.Keys, entry)
	return apiKey, nil
}

// RotateKey gives key id a new secret, keeping its id and grants, and
// returns the new key; the old secret stops working. A revoked key cannot
// be rotated back to life.
func (f *KeysFile) RotateKey(id string, now time.Time) (string, error) {
	i := f.find(id)
	switch {
	case i < 0:
		return "", fmt.Errorf("%w: no key %q", ErrKeyNotFound, id)
	case f.Keys[i].Disabled:
		return "", fmt.Errorf("%w: key %q is revoked; create a new one", ErrKeyRevoked, id)
	}
	apiKey, err := f.Keys[i].newSecret()
	if err != nil {
		return "", err
	}
	f.Keys[i].Rotated = now.UTC().Truncate(time.Second)
	return apiKey, nil
}

// RevokeKey disables key id for good; it stays listed for audit.
func (f *KeysFile) RevokeKey(id string, now time.Time) error {
	i := f.find(id)
	if i < 0 {
		return fmt.Errorf("%w: no key %q", ErrKeyNotFound, id)
	}
	if !f.Keys[i].Disabled {
		f.Keys[i].Disabled, f.Keys[i].Revoked = true, now.UTC().Truncate(time.Second)
	}
	return nil
}

func (f *KeysFile) find(id string) int {
	for i, k := range f.Keys {
		if k.ID == id {
			return i
		}
	}
	return -1
}

// Info is the entry as listed: everything but the salt and hash.
func (e KeyEntry) Info() KeyInfo {
	return KeyInfo{ID: e.ID, Description: e.Description, Created: e.Created, Rotated: e.Rotated, Revoked: e.Revoked, Disabled: e.Disabled, Grants: e.Grants.Clone()}
}

func hashSecret(salt []byte, secret string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// LooksLikeAPIKey reports whether a bearer credential is in API key form
// (as opposed to a JWT).
func LooksLikeAPIKey(credential string) bool { return strings.HasPrefix(credential, KeyPrefix) }

// splitAPIKey splits "obk_<id>.<secret>".
func splitAPIKey(apiKey string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(apiKey, KeyPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, ".")
	if !ok || ValidateKeyID(id) != nil || len(secret) != base64.RawURLEncoding.EncodedLen(secretBytes) {
		return "", "", false
	}
	return id, secret, true
}

// KeySet checks API keys against the hashed entries of a keys file. It is
// immutable and safe for concurrent use; reload by building a new one.
type KeySet struct {
	byID map[string]KeyEntry
	// dummy is compared against when the id is unknown, so that unknown and
	// known ids cost the same.
	dummy KeyEntry
}

// NewKeySet indexes the entries of f.
func NewKeySet(f *KeysFile) *KeySet {
	ks := &KeySet{byID: make(map[string]KeyEntry, len(f.Keys))}
	for _, k := range f.Keys {
		ks.byID[k.ID] = k
	}
	ks.dummy = KeyEntry{Salt: make([]byte, saltBytes), SHA256: make([]byte, sha256.Size)}
	return ks
}

// equal reports whether ks and other hold the same entries.
func (ks *KeySet) equal(other *KeySet) bool {
	return other != nil && reflect.DeepEqual(ks.byID, other.byID)
}

// Len is the number of keys, disabled ones included.
func (ks *KeySet) Len() int { return len(ks.byID) }

// Verify checks apiKey and returns the principal it authenticates: the
// key's id and its grants. Errors wrap ErrUnauthenticated and never echo
// the key.
func (ks *KeySet) Verify(apiKey string) (Principal, error) {
	id, secret, ok := splitAPIKey(apiKey)
	if !ok {
		return Principal{}, fmt.Errorf("%w: malformed API key", ErrUnauthenticated)
	}
	entry, known := ks.byID[id]
	if !known {
		entry = ks.dummy
	}
	match := subtle.ConstantTimeCompare(hashSecret(entry.Salt, secret), entry.SHA256) == 1
	switch {
	case !known:
		return Principal{}, fmt.Errorf("%w: unknown API key id %q", ErrUnauthenticated, id)
	case !match:
		return Principal{}, fmt.Errorf("%w: wrong secret for API key %q", ErrUnauthenticated, id)
	case entry.Disabled:
		return Principal{}, fmt.Errorf("%w: API key %q is disabled", ErrUnauthenticated, id)
	}
	return Principal{Kind: KindAPIKey, ID: id, Name: id, Grants: entry.Grants.Clone()}, nil
}

var errNoKeys = errors.New("no API keys configured")

// Errors of key management.
var (
	ErrKeyExists   = errors.New("key exists")
	ErrKeyNotFound = errors.New("no such key")
	ErrKeyRevoked  = errors.New("key revoked")
	// ErrNoKeysFile: the server has no key store (file or table) to manage.
	ErrNoKeysFile = errors.New("no API key store configured")
)
