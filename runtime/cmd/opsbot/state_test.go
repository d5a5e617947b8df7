package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/opsclient"
)

var pulledState = "{\"version\":4,\"serial\":3}\n"

func (f *fakeRuns) StateVersions(context.Context, string, string) ([]opsapi.StateVersion, error) {
	return []opsapi.StateVersion{
		{Version: "run-06h4jv66jl76v6mb-c5", Run: "run-06h4jv66jl76v6mb", Claim: "5", Size: 25, SHA256: "0123456789abcdef", Created: time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC), Current: true},
		{Version: "run-06h4jv66jl76v6ma-c5", Run: "run-06h4jv66jl76v6ma", Claim: "5", Size: 24, Created: time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)},
	}, nil
}

func (f *fakeRuns) PullState(_ context.Context, _, _, version string, w io.Writer) (string, error) {
	switch version {
	case "":
		version = "current"
	case "run-06h4jv66jl76v6ma-c5":
	default:
		return "", &opsclient.APIError{StatusCode: 404, Code: opsapi.CodeNotFound, Message: "workspace app of tenant contoso has no state version " + version}
	}
	_, err := io.WriteString(w, pulledState)
	return version, err
}

func (f *fakeRuns) RollbackState(_ context.Context, _, _, version string) (*opsapi.StateVersion, error) {
	if version != "run-06h4jv66jl76v6ma-c5" {
		return nil, &opsclient.APIError{StatusCode: 409, Code: opsapi.CodeConflict, Message: "workspace app is held by run run-x (planned)"}
	}
	return &opsapi.StateVersion{Version: version, Size: 24, Current: true}, nil
}

func TestStateRollback(t *testing.T) {
	c := cli{t: t, api: newFakeRuns()}
	r := c.run("state", "rollback", "-w", "app", "--version", "run-06h4jv66jl76v6ma-c5")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "The state of contoso/app is version run-06h4jv66jl76v6ma-c5 again")
	r = c.run("state", "rollback", "-w", "app", "--version", "run-06h4jv66jl76v6mb-c5")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "is held by run")
	r = c.run("state", "rollback", "-w", "app")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "--version: required")
}

func TestStateVersionsAndPull(t *testing.T) {
	c := cli{t: t, api: newFakeRuns()}
	r := c.run("state", "versions", "-w", "app")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "VERSION")
	assert.Contains(t, r.stdout, "run-06h4jv66jl76v6mb-c5  yes")

	r = c.run("state", "versions", "-w", "app", "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"current": true`)

	r = c.run("state", "pull", "-w", "app")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, pulledState, r.stdout, "byte for byte on stdout; the rest goes to stderr")
	assert.Contains(t, r.stderr, "state current of contoso/app")

	file := filepath.Join(t.TempDir(), "old.tfstate")
	r = c.run("state", "pull", "-w", "app", "--version", "run-06h4jv66jl76v6ma-c5", "-O", file)
	require.Equal(t, 0, r.code, r.stderr)
	got, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, pulledState, string(got))
	st, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// A failed pull leaves no file behind.
	missing := filepath.Join(t.TempDir(), "missing.tfstate")
	r = c.run("state", "pull", "-w", "app", "--version", "run-0000000000000000-c1", "-O", missing)
	assert.Equal(t, exitcode.Unknown, r.code, "no such state version")
	assert.Contains(t, r.stderr, "has no state version run-0000000000000000-c1")
	assert.NoFileExists(t, missing)
	entries, err := os.ReadDir(filepath.Dir(missing))
	require.NoError(t, err)
	assert.Empty(t, entries, "no temporary file left")

	r = c.run("state", "pull")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "--workspace: required")
}
