package tfprovider

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// initRuns is how many inits each case measures.
const initRuns = 5

// BenchmarkProviderInit measures `terraform init` of a configuration
// using the provider, with its lock file, per way of getting it: the
// wall time, the bytes the terraform process read (rchar: files, pipes
// and sockets, not mmap or in-kernel copies), the bytes the network
// mirror served, and what init left in the working directory
// (.terraform/: a link into the cache or a mirror counts nothing).
// BOTE_BENCH_PROVIDER_MB pads the provider to that size (pseudo-random
// bytes, as incompressible as code).
//
//	cd integration && go test ./tfprovider/ -run '^$' -bench ProviderInit -benchtime 1x
func BenchmarkProviderInit(b *testing.B) {
	bin := Binary(b)
	if mb, _ := strconv.Atoi(os.Getenv("BOTE_BENCH_PROVIDER_MB")); mb > 0 {
		bin = Pad(bin, mb<<20)
	}
	m := ServeNetworkMirror(b, bin, "1.0.0")
	packed, unpacked := b.TempDir(), b.TempDir()
	FilesystemMirror(b, packed, bin, "1.0.0", true)
	FilesystemMirror(b, unpacked, bin, "1.0.0", false)
	network := `network_mirror { url = "` + m.URL + `" }`
	lock := lockFile(b, `filesystem_mirror { path = "`+packed+`" }`, m.CAFile)
	warm := b.TempDir()
	cases := []struct {
		name, method string
		cache        func() string // the plugin cache dir, "" for none
	}{
		{"network mirror, no cache (every init downloads)", network, nil},
		{"network mirror, cold cache", network, b.TempDir},
		{"network mirror, warm cache", network, func() string { return warm }},
		{"filesystem mirror (packed zip), no cache", `filesystem_mirror { path = "` + packed + `" }`, nil},
		{"filesystem mirror (unpacked), no cache", `filesystem_mirror { path = "` + unpacked + `" }`, nil},
		{"filesystem mirror (packed zip), warm cache", `filesystem_mirror { path = "` + packed + `" }`, func() string { return warm }},
	}
	fmt.Printf("provider: %.1f MB executable, %.1f MB package; %d inits per case, medians\n",
		float64(len(bin))/1e6, float64(len(Package(b, bin, "1.0.0")))/1e6, initRuns)
	// Warm the cache once through the network mirror.
	initOnce(b, network, warm, lock, m.CAFile)
	for b.Loop() {
		for _, c := range cases {
			var took []time.Duration
			var read, served, left []int64
			for range initRuns {
				cache := ""
				if c.cache != nil {
					cache = c.cache()
				}
				before := m.Served.Load()
				d, rchar, dir := initOnce(b, c.method, cache, lock, m.CAFile)
				took, read, served = append(took, d), append(read, rchar), append(served, m.Served.Load()-before)
				left = append(left, dirBytes(b, filepath.Join(dir, ".terraform")))
			}
			fmt.Printf("  %-48s init %7s  read %8.1f MB  from mirror %6.1f MB  in .terraform %6.1f MB\n", c.name,
				median(took).Round(time.Millisecond), float64(median(read))/1e6, float64(median(served))/1e6, float64(median(left))/1e6)
		}
	}
}

// lockFile runs one init through method and returns the lock file it
// wrote (the hashes a run's configuration would carry).
func lockFile(b *testing.B, method, caFile string) string {
	_, _, dir := initOnce(b, method, "", "", caFile)
	lock, err := os.ReadFile(filepath.Join(dir, ".terraform.lock.hcl"))
	require.NoError(b, err)
	return string(lock)
}

// initOnce runs terraform init in a fresh directory holding the
// configuration (and lock, if any) and returns how long it took, the
// bytes terraform read, and the directory.
func initOnce(b *testing.B, method, cache, lock, caFile string) (time.Duration, int64, string) {
	b.Helper()
	dir := b.TempDir()
	require.NoError(b, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(config), 0o644))
	if lock != "" {
		require.NoError(b, os.WriteFile(filepath.Join(dir, ".terraform.lock.hcl"), []byte(lock), 0o644))
	}
	rc := "provider_installation {\n  " + method + "\n}\n"
	if cache != "" {
		rc = fmt.Sprintf("plugin_cache_dir = %q\nplugin_cache_may_break_dependency_lock_file = false\n", cache) + rc
	}
	rcFile := filepath.Join(b.TempDir(), "cli.tfrc")
	require.NoError(b, os.WriteFile(rcFile, []byte(rc), 0o600))
	// The shell reaps terraform, so its /proc/self/io counts terraform's
	// reads too.
	cmd := exec.Command("sh", "-c", `terraform init -input=false >/dev/null || exit 1; cat /proc/$$/io`)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "TF_CLI_CONFIG_FILE="+rcFile, "CHECKPOINT_DISABLE=1", "SSL_CERT_FILE="+caFile)
	start := time.Now()
	out, err := cmd.Output()
	took := time.Since(start)
	require.NoError(b, err, "terraform init: %s", out)
	var rchar int64
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "rchar: "); ok {
			rchar, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return took, rchar, dir
}

func dirBytes(b *testing.B, dir string) int64 {
	var n int64
	require.NoError(b, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, ierr := d.Info()
			if ierr == nil {
				n += fi.Size()
			}
		}
		return err
	}))
	return n
}

func median[T time.Duration | int64](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
