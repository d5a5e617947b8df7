package secretstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runproto"
)

// FileVersion is the format version of the secrets file.
const FileVersion = 1

// fileData is the secrets file:
//
//	{"version": 1, "workspaces": {"contoso/prod": {"env": {"ARM_CLIENT_SECRET": "..."}, "vars": {"db_password": "..."}}}}
type fileData struct {
	Version    int                         `json:"version"`
	Workspaces map[string]runproto.Secrets `json:"workspaces"`
}

// File is a Store in one local JSON file, readable by its owner only. It
// is re-read on every Get, so edits by hand (or by another process using
// File) take effect at the next run; writes replace the file atomically.
type File struct {
	path string
	mu   sync.Mutex
}

// OpenFile returns the store at path; the file need not exist yet. An
// existing file must be valid and not readable by group or others.
func OpenFile(path string) (*File, error) {
	if path == "" {
		return nil, errors.New("secrets file: path is empty")
	}
	f := &File{path: path}
	if _, err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

func key(tenant ids.TenantID, workspace ids.WorkspaceID) string {
	return string(tenant) + "/" + string(workspace)
}

func (f *File) load() (fileData, error) {
	d := fileData{Version: FileVersion, Workspaces: map[string]runproto.Secrets{}}
	fh, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return d, fmt.Errorf("cannot open secrets file: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return d, fmt.Errorf("cannot open secrets file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return d, fmt.Errorf("secrets file %s has mode %s: it must be readable by its owner only (chmod 600)", f.path, st.Mode().Perm())
	}
	dec := json.NewDecoder(fh)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("cannot decode secrets file %s: %w", f.path, err)
	}
	if d.Version != FileVersion {
		return d, fmt.Errorf("secrets file %s: version is %d, want %d", f.path, d.Version, FileVersion)
	}
	if d.Workspaces == nil {
		d.Workspaces = map[string]runproto.Secrets{}
	}
	for k, s := range d.Workspaces {
		tenant, ws, _ := cut(k)
		if err := checkKey(tenant, ws); err != nil {
			return d, fmt.Errorf("secrets file %s: workspaces[%q]: %w", f.path, k, err)
		}
		if err := Validate(s); err != nil {
			return d, fmt.Errorf("secrets file %s: workspaces[%q]: %w", f.path, k, err)
		}
	}
	return d, nil
}

// checkKey checks the ids of a key read from the file, which is where
// they enter.
func checkKey(tenant, workspace string) error {
	if _, err := ids.ParseTenantID(tenant); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := ids.ParseWorkspaceID(workspace); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

func cut(k string) (string, string, bool) {
	for i := range len(k) {
		if k[i] == '/' {
			return k[:i], k[i+1:], true
		}
	}
	return k, "", false
}

// Get implements Store.
func (f *File) Get(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (runproto.Secrets, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.load()
	if err != nil {
		return runproto.Secrets{}, err
	}
	return clone(d.Workspaces[key(tenant, workspace)]), nil
}

// Put implements Store.
func (f *File) Put(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, s runproto.Secrets) error {
	if err := Validate(s); err != nil {
		return err
	}
	return f.change(func(d *fileData) {
		if s.Empty() {
			delete(d.Workspaces, key(tenant, workspace))
		} else {
			d.Workspaces[key(tenant, workspace)] = clone(s)
		}
	})
}

// Delete implements Store.
func (f *File) Delete(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) error {
	return f.change(func(d *fileData) { delete(d.Workspaces, key(tenant, workspace)) })
}

func (f *File) change(fn func(*fileData)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.load()
	if err != nil {
		return err
	}
	fn(&d)
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode secrets file: %w", err)
	}
	return writeAtomic(f.path, append(data, '\n'))
}

// writeAtomic writes a 0600 temporary file next to path, syncs it and
// renames it over path, so readers see the old or the new file, never a
// part.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("cannot write secrets file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename: nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write secrets file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write secrets file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write secrets file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write secrets file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot write secrets file: %w", err)
	}
	return nil
}
