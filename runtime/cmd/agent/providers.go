package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/botehq/platform/runtime/tfproviders"
)

// providerOptions are the flags saying where runs get providers.
type providerOptions struct {
	cacheDir string
	cacheMax byteSize
	sources  tfproviders.Sources
	direct   bool
	// planWithout leaves providers out of saved plans (agent.Config.PlanWithoutProviders).
	planWithout bool
}

func (p *providerOptions) flags(fs *flag.FlagSet) {
	p.cacheMax = tfproviders.DefaultMaxBytes
	fs.StringVar(&p.cacheDir, "plugin-cache-dir", "", `the provider plugin cache the runs share ("off": none; default <work-dir>/plugin-cache)`)
	fs.Var(&p.cacheMax, "plugin-cache-max-size", "bound of the plugin cache (e.g. 10GiB, 500MiB); least recently used providers no run uses are removed beyond it")
	fs.StringVar(&p.sources.FilesystemMirror, "provider-mirror-dir", "", "a filesystem mirror of providers (terraform providers mirror), tried first")
	fs.StringVar(&p.sources.NetworkMirror, "provider-network-mirror", "", "the https base URL of a provider network mirror")
	fs.BoolVar(&p.planWithout, "plan-without-providers", false, "leave the providers out of a saved plan's working directory; the apply installs them again from the cache or the sources (every agent that applies needs them then)")
	fs.BoolVar(&p.direct, "provider-direct", true, "install providers from their origin registries too; false on an agent without internet access, so a provider in no mirror fails init at once")
}

// check completes the options once parsed.
func (p *providerOptions) check(workDir string) error {
	p.sources.NoDirect = !p.direct
	if d := p.sources.FilesystemMirror; d != "" {
		abs, err := filepath.Abs(d)
		if err != nil {
			return fmt.Errorf("--provider-mirror-dir: %w", err)
		}
		p.sources.FilesystemMirror = abs
	}
	if err := p.sources.Validate(); err != nil {
		return err
	}
	switch p.cacheDir {
	case "off":
		p.cacheDir = ""
		return nil
	case "":
		p.cacheDir = filepath.Join(workDir, "plugin-cache")
	}
	abs, err := filepath.Abs(p.cacheDir)
	if err != nil {
		return fmt.Errorf("--plugin-cache-dir: %w", err)
	}
	p.cacheDir = abs
	return nil
}

// open opens the plugin cache and reads the agent's own Terraform CLI
// configuration (TF_CLI_CONFIG_FILE, else ~/.terraformrc), which each
// run's configuration starts with.
func (p *providerOptions) open(log *slog.Logger, getenv func(string) string) (*tfproviders.Cache, []byte, error) {
	base, err := baseCLIConfig(getenv)
	if err != nil {
		return nil, nil, err
	}
	var cache *tfproviders.Cache
	if p.cacheDir != "" {
		cache, err = tfproviders.OpenCache(tfproviders.CacheConfig{Dir: p.cacheDir, MaxBytes: int64(p.cacheMax), Logger: log})
		if err != nil {
			return nil, nil, err
		}
	}
	cli := tfproviders.CLIConfig{PluginCacheDir: p.cacheDir, Sources: p.sources, Base: base}
	if err := cli.CheckBase(); err != nil {
		return nil, nil, err
	}
	return cache, base, nil
}

func baseCLIConfig(getenv func(string) string) ([]byte, error) {
	path := getenv("TF_CLI_CONFIG_FILE")
	if path == "" && getenv("HOME") != "" {
		path = filepath.Join(getenv("HOME"), ".terraformrc")
	}
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the Terraform CLI configuration: %w", err)
	}
	return b, nil
}

// byteSize is a flag such as 10GiB, 500MiB, 1G or a plain byte count.
type byteSize int64

func (b byteSize) String() string {
	for _, u := range sizeUnits {
		if b >= byteSize(u.n) && int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

var sizeUnits = []struct {
	name string
	n    int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}

func (b *byteSize) Set(s string) error {
	num, mult := s, int64(1)
	for _, u := range sizeUnits {
		for _, suffix := range []string{u.name, u.name[:1], u.name[:2]} {
			if n, ok := strings.CutSuffix(s, suffix); ok {
				num, mult = n, u.n
				break
			}
		}
		if mult != 1 {
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("size %q: want a positive number of bytes, or with GiB, MiB or KiB", s)
	}
	*b = byteSize(n * mult)
	return nil
}
