// Package tfarchive packs and unpacks the archives a Terraform run travels
// in: the configuration bundle an operator uploads and the working
// directory with the saved plan an agent leaves for the apply. The CLI
// packs, agents unpack and pack; neither needs the server's store (package
// artifacts), so the archive format has a package of its own.
//
// Archives are gzip-compressed tar files made by Pack and read by Unpack,
// with limits on compressed size, unpacked size and entry count (a
// *LimitError names the one exceeded). Pack leaves out .git/ and, for a
// bundle, .terraform/; it refuses symlinks that point outside the
// directory. Unpack writes only through an os.Root, refusing absolute
// names, "..", escaping symlinks and special files.
package tfarchive

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	slug "github.com/hashicorp/go-slug"
)

// Errors callers branch on.
var (
	// ErrTooLarge: an archive or its contents exceed a limit.
	ErrTooLarge = errors.New("too large")
	// ErrUnsafePath: an entry would land outside its directory (absolute,
	// "..", a symlink pointing out) or is not a file, directory or symlink.
	ErrUnsafePath = errors.New("unsafe path in archive")
)

// LimitError says which limit was exceeded; it matches ErrTooLarge.
type LimitError struct {
	What         string // "compressed size", "file count", "unpacked size"
	Limit, Value int64
	Hint         string
}

