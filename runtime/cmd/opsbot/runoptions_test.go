package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/tfarchive"
)

// TestPlanOptionsTravelWithTheRun: --var and --var-file go in the bundle
// as auto-loaded variable files (--var last, so it wins), --target and
// --replace with the run; .terraformignore leaves files out.
func TestPlanOptionsTravelWithTheRun(t *testing.T) {
	api := newFakeRuns()
	api.follow = playPlan
	api.keepBundle = true
	dir := configDir(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".terraformignore"), []byte("*.bin\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "big.bin"), make([]byte, 1<<20), 0o644))
	varFile := filepath.Join(t.TempDir(), "prod.tfvars")
	require.NoError(t, os.WriteFile(varFile, []byte("size = 3\n"), 0o644))

	r := cli{t: t, api: api}.run("plan", "-w", "app", "-d", dir, "--var", "region=westeurope", "--var", "note=a=b",
		"--var-file", varFile, "--target", "terraform_data.a", "--target", "module.net", "--replace", "terraform_data.b")
	require.Equal(t, exitcode.Changes, r.code, r.stderr)
	assert.Equal(t, []string{"terraform_data.a", "module.net"}, api.createQuery["target"])
	assert.Equal(t, []string{"terraform_data.b"}, api.createQuery["replace"])
	assert.Empty(t, api.createQuery.Get("refresh_only"))
	assert.Contains(t, r.stderr, "1 left out by .terraformignore")

	out := t.TempDir()
	_, err := tfarchive.Unpack(bytes.NewReader(api.bundle), out, tfarchive.BundleLimits)
	require.NoError(t, err)
	assert.NoFileExists(t, filepath.Join(out, "big.bin"))
	got, err := os.ReadFile(filepath.Join(out, "zzz-opsbot-var-file-01.auto.tfvars"))
	require.NoError(t, err)
	assert.Equal(t, "size = 3\n", string(got))
	got, err = os.ReadFile(filepath.Join(out, "zzz-opsbot-vars.auto.tfvars.json"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"region": "westeurope", "note": "a=b"}`, string(got))
}

func TestRunsShowListsThePlanOptions(t *testing.T) {
	api := newFakeRuns()
	api.run.PlanOptions = &opsapi.PlanOptions{Targets: []string{"a.b", "module.c"}, RefreshOnly: true}
	r := cli{t: t, api: api}.run("runs", "show", api.run.ID)
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Regexp(t, `Plan options:\s+-target=a\.b -target=module\.c -refresh-only\n`, r.stdout)
}

func TestBadPlanOptionsAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--var", "novalue"}, `--var "novalue": must be NAME=VALUE`},
		{[]string{"--var", "1x=2"}, "NAME a Terraform variable name"},
		{[]string{"--var-file", "vars.yaml"}, "must end in .tfvars or .tfvars.json"},
		{[]string{"--var-file", "missing.tfvars"}, "no such file"},
		{[]string{"--replace", "a.b", "--refresh-only"}, "-replace and -refresh-only exclude each other"},
		{[]string{"--target", "-destroy"}, "must be a resource address"},
	} {
		api := newFakeRuns()
		r := cli{t: t, api: api}.run(append([]string{"plan", "-w", "app", "-d", configDir(t)}, tc.args...)...)
		assert.Equal(t, exitcode.Usage, r.code, "%v: %s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.msg)
		assert.Empty(t, api.created, "nothing uploaded")
	}
	r := cli{t: t, api: newFakeRuns()}.run("destroy", "-w", "app", "-d", configDir(t), "--yes", "--replace", "x.y")
	assert.Equal(t, exitcode.Usage, r.code, "destroy takes no --replace")
}
