package tfarchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"fmt"
	"github.com/botehq/platform/runtime/internal/golden"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tree writes files (name → content; "->target" makes a symlink, a
// trailing "/" a directory) under a new temp dir.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		switch {
		case strings.HasSuffix(name, "/"):
			require.NoError(t, os.MkdirAll(p, 0o755))
		case strings.HasPrefix(content, "->"):
			require.NoError(t, os.Symlink(strings.TrimPrefix(content, "->"), p))
		default:
			mode := os.FileMode(0o644)
			if strings.HasSuffix(name, ".sh") || strings.Contains(name, "terraform-provider") {
				mode = 0o755
			}
			require.NoError(t, os.WriteFile(p, []byte(content), mode))
		}
	}
	return dir
}

var sample = map[string]string{
	"main.tf":               `resource "terraform_data" "x" {}`,
	"modules/net/main.tf":   `variable "cidr" {}`,
	"modules/net/README.md": "net",
	"scripts/hook.sh":       "#!/bin/sh\necho hi\n",
	"current":               "->modules/net",
	".terraform.lock.hcl":   "# lock",
	".terraform/providers/p/terraform-provider-x": "binary",
	".git/HEAD": "ref: refs/heads/main",
	"empty/":    "",
}

// listing renders an archive's entries for golden comparison.
func listing(t *testing.T, archive []byte) string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var b strings.Builder
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		fmt.Fprintf(&b, "%c %04o %6d %s", h.Typeflag, h.Mode, h.Size, h.Name)
		if h.Linkname != "" {
			fmt.Fprintf(&b, " -> %s", h.Linkname)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestPackUnpackRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		workdir bool
	}{{"bundle", false}, {"workdir", true}} {
		t.Run(tc.name, func(t *testing.T) {
			src := tree(t, sample)
			lim := BundleLimits
			var buf bytes.Buffer
			st, err := Pack(src, &buf, PackOptions{Limits: lim, Workdir: tc.workdir})
			require.NoError(t, err)
			assert.Equal(t, int64(buf.Len()), st.Bytes)
			golden.Check(t, tc.name+".golden", []byte(listing(t, buf.Bytes())))

			// The same tree packs to the same bytes.
			var again bytes.Buffer
			_, err = Pack(src, &again, PackOptions{Limits: lim, Workdir: tc.workdir})
			require.NoError(t, err)
			assert.Equal(t, buf.Bytes(), again.Bytes())

			dst := t.TempDir()
			ust, err := Unpack(bytes.NewReader(buf.Bytes()), dst, lim)
			require.NoError(t, err)
			assert.Equal(t, st.Files, ust.Files)
			assert.Equal(t, st.UnpackedBytes, ust.UnpackedBytes)

			got, err := os.ReadFile(filepath.Join(dst, "modules/net/main.tf"))
			require.NoError(t, err)
			assert.Equal(t, sample["modules/net/main.tf"], string(got))
			info, err := os.Stat(filepath.Join(dst, "scripts/hook.sh"))
			require.NoError(t, err)
			assert.NotZero(t, info.Mode()&0o100, "executables stay executable")
			via, err := os.ReadFile(filepath.Join(dst, "current/README.md"))
			require.NoError(t, err, "internal symlink restored")
			assert.Equal(t, "net", string(via))
			assert.NoDirExists(t, filepath.Join(dst, ".git"))
			if tc.workdir {
				assert.FileExists(t, filepath.Join(dst, ".terraform/providers/p/terraform-provider-x"))
			} else {
				assert.NoDirExists(t, filepath.Join(dst, ".terraform"))
				assert.FileExists(t, filepath.Join(dst, ".terraform.lock.hcl"))
			}
		})
	}
}

