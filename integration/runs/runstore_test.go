// Package runs checks the ops server's durable run state on real storage:
// the runs.Store contract (runstore/storetest) and the artifact store on
// Azurite, including claim races between two store instances (two
// relayserver replicas) and restarts onto a new instance.
package runs

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/runstore/storetest"
)

func TestTablesContract(t *testing.T) {
	emu := azurite.New(t)
	n := 0
	storetest.Run(t, func(t *testing.T) storetest.Fixture {
		// Fresh tables per test: sweeps scan every tenant of a store.
		n++
		cfg := runstore.Config{ConnectionString: emu.ConnectionString, TablePrefix: fmt.Sprintf("runs%03d", n), CreateTables: true}
		open := func(t *testing.T) runs.Store {
			s, err := runstore.Open(context.Background(), cfg)
			require.NoError(t, err)
			return s
		}
		return storetest.Fixture{Store: open(t), Reopen: open}
	})
}
