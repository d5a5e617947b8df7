package tfrun

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type passGuard struct{}

func (passGuard) GuardInit(ctx context.Context, _ string, init func(context.Context) error) error {
	return init(ctx)
}

// With a guarded plugin cache, neither the agent's environment nor a
// run's secrets move init to another cache: Terraform takes
// TF_PLUGIN_CACHE_DIR over the CLI configuration's plugin_cache_dir, and
// such an install escaped the cache's lock, bound and copies.
func TestTheEnvironmentCannotMoveTheGuardedCache(t *testing.T) {
	r, err := New(Config{})
	require.NoError(t, err)
	mirrorRC, err := os.ReadFile(standInMirror(t))
	require.NoError(t, err)
	cache, elsewhere, fromSecret := t.TempDir(), t.TempDir(), t.TempDir()
	cli := filepath.Join(t.TempDir(), "cli.tfrc")
	require.NoError(t, os.WriteFile(cli, append([]byte("plugin_cache_dir = \""+cache+"\"\n"), mirrorRC...), 0o600))
	t.Setenv("TF_PLUGIN_CACHE_DIR", elsewhere)
	t.Setenv("TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE", "1")

	for _, secrets := range []map[string]string{nil, {"TF_PLUGIN_CACHE_DIR": fromSecret}} {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), []byte("terraform {\n  required_providers {\n    fake = { source = \"example.com/bote/fake\" }\n  }\n}\n"), 0o600))
		_, err = r.Run(context.Background(), Job{Op: Plan, Dir: dir, CLIConfigFile: cli, InitGuard: passGuard{}, Env: secrets}, nil)
		require.Error(t, err, "the stand-in provider cannot plan") // init ran
		inCache, _ := filepath.Glob(filepath.Join(cache, "example.com", "bote", "fake", "1.0.0", "*"))
		assert.Len(t, inCache, 1, "installed through the guarded cache")
		for _, d := range []string{elsewhere, fromSecret} {
			entries, _ := os.ReadDir(d)
			assert.Empty(t, entries, d)
		}
	}
}
