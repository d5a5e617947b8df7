package tfproviders

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const platform = runtime.GOOS + "_" + runtime.GOARCH

// packedMirror writes a filesystem mirror (packed layout) holding a
// stand-in provider example.com/bote/<name> at each version: init only
// installs a provider, it never runs it.
func packedMirror(t *testing.T, dir, name string, size int, versions ...string) {
	t.Helper()
	for _, v := range versions {
		packProvider(t, dir, name, v, append([]byte("#!/bin/sh\n# "+v+"\n"), bytes.Repeat([]byte{'x'}, size)...))
	}
}

// packProvider writes example.com/bote/<name> at version, its executable
// bin, into the packed mirror dir.
func packProvider(t *testing.T, dir, name, version string, bin []byte) {
	t.Helper()
	d := filepath.Join(dir, "example.com", "bote", name)
	require.NoError(t, os.MkdirAll(d, 0o755))
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	h := &zip.FileHeader{Name: fmt.Sprintf("terraform-provider-%s_v%s", name, version), Method: zip.Store}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	require.NoError(t, err)
	_, err = w.Write(bin)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("terraform-provider-%s_%s_%s.zip", name, version, platform)), b.Bytes(), 0o644))
}

// config writes a configuration requiring example.com/bote/<name> at
// version into a new directory.
func config(t *testing.T, name, version string) string {
	t.Helper()
	dir := t.TempDir()
	tf := fmt.Sprintf("terraform {\n  required_providers {\n    %s = { source = \"example.com/bote/%s\", version = %q }\n  }\n}\n", name, name, version)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(tf), 0o644))
	return dir
}

// terraform runs terraform in dir with cfg as its CLI configuration.
func terraform(t *testing.T, dir string, cfg CLIConfig, args ...string) string {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "cli.tfrc")
	require.NoError(t, os.WriteFile(rc, cfg.Render(), 0o600))
	cmd := exec.Command("terraform", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "terraform %v: %s", args, out)
	return string(out)
}

func needTerraform(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("terraform is not on PATH")
	}
}

// initWith runs terraform init in dir through use (as tfrun does).
func initWith(t *testing.T, use *Use, dir string, cfg CLIConfig) string {
	t.Helper()
	var out string
	require.NoError(t, use.GuardInit(context.Background(), dir, func(context.Context) error {
		out = terraform(t, dir, cfg, "init", "-no-color")
		return nil
	}))
	return out
}

func installed(t *testing.T, dir, name, version string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ".terraform", "providers", "example.com", "bote", name, version, platform, "terraform-provider-"+name+"_v"+version))
	require.NoError(t, err)
	return b
}

