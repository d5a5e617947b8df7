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
//     (relayserver apikey create) or Authenticator.CreateKey (the API) and
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
// The keys file can be replaced while the server runs (Watch reloads it);
// a broken new file is logged and the previous keys stay in force.
package operatorauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
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

// Kind says how an operator authenticated.
type Kind string

// Kinds of credential.
const (
	KindAPIKey Kind = "api-key"
	KindOAuth2 Kind = "oauth2"
)

// Principal is an authenticated operator. Its embedded Grants answer
// authorization questions: p.Allows(tenant, RoleOperator), p.RoleIn(tenant),
// p.IsAdmin(), p.TenantIDs().
type Principal struct {
	Kind Kind `json:"kind"`
	// ID is the key id for API keys, the object id (or sub) for OAuth2.
	ID string `json:"id"`
	// Name is for humans and logs: the key id, or the token's
	// preferred_username (or sub).
	Name string `json:"name"`
	// Grants say what the principal may do: admin, or a role per tenant
	// (see Role). A principal with no grants is authenticated but may do
	// nothing.
	Grants
}

// String is what logs show: "api-key:alice-laptop".
func (p Principal) String() string { return string(p.Kind) + ":" + p.Name }

// Subject identifies the principal stably, "kind:id" (for OAuth2 the
// object id, which unlike the user name never changes hands). Compare
// principals by Subject, never by String.
func (p Principal) Subject() string { return string(p.Kind) + ":" + p.ID }

// Config configures an Authenticator. At least one credential kind must be
// configured.
type Config struct {
	// KeysFile is the path of the API keys file; empty disables API keys.
	KeysFile string
	// OAuth2, if non-nil, enables OAuth2 bearer JWTs.
	OAuth2 *JWTConfig
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.KeysFile == "" && c.OAuth2 == nil {
		return errors.New("KeysFile or OAuth2 is required: operators need a way to authenticate")
	}
	if c.OAuth2 != nil {
		if err := c.OAuth2.Validate(); err != nil {
			return fmt.Errorf("OAuth2.%w", err)
		}
	}
	return nil
}

// Authenticator checks the bearer credential of API requests.
type Authenticator struct {
	keysFile string
	keys     atomic.Pointer[KeySet]
	editMu   sync.Mutex // serializes key management
	jwt      *JWTValidator
	logger   *slog.Logger
}

// New loads the keys file (an error if it is missing or invalid) and sets up
// JWT validation. ctx bounds the JWKS background refresh.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid operator auth config: %w", err)
	}
	a := &Authenticator{keysFile: cfg.KeysFile, logger: cfg.Logger}
	if a.logger == nil {
		a.logger = slog.Default()
	}
	if cfg.KeysFile != "" {
		if err := a.Reload(); err != nil {
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

// Reload reads the keys file again. On error the previous keys stay.
func (a *Authenticator) Reload() error {
	f, err := LoadKeysFile(a.keysFile)
	if err != nil {
		return err
	}
	a.keys.Store(NewKeySet(f))
	return nil
}

// Watch reloads the keys file whenever its size or modification time
// changes, checking every interval until ctx ends. Failed reloads are logged
// and leave the previous keys in force.
func (a *Authenticator) Watch(ctx context.Context, interval time.Duration) {
	if a.keysFile == "" {
		return
	}
	stamp := func() (time.Time, int64) {
		fi, err := os.Stat(a.keysFile)
		if err != nil {
			return time.Time{}, -1
		}
		return fi.ModTime(), fi.Size()
	}
	// Start from "unknown", not from a stat now: the file may have changed
	// between New's load and this goroutine's first run, and that change
	// must not be taken for the loaded version. The first tick reloads once.
	lastMod, lastSize := time.Time{}, int64(-2)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		mod, size := stamp()
		if mod.Equal(lastMod) && size == lastSize {
			continue
		}
		lastMod, lastSize = mod, size
		if err := a.Reload(); err != nil {
			a.logger.ErrorContext(ctx, "cannot reload API keys; keeping the previous ones", "err", err)
			continue
		}
		a.logger.InfoContext(ctx, "reloaded API keys", "file", a.keysFile, "keys", a.keys.Load().Len())
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

// CreateKey adds an API key with the given grants to the keys file and
// returns it (to show once) with its listing. Key management reads the
// file, changes it and writes it back atomically under a lock, then
// reloads; the file is the store, so one server process should own it.
func (a *Authenticator) CreateKey(id, description string, g Grants) (string, KeyInfo, error) {
	var key string
	info, err := a.editKeys(id, func(f *KeysFile, now time.Time) (err error) {
		key, err = f.AddKey(id, description, g, now)
		return err
	})
	return key, info, err
}

// RotateKey replaces the secret of key id and returns the new key.
func (a *Authenticator) RotateKey(id string) (string, KeyInfo, error) {
	var key string
	info, err := a.editKeys(id, func(f *KeysFile, now time.Time) (err error) {
		key, err = f.RotateKey(id, now)
		return err
	})
	return key, info, err
}

// RevokeKey disables key id for good.
func (a *Authenticator) RevokeKey(id string) (KeyInfo, error) {
	return a.editKeys(id, func(f *KeysFile, now time.Time) error { return f.RevokeKey(id, now) })
}

// ListKeys lists the keys in force, sorted by id, without secrets.
func (a *Authenticator) ListKeys() ([]KeyInfo, error) {
	if a.keysFile == "" {
		return nil, ErrNoKeysFile
	}
	ks := a.keys.Load()
	out := make([]KeyInfo, 0, ks.Len())
	for _, e := range ks.byID {
		out = append(out, e.Info())
	}
	slices.SortFunc(out, func(x, y KeyInfo) int { return strings.Compare(x.ID, y.ID) })
	return out, nil
}

func (a *Authenticator) editKeys(id string, edit func(*KeysFile, time.Time) error) (KeyInfo, error) {
	if a.keysFile == "" {
		return KeyInfo{}, ErrNoKeysFile
	}
	a.editMu.Lock()
	defer a.editMu.Unlock()
	f, err := LoadKeysFile(a.keysFile)
	if err != nil {
		return KeyInfo{}, err
	}
	if err := edit(f, time.Now()); err != nil {
		return KeyInfo{}, err
	}
	if err := f.Save(a.keysFile); err != nil {
		return KeyInfo{}, err
	}
	a.keys.Store(NewKeySet(f))
	return f.Keys[f.find(id)].Info(), nil
}
