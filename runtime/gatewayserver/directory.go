package gatewayserver

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/registry"
)

// fileDirectory answers Known from the registration file, reloading it when
// its modification time changes (checked at most every 5 s).
type fileDirectory struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	reg     *registry.Registry
	mod     time.Time
	checked time.Time
}

func newFileDirectory(path string, log *slog.Logger) (*fileDirectory, error) {
	d := &fileDirectory{path: path, log: log}
	if err := d.reload(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *fileDirectory) reload() error {
	fi, err := os.Stat(d.path)
	if err != nil {
		return fmt.Errorf("cannot read connector registry: %w", err)
	}
	if d.reg != nil && fi.ModTime().Equal(d.mod) {
		return nil
	}
	reg, err := registry.Load(d.path)
	if err != nil {
		return err
	}
	d.reg, d.mod = reg, fi.ModTime()
	return nil
}

// Known reports whether id is registered (disabled connectors keep their
// queue, so messages are still routed to them).
func (d *fileDirectory) Known(id ids.ConnectorID) bool {
	_, ok := d.lookup(id)
	return ok
}

// Active reports whether id is registered and not disabled.
func (d *fileDirectory) Active(id ids.ConnectorID) bool {
	c, ok := d.lookup(id)
	return ok && !c.Disabled
}

func (d *fileDirectory) lookup(id ids.ConnectorID) (registry.Connector, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Since(d.checked) > 5*time.Second {
		d.checked = time.Now()
		if err := d.reload(); err != nil {
			d.log.Warn("cannot reload connector registry; keeping the last good one", "err", err)
		}
	}
	return d.reg.Lookup(registry.ClientID(string(id.Tenant), id.Connector))
}
