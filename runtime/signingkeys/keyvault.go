package signingkeys

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/botehq/platform/runtime/clientauth"
)

// VaultClient is what KeyVaultStore needs of *azsecrets.Client.
type VaultClient interface {
	GetSecret(ctx context.Context, name, version string, opts *azsecrets.GetSecretOptions) (azsecrets.GetSecretResponse, error)
	SetSecret(ctx context.Context, name string, params azsecrets.SetSecretParameters, opts *azsecrets.SetSecretOptions) (azsecrets.SetSecretResponse, error)
}

var _ VaultClient = (*azsecrets.Client)(nil)

// DefaultRefresh is how long a KeyVaultStore trusts the keys it read.
const DefaultRefresh = time.Minute

// KeyVaultConfig configures a KeyVaultStore.
type KeyVaultConfig struct {
	// Client reads and writes the vault's secrets (the idp's identity
	// needs Key Vault Secrets Officer on the vault). Required.
	Client VaultClient
	// SecretPrefix names the key secrets: "<prefix>-<slot>". Default
	// "idp-signing".
	SecretPrefix string
	// RotateEvery, PublishAhead, TokenTTL, Grace, Now and Logger as in
	// FileConfig.
	RotateEvery  time.Duration
	PublishAhead time.Duration
	TokenTTL     time.Duration
	Grace        time.Duration
	// Refresh is how long keys read from the vault are trusted before they
	// are read again; it bounds how long replicas may disagree after two of
	// them raced to create the same key, and must be shorter than
	// PublishAhead. Default DefaultRefresh.
	Refresh time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// Validate reports the first invalid field.
func (c KeyVaultConfig) Validate() error {
	fc := FileConfig{Dir: "-", RotateEvery: c.RotateEvery, PublishAhead: c.PublishAhead, TokenTTL: c.TokenTTL, Grace: c.Grace}
	switch {
	case c.Client == nil:
		return errors.New("signingkeys config: Client is required")
	case c.Refresh < 0:
		return fmt.Errorf("signingkeys config: Refresh %s must not be negative", c.Refresh)
	}
	return fc.Validate()
}

// KeyVaultStore is a Store whose keys are Key Vault secrets, shared by
// every idp replica and surviving restarts.
//
// Time is cut into slots of RotateEvery; slot n's key, the secret
// "<prefix>-<n>" (a PKCS#8 PEM), signs during slot n. It is created by
// whichever replica first needs it, PublishAhead before the slot starts,
// and stays published until TokenTTL + Grace after the slot ends. No
// replica keeps state of its own: the schedule follows from the clock, so
// replicas agree on it without coordination, and a restart changes nothing.
//
// Key Vault has no create-if-absent: two replicas creating the same slot's
// key at once write two versions. Readers take the latest version and
// re-read every Refresh, so all replicas converge on one key well before it
// signs (Refresh < PublishAhead); a losing version is published at most
// for a Refresh and never signs.
type KeyVaultStore struct {
	cfg KeyVaultConfig

	mu    sync.Mutex
	cache map[int64]cachedKey
	// fetch serializes reads and creations, so that one process never
	// races itself to create a key.
	fetch sync.Mutex
}

type cachedKey struct {
	key  *Key // nil: no such secret
	pub  *ecdsa.PublicKey
	read time.Time
}

// NewKeyVaultStore returns a store over cfg.Client.
func NewKeyVaultStore(cfg KeyVaultConfig) (*KeyVaultStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SecretPrefix == "" {
		cfg.SecretPrefix = "idp-signing"
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
	if cfg.Refresh == 0 {
		cfg.Refresh = min(DefaultRefresh, cfg.PublishAhead/2)
	}
	if cfg.Refresh >= cfg.PublishAhead {
		return nil, fmt.Errorf("signingkeys config: Refresh %s must be shorter than PublishAhead %s", cfg.Refresh, cfg.PublishAhead)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &KeyVaultStore{cfg: cfg, cache: map[int64]cachedKey{}}, nil
}

func (s *KeyVaultStore) slot(t time.Time) int64 {
	return t.UnixNano() / int64(s.cfg.RotateEvery)
}

func (s *KeyVaultStore) start(slot int64) time.Time {
	return time.Unix(0, slot*int64(s.cfg.RotateEvery))
}

func (s *KeyVaultStore) secretName(slot int64) string {
	return s.cfg.SecretPrefix + "-" + strconv.FormatInt(slot, 10)
}

// SigningKey implements Store: the current slot's key, created if missing.
func (s *KeyVaultStore) SigningKey(ctx context.Context) (Key, error) {
	k, err := s.key(ctx, s.slot(s.cfg.Now()), true)
	if err != nil {
		return Key{}, err
	}
	return *k.key, nil
}

// PublicKeys implements Store: the keys of the slots whose tokens may still
// be valid, the current one, and the next one once it is due to be
// published (created if missing).
func (s *KeyVaultStore) PublicKeys(ctx context.Context) ([]PublicKey, error) {
	now := s.cfg.Now()
	cur := s.slot(now)
	// Slot n's tokens live until start(n+1) + TokenTTL + Grace.
	back := int64((s.cfg.TokenTTL + s.cfg.Grace + s.cfg.RotateEvery - 1) / s.cfg.RotateEvery)
	var out []PublicKey
	for n := cur - back; n <= cur+1; n++ {
		switch {
		case n < cur && !now.Before(s.start(n+1).Add(s.cfg.TokenTTL+s.cfg.Grace)):
			continue // every token it signed has expired
		case n > cur && now.Before(s.start(n).Add(-s.cfg.PublishAhead)):
			continue // not published yet
		}
		k, err := s.key(ctx, n, n >= cur)
		if err != nil {
			if n < cur {
				// A retired key only verifies old tokens.
				s.cfg.Logger.Warn("retired signing key unreadable", "secret", s.secretName(n), "err", err)
				continue
			}
			return nil, err
		}
		if k.key != nil {
			out = append(out, PublicKey{ID: k.key.ID, Key: k.pub})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// key returns slot's key from the cache or the vault, creating it if create
// and it does not exist.
func (s *KeyVaultStore) key(ctx context.Context, slot int64, create bool) (cachedKey, error) {
	cached := func(now time.Time) (cachedKey, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		c, ok := s.cache[slot]
		return c, ok && now.Sub(c.read) < s.cfg.Refresh && (c.key != nil || !create)
	}
	if c, ok := cached(s.cfg.Now()); ok {
		return c, nil
	}
	s.fetch.Lock()
	defer s.fetch.Unlock()
	now := s.cfg.Now()
	if c, ok := cached(now); ok { // fetched while we waited
		return c, nil
	}
	name := s.secretName(slot)
	c, err := s.read(ctx, name, now)
	if err != nil {
		return cachedKey{}, err
	}
	if c.key == nil && create {
		if err := s.create(ctx, name, slot); err != nil {
			return cachedKey{}, err
		}
		// Read back the latest version: if another replica wrote one
		// after us, both now use the same key.
		if c, err = s.read(ctx, name, now); err != nil {
			return cachedKey{}, err
		}
		if c.key == nil {
			return cachedKey{}, fmt.Errorf("signing key secret %s is missing right after it was written", name)
		}
	}
	s.mu.Lock()
	s.cache[slot] = c
	for n := range s.cache {
		if n < slot-64 {
			delete(s.cache, n)
		}
	}
	s.mu.Unlock()
	return c, nil
}

func (s *KeyVaultStore) read(ctx context.Context, name string, now time.Time) (cachedKey, error) {
	resp, err := s.cfg.Client.GetSecret(ctx, name, "", nil)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return cachedKey{read: now}, nil
	}
	if err != nil {
		return cachedKey{}, fmt.Errorf("cannot read signing key secret %s: %w", name, err)
	}
	if resp.Value == nil {
		return cachedKey{}, fmt.Errorf("signing key secret %s has no value", name)
	}
	priv, err := clientauth.ParseKeyPEM([]byte(*resp.Value))
	if err != nil {
		return cachedKey{}, fmt.Errorf("signing key secret %s: %w", name, err)
	}
	kid, err := clientauth.Thumbprint(&priv.PublicKey)
	if err != nil {
		return cachedKey{}, err
	}
	return cachedKey{key: &Key{ID: kid, Signer: priv}, pub: &priv.PublicKey, read: now}, nil
}

func (s *KeyVaultStore) create(ctx context.Context, name string, slot int64) error {
	priv, err := clientauth.GenerateKey()
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("cannot encode signing key: %w", err)
	}
	start := s.start(slot)
	// Informational: Key Vault does not act on them (an expired secret
	// would still be needed to verify the slot's last tokens).
	tags := map[string]*string{
		"signsFrom":      to.Ptr(start.UTC().Format(time.RFC3339)),
		"signsUntil":     to.Ptr(start.Add(s.cfg.RotateEvery).UTC().Format(time.RFC3339)),
		"publishedUntil": to.Ptr(start.Add(s.cfg.RotateEvery + s.cfg.TokenTTL + s.cfg.Grace).UTC().Format(time.RFC3339)),
	}
	_, err = s.cfg.Client.SetSecret(ctx, name, azsecrets.SetSecretParameters{
		Value:       to.Ptr(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))),
		ContentType: to.Ptr("application/x-pem-file"),
		Tags:        tags,
	}, nil)
	if err != nil {
		return fmt.Errorf("cannot store signing key secret %s: %w", name, err)
	}
	s.cfg.Logger.Info("signing key created", "secret", name, "signs_from", start)
	return nil
}
