package platform

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// Main is TestMain for a package of tests that start platforms: the
// programs are built once for the whole test binary (Binaries).
func Main(m *testing.M) {
	os.Exit(func() int {
		cleanup, err := Binaries()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer cleanup()
		return m.Run()
	}())
}

// MainShared is TestMain for a package whose tests share one platform:
// it builds the programs (Binaries), starts the platform with opts in a
// temporary Dir, sets *shared, runs the tests, prints every process's
// output when one failed, and stops the platform.
func MainShared(m *testing.M, opts Options, shared **Platform) {
	os.Exit(func() int {
		cleanup, err := Binaries()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer cleanup()
		if opts.Dir, err = os.MkdirTemp("", "bote-platform-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(opts.Dir)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		p, err := Start(ctx, opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cannot start the platform:", err)
			return 1
		}
		*shared = p
		code := m.Run()
		if code != 0 {
			fmt.Fprintf(os.Stderr, "--- platform processes ---\n%s\n", p.Outputs())
		}
		_ = p.Stop()
		return code
	}())
}
