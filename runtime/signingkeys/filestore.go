package signingkeys

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/clientauth"
)

// FileStore defaults.
const (
	DefaultRotateEvery = 24 * time.Hour
	// DefaultGrace is added to the token lifetime before a retired key is
	// dropped, to cover the verifiers' clock leeway.
	DefaultGrace        = time.Minute
	maxPublishAhead     = 15 * time.Minute
	metadataFile        = "keys.json"
	metadataFileVersion = 1
)

// FileConfig configures a FileStore.
type FileConfig struct {
	// Dir holds the keys (one PEM file per key, mode 0600) and keys.json.
	// It is created (mode 0700) if missing. One process owns a directory.
	Dir string
	// RotateEvery is how long a key signs before the next one takes over.
	// Default DefaultRotateEvery.
	RotateEvery time.Duration
	// PublishAhead is how long the next key is published before it signs.
	// It should exceed the verifiers' JWKS refresh interval. Default: a
	// quarter of RotateEvery, at most 15 minutes.
	PublishAhead time.Duration
	// TokenTTL is the longest lifetime of a token signed with these keys: a
	// retired key stays published for TokenTTL + Grace. Required.
	TokenTTL time.Duration
	// Grace, default DefaultGrace.
	Grace time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger, default slog.Default().
	Logger *slog.Logger
}

// Validate reports the first invalid field.
func (c FileConfig) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("signingkeys config: Dir is required")
	case c.RotateEvery < 0:
		return fmt.Errorf("signingkeys config: RotateEvery %s must not be negative", c.RotateEvery)
	case c.RotateEvery > 0 && c.RotateEvery < time.Minute:
		return fmt.Errorf("signingkeys config: RotateEvery %s is below the minimum of 1m", c.RotateEvery)
	case c.PublishAhead < 0:
		return fmt.Errorf("signingkeys config: PublishAhead %s must not be negative", c.PublishAhead)
	case c.PublishAhead > 0 && c.RotateEvery > 0 && c.PublishAhead >= c.RotateEvery:
		return fmt.Errorf("signingkeys config: PublishAhead %s must be shorter than RotateEvery %s", c.PublishAhead, c.RotateEvery)
	case c.TokenTTL <= 0:
		return fmt.Errorf("signingkeys config: TokenTTL %s must be positive", c.TokenTTL)
	case c.Grace < 0:
		return fmt.Errorf("signingkeys config: Grace %s must not be negative", c.Grace)
	}
	return nil
}

// FileStore is a Store backed by a directory. It is safe for concurrent use
// within one process; rotation happens lazily, on the calls of its methods.
type FileStore struct {
	cfg FileConfig

	mu    sync.Mutex
	keys  []*fileKey // sorted by creation
	dirty bool       // keys differ from keys.json
}

type fileKey struct {
	meta keyMeta
	priv *ecdsa.PrivateKey
}

// keyMeta is one entry of keys.json. A key with no Activated time is the
// next key; with Activated and no Retired, the signing key; with Retired,
// a retired key.
type keyMeta struct {
	ID        string     `json:"kid"`
	Created   time.Time  `json:"created"`
	Activated *time.Time `json:"activated,omitempty"`
	Retired   *time.Time `json:"retired,omitempty"`
}

type metadata struct {
	Version int       `json:"version"`
	Keys    []keyMeta `json:"keys"`
}

