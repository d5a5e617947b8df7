//go:build !unix

package tfproviders

import (
	"context"
	"errors"
	"os"
	"path/filepath"
)

// Without flock nothing is locked: one run at a time (--concurrency 1)
// and one agent per cache directory keep the cache safe there.

var errLocked = errors.New("locked by another run")

func openLock(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

func lockWait(_ context.Context, path string) (*os.File, error) { return openLock(path) }
func lockExclusiveNow(path string) (*os.File, error)            { return openLock(path) }
func lockShared(path string) (*os.File, error)                  { return openLock(path) }
