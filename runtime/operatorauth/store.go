package operatorauth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"
)

// KeyStore holds the API keys: a keys file (FileStore, for local runs and
// a single server) or an Azure table (TableStore, shared by every replica).
// Both hold the same entries (KeyEntry) with the same meaning.
type KeyStore interface {
	// Load reads every key. The result is valid (KeysFile.Validate).
	Load(ctx context.Context) (*KeysFile, error)
	// Edit applies edit to the current keys and stores the entry id as
	// edit left it, such that two edits never interleave: an edit always
	// starts from the result of the previous one. It returns the keys as
	// stored.
	Edit(ctx context.Context, id string, edit func(*KeysFile, time.Time) error) (*KeysFile, error)
	// String names the store in logs: the file's path, the table's name.
	String() string
}

// FileStore keeps the keys in a JSON file (KeysFile). Edits are serialized
// within the process and written atomically, so one process should edit a
// file at a time.
type FileStore struct {
	Path string
	// Create lets the first Edit start from an empty file when Path does
	// not exist (opsserver apikey create).
	Create bool

	mu sync.Mutex
}

// Load reads the file; a missing file is an error.
func (s *FileStore) Load(context.Context) (*KeysFile, error) { return LoadKeysFile(s.Path) }

// Edit reads the file, applies edit and writes it back.
func (s *FileStore) Edit(ctx context.Context, _ string, edit func(*KeysFile, time.Time) error) (*KeysFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.Load(ctx)
	if s.Create && errors.Is(err, fs.ErrNotExist) {
		f, err = &KeysFile{Version: KeysFileVersion}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := edit(f, time.Now()); err != nil {
		return nil, err
	}
	if err := f.Save(s.Path); err != nil {
		return nil, err
	}
	return f, nil
}

func (s *FileStore) String() string { return "file " + s.Path }

// entry returns the entry id of f.
func (f *KeysFile) entry(id string) (KeyEntry, error) {
	i := f.find(id)
	if i < 0 {
		return KeyEntry{}, fmt.Errorf("%w: no key %q", ErrKeyNotFound, id)
	}
	return f.Keys[i], nil
}
