package tfprovider

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const config = `terraform {
  required_providers {
    botetest = { source = "example.com/bote/botetest" }
  }
}
resource "botetest_thing" "a" {
  name = "a"
}
`

// terraform runs terraform with the CLI configuration rc in dir.
func terraform(t *testing.T, dir, rc string, env []string, args ...string) string {
	t.Helper()
	rcFile := filepath.Join(t.TempDir(), "cli.tfrc")
	require.NoError(t, os.WriteFile(rcFile, []byte(rc), 0o600))
	cmd := exec.Command("terraform", args...)
	cmd.Dir, cmd.Env = dir, append(append(os.Environ(), "TF_CLI_CONFIG_FILE="+rcFile, "CHECKPOINT_DISABLE=1"), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return string(out)
}

// The provider installs from each mirror and plans.
func TestTerraformInstallsFromTheMirrors(t *testing.T) {
	bin := Binary(t)
	m := ServeNetworkMirror(t, bin, "1.0.0")
	packed, unpacked := t.TempDir(), t.TempDir()
	FilesystemMirror(t, packed, bin, "1.0.0", true)
	FilesystemMirror(t, unpacked, bin, "1.0.0", false)
	for name, method := range map[string]string{
		"network":  `network_mirror { url = "` + m.URL + `" }`,
		"packed":   `filesystem_mirror { path = "` + packed + `" }`,
		"unpacked": `filesystem_mirror { path = "` + unpacked + `" }`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(config), 0o644))
			rc := "provider_installation {\n  " + method + "\n}\n"
			env := []string{"SSL_CERT_FILE=" + m.CAFile}
			terraform(t, dir, rc, env, "init")
			assert.Contains(t, terraform(t, dir, rc, env, "plan", "-no-color"), "botetest_thing.a will be created")
		})
	}
	assert.Equal(t, int64(len(Package(t, bin, "1.0.0"))), m.Served.Load(), "one download: %d requests", m.Requests.Load())
}
