package runs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/runtime/drift"
)

// TestLargeDriftFitsItsRow: a check that finds many resources drifted,
// with long values (tags rewritten across a subscription), still records
// a state Table storage takes (a string property holds 64 KiB): the
// record keeps what fits and counts the rest. Before, the write failed,
// the bus redelivered the result again and again, and the check stayed
// planned, holding the workspace.
func TestLargeDriftFitsItsRow(t *testing.T) {
	t.Parallel()
	emu := azurite.New(t)
	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(t, err)
	ctx := context.Background()
	s, err := drift.OpenTable(ctx, svc, "", true)
	require.NoError(t, err)

	type change struct {
		Actions []string       `json:"actions"`
		Before  map[string]any `json:"before"`
		After   map[string]any `json:"after"`
	}
	type rc struct {
		Address string `json:"address"`
		Type    string `json:"type"`
		Mode    string `json:"mode"`
		Change  change `json:"change"`
	}
	var p struct {
		ResourceDrift []rc `json:"resource_drift"`
	}
	long := strings.Repeat("é", 200) // 400 bytes of UTF-8
	for i := range 150 {
		before, after := map[string]any{}, map[string]any{}
		for _, a := range []string{"description", "tags", "policy"} {
			before[a], after[a] = "old "+long, "new "+long
		}
		p.ResourceDrift = append(p.ResourceDrift, rc{Address: fmt.Sprintf("azurerm_resource_group.rg%03d", i), Type: "azurerm_resource_group", Mode: "managed",
			Change: change{Actions: []string{"update"}, Before: before, After: after}})
	}
	plan, err := json.Marshal(p)
	require.NoError(t, err)
	found, err := drift.Resources(plan)
	require.NoError(t, err)
	require.Len(t, found, 150)
	res, more := drift.Fit(found)
	st := drift.State{Tenant: "contoso", Workspace: "big", Status: drift.Drifted, Resources: res, More: more}
	require.NoError(t, s.Put(ctx, st), "a large drift is stored")
	got, err := s.Get(ctx, "contoso", "big")
	require.NoError(t, err)
	assert.Equal(t, drift.Drifted, got.Status)
	assert.NotEmpty(t, got.Resources)
	assert.Equal(t, "azurerm_resource_group.rg000", got.Resources[0].Address)
	assert.Equal(t, 150, len(got.Resources)+got.More, "what does not fit is counted")
}
