package tfarchive

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPackBundle(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(`resource "terraform_data" "x" {}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".terraformignore"), []byte("notes.txt\n"), 0o644))

	f, st, err := PackBundle(dir, []File{{Name: "extra.auto.tfvars", Data: []byte("a = 1\n")}})
	require.NoError(t, err)
	defer os.Remove(f.Name())
	defer f.Close()
	assert.Equal(t, 3, st.Files, "main.tf, .terraformignore and the extra file")
	assert.Equal(t, 1, st.Ignored)
	head := make([]byte, 2)
	_, err = io.ReadFull(f, head)
	require.NoError(t, err)
	assert.Equal(t, []byte{0x1f, 0x8b}, head, "rewound to the gzip header")

	_, _, err = PackBundle(filepath.Join(dir, "missing"), nil)
	require.Error(t, err)
	_, _, err = PackBundle(dir, []File{{Name: "main.tf"}})
	assert.ErrorContains(t, err, "main.tf is in the directory already")
	left, _ := filepath.Glob(filepath.Join(tmp, "opsbot-bundle-*"))
	assert.Equal(t, []string{f.Name()}, left, "a failed pack leaves no temporary file")
}
