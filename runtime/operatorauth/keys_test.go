package operatorauth

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testNow = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

func TestKeySetVerify(t *testing.T) {
	f := &KeysFile{Version: KeysFileVersion}
	alice, err := f.AddKey("alice", "laptop", Grants{}, testNow)
	require.NoError(t, err)
	bob, err := f.AddKey("bob", "", Grants{}, testNow)
	require.NoError(t, err)
	gone, err := f.AddKey("gone", "", Grants{}, testNow)
	require.NoError(t, err)
	f.Keys[2].Disabled = true
	ks := NewKeySet(f)

	// A key with alice's id and bob's secret must not pass.
	_, bobSecret, _ := strings.Cut(strings.TrimPrefix(bob, KeyPrefix), ".")
	tests := []struct {
		name    string
		key     string
		wantID  string
		wantErr string
	}{
		{"alice", alice, "alice", ""},
		{"bob", bob, "bob", ""},
		{"disabled", gone, "", "disabled"},
		{"other key's secret", KeyPrefix + "alice." + bobSecret, "", "wrong secret"},
		{"unknown id", KeyPrefix + "carol." + bobSecret, "", "unknown API key id"},
		{"one char changed", alice[:len(alice)-1] + flip(alice[len(alice)-1]), "", "wrong secret"},
		{"truncated", alice[:len(alice)-1], "", "malformed"},
		{"no prefix", strings.TrimPrefix(alice, KeyPrefix), "", "malformed"},
		{"no dot", KeyPrefix + "alice" + bobSecret, "", "malformed"},
		{"bad id", KeyPrefix + "Alice." + bobSecret, "", "malformed"},
		{"empty", "", "", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ks.Verify(tt.key)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrUnauthenticated)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.NotContains(t, err.Error(), bobSecret, "errors must not echo secrets")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantID, p.ID)
		})
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestAddKeyRejectsDuplicateAndBadID(t *testing.T) {
	f := &KeysFile{Version: KeysFileVersion}
	_, err := f.AddKey("alice", "", Grants{}, testNow)
	require.NoError(t, err)
	_, err = f.AddKey("alice", "", Grants{}, testNow)
	assert.ErrorContains(t, err, "already exists")
	_, err = f.AddKey("Alice!", "", Grants{}, testNow)
	assert.ErrorContains(t, err, "lowercase")
}

func TestParseKeysFileErrors(t *testing.T) {
	salt := `"AAAAAAAAAAAAAAAAAAAAAA=="`
	hash := `"` + strings.Repeat("A", 43) + `="`
	tests := []struct {
		name, data, want string
	}{
		{"not json", `{`, "cannot decode"},
		{"unknown field", `{"version":1,"keys":[],"extra":1}`, "unknown field"},
		{"wrong version", `{"version":2,"keys":[]}`, "version is 2"},
		{"bad id", `{"version":1,"keys":[{"id":"A","salt":` + salt + `,"sha256":` + hash + `}]}`, "keys[0].id"},
		{"duplicate", `{"version":1,"keys":[{"id":"a","salt":` + salt + `,"sha256":` + hash + `},{"id":"a","salt":` + salt + `,"sha256":` + hash + `}]}`, "keys[1].id: duplicate"},
		{"short salt", `{"version":1,"keys":[{"id":"a","salt":"AAAA","sha256":` + hash + `}]}`, "keys[0].salt"},
		{"short hash", `{"version":1,"keys":[{"id":"a","salt":` + salt + `,"sha256":"AAAA"}]}`, "keys[0].sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKeysFile([]byte(tt.data))
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	f := &KeysFile{Version: KeysFileVersion}
	zed, err := f.AddKey("zed", "", Grants{}, testNow)
	require.NoError(t, err)
	_, err = f.AddKey("amy", "ops", Grants{}, testNow)
	require.NoError(t, err)
	require.NoError(t, f.Save(path))

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.NotContains(t, string(data), strings.SplitN(zed, ".", 2)[1], "the file must not hold the secret")

	g, err := LoadKeysFile(path)
	require.NoError(t, err)
	require.Len(t, g.Keys, 2)
	assert.Equal(t, "amy", g.Keys[0].ID, "saved sorted by id")
	p, err := NewKeySet(g).Verify(zed)
	require.NoError(t, err)
	assert.Equal(t, "zed", p.ID)
}

func TestAuthenticatorWatchReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	f := &KeysFile{Version: KeysFileVersion}
	old, err := f.AddKey("old", "", Grants{}, testNow)
	require.NoError(t, err)
	require.NoError(t, f.Save(path))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := New(ctx, Config{KeysFile: path})
	require.NoError(t, err)
	go a.Watch(ctx, 10*time.Millisecond)

	check := func(key string) error {
		r := httptest.NewRequest("GET", "/v1/status", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		_, err := a.Authenticate(r)
		return err
	}
	require.NoError(t, check(old))

	newKey, err := f.AddKey("new", "", Grants{}, testNow)
	require.NoError(t, err)
	f.Keys[0].Disabled = true // "old" (keys are sorted by Save)
	require.NoError(t, f.Save(path))
	require.Eventually(t, func() bool { return check(newKey) == nil }, 5*time.Second, 10*time.Millisecond)
	assert.ErrorContains(t, check(old), "disabled")

	// A broken file keeps the previous keys.
	require.NoError(t, os.WriteFile(path, []byte("{broken"), 0o600))
	time.Sleep(100 * time.Millisecond)
	assert.NoError(t, check(newKey))
}

func TestNewRequiresACredentialKind(t *testing.T) {
	_, err := New(context.Background(), Config{})
	assert.ErrorContains(t, err, "KeysFile, Keys or OAuth2")
	_, err = New(context.Background(), Config{KeysFile: filepath.Join(t.TempDir(), "missing.json")})
	assert.ErrorContains(t, err, "cannot read keys file")
	_, err = New(context.Background(), Config{OAuth2: &JWTConfig{Issuer: "https://idp.example", Audience: ""}})
	assert.ErrorContains(t, err, "OAuth2.Audience")
}

func TestBearerCredential(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		want    string
		wantErr string
	}{
		{"ok", []string{"Bearer abc"}, "abc", ""},
		{"case-insensitive scheme", []string{"bearer  abc "}, "abc", ""},
		{"missing", nil, "", "no Authorization"},
		{"basic", []string{"Basic YWJj"}, "", "not a Bearer"},
		{"empty", []string{"Bearer  "}, "", "not a Bearer"},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", "more than one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}
			got, err := BearerCredential(r)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrUnauthenticated)
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
