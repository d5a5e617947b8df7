package tfproviders

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Names in a cache's root directory.
const (
	providersDir = "providers" // plugin_cache_dir
	leasesDir    = "leases"    // a lock file per entry, held shared while a run uses it
	installLock  = "install.lock"
)

// DefaultMaxBytes bounds a cache when the agent sets no size.
const DefaultMaxBytes = 10 << 30

// Cache is an agent's shared provider plugin cache.
type Cache struct {
	root, dir string
	max       int64
	log       *slog.Logger
	now       func() time.Time
	evicted   atomic.Int64
}

// CacheConfig configures a Cache.
type CacheConfig struct {
	// Dir is the cache's root: Terraform's plugin_cache_dir is
	// Dir/providers. Agents may share it.
	Dir string
	// MaxBytes bounds the cache (default DefaultMaxBytes). Entries in use
	// by a run are never removed, so it may be over the bound while
	// they are.
	MaxBytes int64
	Logger   *slog.Logger
	// Now is the clock last use is recorded with (default time.Now).
	Now func() time.Time
}

// Validate checks the configuration and names the bad field.
func (c CacheConfig) Validate() error {
	switch {
	case c.Dir == "" || !filepath.IsAbs(c.Dir):
		return fmt.Errorf("tfproviders config: Dir %q must be an absolute path", c.Dir)
	case c.MaxBytes < 0:
		return fmt.Errorf("tfproviders config: MaxBytes %d must not be negative", c.MaxBytes)
	}
	return hclSafe(c.Dir)
}

// OpenCache creates the cache's directories (0700) if needed.
func OpenCache(cfg CacheConfig) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Cache{root: cfg.Dir, dir: filepath.Join(cfg.Dir, providersDir), max: cmp.Or(cfg.MaxBytes, DefaultMaxBytes),
		log: cmp.Or(cfg.Logger, slog.Default()), now: cfg.Now}
	if c.now == nil {
		c.now = time.Now
	}
	for _, d := range []string{c.dir, filepath.Join(c.root, leasesDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cannot create the provider cache: %w", err)
		}
	}
	return c, nil
}

// Dir is Terraform's plugin_cache_dir.
func (c *Cache) Dir() string { return c.dir }

// Evicted counts the entries this process removed.
func (c *Cache) Evicted() int64 { return c.evicted.Load() }

// Begin starts one run's use of the cache; End it when the run's
// working directory is gone.
func (c *Cache) Begin() *Use { return &Use{c: c} }

// Use is one run's use of the cache: it serializes the run's init with
// every other init on the cache and holds the entries the run's working
// directory links to.
type Use struct {
	c      *Cache
	leases []*os.File
}

// GuardInit runs init (terraform init in dir) holding the cache's
// install lock, then leases the entries dir links to, replaces the links
// with copies (ownCopies), and evicts what the cache holds over its
// bound.
func (u *Use) GuardInit(ctx context.Context, dir string, init func(context.Context) error) error {
	lock, err := lockWait(ctx, filepath.Join(u.c.root, installLock))
	if err != nil {
		return fmt.Errorf("cannot lock the provider cache: %w", err)
	}
	defer lock.Close()
	initErr := init(ctx)
	if err := u.lease(dir); err != nil {
		u.c.log.Warn("cannot lease provider cache entries; they may be evicted while the run uses them", "err", err)
	}
	if err := u.c.ownCopies(dir); err != nil {
		u.c.log.Warn("cannot copy providers from the plugin cache; the run executes the cache's files", "err", err)
	}
	if err := u.c.evict(); err != nil {
		u.c.log.Warn("cannot evict from the provider cache", "err", err)
	}
	return initErr
}

// End releases the run's entries.
func (u *Use) End() {
	for _, f := range u.leases {
		f.Close()
	}
	u.leases = nil
}

// lease takes a shared lock on every cache entry dir's providers link
// to, and records their use.
func (u *Use) lease(dir string) error {
	links, err := providerLinks(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		rel, ok := u.c.entry(l.target)
		if !ok {
			continue // not in the cache (a mirror, or Terraform's own copy)
		}
		f, err := lockShared(u.c.leasePath(rel))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		u.leases = append(u.leases, f)
		now := u.c.now()
		if fi, err := os.Lstat(l.target); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
			_ = os.Chtimes(l.target, now, now) // last use
		}
	}
	return errors.Join(errs...)
}

