// Package operatorauth authenticates operators (people and their tools) to
// the ops server's API.
//
// Two credentials are accepted, both as "Authorization: Bearer <credential>":
//
//   - API keys ("obk_<id>.<secret>"), checked against a keys file that holds
//     only a per-key salt and SHA-256(salt || secret), with a constant-time
//     compare. The id in the key selects the entry, so verification is one
//     hash, and logs can name the key without revealing it. Each key holds
//     its grants (roles.go). Keys are created with KeysFile.AddKey
//     (opsserver apikey create) or Authenticator.CreateKey (the API) and
//     shown once; rotated and revoked the same ways.
//   - OAuth2 access tokens (JWTs) from the operators' identity provider
//     (Entra ID in public Azure or Azure Government, or any OIDC issuer),
//     validated against the issuer's JWKS: signature with an asymmetric
//     algorithm only (never "none" or HMAC), iss, aud, exp, and optionally a
//     required app role or scope. A RoleMap turns the token's app roles and
//     group ids into grants.
//
// Authentication says who; a principal's Grants say what it may do in
// which tenant (Role, Grants), which opsapi checks on every request.
//
// The keys live in a KeyStore: a keys file (FileStore, local runs) or an
// Azure table (TableStore, shared by the server replicas in Azure). Watch
// reloads them every few seconds, so a key changed by hand or by another
// replica takes effect there; a broken store is logged and the previous
// keys stay in force.
package operatorauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/botehq/platform/runtime/accesstoken"
)

// Errors callers branch on.
var (
	// ErrUnauthenticated: no credential, or one that is malformed, unknown,
	// wrong, expired or disabled. HTTP 401.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: a valid credential without the required role. HTTP 403.
	ErrForbidden = errors.New("forbidden")
)

// Config configures an Authenticator. At least one credential kind must be
// configured.
type Config struct {
	// KeysFile is the path of the API keys file (FileStore); empty, and
	// Keys nil, disables API keys.
	KeysFile string
	// Keys is where the API keys live when not in KeysFile: a TableStore,
	// shared by every server replica.
	Keys KeyStore
	// OAuth2, if non-nil, enables OAuth2 bearer JWTs.
	OAuth2 *JWTConfig
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.KeysFile == "" && c.Keys == nil && c.OAuth2 == nil {
		return errors.New("operatorauth config: KeysFile, Keys or OAuth2 is required: operators need a way to authenticate")
	}
	if c.KeysFile != "" && c.Keys != nil {
		return errors.New("operatorauth config: KeysFile and Keys: give one")
	}
	if c.OAuth2 != nil {
		if err := c.OAuth2.Validate(); err != nil {
			return fmt.Errorf("operatorauth config: OAuth2.%w", err)
		}
	}
	return nil
}

// Authenticator checks the bearer credential of API requests.
type Authenticator struct {
	store  KeyStore // nil: no API keys
	keys   atomic.Pointer[KeySet]
	jwt    *JWTValidator
	logger *slog.Logger
}

// New loads the API keys (an error if the store cannot be read or is
// invalid) and sets up JWT validation. ctx bounds the JWKS background
// refresh.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid operator auth config: %w", err)
	}
	a := &Authenticator{store: cfg.Keys, logger: cfg.Logger}
	if a.logger == nil {
		a.logger = slog.Default()
	}
	if cfg.KeysFile != "" {
		a.store = &FileStore{Path: cfg.KeysFile}
	}
	if a.store != nil {
		if err := a.Reload(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.OAuth2 != nil {
		oc := *cfg.OAuth2
		if oc.Logger == nil {
			oc.Logger = a.logger
		}
		v, err := NewJWTValidator(ctx, oc)
		if err != nil {
			return nil, err
		}
		a.jwt = v
	}
	return a, nil
}

// Reload reads the keys again. On error the previous keys stay.
func (a *Authenticator) Reload(ctx context.Context) error {
	f, err := a.store.Load(ctx)
	if err != nil {
		return err
	}
	a.keys.Store(NewKeySet(f))
	return nil
}

// Watch reloads the keys every interval until ctx ends, so that a key
// created, rotated or revoked elsewhere (an edited file, another replica
// writing the table) takes effect within interval. Failed reloads are
// logged and leave the previous keys in force.
func (a *Authenticator) Watch(ctx context.Context, interval time.Duration) {
	if a.store == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		before := a.keys.Load()
		if err := a.Reload(ctx); err != nil {
			if ctx.Err() == nil {
				a.logger.ErrorContext(ctx, "cannot reload API keys; keeping the previous ones", "store", a.store.String(), "err", err)
			}
			continue
		}
		if after := a.keys.Load(); !after.equal(before) {
			a.logger.InfoContext(ctx, "reloaded API keys", "store", a.store.String(), "keys", after.Len())
		}
	}
}

