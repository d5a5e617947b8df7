package tfrun

import (
	"archive/zip"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// standInMirror is a filesystem mirror with example.com/bote/fake 1.0.0,
// a stand-in init installs but plan cannot run, and a CLI configuration
// that installs only from it.
func standInMirror(t *testing.T) (cliConfig string) {
	t.Helper()
	dir := t.TempDir()
	d := filepath.Join(dir, "mirror", "example.com", "bote", "fake")
	require.NoError(t, os.MkdirAll(d, 0o755))
	f, err := os.Create(filepath.Join(d, "terraform-provider-fake_1.0.0_"+runtime.GOOS+"_"+runtime.GOARCH+".zip"))
	require.NoError(t, err)
	zw := zip.NewWriter(f)
	w, err := zw.Create("terraform-provider-fake_v1.0.0")
	require.NoError(t, err)
	_, err = w.Write([]byte("#!/bin/sh\nexit 1\n"))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())
	cliConfig = filepath.Join(dir, "cli.tfrc")
	rc := "provider_installation {\n  filesystem_mirror {\n    path = \"" + filepath.Join(dir, "mirror") + "\"\n  }\n}\n"
	require.NoError(t, os.WriteFile(cliConfig, []byte(rc), 0o600))
	return cliConfig
}

func TestLockFileChangesAreReported(t *testing.T) {
	r, err := New(Config{})
	require.NoError(t, err)
	cli := standInMirror(t)
	main := []byte("terraform {\n  required_providers {\n    fake = { source = \"example.com/bote/fake\" }\n  }\n}\n")
	plan := func(lock []byte) *Result {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), main, 0o600))
		if lock != nil {
			require.NoError(t, os.WriteFile(filepath.Join(dir, LockFileName), lock, 0o600))
		}
		res, err := r.Run(context.Background(), Job{Op: Plan, Dir: dir, CLIConfigFile: cli}, nil)
		require.Error(t, err, "the stand-in provider cannot plan") // init ran
		return res
	}

	// No lock file in the configuration: init creates one.
	res := plan(nil)
	require.NotNil(t, res.LockFile)
	assert.True(t, res.LockFile.Changed)
	assert.True(t, res.LockFile.Created)
	assert.Contains(t, res.LockFile.Content, `provider "example.com/bote/fake"`)
	assert.True(t, slices.ContainsFunc(res.Diagnostics, func(d Diagnostic) bool {
		return d.Severity == "warning" && d.Summary == "terraform init changed the dependency lock file"
	}), "%+v", res.Diagnostics)

	// The same lock file: unchanged, and nothing said.
	res2 := plan([]byte(res.LockFile.Content))
	require.NotNil(t, res2.LockFile)
	assert.False(t, res2.LockFile.Changed)
	assert.Equal(t, res.LockFile.Content, res2.LockFile.Content)
	for _, d := range res2.Diagnostics {
		assert.NotContains(t, d.Summary, "lock file")
	}

	// A lock file for another version: init fails, it does not pick another.
	other := []byte("provider \"example.com/bote/fake\" {\n  version = \"0.9.0\"\n  constraints = \"0.9.0\"\n  hashes = [\"h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"]\n}\n")
	res3 := plan(other)
	assert.Nil(t, res3.LockFile)
	assert.True(t, res3.Failed)
}
