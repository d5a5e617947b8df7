//go:build unix

package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// lockName is the lock file in the work directory and in each process
// directory.
const lockName = ".lock"

// processDir makes this process's directory under base and holds a lock
// on it while the process lives. Process directories whose lock nobody
// holds belong to processes that died (killed mid-run): they hold plans
// and state, so they are removed. The whole step runs under a lock on
// base, so two agents sharing a work directory never remove each other's
// runs.
func processDir(base string, log *slog.Logger) (string, func(), error) {
	baseLock, err := lockFile(filepath.Join(base, lockName), true)
	if err != nil {
		return "", nil, err
	}
	defer baseLock.Close()

	stale, _ := filepath.Glob(filepath.Join(base, processDirPattern))
	for _, d := range stale {
		l, err := lockFile(filepath.Join(d, lockName), false)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			continue // a live agent's
		}
		if l != nil {
			l.Close()
		}
		if err := os.RemoveAll(d); err != nil {
			return "", nil, fmt.Errorf("cannot remove stale working directories: %w", err)
		}
		log.Info("removed the working directories of an agent process that is gone", "dir", d)
	}

	dir, err := os.MkdirTemp(base, processDirPattern) // 0700
	if err != nil {
		return "", nil, fmt.Errorf("cannot create working directory: %w", err)
	}
	own, err := lockFile(filepath.Join(dir, lockName), false)
	if err != nil {
		return "", nil, err
	}
	release := func() {
		_ = os.RemoveAll(dir)
		own.Close()
	}
	return dir, release, nil
}

// lockFile opens (creating) path and locks it exclusively, waiting for the
// lock if wait is set; the lock lasts until the file is closed or the
// process ends.
func lockFile(path string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open lock file: %w", err)
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot lock %s: %w", path, err)
	}
	return f, nil
}
