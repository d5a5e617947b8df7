package runstore_test

import (
	"testing"

	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/runstore/storetest"
)

func TestMemoryContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Fixture {
		m := runstore.NewMemory()
		return storetest.Fixture{Store: m, Reopen: func(*testing.T) runs.Store { return m }}
	})
}