// ownCopies replaces dir's links into the cache with copies (new files,
// not hard links). Terraform writes a package into the cache in place,
// over the files of the entry a running provider executes, whenever
// the run's lock file does not confirm the entry: a configuration
// without a lock file, or whose lock file has no checksum of this
// platform's build. With every run executing the cache's files, such an
// init failed ("text file busy") while another run used the same
// provider version, and a run's later command executed what the other
// init wrote. The copy costs a local file copy per provider and run,
// not a download.
func (c *Cache) ownCopies(dir string) error {
	links, err := providerLinks(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		if _, ok := c.entry(l.target); ok {
			errs = append(errs, l.replace(false))
		}
	}
	return errors.Join(errs...)
}

// entry returns path relative to the cache when it is a cache entry
// (HOSTNAME/NAMESPACE/TYPE/VERSION/OS_ARCH).
func (c *Cache) entry(path string) (string, bool) {
	rel, err := filepath.Rel(c.dir, path)
	if err != nil || !filepath.IsLocal(rel) || strings.Count(rel, string(filepath.Separator)) != 4 {
		return "", false
	}
	return rel, true
}

func (c *Cache) leasePath(entry string) string {
	return filepath.Join(c.root, leasesDir, entry+".lock")
}

// Entry is one provider package in the cache:
// HOSTNAME/NAMESPACE/TYPE/VERSION/OS_ARCH.
type Entry struct {
	Path     string // relative to the cache's plugin_cache_dir
	Bytes    int64  // 0 for a link Terraform made into an unpacked mirror
	LastUsed time.Time
}

// Entries lists the cache's entries, least recently used first.
func (c *Cache) Entries() ([]Entry, error) {
	matches, err := filepath.Glob(filepath.Join(c.dir, "*", "*", "*", "*", "*"))
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, m := range matches {
		fi, err := os.Lstat(m)
		if err != nil {
			continue // removed meanwhile
		}
		rel, _ := filepath.Rel(c.dir, m)
		if !c.reachedDirectly(m) {
			continue // through a symlink: not Terraform's, maybe outside the cache
		}
		e := Entry{Path: rel, LastUsed: fi.ModTime()}
		if fi.IsDir() {
			e.Bytes, err = dirBytes(m)
			if err != nil {
				return nil, err
			}
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return a.LastUsed.Compare(b.LastUsed) })
	return out, nil
}

// Bytes is the cache's size.
func (c *Cache) Bytes() (int64, error) {
	es, err := c.Entries()
	var n int64
	for _, e := range es {
		n += e.Bytes
	}
	return n, err
}

// evict removes least recently used entries that no run holds until the
// cache fits its bound. The caller holds the install lock, so no init
// is linking to an entry meanwhile.
func (c *Cache) evict() error {
	es, err := c.Entries()
	if err != nil {
		return err
	}
	var total int64
	for _, e := range es {
		total += e.Bytes
	}
	for _, e := range es {
		if total <= c.max {
			return nil
		}
		if e.Bytes == 0 {
			continue
		}
		lock, err := lockExclusiveNow(c.leasePath(e.Path))
		if errors.Is(err, errLocked) {
			continue // a run uses it
		}
		if err != nil {
			return err
		}
		err = os.RemoveAll(filepath.Join(c.dir, e.Path))
		lock.Close()
		if err != nil {
			return fmt.Errorf("cannot remove %s from the provider cache: %w", e.Path, err)
		}
		total -= e.Bytes
		c.evicted.Add(1)
		c.log.Info("evicted a provider from the plugin cache", "provider", e.Path, "bytes", e.Bytes, "lastUsed", e.LastUsed, "cacheBytes", total, "maxBytes", c.max)
	}
	if total > c.max {
		c.log.Warn("the provider cache is over its bound: what is left is in use", "cacheBytes", total, "maxBytes", c.max)
	}
	return nil
}

// reachedDirectly reports whether every directory between the cache and
// path (a Glob match under it) is one, not a symlink to one.
func (c *Cache) reachedDirectly(path string) bool {
	for p := filepath.Dir(path); p != c.dir; p = filepath.Dir(p) {
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// link is a provider package in a working directory that is a symlink
// (into the plugin cache or an unpacked mirror).
type link struct {
	path   string // .terraform/providers/HOSTNAME/NAMESPACE/TYPE/VERSION/OS_ARCH in the working directory
	target string // absolute, cleaned
}

// providerLinks lists the working directory's provider packages that
// are symlinks.
func providerLinks(dir string) ([]link, error) {
	matches, err := filepath.Glob(filepath.Join(dir, ".terraform", "providers", "*", "*", "*", "*", "*"))
	if err != nil {
		return nil, err
	}
	var out []link
	for _, m := range matches {
		fi, err := os.Lstat(m)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		t, err := os.Readlink(m)
		if err != nil {
			return nil, err
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(m), t)
		}
		out = append(out, link{path: m, target: filepath.Clean(t)})
	}
	return out, nil
}