// OpenFileStore loads the keys in cfg.Dir, creating the directory and a
// first key if needed, and applies any rotation that fell due while the
// process was down.
func OpenFileStore(cfg FileConfig) (*FileStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RotateEvery == 0 {
		cfg.RotateEvery = DefaultRotateEvery
	}
	if cfg.PublishAhead == 0 {
		cfg.PublishAhead = min(cfg.RotateEvery/4, maxPublishAhead)
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create key directory: %w", err)
	}
	s := &FileStore{cfg: cfg}
	if err := s.load(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.maintain(); err != nil {
		return nil, err
	}
	return s, nil
}

// SigningKey implements Store.
func (s *FileStore) SigningKey(context.Context) (Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.maintain(); err != nil {
		return Key{}, err
	}
	for _, k := range s.keys {
		if k.state() == stateActive {
			return Key{ID: k.meta.ID, Signer: k.priv}, nil
		}
	}
	return Key{}, errors.New("signingkeys: no active key") // maintain guarantees one
}

// PublicKeys implements Store. Keys are ordered newest first.
func (s *FileStore) PublicKeys(context.Context) ([]PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.maintain(); err != nil {
		return nil, err
	}
	out := make([]PublicKey, 0, len(s.keys))
	for i := len(s.keys) - 1; i >= 0; i-- {
		out = append(out, PublicKey{ID: s.keys[i].meta.ID, Key: &s.keys[i].priv.PublicKey})
	}
	return out, nil
}

type state int

const (
	stateNext    state = iota // published, not yet signing
	stateActive               // signing
	stateRetired              // published until its tokens have expired
)

func (k *fileKey) state() state {
	switch {
	case k.meta.Retired != nil:
		return stateRetired
	case k.meta.Activated != nil:
		return stateActive
	}
	return stateNext
}

// maintain applies the rotation schedule at the current time and persists
// any change. s.mu must be held.
func (s *FileStore) maintain() error {
	now := s.cfg.Now().UTC()
	changed := s.dirty
	var active, next *fileKey
	var dropped []string
	kept := s.keys[:0:0]
	for _, k := range s.keys {
		switch k.state() {
		case stateRetired:
			if !now.Before(k.meta.Retired.Add(s.cfg.TokenTTL + s.cfg.Grace)) {
				s.cfg.Logger.Info("signing key dropped from JWKS", "kid", k.meta.ID, "retired", k.meta.Retired)
				dropped = append(dropped, k.meta.ID)
				changed = true
				continue
			}
		case stateActive:
			active = k
		case stateNext:
			next = k
		}
		kept = append(kept, k)
	}
	s.keys = kept

	if active == nil { // first start, or a store that only had a next key
		if next == nil {
			k, err := s.generate(now)
			if err != nil {
				return err
			}
			next = k
		}
		next.meta.Activated = &now
		active, next, changed = next, nil, true
		s.cfg.Logger.Info("signing key activated", "kid", active.meta.ID)
	}
	if next == nil && !now.Before(active.meta.Activated.Add(s.cfg.RotateEvery-s.cfg.PublishAhead)) {
		k, err := s.generate(now)
		if err != nil {
			return err
		}
		next, changed = k, true
		s.cfg.Logger.Info("next signing key published", "kid", next.meta.ID, "signs_from", now.Add(s.cfg.PublishAhead))
	}
	if next != nil && !now.Before(active.meta.Activated.Add(s.cfg.RotateEvery)) && !now.Before(next.meta.Created.Add(s.cfg.PublishAhead)) {
		active.meta.Retired = &now
		next.meta.Activated = &now
		changed = true
		s.cfg.Logger.Info("signing key rotated", "kid", next.meta.ID, "retired_kid", active.meta.ID,
			"retired_published_until", now.Add(s.cfg.TokenTTL+s.cfg.Grace))
	}
	if !changed {
		return nil
	}
	s.dirty = true
	if err := s.save(); err != nil {
		return err
	}
	s.dirty = false
	for _, kid := range dropped {
		// Only files of keys this store dropped: a file it does not know
		// (left by a crash between key and metadata writes) is harmless, and
		// deleting unknown files would be wrong if anyone else wrote them.
		if err := os.Remove(s.keyPath(kid)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.cfg.Logger.Warn("cannot remove dropped signing key file", "kid", kid, "err", err)
		}
	}
	return nil
}

// generate creates a key file and adds the key as the next key (unsaved).
func (s *FileStore) generate(now time.Time) (*fileKey, error) {
	priv, err := clientauth.GenerateKey()
	if err != nil {
		return nil, err
	}
	kid, err := clientauth.Thumbprint(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := clientauth.WriteKeyFile(s.keyPath(kid), priv); err != nil {
		return nil, fmt.Errorf("cannot store signing key: %w", err)
	}
	k := &fileKey{meta: keyMeta{ID: kid, Created: now}, priv: priv}
	s.keys = append(s.keys, k)
	return k, nil
}

func (s *FileStore) keyPath(kid string) string { return filepath.Join(s.cfg.Dir, kid+".pem") }

func (s *FileStore) load() error {
	data, err := os.ReadFile(filepath.Join(s.cfg.Dir, metadataFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read signing key metadata: %w", err)
	}
	var md metadata
	if err := json.Unmarshal(data, &md); err != nil {
		return fmt.Errorf("cannot decode signing key metadata %s: %w", filepath.Join(s.cfg.Dir, metadataFile), err)
	}
	if md.Version != metadataFileVersion {
		return fmt.Errorf("signing key metadata version %d, this build reads %d", md.Version, metadataFileVersion)
	}
	for _, m := range md.Keys {
		priv, err := clientauth.LoadKeyFile(s.keyPath(m.ID))
		if err != nil {
			if m.Retired != nil {
				// A retired key only verifies old tokens; losing it must not
				// keep the idp from starting.
				s.cfg.Logger.Warn("retired signing key unreadable, dropped", "kid", m.ID, "err", err)
				continue
			}
			return fmt.Errorf("cannot load signing key %s: %w", m.ID, err)
		}
		kid, err := clientauth.Thumbprint(&priv.PublicKey)
		if err != nil {
			return err
		}
		if kid != m.ID {
			return fmt.Errorf("signing key file %s holds key %s", s.keyPath(m.ID), kid)
		}
		s.keys = append(s.keys, &fileKey{meta: m, priv: priv})
	}
	sort.SliceStable(s.keys, func(i, j int) bool { return s.keys[i].meta.Created.Before(s.keys[j].meta.Created) })
	return nil
}

// save writes keys.json atomically: a crash leaves the old or the new file,
// never a torn one.
func (s *FileStore) save() error {
	md := metadata{Version: metadataFileVersion}
	for _, k := range s.keys {
		md.Keys = append(md.Keys, k.meta)
	}
	data, err := json.MarshalIndent(md, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode signing key metadata: %w", err)
	}
	tmp, err := os.CreateTemp(s.cfg.Dir, metadataFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("cannot save signing key metadata: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot save signing key metadata: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot save signing key metadata: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot save signing key metadata: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.cfg.Dir, metadataFile)); err != nil {
		return fmt.Errorf("cannot save signing key metadata: %w", err)
	}
	if d, err := os.Open(s.cfg.Dir); err == nil {
		_ = d.Sync() // make the rename durable where the platform allows
		d.Close()
	}
	return nil
}
