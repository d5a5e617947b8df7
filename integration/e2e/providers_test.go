package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/tfprovider"
	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
)

// TestProvidersFromTheWorkspacesMirror: a workspace whose runs take a
// real provider from a filesystem mirror with direct installation off
// (the agents have no mirror of their own); the first plan creates the
// lock file and says so, opsbot fetches it, a plan with it committed
// changes nothing, and the saved plan applies.
func TestProvidersFromTheWorkspacesMirror(t *testing.T) {
	t.Parallel()
	mirror := t.TempDir()
	tfprovider.FilesystemMirror(t, mirror, tfprovider.Binary(t), "1.0.0", true)
	createWorkspace(t, contoso, "mirrored", "--provider-mirror-dir", mirror, "--provider-direct=false")
	dir := config(t, "provider")

	r := expect(t, exitcode.Changes, contoso, "plan", "--workspace", "mirrored", "--dir", dir)
	first := runID(t, r)
	assert.Contains(t, r.Stdout, "terraform init changed the dependency lock file")
	lock := filepath.Join(dir, ".terraform.lock.hcl")
	r = expect(t, exitcode.OK, contoso, "runs", "lockfile", first, "-O", lock)
	assert.Contains(t, r.Stderr, "(created by init) written to "+lock)
	data, err := os.ReadFile(lock)
	require.NoError(t, err)
	assert.Contains(t, string(data), `provider "example.com/bote/botetest"`)
	expect(t, exitcode.OK, contoso, "cancel", first)

	// With the lock file in the bundle, init leaves it as it is.
	second := runID(t, expect(t, exitcode.Changes, contoso, "plan", "--workspace", "mirrored", "--dir", dir))
	r = expect(t, exitcode.OK, contoso, "runs", "show", second, "-o", "json")
	var run opsapi.Run
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &run))
	require.NotNil(t, run.PlanResult.LockFile)
	assert.False(t, run.PlanResult.LockFile.Changed)
	assert.Equal(t, string(data), run.PlanResult.LockFile.Content)

	r = expect(t, exitcode.OK, contoso, "apply", second, "--yes")
	assert.Contains(t, r.Stdout, "Applied: 1 added, 0 changed, 0 destroyed")
}
