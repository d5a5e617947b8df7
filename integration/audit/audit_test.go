// Package audit checks the ops server's audit log table (runtime/audit) on
// Azurite: append-only writes, newest-first range queries per tenant and
// across tenants, paging, filters, and queries that try to escape their
// partition.
package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/runtime/audit"
)

func TestTable(t *testing.T) {
	emu := azurite.New(t)
	ctx := context.Background()
	n := 0
	open := func(t *testing.T) *audit.Table {
		n++
		svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
		require.NoError(t, err)
		tbl, err := audit.Open(ctx, svc, audit.Options{Table: audit.TableName("audit" + strings.Repeat("x", n)), CreateTable: true})
		require.NoError(t, err)
		return tbl
	}
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	// fill appends, one minute apart: contoso, fabrikam, platform, contoso, ...
	fill := func(t *testing.T, tbl *audit.Table, count int) []audit.Record {
		var out []audit.Record
		for i := range count {
			r := audit.Record{Time: t0.Add(time.Duration(i) * time.Minute), Tenant: []string{"contoso", "fabrikam", ""}[i%3],
				Principal: []string{"api-key:alice", "api-key:bob"}[i%2], Action: "POST /v1/tenants/{tenant}/workspaces", Object: "/v1/x", Result: audit.ResultOK, Status: 201}
			got, err := tbl.Append(ctx, r, "")
			require.NoError(t, err)
			out = append(out, got)
		}
		return out
	}
	ids := func(rs []audit.Record) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}

	t.Run("TenantQueriesAreNewestFirstRangeQueries", func(t *testing.T) {
		tbl := open(t)
		all := fill(t, tbl, 9) // contoso at 0, 3, 6 min
		p, err := tbl.Query(ctx, audit.Query{Tenants: []string{"contoso"}})
		require.NoError(t, err)
		assert.Equal(t, []string{all[6].ID, all[3].ID, all[0].ID}, ids(p.Records))
		assert.False(t, p.More)
		assert.Equal(t, all[6], p.Records[0], "a record reads back as stored")

		p, err = tbl.Query(ctx, audit.Query{Tenants: []string{"contoso"}, Since: t0.Add(3 * time.Minute)})
		require.NoError(t, err)
		assert.Equal(t, []string{all[6].ID, all[3].ID}, ids(p.Records), "since is inclusive")

		p, err = tbl.Query(ctx, audit.Query{Tenants: []string{"contoso", "fabrikam"}, Principal: "api-key:bob"})
		require.NoError(t, err)
		assert.Equal(t, []string{all[7].ID, all[3].ID, all[1].ID}, ids(p.Records))

		p, err = tbl.Query(ctx, audit.Query{Tenants: []string{audit.Platform}})
		require.NoError(t, err)
		assert.Equal(t, []string{all[8].ID, all[5].ID, all[2].ID}, ids(p.Records))
		assert.Empty(t, p.Records[0].Tenant)

		// An OAuth2 principal is found by its name or by its stable id.
		carol, err := tbl.Append(ctx, audit.Record{Time: t0.Add(time.Hour), Tenant: "contoso", Principal: "oauth2:carol@contoso.com",
			Subject: "oauth2:7f3c9a1e", Action: "POST /v1/x", Object: "/v1/x", Result: audit.ResultOK, Status: 200}, "")
		require.NoError(t, err)
		for _, who := range []string{"oauth2:carol@contoso.com", "oauth2:7f3c9a1e"} {
			p, err = tbl.Query(ctx, audit.Query{Tenants: []string{"contoso"}, Principal: who})
			require.NoError(t, err)
			assert.Equal(t, []audit.Record{carol}, p.Records, who)
		}
	})

	t.Run("AllTenantsAndPaging", func(t *testing.T) {
		tbl := open(t)
		all := fill(t, tbl, 7)
		var got []string
		q := audit.Query{Limit: 3}
		for page := 0; ; page++ {
			require.Less(t, page, 4)
			p, err := tbl.Query(ctx, q)
			require.NoError(t, err)
			got = append(got, ids(p.Records)...)
			if !p.More {
				break
			}
			q.Before = p.Records[len(p.Records)-1].ID
		}
		var want []string
		for i := len(all) - 1; i >= 0; i-- {
			want = append(want, all[i].ID)
		}
		assert.Equal(t, want, got, "every record once, newest first across partitions")
	})

	t.Run("AppendNeverOverwrites", func(t *testing.T) {
		tbl := open(t)
		r := audit.Record{Time: t0, Tenant: "contoso", Principal: "agent:a1", Action: "run.planning", Object: "/v1/tenants/contoso/runs/r1", Result: audit.ResultOK, Detail: "first"}
		first, err := tbl.Append(ctx, r, "contoso/r1/queued>planning")
		require.NoError(t, err)
		r.Detail = "forged"
		_, err = tbl.Append(ctx, r, "contoso/r1/queued>planning")
		require.ErrorIs(t, err, audit.ErrExists)
		p, err := tbl.Query(ctx, audit.Query{Tenants: []string{"contoso"}, Since: t0.Add(-time.Hour)})
		require.NoError(t, err)
		require.Len(t, p.Records, 1)
		assert.Equal(t, first, p.Records[0])
		assert.Equal(t, "first", p.Records[0].Detail)

		_, err = tbl.Append(ctx, audit.Record{Tenant: "contoso"}, "")
		assert.ErrorContains(t, err, "without a time")
	})

	t.Run("FieldsAreBoundedAndPrintable", func(t *testing.T) {
		tbl := open(t)
		got, err := tbl.Append(ctx, audit.Record{Time: t0, Object: "/v1/tenants/\x1b]0;pwned\x07/x", Detail: strings.Repeat("é", 5000), Result: audit.ResultDenied, Status: 401}, "")
		require.NoError(t, err)
		p, err := tbl.Query(ctx, audit.Query{Tenants: []string{audit.Platform}, Since: t0})
		require.NoError(t, err)
		require.Len(t, p.Records, 1)
		assert.Equal(t, got, p.Records[0])
		assert.Equal(t, "/v1/tenants/?]0;pwned?/x", got.Object)
		assert.LessOrEqual(t, len(got.Detail), 2048+len("…"))
		assert.True(t, strings.HasSuffix(got.Detail, "é…"))
	})

	t.Run("QueriesCannotEscapeTheirPartition", func(t *testing.T) {
		tbl := open(t)
		fill(t, tbl, 3)
		for _, bad := range []string{"contoso' or PartitionKey ne 'x", "a/b", ""} {
			_, err := tbl.Query(ctx, audit.Query{Tenants: []string{bad}})
			assert.ErrorContains(t, err, "cannot name a partition", bad)
		}
		_, err := tbl.Query(ctx, audit.Query{Tenants: []string{}})
		assert.Error(t, err, "an empty tenant list reads nothing, not everything")
		p, err := tbl.Query(ctx, audit.Query{Tenants: []string{"contoso"}, Principal: "x' or Principal ne 'x"})
		require.NoError(t, err)
		assert.Empty(t, p.Records, "a principal filter is a literal")
	})
}

// BenchmarkAppend is the cost one audited call adds: one AddEntity.
func BenchmarkAppend(b *testing.B) {
	emu := azurite.New(b)
	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(b, err)
	tbl, err := audit.Open(context.Background(), svc, audit.Options{Table: "benchaudit", CreateTable: true})
	require.NoError(b, err)
	r := audit.Record{Tenant: "contoso", Principal: "api-key:alice", Action: "POST /v1/tenants/{tenant}/runs/{run}/approve",
		Object: "/v1/tenants/contoso/runs/run-0123456789abcdef/approve", Result: audit.ResultOK, Status: 200, RequestID: "0123456789abcdef", Client: "10.1.2.3:50000"}
	for b.Loop() {
		r.Time = time.Now()
		if _, err := tbl.Append(context.Background(), r, ""); err != nil {
			b.Fatal(err)
		}
	}
}
