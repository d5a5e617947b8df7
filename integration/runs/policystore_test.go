package runs

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/runtime/policystore"
	"github.com/botehq/platform/runtime/runs"
)

// TestPolicyTable: versions, deletion and listing on Azurite, and puts
// racing from several writers (replicas) never give one version number
// twice: each either stores its own version or gets ErrConflict.
func TestPolicyTable(t *testing.T) {
	t.Parallel()
	emu := azurite.New(t)
	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(t, err)
	ctx := context.Background()
	s, err := policystore.OpenTable(ctx, svc, "", true)
	require.NoError(t, err)

	p := policystore.Policy{Tenant: "contoso", Name: "tags", Enforcement: runs.Mandatory, Source: "package t\ndeny contains 1\n", CreatedBy: "alice"}
	got, err := s.Put(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, 1, got.Version)
	p.Enforcement = runs.Advisory
	got, err = s.Put(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, 2, got.Version)
	_, err = s.Put(ctx, policystore.Policy{Tenant: "contoso", Name: "types", Workspace: "prod", Enforcement: runs.Advisory, Source: "package y\ndeny contains 1\n"})
	require.NoError(t, err)
	_, err = s.Put(ctx, policystore.Policy{Tenant: "fabrikam", Name: "tags", Enforcement: runs.Advisory, Source: "package y\ndeny contains 1\n"})
	require.NoError(t, err)

	cur, err := s.Get(ctx, "contoso", "tags")
	require.NoError(t, err)
	assert.Equal(t, runs.Advisory, cur.Enforcement)
	assert.Len(t, cur.SHA256, 64)
	list, err := s.List(ctx, "contoso")
	require.NoError(t, err)
	require.Len(t, list, 2, "another tenant's policies are not listed")

	del, err := s.Delete(ctx, "contoso", "tags", "bob")
	require.NoError(t, err)
	assert.Equal(t, 3, del.Version)
	_, err = s.Get(ctx, "contoso", "tags")
	require.ErrorIs(t, err, policystore.ErrNotFound)
	_, err = s.Delete(ctx, "contoso", "tags", "bob")
	require.ErrorIs(t, err, policystore.ErrNotFound)
	list, err = s.List(ctx, "contoso")
	require.NoError(t, err)
	require.Len(t, list, 1)
	vs, err := s.Versions(ctx, "contoso", "tags")
	require.NoError(t, err)
	require.Len(t, vs, 3)
	assert.Equal(t, runs.Mandatory, vs[0].Enforcement)
	assert.True(t, vs[2].Deleted)
	_, err = s.Versions(ctx, "contoso", "nope")
	require.ErrorIs(t, err, policystore.ErrNotFound)

	// Racing puts.
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored := map[int]int{}
	conflicts := 0
	for range 6 {
		wg.Go(func() {
			got, err := s.Put(ctx, policystore.Policy{Tenant: "contoso", Name: "race", Enforcement: runs.Advisory, Source: "package r\ndeny contains 1\n"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, policystore.ErrConflict):
				conflicts++
			case err != nil:
				t.Errorf("put: %v", err)
			default:
				stored[got.Version]++
			}
		})
	}
	wg.Wait()
	vs, err = s.Versions(ctx, "contoso", "race")
	require.NoError(t, err)
	assert.Len(t, vs, len(stored), "every version a put reported is stored, once")
	for v, n := range stored {
		assert.Equal(t, 1, n, "version %d given twice", v)
	}
	assert.Equal(t, 6, len(stored)+conflicts)
}

// TestPolicyTableStoresTheLargestPolicy: a policy at the size limit (with
// characters JSON escapes) stores and reads back whole; a table property
// holds 64 KiB of UTF-16, not 64 KiB of UTF-8.
func TestPolicyTableStoresTheLargestPolicy(t *testing.T) {
	t.Parallel()
	emu := azurite.New(t)
	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(t, err)
	ctx := context.Background()
	s, err := policystore.OpenTable(ctx, svc, "", true)
	require.NoError(t, err)
	line := "# \"quoted\" and tabs\t, ünïcödé\n"
	src := "package big\ndeny contains 1\n"
	for len(src)+len(line) <= policystore.MaxSourceBytes {
		src += line
	}
	_, err = s.Put(ctx, policystore.Policy{Tenant: "contoso", Name: "big", Enforcement: runs.Advisory, Source: src})
	require.NoError(t, err)
	got, err := s.Get(ctx, "contoso", "big")
	require.NoError(t, err)
	assert.Equal(t, src, got.Source)
}