func TestPackRefuses(t *testing.T) {
	noise := make([]byte, 64<<10)
	_, _ = rand.Read(noise)
	for _, tc := range []struct {
		name  string
		files map[string]string
		lim   Limits
		want  error
		msg   string
	}{
		{"absolute symlink", map[string]string{"main.tf": "", "passwd": "->/etc/passwd"}, BundleLimits, ErrUnsafePath, "points outside"},
		{"escaping symlink", map[string]string{"a/main.tf": "", "a/up": "->../../secret"}, BundleLimits, ErrUnsafePath, "points outside"},
		{"compressed size", map[string]string{"blob.bin": string(noise)}, Limits{MaxBytes: 16 << 10, MaxUnpackedBytes: 1 << 20, MaxFiles: 10}, ErrTooLarge, "compressed size is over the limit of 16.0 KiB"},
		{"unpacked size", map[string]string{"a": strings.Repeat("x", 2000)}, Limits{MaxBytes: 1 << 20, MaxUnpackedBytes: 1000, MaxFiles: 10}, ErrTooLarge, "unpacked size is over the limit"},
		{"file count", map[string]string{"a": "", "b": "", "c": ""}, Limits{MaxBytes: 1 << 20, MaxUnpackedBytes: 1 << 20, MaxFiles: 2}, ErrTooLarge, "file count is over the limit of 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Pack(tree(t, tc.files), io.Discard, PackOptions{Limits: tc.lim})
			require.ErrorIs(t, err, tc.want)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
	_, err := Pack(t.TempDir(), io.Discard, PackOptions{})
	assert.ErrorContains(t, err, "MaxBytes", "zero limits are a configuration error")
}

type entry struct {
	name, link string
	typ        byte
	body       string
	size       int64 // header size when it must differ from len(body)
}

func archive(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if e.size != 0 {
			h.Size = e.size
		}
		require.NoError(t, tw.WriteHeader(h))
		if e.typ == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return buf.Bytes()
}

func TestUnpackRefuses(t *testing.T) {
	file := func(name string) entry { return entry{name: name, typ: tar.TypeReg, body: "x"} }
	small := Limits{MaxBytes: 1 << 20, MaxUnpackedBytes: 1 << 20, MaxFiles: 3}
	for _, tc := range []struct {
		name    string
		archive []byte
		lim     Limits
		want    error
	}{
		{"absolute path", archive(t, file("/etc/cron.d/evil")), BundleLimits, ErrUnsafePath},
		{"dot dot", archive(t, file("../evil")), BundleLimits, ErrUnsafePath},
		{"dot dot inside", archive(t, file("a/../../evil")), BundleLimits, ErrUnsafePath},
		{"symlink out", archive(t, entry{name: "l", link: "../../etc", typ: tar.TypeSymlink}), BundleLimits, ErrUnsafePath},
		{"absolute symlink", archive(t, entry{name: "l", link: "/etc", typ: tar.TypeSymlink}), BundleLimits, ErrUnsafePath},
		{"hard link", archive(t, file("a"), entry{name: "b", link: "a", typ: tar.TypeLink}), BundleLimits, ErrUnsafePath},
		{"device", archive(t, entry{name: "dev", typ: tar.TypeChar}), BundleLimits, ErrUnsafePath},
		{"too many files", archive(t, file("a"), file("b"), file("c"), file("d")), small, ErrTooLarge},
		{"unpacked too large", archive(t, entry{name: "zeros", typ: tar.TypeReg, body: strings.Repeat("\x00", 2<<20)}), small, ErrTooLarge},
		{"compressed too large", archive(t, entry{name: "z", typ: tar.TypeReg, body: strings.Repeat("\x00", 2<<20)}), Limits{MaxBytes: 512, MaxUnpackedBytes: 4 << 20, MaxFiles: 3}, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Unpack(bytes.NewReader(tc.archive), dir, tc.lim)
			require.ErrorIs(t, err, tc.want)
			_, statErr := os.Lstat(filepath.Join(filepath.Dir(dir), "evil"))
			assert.True(t, os.IsNotExist(statErr), "nothing written outside")
		})
	}

	t.Run("duplicate file", func(t *testing.T) {
		_, err := Unpack(bytes.NewReader(archive(t, file("a"), file("a"))), t.TempDir(), BundleLimits)
		assert.ErrorContains(t, err, "exists")
	})
	t.Run("write through an escaping symlink", func(t *testing.T) {
		// A symlink that passed the name check cannot be used to escape:
		// os.Root refuses to follow it out.
		dir := t.TempDir()
		outside := t.TempDir()
		require.NoError(t, os.Symlink(outside, filepath.Join(dir, "l")))
		_, err := Unpack(bytes.NewReader(archive(t, file("l/evil"))), dir, BundleLimits)
		require.Error(t, err)
		assert.NoFileExists(t, filepath.Join(outside, "evil"))
	})
	t.Run("not gzip", func(t *testing.T) {
		_, err := Unpack(strings.NewReader("plain text"), t.TempDir(), BundleLimits)
		assert.ErrorContains(t, err, "cannot unpack archive")
	})
	t.Run("truncated", func(t *testing.T) {
		a := archive(t, entry{name: "f", typ: tar.TypeReg, body: strings.Repeat("y", 4096)})
		_, err := Unpack(bytes.NewReader(a[:len(a)/2]), t.TempDir(), BundleLimits)
		assert.Error(t, err)
	})
}

func TestLimitErrorMessage(t *testing.T) {
	err := error(&LimitError{What: "compressed size", Limit: 64 << 20, Value: 70 << 20, Hint: "leave large files out"})
	assert.Equal(t, "compressed size is over the limit of 64.0 MiB (70.0 MiB so far); leave large files out", err.Error())
	assert.ErrorIs(t, err, ErrTooLarge)
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0:             "0 bytes",
		1023:          "1023 bytes",
		1024:          "1.0 KiB",
		3 << 9:        "1.5 KiB",
		1<<20 - 1:     "1024.0 KiB",
		1 << 20:       "1.0 MiB",
		5<<20 + 1<<19: "5.5 MiB",
	} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
