package signingkeys

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/accesstoken"
)

// clock is a settable fake clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(t *testing.T, dir string, clk *clock) *FileStore {
	t.Helper()
	s, err := OpenFileStore(FileConfig{
		Dir: dir, RotateEvery: time.Hour, PublishAhead: 10 * time.Minute,
		TokenTTL: 10 * time.Minute, Grace: time.Minute, Now: clk.Now, Logger: quiet,
	})
	require.NoError(t, err)
	return s
}

func publishedIDs(t *testing.T, s Store) []string {
	t.Helper()
	keys, err := s.PublicKeys(context.Background())
	require.NoError(t, err)
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return ids
}

func signingID(t *testing.T, s Store) string {
	t.Helper()
	k, err := s.SigningKey(context.Background())
	require.NoError(t, err)
	return k.ID
}

// verifies reports whether token verifies against the store's published keys
// at the clock's time.
func verifies(t *testing.T, s Store, clk *clock, token string) bool {
	t.Helper()
	keys, err := s.PublicKeys(context.Background())
	require.NoError(t, err)
	_, err = jwt.Parse(token, func(tok *jwt.Token) (any, error) {
		for _, k := range keys {
			if k.ID == tok.Header["kid"] {
				return k.Key, nil
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(clk.Now))
	return err == nil
}

func sign(t *testing.T, s Store, clk *clock) string {
	t.Helper()
	k, err := s.SigningKey(context.Background())
	require.NoError(t, err)
	claims, err := accesstoken.NewClaims("https://idp", "bote", "t", "c", "", clk.Now(), 10*time.Minute)
	require.NoError(t, err)
	tok, err := accesstoken.Sign(k.Signer, k.ID, claims)
	require.NoError(t, err)
	return tok
}

func TestRotationWithOverlap(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, t.TempDir(), clk)

	first := signingID(t, s)
	assert.Equal(t, []string{first}, publishedIDs(t, s), "a fresh store publishes its one key")

	clk.Add(49 * time.Minute)
	assert.Equal(t, []string{first}, publishedIDs(t, s), "next key not yet due")

	clk.Add(time.Minute) // 50m: RotateEvery - PublishAhead
	ids := publishedIDs(t, s)
	require.Len(t, ids, 2, "next key published ahead of use")
	next := ids[0]
	assert.Equal(t, first, signingID(t, s), "next key does not sign yet")
	clk.Add(9 * time.Minute)
	oldToken := sign(t, s, clk) // 59m: the last token of the old key
	clk.Add(time.Minute)

	// 60m: rotation
	assert.Equal(t, next, signingID(t, s), "next key signs after RotateEvery")
	assert.Equal(t, []string{next, first}, publishedIDs(t, s), "retired key still published")
	newToken := sign(t, s, clk)

	// A token signed just before rotation lives 10m; the retired key stays
	// for TokenTTL + Grace = 11m after retirement.
	clk.Add(8 * time.Minute)
	assert.True(t, verifies(t, s, clk, oldToken), "token of the old key verifies during the overlap")
	assert.True(t, verifies(t, s, clk, newToken), "token of the new key verifies")
	clk.Add(2*time.Minute + 59*time.Second)
	assert.Contains(t, publishedIDs(t, s), first, "retired key published until its tokens have expired")

	clk.Add(time.Second)
	assert.Equal(t, []string{next}, publishedIDs(t, s), "retired key dropped after TokenTTL + Grace")
	assert.False(t, verifies(t, s, clk, oldToken), "old key gone")
	_, err := os.Stat(filepath.Join(s.cfg.Dir, first+".pem"))
	assert.ErrorIs(t, err, os.ErrNotExist, "dropped key file removed")
}

func TestTokensOfBothKeysVerifyDuringOverlap(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, t.TempDir(), clk)
	clk.Add(50 * time.Minute)
	publishedIDs(t, s) // next key published
	clk.Add(9 * time.Minute)
	before := sign(t, s, clk)
	clk.Add(time.Minute)
	after := sign(t, s, clk)
	require.NotEqual(t, kidOf(t, before), kidOf(t, after), "rotation happened between the two tokens")
	clk.Add(8 * time.Minute)
	assert.True(t, verifies(t, s, clk, before))
	assert.True(t, verifies(t, s, clk, after))
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	require.NoError(t, err)
	return tok.Header["kid"].(string)
}

func TestPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, dir, clk)
	first := signingID(t, s)
	token := sign(t, s, clk)

	again := open(t, dir, clk)
	assert.Equal(t, first, signingID(t, again), "same signing key after restart")
	assert.True(t, verifies(t, again, clk, token))

	// Down across a rotation: the restarted store publishes the next key at
	// once but keeps signing with the old one for PublishAhead, so that
	// verifiers learn the new key before they meet it.
	clk.Add(3 * time.Hour)
	late := open(t, dir, clk)
	assert.Equal(t, first, signingID(t, late))
	assert.Len(t, publishedIDs(t, late), 2)
	clk.Add(10 * time.Minute)
	assert.NotEqual(t, first, signingID(t, late))

	info, err := os.Stat(filepath.Join(dir, signingID(t, late)+".pem"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "key files are private")
}

