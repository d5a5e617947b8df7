//go:build unix

package tfproviders

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

var errLocked = errors.New("locked by another run")

func openLock(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

func flock(path string, how int) (*os.File, error) {
	f, err := openLock(path)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return f, nil
}

// lockWait takes an exclusive lock on path, waiting for it as long as
// ctx lets it (flock cannot be interrupted, so it polls).
func lockWait(ctx context.Context, path string) (*os.File, error) {
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		f, err := lockExclusiveNow(path)
		if !errors.Is(err, errLocked) {
			return f, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		case <-t.C:
		}
	}
}

func lockExclusiveNow(path string) (*os.File, error) {
	return flock(path, syscall.LOCK_EX|syscall.LOCK_NB)
}

func lockShared(path string) (*os.File, error) { return flock(path, syscall.LOCK_SH) }