func (e *LimitError) Error() string {
	s := fmt.Sprintf("%s is over the limit of %s (%s so far)", e.What, human(e.What, e.Limit), human(e.What, e.Value))
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

func human(what string, n int64) string {
	if what == "file count" {
		return fmt.Sprint(n)
	}
	return FormatBytes(n)
}

// FormatBytes writes a size as the limit errors do: "812 bytes",
// "3.4 KiB", "1.2 MiB".
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// Limits bound an archive, on packing and again on unpacking (an archive
// may come from anywhere).
type Limits struct {
	// MaxBytes bounds the compressed archive.
	MaxBytes int64
	// MaxUnpackedBytes bounds the sum of file sizes.
	MaxUnpackedBytes int64
	// MaxFiles bounds the number of entries.
	MaxFiles int
}

// Validate names the first bad limit.
func (l Limits) Validate() error {
	switch {
	case l.MaxBytes <= 0:
		return fmt.Errorf("limits: MaxBytes %d must be positive", l.MaxBytes)
	case l.MaxUnpackedBytes <= 0:
		return fmt.Errorf("limits: MaxUnpackedBytes %d must be positive", l.MaxUnpackedBytes)
	case l.MaxFiles <= 0:
		return fmt.Errorf("limits: MaxFiles %d must be positive", l.MaxFiles)
	}
	return nil
}

// Default limits. A configuration bundle is source code; a working
// directory also holds the providers `terraform init` installed, which
// are large (hundreds of MiB for the big clouds).
var (
	BundleLimits  = Limits{MaxBytes: 64 << 20, MaxUnpackedBytes: 512 << 20, MaxFiles: 10_000}
	WorkdirLimits = Limits{MaxBytes: 1 << 30, MaxUnpackedBytes: 4 << 30, MaxFiles: 100_000}
)

// ProvidersDir is where terraform init installs a working directory's
// providers.
const ProvidersDir = ".terraform/providers"

// PackOptions tune Pack.
type PackOptions struct {
	Limits Limits
	// Workdir packs a working directory for the apply: .terraform/ (the
	// installed providers and modules) is kept. A configuration bundle
	// leaves it out, the agent runs `terraform init` itself.
	Workdir bool
	// WithoutProviders leaves .terraform/providers/ out of a working
	// directory: the apply installs them again (terraform init, from the
	// lock file) instead of carrying them.
	WithoutProviders bool
	// TerraformIgnore leaves out what the directory's .terraformignore
	// excludes, with Terraform Cloud's rules and defaults (.git/ and
	// .terraform/ except .terraform/modules/ when there is no such file),
	// as HashiCorp's go-slug applies them.
	TerraformIgnore bool
	// Extra files are added at the archive's root after the directory's
	// (per-run variable files); a name the directory has is refused.
	Extra []File
}

// File is a file Pack adds that is not in the directory.
type File struct {
	Name string // a plain name, no directory
	Data []byte
}

// Stats describe a packed or unpacked archive.
type Stats struct {
	Files         int   // regular files
	Entries       int   // files, directories and symlinks
	UnpackedBytes int64 // sum of file sizes
	Bytes         int64 // compressed size
	Ignored       int   // files and directories .terraformignore left out
}

// skipDir reports whether a directory never travels: version control
// metadata always, and .terraform/ unless packing a working directory.
func skipDir(name string, workdir bool) bool {
	return name == ".git" || (name == ".terraform" && !workdir)
}

// Pack writes dir as a gzip-compressed tar to w, refusing to go past the
// limits (a *LimitError that names the limit) and refusing symlinks that
// point outside dir. Entries are in lexical order with fixed times and
// owners, so the same tree packs to the same bytes.
func Pack(dir string, w io.Writer, opts PackOptions) (Stats, error) {
	// size: one walk whose limit and symlink checks share the running totals.
	lim := opts.Limits
	if err := lim.Validate(); err != nil {
		return Stats{}, err
	}
	var st Stats
	hint := fmt.Sprintf("leave large or generated files out of %s (.git/ and .terraform/ are already left out)", dir)
	if opts.Workdir {
		hint = "the working directory, providers included, is too large to keep"
	}
	cw := &countWriter{w: w, max: lim.MaxBytes, hint: hint}
	gz := gzip.NewWriter(cw)
	tw := tar.NewWriter(gz)
	root, err := filepath.Abs(dir)
	if err != nil {
		return st, fmt.Errorf("cannot pack %s: %w", dir, err)
	}
	var keep map[string]bool
	if opts.TerraformIgnore {
		if keep, err = terraformIgnoreKeeps(root); err != nil {
			return st, fmt.Errorf("cannot pack %s: %w", dir, err)
		}
	}
	walkErr := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		switch {
		case keep != nil && d.IsDir() && !keep[name+"/"]:
			st.Ignored++
			return filepath.SkipDir
		case keep != nil && !d.IsDir() && !keep[name]:
			st.Ignored++
			return nil
		case keep == nil && d.IsDir() && skipDir(d.Name(), opts.Workdir):
			return filepath.SkipDir
		case d.IsDir() && opts.WithoutProviders && name == ProvidersDir:
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: name, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, name+"/", 0o755
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if !localLink(name, target) {
				return fmt.Errorf("%w: symlink %s points outside the directory (%s)", ErrUnsafePath, name, target)
			}
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, filepath.ToSlash(target), 0o777
		case d.Type().IsRegular():
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, info.Size(), 0o644
			if info.Mode()&0o111 != 0 {
				hdr.Mode = 0o755 // providers must stay executable
			}
			st.Files++
			st.UnpackedBytes += info.Size()
			if st.UnpackedBytes > lim.MaxUnpackedBytes {
				return &LimitError{What: "unpacked size", Limit: lim.MaxUnpackedBytes, Value: st.UnpackedBytes, Hint: hint}
			}
		default:
			return fmt.Errorf("%w: %s is a %s, not a file, directory or symlink", ErrUnsafePath, name, d.Type())
		}
		st.Entries++
		if st.Entries > lim.MaxFiles {
			return &LimitError{What: "file count", Limit: int64(lim.MaxFiles), Value: int64(st.Entries), Hint: hint}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if n, err := io.Copy(tw, f); err != nil {
			return err
		} else if n != hdr.Size {
			return fmt.Errorf("%s changed while being packed", name)
		}
		return nil
	})
	if walkErr == nil {
		walkErr = packExtra(root, tw, opts.Extra, &st)
	}
	if walkErr != nil {
		return st, fmt.Errorf("cannot pack %s: %w", dir, walkErr)
	}
	if err := tw.Close(); err != nil {
		return st, fmt.Errorf("cannot pack %s: %w", dir, err)
	}
	if err := gz.Close(); err != nil {
		return st, fmt.Errorf("cannot pack %s: %w", dir, err)
	}
	st.Bytes = cw.n
	return st, nil
}

