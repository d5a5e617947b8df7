package tfproviders

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Materialize replaces the provider packages in the working directory
// dir that are symlinks with copies, so the directory can be packed for
// the apply, which runs on any agent without init. What is left linked
// after Use.GuardInit is an unpacked mirror's (links into the plugin
// cache are copies already, as Terraform rewrites cached packages in
// place), so a copy is a hard link where the file system allows one:
// nothing writes to a mirror, and removing either name leaves the other
// whole.
func Materialize(dir string) error {
	links, err := providerLinks(dir)
	if err != nil {
		return fmt.Errorf("cannot list the working directory's providers: %w", err)
	}
	for _, l := range links {
		if err := l.replace(true); err != nil {
			return err
		}
	}
	return nil
}

// replace replaces the link with a copy of what it links to: hard links
// where hardLink and the file system allow, otherwise new files.
func (l link) replace(hardLink bool) error {
	src, err := filepath.EvalSymlinks(l.target)
	if err != nil {
		return fmt.Errorf("cannot resolve provider %s: %w", l.path, err)
	}
	tmp := l.path + ".copy"
	if err := copyTree(src, tmp, hardLink); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("cannot copy provider %s: %w", src, err)
	}
	if err := os.Remove(l.path); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("cannot replace provider link %s: %w", l.path, err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return fmt.Errorf("cannot replace provider link %s: %w", l.path, err)
	}
	return nil
}

// copyTree copies the regular files and directories under src to dst,
// keeping their permission bits.
func copyTree(src, dst string, hardLink bool) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, fi.Mode().Perm()|0o700)
		case d.Type().IsRegular():
			return copyFile(p, to, fi.Mode().Perm(), hardLink)
		default:
			return fmt.Errorf("%s is not a regular file or directory", p)
		}
	})
}

func copyFile(src, dst string, perm fs.FileMode, hardLink bool) error {
	if hardLink && os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
