package tfproviders

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/tfdiag"
)

// initDiagnostics runs terraform init -json in dir and returns the
// diagnostics it reported.
func initDiagnostics(t *testing.T, dir string, cfg CLIConfig) []tfdiag.Diagnostic {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "cli.tfrc")
	require.NoError(t, os.WriteFile(rc, cfg.Render(), 0o600))
	cmd := exec.Command("terraform", "init", "-json")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "CHECKPOINT_DISABLE=1")
	out, err := cmd.Output()
	require.Error(t, err, "init must fail: %s", out)
	var diags []tfdiag.Diagnostic
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var ev struct {
			Diagnostic *tfdiag.Diagnostic `json:"diagnostic"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Diagnostic != nil {
			diags = append(diags, *ev.Diagnostic)
		}
	}
	return diags
}

func TestExplainNamesTheProviderAndTheSourcesTried(t *testing.T) {
	needTerraform(t)
	mirror := t.TempDir()
	packedMirror(t, mirror, "other", 10, "1.0.0")
	for _, tc := range []struct {
		name    string
		sources Sources
		want    []string
	}{
		{"air-gapped, no mirror", Sources{NoDirect: true}, []string{"no mirror; direct installation from the origin registry off"}},
		{"air-gapped, mirror without it", Sources{FilesystemMirror: mirror, NoDirect: true},
			[]string{"filesystem mirror " + mirror + "; direct installation from the origin registry off", "Put the provider into a mirror"}},
		{"missing mirror directory", Sources{FilesystemMirror: filepath.Join(mirror, "gone"), NoDirect: true}, []string{"no such file or directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			diags := initDiagnostics(t, config(t, "fake", "1.0.0"), CLIConfig{Sources: tc.sources})
			d, ok := Explain(diags, tc.sources)
			require.True(t, ok, "%+v", diags)
			assert.Equal(t, "error", d.Severity)
			assert.Equal(t, "Provider example.com/bote/fake is not available from the agent's provider sources", d.Summary)
			for _, w := range tc.want {
				assert.Contains(t, d.Detail, w)
			}
		})
	}
}

// A mirror with a build the lock file does not record is not "missing".
func TestExplainSaysWhenTheMirrorsBuildIsNotTheLockedOne(t *testing.T) {
	needTerraform(t)
	mirror := t.TempDir()
	packedMirror(t, mirror, "fake", 10, "1.0.0")
	dir := config(t, "fake", "1.0.0")
	lock := "provider \"example.com/bote/fake\" {\n  version = \"1.0.0\"\n  hashes = [\"h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"]\n}\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".terraform.lock.hcl"), []byte(lock), 0o644))
	sources := Sources{FilesystemMirror: mirror, NoDirect: true}
	d, ok := Explain(initDiagnostics(t, dir, CLIConfig{Sources: sources}), sources)
	require.True(t, ok)
	assert.Equal(t, "Provider example.com/bote/fake is not installed: the agent's provider sources have a build the configuration's lock file does not record", d.Summary)
	assert.Contains(t, d.Detail, "make provider-mirror")
	assert.Contains(t, d.Detail, "doesn't match any of the checksums previously recorded")
}

func TestExplainLeavesOtherErrorsAlone(t *testing.T) {
	_, ok := Explain([]tfdiag.Diagnostic{
		{Severity: "error", Summary: "Unsupported argument", Detail: "An argument named \"provider hashicorp/x\" is not expected here."},
		{Severity: "warning", Summary: "Failed to query available provider packages", Detail: "for provider a/b: x"},
	}, Sources{})
	assert.False(t, ok)
	d, ok := Explain([]tfdiag.Diagnostic{
		{Severity: "error", Summary: "Failed to install provider", Detail: "Error while installing hashicorp/azurerm v4.1.0: checksum mismatch"},
		{Severity: "error", Summary: "Failed to query available provider packages", Detail: "Could not retrieve the list of available versions for provider example.com/a/b: no"},
	}, Sources{})
	require.True(t, ok)
	assert.Equal(t, "Providers hashicorp/azurerm, example.com/a/b are not available from the agent's provider sources", d.Summary)
}

// A full disk is not a missing provider: the message says what to fix
// on the agent.
func TestExplainSaysWhenTheAgentCouldNotWriteTheProvider(t *testing.T) {
	for _, tc := range []struct{ detail, want string }{
		{"Error while installing hashicorp/azurerm v4.1.0: write /var/lib/bote/work/plugin-cache/providers/registry.terraform.io/hashicorp/azurerm/4.1.0/linux_amd64/terraform-provider-azurerm_v4.1.0_x5: no space left on device", "no space left on device"},
		{"Error while installing example.com/bote/fake v1.0.0: open /w/plugin-cache/providers/example.com/bote/fake/1.0.0/linux_amd64/terraform-provider-fake_v1.0.0: text file busy", "text file busy"},
		{"Error while installing example.com/bote/fake v1.0.0: mkdir /w/plugin-cache/providers/example.com: read-only file system", "read-only file system"},
	} {
		d, ok := Explain([]tfdiag.Diagnostic{{Severity: "error", Summary: "Failed to install provider", Detail: tc.detail}}, Sources{NoDirect: true})
		require.True(t, ok)
		assert.Contains(t, d.Summary, "is not installed: the agent could not write it ("+tc.want+")")
		assert.NotContains(t, d.Detail, "Put the provider into a mirror")
		assert.Contains(t, d.Detail, "Free space")
		assert.Contains(t, d.Detail, tc.detail)
	}
}

// A mirror that does not answer is not one without the provider.
func TestExplainSaysWhenASourceIsUnreachable(t *testing.T) {
	needTerraform(t)
	sources := Sources{NetworkMirror: "https://127.0.0.1:1/m", NoDirect: true}
	d, ok := Explain(initDiagnostics(t, config(t, "fake", "1.0.0"), CLIConfig{Sources: sources}), sources)
	require.True(t, ok)
	assert.Equal(t, "Provider example.com/bote/fake is not installed: a provider source could not be reached (connection refused)", d.Summary)
	assert.Contains(t, d.Detail, "network mirror https://127.0.0.1:1/m/; direct installation from the origin registry off")
	assert.Contains(t, d.Detail, "Check that the agent reaches the mirror")
}
