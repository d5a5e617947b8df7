// Package runs checks the ops server's durable run state on real storage:
// the runs.Store contract (runstore/storetest) and the artifact store on
// Azurite, including claim races between two store instances (two
// opsserver replicas) and restarts onto a new instance.
package runs

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/runstore/storetest"
)

func TestTablesContract(t *testing.T) {
	t.Parallel()
	emu := azurite.New(t)
	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(t, err)
	n := 0
	storetest.Run(t, func(t *testing.T) storetest.Fixture {
		// Fresh tables per test: sweeps read every tenant of a store.
		n++
		opts := runstore.Options{TablePrefix: fmt.Sprintf("runs%03d", n), CreateTables: true}
		open := func(t *testing.T) runs.Store {
			// A new client as well: a restarted server shares nothing.
			svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
			require.NoError(t, err)
			s, err := runstore.Open(context.Background(), svc, opts)
			require.NoError(t, err)
			return s
		}
		s, err := runstore.Open(context.Background(), svc, opts)
		require.NoError(t, err)
		return storetest.Fixture{Store: s, Reopen: open}
	})
}

func TestTablesOptions(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"1runs", "runs-x", "runs_x", strings.Repeat("r", 51)} {
		assert.ErrorContains(t, runstore.Options{TablePrefix: bad}.Validate(), "TablePrefix", bad)
	}
	assert.NoError(t, runstore.Options{TablePrefix: "Runs2"}.Validate())
	assert.NoError(t, runstore.Options{}.Validate())
}
