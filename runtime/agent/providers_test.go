package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/tfproviders"
)

// A plan's Terraform gets the run's CLI configuration: the agent's
// plugin cache, its mirror replaced by the workspace's, direct
// installation off as the workspace asks; the init goes through the
// cache's guard. A workspace's sources the agent could not use fail the
// phase before Terraform runs.
func TestRunsGetTheirProviderSources(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	cache, err := tfproviders.OpenCache(tfproviders.CacheConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	f := newFixture(t, tf, func(c *Config) {
		c.ProviderCache = cache
		c.ProviderSources = tfproviders.Sources{FilesystemMirror: "/agent/mirror", NetworkMirror: "https://agent.example.com/p/"}
		c.CLIConfig = []byte(`credentials "registry.example.com" { token = "t" }`)
	})

	asg := planAssign(t, store, "run-1", "1")
	asg.Providers = tfproviders.Sources{FilesystemMirror: "/workspace/mirror", NoDirect: true}
	require.NoError(t, f.deliver(t, asg))
	tf.waitStarted(t)
	tf.mu.Lock()
	job := tf.jobs[0]
	tf.mu.Unlock()
	require.NotEmpty(t, job.CLIConfigFile)
	assert.Equal(t, filepath.Dir(job.Dir), filepath.Dir(job.CLIConfigFile), "beside tf/, never packed")
	rc, err := os.ReadFile(job.CLIConfigFile)
	require.NoError(t, err)
	assert.Equal(t, string(tfproviders.CLIConfig{PluginCacheDir: cache.Dir(), Base: []byte(`credentials "registry.example.com" { token = "t" }`),
		Sources: tfproviders.Sources{FilesystemMirror: "/workspace/mirror", NetworkMirror: "https://agent.example.com/p/", NoDirect: true}}.Render()), string(rc))
	assert.NotNil(t, job.InitGuard)
	tf.release <- struct{}{}
	assert.Equal(t, runproto.Succeeded, resultOf(t, f.sender, "run-1", "1").Outcome)

	bad := planAssign(t, store, "run-2", "1")
	bad.Providers = tfproviders.Sources{NetworkMirror: "http://plain.example.com/"}
	require.NoError(t, f.deliver(t, bad))
	res := resultOf(t, f.sender, "run-2", "1")
	assert.Equal(t, runproto.Failed, res.Outcome)
	assert.Contains(t, res.Reason, "the workspace's provider sources: networkMirror")
}