func TestOpenRejectsBrokenDirectory(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"garbage metadata", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, metadataFile), []byte("{"), 0o600))
		}, "cannot decode signing key metadata"},
		{"future version", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, metadataFile), []byte(`{"version":9,"keys":[]}`), 0o600))
		}, "version 9"},
		{"active key file missing", func(t *testing.T, dir string) {
			s := open(t, dir, clk)
			require.NoError(t, os.Remove(filepath.Join(dir, signingID(t, s)+".pem")))
		}, "cannot load signing key"},
		{"key file swapped", func(t *testing.T, dir string) {
			s := open(t, dir, clk)
			kid := signingID(t, s)
			other := open(t, t.TempDir(), clk)
			data, err := os.ReadFile(filepath.Join(other.cfg.Dir, signingID(t, other)+".pem"))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, kid+".pem"), data, 0o600))
		}, "holds key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			_, err := OpenFileStore(FileConfig{Dir: dir, TokenTTL: time.Minute, Now: clk.Now, Logger: quiet})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestRetiredKeyFileLossIsTolerated(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, dir, clk)
	first := signingID(t, s)
	clk.Add(50 * time.Minute)
	publishedIDs(t, s)
	clk.Add(10 * time.Minute)
	require.NotEqual(t, first, signingID(t, s))
	require.NoError(t, os.Remove(filepath.Join(dir, first+".pem")))
	again := open(t, dir, clk)
	assert.NotContains(t, publishedIDs(t, again), first)
}

func TestFileConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  FileConfig
		want string
	}{
		{"no dir", FileConfig{TokenTTL: time.Minute}, "Dir"},
		{"no ttl", FileConfig{Dir: "x"}, "TokenTTL"},
		{"tiny rotation", FileConfig{Dir: "x", TokenTTL: time.Minute, RotateEvery: time.Second}, "RotateEvery"},
		{"publish ahead too long", FileConfig{Dir: "x", TokenTTL: time.Minute, RotateEvery: time.Hour, PublishAhead: time.Hour}, "PublishAhead"},
		{"negative grace", FileConfig{Dir: "x", TokenTTL: time.Minute, Grace: -1}, "Grace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	assert.NoError(t, FileConfig{Dir: "x", TokenTTL: time.Minute}.Validate())
}

func TestJWKS(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, t.TempDir(), clk)
	keys, err := s.PublicKeys(context.Background())
	require.NoError(t, err)
	out, err := JWKS(keys)
	require.NoError(t, err)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(out, &set))
	require.Len(t, set.Keys, 1)
	k := set.Keys[0]
	assert.Equal(t, "EC", k["kty"])
	assert.Equal(t, "P-256", k["crv"])
	assert.Equal(t, "ES256", k["alg"])
	assert.Equal(t, "sig", k["use"])
	assert.Equal(t, keys[0].ID, k["kid"])
	assert.NotContains(t, k, "d", "no private part")
}
