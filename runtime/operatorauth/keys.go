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
	"regexp"
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

var keyIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidateKeyID reports whether id can name an API key: 1 to 63 lowercase
// letters, digits and dashes, starting with a letter or digit.
func ValidateKeyID(id string) error {
	if !keyIDPattern.MatchString(id) {
		return fmt.Errorf("key id %q must be 1-63 lowercase letters, digits or dashes, starting with a letter or digit", id)
	}
	return nil
}

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
	// Disabled keys stay listed (for audit) but authenticate nobody.
	Disabled bool `json:"disabled,omitempty"`
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

// NewKey draws a new API key with the given id and returns the key (to
// show once to its owner) and the entry to store.
func NewKey(id, description string, now time.Time) (apiKey string, entry KeyEntry, err error) {
	if err := ValidateKeyID(id); err != nil {
		return "", KeyEntry{}, err
	}
	secret := make([]byte, secretBytes)
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(secret); err != nil {
		return "", KeyEntry{}, fmt.Errorf("cannot draw a key: %w", err)
	}
	if _, err := rand.Read(salt); err != nil {
		return "", KeyEntry{}, fmt.Errorf("cannot draw a salt: %w", err)
	}
	s := base64.RawURLEncoding.EncodeToString(secret)
	entry = KeyEntry{
		ID:          id,
		Salt:        salt,
		SHA256:      hashSecret(salt, s),
		Created:     now.UTC().Truncate(time.Second),
		Description: description,
	}
	return KeyPrefix + id + "." + s, entry, nil
}

// AddKey creates a key with the given id in f and returns it. An existing id
// is an error: rotate by adding a new id and disabling or removing the old.
func (f *KeysFile) AddKey(id, description string, now time.Time) (string, error) {
	for _, k := range f.Keys {
		if k.ID == id {
			return "", fmt.Errorf("key id %q already exists", id)
		}
	}
	apiKey, entry, err := NewKey(id, description, now)
	if err != nil {
		return "", err
	}
	f.Keys = append(f.Keys, entry)
	return apiKey, nil
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
	return Principal{Kind: KindAPIKey, ID: id, Name: id, Grants: entry.Grants.clone()}, nil
}

var errNoKeys = errors.New("no API keys configured")
