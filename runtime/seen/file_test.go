package seen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFileSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "seen")
	f, err := OpenFile(path, 100)
	require.NoError(t, err)
	for _, k := range []string{"a", "b", "with\nnewline", "a"} {
		require.NoError(t, f.Add(k))
	}
	assert.True(t, f.Has("b"))
	// No Close: a kill -9 leaves the file as Add synced it.
	g, err := OpenFile(path, 100)
	require.NoError(t, err)
	defer g.Close()
	for _, k := range []string{"a", "b", "with\nnewline"} {
		assert.True(t, g.Has(k), k)
	}
	assert.False(t, g.Has("c"))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, 3, strings.Count(string(data), "\n"), "a key already held is not written again")
}

func TestFileIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seen")
	f, err := OpenFile(path, 10)
	require.NoError(t, err)
	for i := range 55 {
		require.NoError(t, f.Add(strings.Repeat("k", i+1)))
	}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.LessOrEqual(t, strings.Count(string(data), "\n"), 20, "compacted at twice the bound")
	require.NoError(t, f.Close())
	g, err := OpenFile(path, 10)
	require.NoError(t, err)
	assert.True(t, g.Has(strings.Repeat("k", 55)), "the newest is kept")
	assert.True(t, g.Has(strings.Repeat("k", 46)), "the 10 newest are kept")
	assert.False(t, g.Has(strings.Repeat("k", 45)), "older ones are forgotten")
	assert.Equal(t, 10, len(ParseFile(mustRead(t, path))))
}

func TestFileIgnoresATornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seen")
	require.NoError(t, os.WriteFile(path, []byte("\"a\"\n\"b\"\n\"tor"), 0o600))
	f, err := OpenFile(path, 10)
	require.NoError(t, err)
	require.NoError(t, f.Add("c"))
	require.NoError(t, f.Close())
	assert.Equal(t, []string{"a", "b", "c"}, ParseFile(mustRead(t, path)))
}

func TestOpenFileErrors(t *testing.T) {
	_, err := OpenFile(filepath.Join(t.TempDir(), "seen"), 0)
	assert.ErrorContains(t, err, "max 0")
	dir := t.TempDir()
	_, err = OpenFile(dir, 10) // a directory, not a file
	assert.Error(t, err)
	f, err := OpenFile(filepath.Join(t.TempDir(), "seen"), 10)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	assert.ErrorContains(t, f.Add("x"), "closed")
	assert.False(t, (*File)(nil).Has("x"))
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}