func TestCacheIsSharedAndHonoursTheLockFile(t *testing.T) {
	needTerraform(t)
	mirror := t.TempDir()
	packedMirror(t, mirror, "fake", 1<<10, "1.0.0")
	cache, err := OpenCache(CacheConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	cfg := CLIConfig{PluginCacheDir: cache.Dir(), Sources: Sources{FilesystemMirror: mirror, NoDirect: true}}

	a := config(t, "fake", "1.0.0")
	use := cache.Begin()
	defer use.End()
	initWith(t, use, a, cfg)
	genuine := installed(t, a, "fake", "1.0.0")
	es, err := cache.Entries()
	require.NoError(t, err)
	require.Len(t, es, 1)
	assert.Equal(t, filepath.Join("example.com", "bote", "fake", "1.0.0", platform), es[0].Path)
	assert.Positive(t, es[0].Bytes)

	// With the lock file, a second run takes the provider from the cache.
	b := config(t, "fake", "1.0.0")
	lock, err := os.ReadFile(filepath.Join(a, ".terraform.lock.hcl"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(b, ".terraform.lock.hcl"), lock, 0o644))
	out := initWith(t, cache.Begin(), b, cfg)
	assert.Contains(t, out, "from the shared cache directory")

	// A cached build the lock file does not record is never used.
	entry := filepath.Join(cache.Dir(), es[0].Path, "terraform-provider-fake_v1.0.0")
	require.NoError(t, os.WriteFile(entry, []byte("#!/bin/sh\n# not the locked build\n"), 0o755))
	c := config(t, "fake", "1.0.0")
	require.NoError(t, os.WriteFile(filepath.Join(c, ".terraform.lock.hcl"), lock, 0o644))
	out = initWith(t, cache.Begin(), c, cfg)
	assert.NotContains(t, out, "from the shared cache directory")
	assert.Equal(t, genuine, installed(t, c, "fake", "1.0.0"))
}

// A run executes its own copy of a cached provider: an init that
// installs the same version into the cache again (no lock file, so
// nothing confirms the cached entry) writes over the entry's files in
// place, which failed with "text file busy" while another run executed
// them.
func TestRunsExecuteTheirOwnCopyOfCachedProviders(t *testing.T) {
	needTerraform(t)
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	bin, err := os.ReadFile(sleep)
	require.NoError(t, err)
	mirror := t.TempDir()
	packProvider(t, mirror, "fake", "1.0.0", bin) // a provider that runs for a while
	cache, err := OpenCache(CacheConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	cfg := CLIConfig{PluginCacheDir: cache.Dir(), Sources: Sources{FilesystemMirror: mirror, NoDirect: true}}

	a := config(t, "fake", "1.0.0")
	use := cache.Begin()
	defer use.End()
	initWith(t, use, a, cfg)
	links, err := providerLinks(a)
	require.NoError(t, err)
	assert.Empty(t, links, "the run's providers are copies")
	assert.Equal(t, bin, installed(t, a, "fake", "1.0.0"))
	provider := exec.Command(filepath.Join(a, ".terraform", "providers", "example.com", "bote", "fake", "1.0.0", platform, "terraform-provider-fake_v1.0.0"), "30")
	require.NoError(t, provider.Start())
	t.Cleanup(func() { _ = provider.Process.Kill(); _ = provider.Wait() })

	c := config(t, "fake", "1.0.0") // no lock file
	other := cache.Begin()
	defer other.End()
	initWith(t, other, c, cfg)
	assert.Equal(t, bin, installed(t, c, "fake", "1.0.0"))
}

func TestEvictionRemovesLeastRecentlyUsedEntriesNoRunHolds(t *testing.T) {
	needTerraform(t)
	mirror := t.TempDir()
	packedMirror(t, mirror, "fake", 100<<10, "1.0.0", "2.0.0", "3.0.0")
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { clock = clock.Add(time.Minute); return clock }
	// Room for two of the three.
	cache, err := OpenCache(CacheConfig{Dir: t.TempDir(), MaxBytes: 250 << 10, Now: now})
	require.NoError(t, err)
	cfg := CLIConfig{PluginCacheDir: cache.Dir(), Sources: Sources{FilesystemMirror: mirror, NoDirect: true}}
	inCache := func() (vs []string) {
		es, err := cache.Entries()
		require.NoError(t, err)
		for _, e := range es {
			vs = append(vs, strings.Split(e.Path, string(filepath.Separator))[3])
		}
		return vs
	}

	held := cache.Begin() // a long run on 1.0.0
	initWith(t, held, config(t, "fake", "1.0.0"), cfg)
	done := cache.Begin()
	initWith(t, done, config(t, "fake", "2.0.0"), cfg)
	done.End()
	assert.Equal(t, []string{"1.0.0", "2.0.0"}, inCache())

	// 3.0.0 does not fit: 1.0.0 is the least recently used but a run
	// holds it, so 2.0.0 goes.
	third := cache.Begin()
	initWith(t, third, config(t, "fake", "3.0.0"), cfg)
	third.End()
	assert.Equal(t, []string{"1.0.0", "3.0.0"}, inCache())
	assert.EqualValues(t, 1, cache.Evicted())

	// Once released, 1.0.0 is the first to go.
	held.End()
	again := cache.Begin()
	initWith(t, again, config(t, "fake", "2.0.0"), cfg)
	again.End()
	assert.Equal(t, []string{"3.0.0", "2.0.0"}, inCache())
}

func TestConcurrentInitsShareTheCache(t *testing.T) {
	needTerraform(t)
	mirror := t.TempDir()
	packedMirror(t, mirror, "fake", 1<<20, "1.0.0")
	cache, err := OpenCache(CacheConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	cfg := CLIConfig{PluginCacheDir: cache.Dir(), Sources: Sources{FilesystemMirror: mirror, NoDirect: true}}
	var dirs []string
	for range 4 {
		dirs = append(dirs, config(t, "fake", "1.0.0"))
	}
	var wg sync.WaitGroup
	for _, d := range dirs {
		wg.Go(func() {
			use := cache.Begin()
			defer use.End()
			assert.NoError(t, use.GuardInit(context.Background(), d, func(context.Context) error {
				cmd := exec.Command("terraform", "init", "-no-color")
				rc := filepath.Join(d, "..", filepath.Base(d)+".tfrc")
				if err := os.WriteFile(rc, cfg.Render(), 0o600); err != nil {
					return err
				}
				cmd.Dir, cmd.Env = d, append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "CHECKPOINT_DISABLE=1")
				out, err := cmd.CombinedOutput()
				if err != nil {
					return fmt.Errorf("%w: %s", err, out)
				}
				return nil
			}))
		})
	}
	wg.Wait()
	want := installed(t, dirs[0], "fake", "1.0.0")
	assert.Len(t, want, 1<<20+len("#!/bin/sh\n# 1.0.0\n"))
	for _, d := range dirs[1:] {
		assert.Equal(t, want, installed(t, d, "fake", "1.0.0"))
	}
}

func TestGuardInitWaitsForTheLockOnlyAsLongAsItsContext(t *testing.T) {
	cache, err := OpenCache(CacheConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	release := make(chan struct{})
	entered := make(chan struct{})
	go cache.Begin().GuardInit(context.Background(), t.TempDir(), func(context.Context) error {
		close(entered)
		<-release
		return nil
	})
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = cache.Begin().GuardInit(ctx, t.TempDir(), func(context.Context) error { t.Error("init ran without the lock"); return nil })
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	close(release)
}

func TestMaterializeCopiesLinkedProviders(t *testing.T) {
	needTerraform(t)
	mirror := t.TempDir()
	packedMirror(t, mirror, "fake", 1<<10, "1.0.0")
	cache, err := OpenCache(CacheConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	use := cache.Begin()
	defer use.End()
	initWith(t, use, config(t, "fake", "1.0.0"), CLIConfig{PluginCacheDir: cache.Dir(), Sources: Sources{FilesystemMirror: mirror, NoDirect: true}})
	// The cache's directory is an unpacked mirror, which Terraform links to.
	dir := config(t, "fake", "1.0.0")
	terraform(t, dir, CLIConfig{Sources: Sources{FilesystemMirror: cache.Dir(), NoDirect: true}}, "init", "-no-color")
	links, err := providerLinks(dir)
	require.NoError(t, err)
	require.Len(t, links, 1)
	want := installed(t, dir, "fake", "1.0.0")

	require.NoError(t, Materialize(dir))
	links, err = providerLinks(dir)
	require.NoError(t, err)
	assert.Empty(t, links)
	assert.Equal(t, want, installed(t, dir, "fake", "1.0.0"))
	fi, err := os.Stat(filepath.Join(dir, ".terraform", "providers", "example.com", "bote", "fake", "1.0.0", platform, "terraform-provider-fake_v1.0.0"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	terraform(t, dir, CLIConfig{Sources: Sources{NoDirect: true}}, "providers") // the copy is what Terraform expects
}

// Eviction never follows a symlink planted in the cache (a run's code
// can write there) out of it.
func TestEvictionStaysInTheCache(t *testing.T) {
	cache, err := OpenCache(CacheConfig{Dir: t.TempDir(), MaxBytes: 1})
	require.NoError(t, err)
	outside := t.TempDir()
	keep := filepath.Join(outside, "keys", "agent.key")
	require.NoError(t, os.MkdirAll(filepath.Dir(keep), 0o700))
	require.NoError(t, os.WriteFile(keep, []byte("secret"), 0o600))
	for _, planted := range []string{
		filepath.Join(cache.Dir(), "h", "n", "t", "1.0.0"), // an entry's parent
		filepath.Join(cache.Dir(), "evil"),                 // a host
	} {
		require.NoError(t, os.MkdirAll(filepath.Dir(planted), 0o700))
		require.NoError(t, os.Symlink(outside, planted))
	}
	outsideDeep := filepath.Join(outside, "n", "t", "1.0.0", "keys")
	require.NoError(t, os.MkdirAll(outsideDeep, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(outsideDeep, "x"), []byte("secret"), 0o600))

	require.NoError(t, cache.Begin().GuardInit(context.Background(), t.TempDir(), func(context.Context) error { return nil }))
	assert.FileExists(t, keep)
	assert.FileExists(t, filepath.Join(outsideDeep, "x"))
	assert.Zero(t, cache.Evicted())
}
