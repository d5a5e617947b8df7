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

// DefaultRegistryPoll is how often, at most, the gateway looks at its
// registration file for changes (Config.RegistryPoll).
const DefaultRegistryPoll = 5 * time.Second

// fileDirectory answers Known from the registration file, reloading it when
// its modification time changes (checked at most every poll).
type fileDirectory struct {
	path string
	poll time.Duration
	log  *slog.Logger

	mu      sync.Mutex
	reg     *registry.Registry
	mod     time.Time
	checked time.Time
}

// newFileDirectory loads the registration file at path, to be checked for
// changes at most every poll (0: DefaultRegistryPoll).
func newFileDirectory(path string, poll time.Duration, log *slog.Logger) (*fileDirectory, error) {
	if poll == 0 {
		poll = DefaultRegistryPoll
	}
	d := &fileDirectory{path: path, poll: poll, log: log}
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
	if time.Since(d.checked) > d.poll {
		d.checked = time.Now()
		if err := d.reload(); err != nil {
			d.log.Warn("cannot reload connector registry; keeping the last good one", "err", err)
		}
	}
	return d.reg.Lookup(registry.ClientID(string(id.Tenant), id.Connector))
}
