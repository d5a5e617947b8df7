package tfarchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
)

// FuzzUnpack: a bundle from blob storage (written by whoever could write
// there) never panics Unpack, never writes outside its directory and never
// exceeds the limits. The input is the tar stream; it is gzipped here so
// the fuzzer mutates tar headers rather than gzip checksums (raw=true
// passes it as is).
func FuzzUnpack(f *testing.F) {
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	for _, h := range []*tar.Header{
		{Name: "main.tf", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2},
		{Name: "mod/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "mod/link", Typeflag: tar.TypeSymlink, Linkname: "../main.tf"},
	} {
		if err := tw.WriteHeader(h); err != nil {
			f.Fatal(err)
		}
		if h.Size > 0 {
			_, _ = tw.Write([]byte("{}"))
		}
	}
	_ = tw.Close()
	f.Add(tarball.Bytes(), false)
	lim := Limits{MaxBytes: 1 << 20, MaxUnpackedBytes: 1 << 20, MaxFiles: 16}
	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		in := data
		if !raw {
			var buf bytes.Buffer
			gz := gzip.NewWriter(&buf)
			_, _ = gz.Write(data)
			_ = gz.Close()
			in = buf.Bytes()
		}
		outside := t.TempDir()
		dir := filepath.Join(outside, "bundle")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		st, err := Unpack(bytes.NewReader(in), dir, lim)
		entries, rerr := os.ReadDir(outside)
		if rerr != nil || len(entries) != 1 || entries[0].Name() != "bundle" {
			t.Fatalf("something was written next to the bundle directory: %v %v", entries, rerr)
		}
		if err != nil {
			return
		}
		if st.Files > lim.MaxFiles {
			t.Fatalf("unpacked %d files, the limit is %d", st.Files, lim.MaxFiles)
		}
		var size int64
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type()&os.ModeSymlink != 0 {
				target, err := filepath.EvalSymlinks(p)
				if err == nil && !filepath.IsLocal(mustRel(t, dir, target)) {
					t.Fatalf("symlink %s points out of the bundle to %s", p, target)
				}
				return nil
			}
			if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
				size += info.Size()
			}
			return nil
		})
		if size > lim.MaxUnpackedBytes {
			t.Fatalf("unpacked %d bytes, the limit is %d", size, lim.MaxUnpackedBytes)
		}
	})
}

func mustRel(t *testing.T, base, target string) string {
	base, err := filepath.EvalSymlinks(base)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(base, target)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}
