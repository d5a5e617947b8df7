package idp

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/registry"
)

// DefaultRegistryPoll is how often a RegistryWatcher looks at its file.
const DefaultRegistryPoll = 2 * time.Second

// RegistryWatcher serves the connector registry from a file and reloads it
// when the file changes. It polls the file's size and modification time (no
// inotify: the file may sit on a network or container volume where events
// do not arrive, and may be replaced by rename or symlink swap). A file that
// fails to load is logged and the last good registry stays in force.
type RegistryWatcher struct {
	path     string
	interval time.Duration
	logger   *slog.Logger

	mu      sync.RWMutex
	current *registry.Registry

	reloadMu sync.Mutex // serialises Reload; guards the fields below
	lastSize int64
	lastMod  time.Time
	lastSum  [sha256.Size]byte
}

// NewRegistryWatcher loads the registry at path. It fails if the file cannot
// be loaded: there is no last good registry to fall back on yet.
func NewRegistryWatcher(path string, interval time.Duration, logger *slog.Logger) (*RegistryWatcher, error) {
	if path == "" {
		return nil, errors.New("idp: registry path is required")
	}
	if interval <= 0 {
		interval = DefaultRegistryPoll
	}
	if logger == nil {
		logger = slog.Default()
	}
	w := &RegistryWatcher{path: path, interval: interval, logger: logger}
	if _, err := w.Reload(); err != nil {
		return nil, err
	}
	return w, nil
}

// Lookup implements Clients with the registry currently in force.
func (w *RegistryWatcher) Lookup(clientID string) (registry.Connector, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.current.Lookup(clientID)
}

// Current returns the registry in force.
func (w *RegistryWatcher) Current() *registry.Registry {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.current
}

// Run polls the file until ctx is done.
func (w *RegistryWatcher) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, err := w.Reload()
			switch {
			case err == nil:
				lastErr = ""
			case err.Error() != lastErr: // a missing file is reported once, not every poll
				lastErr = err.Error()
				w.logger.ErrorContext(ctx, "connector registry not reloaded, keeping the last good one", "path", w.path, "error", err)
			}
		}
	}
}

// Reload loads the file if it changed since the last look and reports
// whether a new registry is now in force. On error the registry in force is
// unchanged, and the same broken file is not reported again until it
// changes. Run calls it; it is exported for tests and for a reload on
// demand.
func (w *RegistryWatcher) Reload() (bool, error) {
	w.reloadMu.Lock()
	defer w.reloadMu.Unlock()
	info, err := os.Stat(w.path)
	if err != nil {
		return false, fmt.Errorf("cannot stat connector registry: %w", err)
	}
	if w.current != nil && info.Size() == w.lastSize && info.ModTime().Equal(w.lastMod) {
		return false, nil
	}
	w.lastSize, w.lastMod = info.Size(), info.ModTime()
	data, err := os.ReadFile(w.path)
	if err != nil {
		return false, fmt.Errorf("cannot read connector registry: %w", err)
	}
	sum := sha256.Sum256(data)
	if w.current != nil && sum == w.lastSum {
		return false, nil
	}
	w.lastSum = sum
	reg, err := registry.Parse(data)
	if err != nil {
		return false, fmt.Errorf("connector registry %s: %w", w.path, err)
	}
	w.mu.Lock()
	w.current = reg
	w.mu.Unlock()
	w.logger.Info("connector registry loaded", "path", w.path, "connectors", len(reg.Connectors()))
	return true, nil
}
