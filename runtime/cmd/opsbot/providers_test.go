package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/opsapi"
)

func TestWorkspaceProviderFlags(t *testing.T) {
	f := newFakeRuns()
	c := cli{t: t, api: f}
	r := c.run("workspaces", "create", "gov", "--provider-mirror-dir", "/usr/local/share/terraform/plugins", "--provider-direct=false")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, &opsapi.ProviderSources{FilesystemMirror: "/usr/local/share/terraform/plugins", NoDirect: true}, f.workspaces[0].Providers)
	r = c.run("workspaces", "update", "gov", "--provider-network-mirror", "https://mirror.example.com/p/")
	require.Equal(t, 0, r.code, r.stderr)
	r = c.run("workspaces", "update", "gov", "--description", "x")
	require.Equal(t, 0, r.code, r.stderr)
	require.Len(t, f.updates, 2)
	assert.Equal(t, &opsapi.ProviderSources{NetworkMirror: "https://mirror.example.com/p/"}, f.updates[0].Providers, "one --provider-* flag replaces all three")
	assert.Nil(t, f.updates[1].Providers, "no --provider-* flag: unchanged")
}

func TestLockFileWritesTheRunsLockFile(t *testing.T) {
	const lock = "provider \"example.com/bote/botetest\" {\n  version = \"1.0.0\"\n}\n"
	f := newFakeRuns()
	c := cli{t: t, api: f}
	r := c.run("runs", "lockfile", f.run.ID)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "has no plan result yet (it is queued)")
	f.run.PlanResult = &opsapi.RunResult{}
	r = c.run("runs", "lockfile", f.run.ID, "-O", filepath.Join(t.TempDir(), "none"))
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.stderr, "uses no providers: Terraform wrote no lock file")
	assert.Empty(t, r.stdout)

	f.run.PlanResult = &opsapi.RunResult{LockFile: &opsapi.LockFile{Changed: true, Created: true, Content: lock}}
	r = c.run("runs", "lockfile", f.run.ID)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, lock, r.stdout)

	out := filepath.Join(t.TempDir(), ".terraform.lock.hcl")
	r = c.run("runs", "lockfile", f.run.ID, "-O", out)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "(created by init) written to "+out)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, lock, string(got))

	// -O a directory: the configuration's lock file in it.
	dir := t.TempDir()
	r = c.run("runs", "lockfile", f.run.ID, "-O", dir)
	require.Equal(t, 0, r.code, r.stderr)
	got, err = os.ReadFile(filepath.Join(dir, ".terraform.lock.hcl"))
	require.NoError(t, err)
	assert.Equal(t, lock, string(got))

	f.run.PlanResult.LockFile = &opsapi.LockFile{Changed: true, Truncated: true}
	r = c.run("runs", "lockfile", f.run.ID)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "over 64 KiB")
	assert.NotEqual(t, 0, c.run("runs", "lockfile", "run-nope").code)
}
