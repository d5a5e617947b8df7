package seen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// File is a Set that survives restarts: Add appends the key to a local file
// and syncs it before returning, so a key added before a crash (kill -9,
// power loss) is known after it. It holds the newest max keys; the file is
// rewritten with just those (to a temporary file, synced, renamed over) when
// it is opened and whenever it holds twice as many lines, so it stays under
// about 2 × max × (key length + 3) bytes.
//
// Cost: one write and one fsync per Add, on local disk; no network request.
// A torn last line (a crash mid-write) is ignored when the file is read.
type File struct {
	mu    sync.Mutex
	path  string
	max   int
	set   *Set
	f     *os.File
	lines int
}

// OpenFile opens (creating it and its directory if needed) the file at path
// holding at most max keys.
func OpenFile(path string, max int) (*File, error) {
	if max <= 0 {
		return nil, fmt.Errorf("cannot open seen file %s: max %d must be positive", path, max)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("cannot open seen file %s: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cannot open seen file %s: %w", path, err)
	}
	f := &File{path: path, max: max, set: New(max, 0)}
	for _, k := range ParseFile(data) {
		f.set.Add(k)
	}
	if err := f.rewrite(); err != nil {
		return nil, err
	}
	return f, nil
}

// ParseFile returns the keys of a seen file, oldest first, skipping lines
// that are not a quoted key (a torn write).
func ParseFile(data []byte) []string {
	var keys []string
	for line := range bytes.Lines(data) {
		if k, err := strconv.Unquote(string(bytes.TrimSuffix(line, []byte("\n")))); err == nil && k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// Has reports whether key was added (in this process or before a restart)
// and is among the newest max keys.
func (f *File) Has(key string) bool {
	if f == nil {
		return false
	}
	return f.set.Has(key)
}

// Add records key durably. A key already held is not written again.
func (f *File) Add(key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return fmt.Errorf("cannot record %q in %s: closed", key, f.path)
	}
	if f.set.Has(key) {
		return nil
	}
	f.set.Add(key)
	if f.lines >= 2*f.max {
		return f.rewrite()
	}
	if _, err := f.f.WriteString(strconv.Quote(key) + "\n"); err != nil {
		return fmt.Errorf("cannot record %q in %s: %w", key, f.path, err)
	}
	if err := f.f.Sync(); err != nil {
		return fmt.Errorf("cannot record %q in %s: %w", key, f.path, err)
	}
	f.lines++
	return nil
}

// rewrite replaces the file with the keys held, then reopens it for
// appending. Called with f.mu held (or before f is shared).
func (f *File) rewrite() error {
	var buf bytes.Buffer
	keys := f.set.oldestFirst()
	for _, k := range keys {
		buf.WriteString(strconv.Quote(k))
		buf.WriteByte('\n')
	}
	tmp := f.path + ".tmp"
	if err := writeSynced(tmp, buf.Bytes()); err != nil {
		return fmt.Errorf("cannot rewrite seen file %s: %w", f.path, err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("cannot rewrite seen file %s: %w", f.path, err)
	}
	// The rename itself must survive a power loss, or the old file (without
	// the newest key) would come back.
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	if f.f != nil {
		_ = f.f.Close()
	}
	out, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		f.f = nil
		return fmt.Errorf("cannot reopen seen file %s: %w", f.path, err)
	}
	f.f, f.lines = out, len(keys)
	return nil
}

func writeSynced(path string, data []byte) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := out.Write(data); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Close closes the file; Has keeps answering from memory.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return nil
	}
	err := f.f.Close()
	f.f = nil
	return err
}
