package queuename

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/ids"
)

func TestForIsStableAndValid(t *testing.T) {
	tests := []struct {
		tenant, connector, want string
	}{
		// Golden values (hash part: printf "tenant\x00connector" | sha256sum):
		// a change here renames every deployed queue.
		{"contoso", "agent-01", "contoso-agent-01-b5523dc62ade"},
		{"Contoso", "Agent_01", "contoso-agent-01-70f738f75f9c"},
		{"a", "b", "a-b-59b271ae1bbc"},
	}
	for _, tt := range tests {
		got, err := For(ids.ConnectorID{Tenant: ids.TenantID(tt.tenant), Connector: tt.connector})
		require.NoError(t, err)
		assert.True(t, Valid(got), got)
		again, _ := For(ids.ConnectorID{Tenant: ids.TenantID(tt.tenant), Connector: tt.connector})
		assert.Equal(t, got, again, "deterministic")
		assert.Equal(t, tt.want, got, "%s/%s", tt.tenant, tt.connector)
	}
}

func TestForAlwaysValid(t *testing.T) {
	valid := []string{
		"a", "A", "0", "a.b", "a_b", "a-b", "a--b", "a..b", "x___", "9_", "x" + strings.Repeat("-", 127),
		strings.Repeat("Z", ids.MaxLength), "a.-_.-b", "UPPER.case_Mixed-123",
	}
	for _, tenant := range valid {
		for _, conn := range valid {
			name, err := For(ids.ConnectorID{Tenant: ids.TenantID(tenant), Connector: conn})
			require.NoError(t, err, "%q/%q", tenant, conn)
			assert.True(t, Valid(name), "%q/%q -> %q", tenant, conn, name)
			assert.NotContains(t, name, "--")
		}
	}
}

func TestForKeepsLookalikesApart(t *testing.T) {
	pairs := []ids.ConnectorID{
		{Tenant: "a-b", Connector: "c"}, {Tenant: "a", Connector: "b-c"}, {Tenant: "a.b", Connector: "c"}, {Tenant: "a_b", Connector: "c"},
		{Tenant: "Contoso", Connector: "x"}, {Tenant: "contoso", Connector: "x"},
		{Tenant: ids.TenantID(strings.Repeat("t", 30) + "1"), Connector: "c"}, {Tenant: ids.TenantID(strings.Repeat("t", 30) + "2"), Connector: "c"},
	}
	names, err := Assign(pairs)
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, n := range names {
		assert.False(t, seen[n], "duplicate %s", n)
		seen[n] = true
	}
	assert.Len(t, seen, len(pairs))
}

func TestAssignRejectsDuplicates(t *testing.T) {
	_, err := Assign([]ids.ConnectorID{{Tenant: "t", Connector: "c"}, {Tenant: "t", Connector: "c"}})
	require.ErrorContains(t, err, "connector t/c is listed twice")
}

func TestValid(t *testing.T) {
	for name, want := range map[string]bool{
		"abc": true, "a-b": true, "ab": false, "a--b": false, "-ab": false, "ab-": false,
		"Abc": false, strings.Repeat("a", 63): true, strings.Repeat("a", 64): false, "a_b": false,
	} {
		assert.Equal(t, want, Valid(name), name)
	}
}

func FuzzFor(f *testing.F) {
	f.Add("contoso", "agent-01")
	f.Fuzz(func(t *testing.T, tenant, connector string) {
		name, err := For(ids.ConnectorID{Tenant: ids.TenantID(tenant), Connector: connector})
		if err != nil {
			return
		}
		if !Valid(name) {
			t.Fatalf("For(%q, %q) = %q, not a valid queue name", tenant, connector, name)
		}
	})
}

func ExampleFor() {
	name, _ := For(ids.ConnectorID{Tenant: "contoso", Connector: "agent-01"})
	fmt.Println(name)
	// Output: contoso-agent-01-b5523dc62ade
}
