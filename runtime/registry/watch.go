package registry

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultPoll is how often a Watcher looks at its file.
const DefaultPoll = 2 * time.Second

// Watcher serves the connector registry from a source (a file, or
// the blob the Pulumi stack publishes) and reloads it when it changes. It
// polls (no inotify: a file may sit on a network or container volume where
// events do not arrive, and may be replaced by rename or symlink swap). A
// document that fails to load is logged and the last good registry stays in
// force.
type Watcher struct {
	src      Source
	interval time.Duration
	logger   *slog.Logger

	mu      sync.RWMutex
	current *Registry

	reloadMu sync.Mutex // serialises Reload; guards lastSum
	lastSum  [sha256.Size]byte
}

// Source is where a Watcher reads the registry document.
type Source interface {
	// Fetch returns the document, or changed=false when it is known not to
	// have changed since the last successful Fetch.
	Fetch(ctx context.Context) (data []byte, changed bool, err error)
	// String names the source in logs.
	String() string
}

// NewWatcher loads the registry file at path. It fails if the file
// cannot be loaded: there is no last good registry to fall back on yet.
func NewWatcher(path string, interval time.Duration, logger *slog.Logger) (*Watcher, error) {
	if path == "" {
		return nil, errors.New("registry: file path is required")
	}
	return NewWatcherFrom(&fileSource{path: path}, interval, logger)
}

// NewWatcherFrom loads the registry from src.
func NewWatcherFrom(src Source, interval time.Duration, logger *slog.Logger) (*Watcher, error) {
	if interval <= 0 {
		interval = DefaultPoll
	}
	if logger == nil {
		logger = slog.Default()
	}
	w := &Watcher{src: src, interval: interval, logger: logger}
	if _, err := w.Reload(); err != nil {
		return nil, err
	}
	return w, nil
}

// Lookup implements Clients with the registry currently in force.
func (w *Watcher) Lookup(clientID string) (Connector, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.current.Lookup(clientID)
}

// Current returns the registry in force.
func (w *Watcher) Current() *Registry {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.current
}

// Run polls the file until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
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
				w.logger.ErrorContext(ctx, "connector registry not reloaded, keeping the last good one", "source", w.src.String(), "err", err)
			}
		}
	}
}

// Reload loads the document if it changed since the last look and reports
// whether a new registry is now in force. On error the registry in force is
// unchanged, and the same broken document is not reported again until it
// changes. Run calls it; it is exported for tests and for a reload on
// demand.
func (w *Watcher) Reload() (bool, error) {
	w.reloadMu.Lock()
	defer w.reloadMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data, changed, err := w.src.Fetch(ctx)
	if err != nil {
		return false, err
	}
	if w.current != nil && !changed {
		return false, nil
	}
	sum := sha256.Sum256(data)
	if w.current != nil && sum == w.lastSum {
		return false, nil
	}
	w.lastSum = sum
	reg, err := Parse(data)
	if err != nil {
		return false, fmt.Errorf("connector registry %s: %w", w.src, err)
	}
	w.mu.Lock()
	w.current = reg
	w.mu.Unlock()
	w.logger.Info("connector registry loaded", "source", w.src.String(), "connectors", len(reg.Connectors()))
	return true, nil
}

// fileSource reads a registry file, skipping the read while its size and
// modification time stay the same.
type fileSource struct {
	path     string
	lastSize int64
	lastMod  time.Time
}

func (f *fileSource) String() string { return f.path }

func (f *fileSource) Fetch(context.Context) ([]byte, bool, error) {
	info, err := os.Stat(f.path)
	if err != nil {
		return nil, false, fmt.Errorf("cannot stat connector registry: %w", err)
	}
	if info.Size() == f.lastSize && info.ModTime().Equal(f.lastMod) {
		return nil, false, nil
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return nil, false, fmt.Errorf("cannot read connector registry: %w", err)
	}
	f.lastSize, f.lastMod = info.Size(), info.ModTime()
	return data, true, nil
}