func packExtra(root string, tw *tar.Writer, files []File, st *Stats) error {
	for _, f := range files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) || strings.ContainsAny(f.Name, `/\`) || f.Name == "." || f.Name == ".." {
			return fmt.Errorf("%w: extra file name %q must be a plain file name", ErrUnsafePath, f.Name)
		}
		if _, err := os.Lstat(filepath.Join(root, f.Name)); err == nil {
			return fmt.Errorf("%s is in the directory already: rename it or leave the option that adds it", f.Name)
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.Name, Typeflag: tar.TypeReg, Size: int64(len(f.Data)), Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
		st.Files++
		st.Entries++
		st.UnpackedBytes += int64(len(f.Data))
	}
	return nil
}

// terraformIgnoreKeeps returns the names (directories with a trailing
// "/") go-slug keeps in root under its .terraformignore: the same rules
// as Terraform Cloud, from the same code. go-slug keeps its rule parser
// internal, so this packs with it, discarding the bytes, and reads the
// list of what it packed.
func terraformIgnoreKeeps(root string) (map[string]bool, error) {
	p, err := slug.NewPacker(slug.ApplyTerraformIgnore())
	if err != nil {
		return nil, err
	}
	meta, err := p.Pack(root, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("cannot apply .terraformignore: %w", err)
	}
	keep := make(map[string]bool, len(meta.Files))
	for _, f := range meta.Files {
		// go-slug lists .terraform/modules/x/ without .terraform/: the
		// directories leading to a kept name are kept too.
		for i := range len(f) {
			if f[i] == '/' {
				keep[f[:i+1]] = true
			}
		}
		keep[f] = true
	}
	return keep, nil
}

// localLink reports whether a symlink at name (slash-separated, relative)
// with target stays inside the archive's root.
func localLink(name, target string) bool {
	if filepath.IsAbs(target) || strings.HasPrefix(target, "/") {
		return false
	}
	return filepath.IsLocal(filepath.FromSlash(path.Join(path.Dir(name), filepath.ToSlash(target))))
}

type countWriter struct {
	w    io.Writer
	n    int64
	max  int64
	hint string
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.n+int64(len(p)) > c.max {
		return 0, &LimitError{What: "compressed size", Limit: c.max, Value: c.n + int64(len(p)), Hint: c.hint}
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Unpack extracts a Pack archive from r into dir, which must exist and
// should be empty. Everything is written through an os.Root on dir, so no
// entry can land outside it whatever its name or the symlinks before it;
// absolute names, "..", symlinks pointing out, other entry types and
// duplicate files are refused, and the limits are enforced on the stream.
func Unpack(r io.Reader, dir string, lim Limits) (Stats, error) {
	if err := lim.Validate(); err != nil {
		return Stats{}, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Stats{}, fmt.Errorf("cannot unpack into %s: %w", dir, err)
	}
	defer root.Close()
	cr := &countReader{r: r, max: lim.MaxBytes}
	gz, err := gzip.NewReader(cr)
	if err != nil {
		return Stats{}, fmt.Errorf("cannot unpack archive: %w", err)
	}
	tr := tar.NewReader(gz)
	var st Stats
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("cannot unpack archive: %w", err)
		}
		name := filepath.FromSlash(strings.TrimSuffix(hdr.Name, "/"))
		if !filepath.IsLocal(name) || strings.HasPrefix(hdr.Name, "/") {
			return st, fmt.Errorf("%w: %q", ErrUnsafePath, hdr.Name)
		}
		st.Entries++
		if st.Entries > lim.MaxFiles {
			return st, &LimitError{What: "file count", Limit: int64(lim.MaxFiles), Value: int64(st.Entries)}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = root.MkdirAll(name, 0o755)
		case tar.TypeSymlink:
			if !localLink(filepath.ToSlash(name), hdr.Linkname) {
				return st, fmt.Errorf("%w: symlink %s points outside the directory (%s)", ErrUnsafePath, hdr.Name, hdr.Linkname)
			}
			if err = mkParent(root, name); err == nil {
				err = root.Symlink(filepath.FromSlash(hdr.Linkname), name)
			}
		case tar.TypeReg:
			st.Files++
			st.UnpackedBytes += hdr.Size
			if hdr.Size < 0 || st.UnpackedBytes > lim.MaxUnpackedBytes {
				return st, &LimitError{What: "unpacked size", Limit: lim.MaxUnpackedBytes, Value: st.UnpackedBytes}
			}
			err = writeFile(root, name, hdr, tr)
		default:
			return st, fmt.Errorf("%w: %s has unsupported type %q", ErrUnsafePath, hdr.Name, hdr.Typeflag)
		}
		if err != nil {
			return st, fmt.Errorf("cannot unpack %s: %w", hdr.Name, err)
		}
	}
	if cr.n > cr.max { // the error may have been buffered away unread
		return st, &LimitError{What: "compressed size", Limit: cr.max, Value: cr.n}
	}
	st.Bytes = cr.n
	return st, nil
}

func mkParent(root *os.Root, name string) error {
	if d := filepath.Dir(name); d != "." {
		return root.MkdirAll(d, 0o755)
	}
	return nil
}

func writeFile(root *os.Root, name string, hdr *tar.Header, r io.Reader) error {
	if err := mkParent(root, name); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if hdr.Mode&0o111 != 0 {
		mode = 0o755
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, hdr.Size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != hdr.Size {
		err = io.ErrUnexpectedEOF
	}
	return err
}

type countReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, &LimitError{What: "compressed size", Limit: c.max, Value: c.n}
	}
	return n, err
}
