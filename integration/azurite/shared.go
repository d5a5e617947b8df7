package azurite

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Shared is one emulator the tests of a package share, each test on a
// storage account of its own (Options.Accounts): an account's queues,
// tables and blobs are its own, and an Azurite takes about a second of
// CPU to start. The first Account starts it; the package's TestMain
// stops it once the tests ran (Stop).
type Shared struct {
	// Accounts is how many accounts the emulator serves: more than the
	// package's tests use in one run (go test -count=1). Once every one
	// is handed out (go test -count=N), each test gets an Azurite of its
	// own.
	Accounts int

	once sync.Once
	emu  *Emulator
	err  error
	used atomic.Int32
}

// Account returns a storage account of t's own on the shared emulator,
// starting it on the first call.
func (s *Shared) Account(t testing.TB) *Emulator {
	t.Helper()
	s.once.Do(func() {
		names := make([]string, s.Accounts)
		for i := range names {
			names[i] = fmt.Sprintf("test%d", i+1)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		s.emu, s.err = Start(ctx, Options{Accounts: names})
	})
	if s.err != nil {
		t.Fatalf("cannot start the shared Azurite: %v", s.err)
	}
	n := int(s.used.Add(1))
	if n > s.Accounts {
		return New(t)
	}
	emu, err := s.emu.Account(fmt.Sprintf("test%d", n))
	if err != nil {
		t.Fatal(err)
	}
	return emu
}

// Stop stops the emulator, if it was started.
func (s *Shared) Stop() error {
	if s.emu == nil {
		return nil
	}
	return s.emu.Stop()
}
