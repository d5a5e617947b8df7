package tfproviders

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/internal/golden"
)

func TestCLIConfigRender(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  CLIConfig
	}{
		{"cache-only", CLIConfig{PluginCacheDir: "/var/lib/bote/plugin-cache/providers"}},
		{"mirrors", CLIConfig{PluginCacheDir: "/c", Sources: Sources{FilesystemMirror: "/usr/local/share/terraform/plugins", NetworkMirror: "https://mirror.example.com/providers"}}},
		{"air-gapped", CLIConfig{PluginCacheDir: "/c", Sources: Sources{FilesystemMirror: "/m", NoDirect: true}}},
		{"no-source", CLIConfig{Sources: Sources{NoDirect: true}}},
		{"base-and-quoting", CLIConfig{PluginCacheDir: `/odd "dir" \ {x}`, Base: []byte("credentials \"app.terraform.io\" {\n  token = \"x\"\n}")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden.Check(t, tc.name+".tfrc", tc.cfg.Render())
		})
	}
}

// Terraform itself reads what Render writes: the quoting holds.
func TestTerraformReadsTheRenderedConfig(t *testing.T) {
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("terraform is not on PATH")
	}
	dir := t.TempDir()
	odd := filepath.Join(dir, `odd "dir" \ {x}`)
	_, err := OpenCache(CacheConfig{Dir: odd})
	require.NoError(t, err)
	cfg := CLIConfig{PluginCacheDir: filepath.Join(odd, providersDir), Sources: Sources{FilesystemMirror: filepath.Join(dir, "mirror"), NoDirect: true}}
	out := terraform(t, dir, cfg, "version")
	assert.NotContains(t, out, "problems with the CLI configuration")
}

func TestSourcesValidate(t *testing.T) {
	for _, tc := range []struct {
		s       Sources
		wantErr string
	}{
		{Sources{}, ""},
		{Sources{FilesystemMirror: "/m", NetworkMirror: "https://m.example.com/p/", NoDirect: true}, ""},
		{Sources{FilesystemMirror: "mirror"}, "filesystemMirror \"mirror\" must be an absolute path"},
		{Sources{FilesystemMirror: "/m\nprovider_installation {"}, "filesystemMirror: must not contain control characters"},
		{Sources{FilesystemMirror: "/m/${path.root}"}, `must not contain control characters or "$"`},
		{Sources{NetworkMirror: "http://m.example.com/"}, "must be an https URL"},
		{Sources{NetworkMirror: "https://u:p@m.example.com/"}, "must be an https URL"},
		{Sources{NetworkMirror: "https://m.example.com/?x=1"}, "must be an https URL"},
		{Sources{NetworkMirror: "https:///p"}, "must be an https URL"},
		{Sources{FilesystemMirror: "/m/\xff"}, "filesystemMirror: must be valid UTF-8"}, // Terraform refuses the whole CLI configuration
		{Sources{FilesystemMirror: "/" + strings.Repeat("m", maxSourceBytes)}, "filesystemMirror: must not be longer than 4096 bytes"},
		{Sources{NetworkMirror: "https://m.example.com/" + strings.Repeat("p", maxSourceBytes)}, "networkMirror: must not be longer than 4096 bytes"},
	} {
		err := tc.s.Validate()
		if tc.wantErr == "" {
			assert.NoError(t, err, "%+v", tc.s)
		} else {
			assert.ErrorContains(t, err, tc.wantErr, "%+v", tc.s)
		}
	}
}

func TestWorkspaceOverridesMirrorsAndCanOnlyTurnDirectOff(t *testing.T) {
	agent := Sources{FilesystemMirror: "/a", NetworkMirror: "https://a/"}
	assert.Equal(t, agent, agent.Override(Sources{}))
	assert.Equal(t, Sources{FilesystemMirror: "/w", NetworkMirror: "https://a/"}, agent.Override(Sources{FilesystemMirror: "/w"}))
	assert.Equal(t, Sources{FilesystemMirror: "/a", NetworkMirror: "https://w/", NoDirect: true}, agent.Override(Sources{NetworkMirror: "https://w/", NoDirect: true}))
	airGapped := Sources{FilesystemMirror: "/a", NoDirect: true}
	assert.True(t, airGapped.Override(Sources{}).NoDirect, "a workspace cannot turn direct installation back on")
}

func TestCheckBaseRefusesWhatTheAgentSets(t *testing.T) {
	base := []byte("plugin_cache_dir = \"/x\"\n")
	assert.ErrorContains(t, CLIConfig{PluginCacheDir: "/c", Base: base}.CheckBase(), "sets plugin_cache_dir")
	assert.NoError(t, CLIConfig{Base: base}.CheckBase())
	base = []byte("  provider_installation {\n direct {}\n}\n")
	assert.ErrorContains(t, CLIConfig{Sources: Sources{NoDirect: true}, Base: base}.CheckBase(), "provider_installation block")
	assert.NoError(t, CLIConfig{PluginCacheDir: "/c", Base: base}.CheckBase())
}
