package replay

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeTable keeps entities by partition and row key, refusing a second
// AddEntity of the same keys with 409 like the table service, and answers
// the one filter the sweep uses ("PartitionKey lt '<p>'").
type fakeTable struct {
	mu       sync.Mutex
	entities map[[2]string][]byte
	addErr   error
}

func (f *fakeTable) AddEntity(_ context.Context, e []byte, _ *aztables.AddEntityOptions) (aztables.AddEntityResponse, error) {
	if f.addErr != nil {
		return aztables.AddEntityResponse{}, f.addErr
	}
	var k struct{ PartitionKey, RowKey string }
	if err := json.Unmarshal(e, &k); err != nil {
		return aztables.AddEntityResponse{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := [2]string{k.PartitionKey, k.RowKey}
	if _, ok := f.entities[key]; ok {
		return aztables.AddEntityResponse{}, &azcore.ResponseError{StatusCode: http.StatusConflict, ErrorCode: string(aztables.EntityAlreadyExists)}
	}
	f.entities[key] = e
	return aztables.AddEntityResponse{}, nil
}

func (f *fakeTable) NewListEntitiesPager(opts *aztables.ListEntitiesOptions) *runtime.Pager[aztables.ListEntitiesResponse] {
	before := strings.TrimSuffix(strings.TrimPrefix(*opts.Filter, "PartitionKey lt '"), "'")
	return runtime.NewPager(runtime.PagingHandler[aztables.ListEntitiesResponse]{
		More: func(aztables.ListEntitiesResponse) bool { return false },
		Fetcher: func(context.Context, *aztables.ListEntitiesResponse) (aztables.ListEntitiesResponse, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			var page aztables.ListEntitiesResponse
			for k, e := range f.entities {
				if k[0] < before {
					page.Entities = append(page.Entities, e)
				}
			}
			return page, nil
		},
	})
}

func (f *fakeTable) DeleteEntity(_ context.Context, pk, rk string, _ *aztables.DeleteEntityOptions) (aztables.DeleteEntityResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.entities, [2]string{pk, rk})
	return aztables.DeleteEntityResponse{}, nil
}

func (f *fakeTable) len() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.entities) }

func TestTableRecordsEachUseOnce(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	fake := &fakeTable{entities: map[[2]string][]byte{}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := NewTable(fake, func() time.Time { return now }, quiet)
	require.NoError(t, err)
	b, err := NewTable(fake, func() time.Time { return now }, quiet)
	require.NoError(t, err)

	fresh, err := a.Use(ctx, "contoso/agent-01\x00jti-1", now.Add(5*time.Minute))
	require.NoError(t, err)
	assert.True(t, fresh)
	fresh, err = b.Use(ctx, "contoso/agent-01\x00jti-1", now.Add(5*time.Minute))
	require.NoError(t, err)
	assert.False(t, fresh, "another replica's use counts")
	fresh, err = b.Use(ctx, "contoso/agent-02\x00jti-1", now.Add(5*time.Minute))
	require.NoError(t, err)
	assert.True(t, fresh, "the same jti of another client is another assertion")
	for _, e := range fake.entities {
		assert.NotContains(t, string(e), "contoso", "no identifier in clear")
	}

	fake.addErr = errors.New("connection refused")
	_, err = a.Use(ctx, "contoso/agent-01\x00jti-2", now.Add(5*time.Minute))
	assert.ErrorContains(t, err, "cannot record assertion use")
	fake.addErr = nil

	_, err = NewTable(nil, nil, nil)
	assert.Error(t, err)
}

// Records of assertions that expired over an hour ago are swept, at most
// every ten minutes; newer ones stay.
func TestTableSweepsExpiredRecords(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	fake := &fakeTable{entities: map[[2]string][]byte{}}
	tbl, err := NewTable(fake, func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	for i, exp := range []time.Duration{5 * time.Minute, -3 * time.Hour, -2 * time.Hour, -30 * time.Minute} {
		fresh, err := tbl.Use(ctx, "c\x00"+string(rune('a'+i)), now.Add(exp))
		require.NoError(t, err)
		require.True(t, fresh)
	}
	// The first Use swept an empty table; the next sweep is due in ten
	// minutes.
	require.Equal(t, 4, fake.len())
	now = now.Add(11 * time.Minute)
	_, err = tbl.Use(ctx, "c\x00e", now.Add(5*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 3, fake.len(), "the two partitions older than an hour before now are gone")
}
