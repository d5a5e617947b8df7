package seen

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzParseFile: a seen file left by a crash (torn, edited, corrupt) never
// panics the reader, and OpenFile keeps what ParseFile reads, newest last.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte("\"a\"\n\"b\"\n\"tor"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys := ParseFile(data)
		path := filepath.Join(t.TempDir(), "seen")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		sf, err := OpenFile(path, 1000)
		if err != nil {
			t.Fatalf("cannot open: %v", err)
		}
		defer sf.Close()
		for _, k := range keys {
			if !sf.Has(k) {
				t.Fatalf("lost %q", k)
			}
		}
		reread, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ParseFile(reread), dedupKeepLast(keys); len(want) <= 1000 && !slices.Equal(got, want) {
			t.Fatalf("rewritten file holds %q, want %q", got, want)
		}
	})
}

// dedupKeepLast drops earlier repeats of a key, as the Set does.
func dedupKeepLast(keys []string) []string {
	last := map[string]int{}
	for i, k := range keys {
		last[k] = i
	}
	var out []string
	for i, k := range keys {
		if last[k] == i {
			out = append(out, k)
		}
	}
	return out
}
