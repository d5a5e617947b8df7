//go:build !unix

package agent

import (
	"fmt"
	"log/slog"
	"os"
)

// processDir makes this process's directory under base. Without flock,
// directories of processes that died are not recognised: remove them by
// hand (they hold plans and state).
func processDir(base string, _ *slog.Logger) (string, func(), error) {
	dir, err := os.MkdirTemp(base, processDirPattern)
	if err != nil {
		return "", nil, fmt.Errorf("cannot create working directory: %w", err)
	}
	return dir, func() { _ = os.RemoveAll(dir) }, nil
}
