// Package drift tests drift detection end to end: a real provider whose
// resource reads a file back on refresh (integration/tfprovider), real
// agents installing it from a filesystem mirror, the real terraform, and
// opsbot through the relay.
package drift

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/platform"
	"github.com/botehq/platform/integration/tfprovider"
	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
)

func TestMain(m *testing.M) { platform.Main(m) }

// TestDriftCheckFindsAChangeMadeOutsideTerraform: a workspace applies a
// file; the file is changed by hand; a drift check (queued with opsbot)
// plans refresh-only on the agent, records the drifted attribute, marks
// the workspace drifted, is never applied, and an apply clears it; a
// later check finds it clean.
func TestDriftCheckFindsAChangeMadeOutsideTerraform(t *testing.T) {
	t.Parallel()
	mirror := t.TempDir()
	tfprovider.FilesystemMirror(t, mirror, tfprovider.Binary(t), "1.0.0", true)
	p := platform.New(t, platform.Options{Agents: []platform.Agent{{Tenant: "contoso", ID: "agent-d", Start: true,
		Args: []string{"--heartbeat-interval", "2s", "--provider-mirror-dir", mirror, "--provider-direct=false"}}}})
	expect := func(code int, args ...string) platform.Result { return p.Expect(t, code, "contoso", args...) }
	show := func(id string) *opsapi.Run {
		r, err := p.Run(context.Background(), "contoso", id)
		require.NoError(t, err)
		return r
	}
	file := filepath.Join(t.TempDir(), "motd.txt")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(`terraform {
  required_providers {
    botetest = { source = "example.com/bote/botetest" }
  }
}

resource "botetest_file" "motd" {
  path    = "`+file+`"
  content = "hello"
}
`), 0o644))

	expect(exitcode.OK, "workspaces", "create", "files")
	r := expect(exitcode.Error, "drift", "check", "files")
	assert.Contains(t, r.Stderr, "no applied run")
	r = expect(exitcode.Changes, "plan", "-w", "files", "-d", dir)
	expect(exitcode.OK, "apply", platform.MustQueuedRun(t, r), "--yes")
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, "hello", string(data), "the agent wrote the file")

	r = expect(exitcode.OK, "drift", "schedule", "files", "--cron", "0 3 * * *")
	assert.Contains(t, r.Stdout, "Drift of workspace files is checked cron 0 3 * * *; next check ")
	// The schedule is stored: a restarted server still has it.
	require.NoError(t, p.StopOpsServer())
	require.NoError(t, p.StartOpsServer())
	assert.Regexp(t, `files\s+unknown\s+0\s+-\s+cron 0 3 \* \* \*\s+\d{4}-\d\d-\d\dT03:00:00Z`, expect(exitcode.OK, "drift").Stdout)

	require.NoError(t, os.WriteFile(file, []byte("changed by hand"), 0o644))
	check := func() string {
		expect(exitcode.OK, "drift", "check", "files")
		var st opsapi.DriftStatus
		require.Eventually(t, func() bool {
			r := expect(exitcode.OK, "drift", "show", "files", "-o", "json")
			st = opsapi.DriftStatus{}
			require.NoError(t, jsonUnmarshal(r.Stdout, &st))
			return st.CheckRun != "" && st.CheckRun == st.LastRun
		}, 2*time.Minute, 500*time.Millisecond)
		return st.Status
	}
	assert.Equal(t, "drifted", check())
	r = expect(exitcode.OK, "drift", "show", "files")
	assert.Contains(t, r.Stdout, "Status:      drifted")
	assert.Contains(t, r.Stdout, "  # botetest_file.motd has changed\n  ~ resource \"botetest_file\" \"motd\" {\n      ~ content = \"hello\" -> \"changed by hand\"\n")
	list := expect(exitcode.OK, "drift")
	assert.Regexp(t, `files\s+drifted\s+1\s+`, list.Stdout)
	st := driftOf(t, expect)
	run := show(st.CheckRun)
	assert.Equal(t, "cancelled", run.State, "a drift check is never applied")
	require.NotNil(t, run.PlanOptions)
	assert.True(t, run.PlanOptions.RefreshOnly)
	data, err = os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "changed by hand", string(data), "the check changed nothing")

	// An apply puts the file back and clears the drift; a check then finds it clean.
	r = expect(exitcode.Changes, "plan", "-w", "files", "-d", dir)
	expect(exitcode.OK, "apply", platform.MustQueuedRun(t, r), "--yes")
	assert.Equal(t, "unknown", driftOf(t, expect).Status)
	assert.Equal(t, "clean", check())
}

func driftOf(t *testing.T, expect func(int, ...string) platform.Result) opsapi.DriftStatus {
	var st opsapi.DriftStatus
	require.NoError(t, jsonUnmarshal(expect(exitcode.OK, "drift", "show", "files", "-o", "json").Stdout, &st))
	return st
}