// Authenticate checks the request's bearer credential. Errors wrap
// ErrUnauthenticated or ErrForbidden and never contain the credential.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	cred, err := BearerCredential(r)
	if err != nil {
		return Principal{}, err
	}
	if LooksLikeAPIKey(cred) {
		ks := a.keys.Load()
		if ks == nil {
			return Principal{}, fmt.Errorf("%w: %v", ErrUnauthenticated, errNoKeys)
		}
		return ks.Verify(cred)
	}
	if a.jwt == nil {
		return Principal{}, fmt.Errorf("%w: credential is not an API key and OAuth2 tokens are not enabled", ErrUnauthenticated)
	}
	return a.jwt.Verify(r.Context(), cred)
}

// BearerCredential returns the credential of the request's single
// "Authorization: Bearer" header (parsed as for connectors' access tokens).
func BearerCredential(r *http.Request) (string, error) {
	cred, err := accesstoken.FromRequest(r)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	return cred, nil
}

// CreateKey adds an API key with the given grants to the key store and
// returns it (to show once) with its listing.
func (a *Authenticator) CreateKey(ctx context.Context, id, description string, g Grants) (string, KeyInfo, error) {
	var key string
	info, err := a.editKeys(ctx, id, func(f *KeysFile, now time.Time) (err error) {
		key, err = f.AddKey(id, description, g, now)
		return err
	})
	return key, info, err
}

// RotateKey replaces the secret of key id and returns the new key.
func (a *Authenticator) RotateKey(ctx context.Context, id string) (string, KeyInfo, error) {
	var key string
	info, err := a.editKeys(ctx, id, func(f *KeysFile, now time.Time) (err error) {
		key, err = f.RotateKey(id, now)
		return err
	})
	return key, info, err
}

// RevokeKey disables key id for good.
func (a *Authenticator) RevokeKey(ctx context.Context, id string) (KeyInfo, error) {
	return a.editKeys(ctx, id, func(f *KeysFile, now time.Time) error { return f.RevokeKey(id, now) })
}

// ListKeys lists the keys as stored now, sorted by id, without secrets.
func (a *Authenticator) ListKeys(ctx context.Context) ([]KeyInfo, error) {
	if a.store == nil {
		return nil, ErrNoKeysFile
	}
	f, err := a.store.Load(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, 0, len(f.Keys))
	for _, e := range f.Keys {
		out = append(out, e.Info())
	}
	slices.SortFunc(out, func(x, y KeyInfo) int { return strings.Compare(x.ID, y.ID) })
	return out, nil
}

// editKeys edits the store and puts the result in force at once on this
// server (other replicas pick it up within their Watch interval).
func (a *Authenticator) editKeys(ctx context.Context, id string, edit func(*KeysFile, time.Time) error) (KeyInfo, error) {
	if a.store == nil {
		return KeyInfo{}, ErrNoKeysFile
	}
	f, err := a.store.Edit(ctx, id, edit)
	if err != nil {
		return KeyInfo{}, err
	}
	a.keys.Store(NewKeySet(f))
	e, err := f.entry(id)
	if err != nil {
		return KeyInfo{}, err
	}
	return e.Info(), nil
}
