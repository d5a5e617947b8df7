package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/tfprovider"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfproviders"
	"github.com/botehq/platform/runtime/tfrun"
)

// withLockFile copies testdata/provider with lock as its
// .terraform.lock.hcl into a new directory.
func withLockFile(t testing.TB, lock string) string {
	t.Helper()
	dir := t.TempDir()
	main, err := os.ReadFile(filepath.Join("testdata", "provider", "main.tf"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), main, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, tfrun.LockFileName), []byte(lock), 0o644))
	return dir
}

// plan assigns a plan of config as claim "1" of a new run and returns
// its result.
func (s *server) plan(t testing.TB, config string, sources tfproviders.Sources) (*runproto.Result, string, string) {
	t.Helper()
	run := runs.NewRunID(time.Now())
	asg, blob := s.planAssign(run, "1", config, runproto.Secrets{})
	asg.Providers = sources
	s.send(asg)
	res, _ := waitFor(t, s, 120*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == run })
	return res, run, blob
}

// TestProviderInstallation runs plans of a configuration using a real
// provider (built from Go source) on real agents without internet
// access: an air-gapped agent with no mirror fails at once saying what is
// missing and where it looked; one with a filesystem mirror plans, and
// another agent applies its saved plan without a mirror; a workspace
// points an agent with no mirror of its own at a network mirror, and two
// concurrent runs share the plugin cache (the package is fetched once).
func TestProviderInstallation(t *testing.T) {
	t.Parallel()
	bin := tfprovider.Binary(t)
	s := newServer(t)

	t.Run("air-gapped agent without the provider", func(t *testing.T) {
		agent := s.startAgent(filepath.Join(s.dir, "air-gapped"), "--provider-direct=false")
		defer agent.Stop()
		res, _, _ := s.plan(t, "provider", tfproviders.Sources{})
		require.Equal(t, runproto.Failed, res.Outcome)
		assert.Contains(t, res.Reason, "Provider example.com/bote/botetest is not available from the agent's provider sources")
		require.NotEmpty(t, res.Result.Diagnostics)
		assert.Contains(t, res.Result.Diagnostics[0].Detail, "no mirror; direct installation from the origin registry off")
	})

	var lock string
	t.Run("filesystem mirror, then apply elsewhere", func(t *testing.T) {
		mirror := t.TempDir()
		tfprovider.FilesystemMirror(t, mirror, bin, "1.0.0", true)
		work := filepath.Join(s.dir, "fs-mirror")
		agent := s.startAgent(work, "--provider-mirror-dir", mirror, "--provider-direct=false")
		res, run, blob := s.plan(t, "provider", tfproviders.Sources{})
		require.Equal(t, runproto.Succeeded, res.Outcome, res.Reason)
		assert.Equal(t, 1, res.Result.Changes.Add)
		require.NotNil(t, res.Result.LockFile)
		assert.True(t, res.Result.LockFile.Created, "the configuration had no lock file")
		assert.Contains(t, res.Result.LockFile.Content, `provider "example.com/bote/botetest"`)
		lock = res.Result.LockFile.Content
		entries, err := filepath.Glob(filepath.Join(work, "plugin-cache", "providers", "example.com", "bote", "botetest", "1.0.0", "*"))
		require.NoError(t, err)
		assert.Len(t, entries, 1, "the provider is in the agent's plugin cache")
		require.NoError(t, agent.Stop())

		// The saved plan carries its provider: an agent with no source at
		// all applies it.
		other := s.startAgent(filepath.Join(s.dir, "applier"), "--provider-direct=false", "--plugin-cache-dir", "off")
		defer other.Stop()
		s.send(s.applyAssign(run, "2", blob, res, runproto.Secrets{}))
		apply, _ := waitFor(t, s, 120*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == run && m.ClaimToken == "2" })
		require.Equal(t, runproto.Succeeded, apply.Outcome, apply.Reason)
		assert.Contains(t, strings.Join(s.logLines(run, "2"), "\n"), "botetest_thing.a: Creation complete")
	})
	require.NotEmpty(t, lock)

	t.Run("saved plan without providers, installed again by the apply", func(t *testing.T) {
		mirror := t.TempDir()
		tfprovider.FilesystemMirror(t, mirror, bin, "1.0.0", true)
		planner := s.startAgent(filepath.Join(s.dir, "lean"), "--provider-mirror-dir", mirror, "--provider-direct=false", "--plan-without-providers")
		res, run, blob := s.plan(t, withLockFile(t, lock), tfproviders.Sources{})
		require.Equal(t, runproto.Succeeded, res.Outcome, res.Reason)
		assert.Less(t, res.WorkdirSize, int64(1<<20), "the provider stays behind")
		require.NoError(t, planner.Stop())

		bare := s.startAgent(filepath.Join(s.dir, "bare"), "--provider-direct=false", "--plugin-cache-dir", "off")
		s.send(s.applyAssign(run, "2", blob, res, runproto.Secrets{}))
		failed, _ := waitFor(t, s, 120*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == run && m.ClaimToken == "2" })
		require.Equal(t, runproto.Failed, failed.Outcome)
		assert.Contains(t, failed.Reason, "Provider example.com/bote/botetest is not available from the agent's provider sources")
		require.NoError(t, bare.Stop())

		applier := s.startAgent(filepath.Join(s.dir, "lean-applier"), "--provider-mirror-dir", mirror, "--provider-direct=false")
		defer applier.Stop()
		s.send(s.applyAssign(run, "3", blob, res, runproto.Secrets{}))
		apply, _ := waitFor(t, s, 120*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == run && m.ClaimToken == "3" })
		require.Equal(t, runproto.Succeeded, apply.Outcome, apply.Reason)
		assert.Contains(t, strings.Join(s.logLines(run, "3"), "\n"), "botetest_thing.a: Creation complete")
	})

	t.Run("network mirror from the workspace, concurrent runs share the cache", func(t *testing.T) {
		mirror := tfprovider.ServeNetworkMirror(t, bin, "1.0.0")
		agent := s.startAgentEnv(filepath.Join(s.dir, "net-mirror"), []string{"SSL_CERT_FILE=" + mirror.CAFile},
			"--provider-direct=false", "--concurrency", "2")
		defer agent.Stop()
		ws := tfproviders.Sources{NetworkMirror: mirror.URL}
		config := withLockFile(t, lock)
		// Both assignments go out back to back; the agent runs them at once.
		var ids []string
		for range 2 {
			run := runs.NewRunID(time.Now())
			asg, _ := s.planAssign(run, "1", config, runproto.Secrets{})
			asg.Providers = ws
			s.send(asg)
			ids = append(ids, run)
		}
		for _, run := range ids {
			res, _ := waitFor(t, s, 120*time.Second, time.Time{}, func(m *runproto.Result) bool { return m.RunID == run })
			require.Equal(t, runproto.Succeeded, res.Outcome, res.Reason)
			assert.Equal(t, 1, res.Result.Changes.Add)
			assert.False(t, res.Result.LockFile.Changed, "the bundle's lock file stands")
		}
		pkg := int64(len(tfprovider.Package(t, bin, "1.0.0")))
		assert.Equal(t, pkg, mirror.Served.Load(), "two runs, one download: the second took the cached provider")

		// Warm: a third run downloads nothing.
		res, _, _ := s.plan(t, config, ws)
		require.Equal(t, runproto.Succeeded, res.Outcome, res.Reason)
		assert.Equal(t, pkg, mirror.Served.Load())
	})
}
