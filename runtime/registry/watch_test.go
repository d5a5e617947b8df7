package registry

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// touch gives path a modification time distinct from any earlier one, so a
// rewrite is seen even on file systems with coarse timestamps.
func touch(t *testing.T, path string, n int) {
	t.Helper()
	mt := time.Date(2026, 1, 1, 0, 0, n, 0, time.UTC)
	require.NoError(t, os.Chtimes(path, mt, mt))
}

func TestWatcherReload(t *testing.T) {
	k := ecKey(t)
	jwk := jwkOf(t, k)
	path := filepath.Join(t.TempDir(), "registry.json")
	writeRegistry(t, path, []Connector{{Tenant: "t1", ID: "c1", JWK: jwk}})
	touch(t, path, 1)
	log := &syncBuffer{}
	w, err := NewWatcher(path, time.Hour, slog.New(slog.NewJSONHandler(log, nil)))
	require.NoError(t, err)
	_, ok := w.Lookup("t1/c1")
	require.True(t, ok)

	changed, err := w.Reload()
	require.NoError(t, err)
	assert.False(t, changed, "unchanged file is not reloaded")

	writeRegistry(t, path, []Connector{{Tenant: "t1", ID: "c1", JWK: jwk}, {Tenant: "t2", ID: "c2", JWK: jwk}})
	touch(t, path, 2)
	changed, err = w.Reload()
	require.NoError(t, err)
	assert.True(t, changed)
	_, ok = w.Lookup("t2/c2")
	assert.True(t, ok, "new connector visible after reload")

	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"truncated", `{"version":1,"connectors":[`, "cannot decode"},
		{"private key registered", `{"version":1,"connectors":[{"tenant":"t","id":"c","jwk":{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}}]}`, "private key"},
		{"future version", `{"version":2,"connectors":[]}`, "version"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600))
			touch(t, path, 10+i)
			changed, err := w.Reload()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.False(t, changed)
			_, ok := w.Lookup("t2/c2")
			assert.True(t, ok, "last good registry stays in force")

			changed, err = w.Reload()
			assert.NoError(t, err, "a broken file is reported once")
			assert.False(t, changed)
		})
	}

	require.NoError(t, os.Remove(path))
	_, err = w.Reload()
	assert.Error(t, err)
	_, ok = w.Lookup("t1/c1")
	assert.True(t, ok, "a vanished file keeps the last good registry")
}

func TestWatcherRun(t *testing.T) {
	k := ecKey(t)
	path := filepath.Join(t.TempDir(), "registry.json")
	writeRegistry(t, path, nil)
	touch(t, path, 1)
	w, err := NewWatcher(path, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	writeRegistry(t, path, []Connector{{Tenant: "t", ID: "c", JWK: jwkOf(t, k)}})
	touch(t, path, 2)
	assert.Eventually(t, func() bool { _, ok := w.Lookup("t/c"); return ok }, 5*time.Second, 10*time.Millisecond)
}

func TestWatcherNeedsAGoodFirstFile(t *testing.T) {
	dir := t.TempDir()
	_, err := NewWatcher(filepath.Join(dir, "missing.json"), 0, nil)
	assert.Error(t, err)
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte("{"), 0o600))
	_, err = NewWatcher(bad, 0, nil)
	assert.ErrorContains(t, err, "cannot decode")
}

func jwkOf(t *testing.T, k *ecdsa.PrivateKey) json.RawMessage { return jwk(t, &k.PublicKey) }

func writeRegistry(t *testing.T, path string, cs []Connector) {
	t.Helper()
	out, err := Marshal(cs)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, out, 0o600))
}

// syncBuffer collects log output written from the watcher's goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
