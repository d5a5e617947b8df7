package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/runs"
)

func TestIDsSortNewestFirst(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	older, newer := newID(t0, ""), newID(t0.Add(time.Nanosecond), "")
	assert.Less(t, newer, older)
	assert.True(t, validID(older), older)
	assert.Equal(t, newID(t0, "k"), newID(t0, "k"), "a keyed id is stable")
	assert.NotEqual(t, newID(t0, "k"), newID(t0, "j"))
	assert.NotEqual(t, newID(t0, ""), newID(t0, ""), "an unkeyed id is unique")
	// Since is a row key range: every id at or after t sorts before
	// timeKey(t)+".", every older one after.
	bound := timeKey(t0) + "."
	assert.Less(t, newID(t0, ""), bound)
	assert.Less(t, newID(t0.Add(time.Hour), ""), bound)
	assert.Greater(t, newID(t0.Add(-time.Nanosecond), ""), bound)
	for _, bad := range []string{"", "x", strings.Repeat("0", 19) + "-" + strings.Repeat("g", 16), strings.Repeat("0", 19) + "." + strings.Repeat("a", 16), "' or 1 eq 1"} {
		assert.False(t, validID(bad), bad)
	}
}

func TestNormalize(t *testing.T) {
	r := Record{
		Time:   time.Date(2026, 12, 6, 9, 0, 0, 123456789, time.FixedZone("X", 3600)),
		Object: "/v1/tenants/a\x1b[2J\tb\nc",
		Detail: strings.Repeat("€", 1000) + "\xff",
		Action: strings.Repeat("a", 600),
	}.normalize()
	assert.Equal(t, time.Date(2026, 12, 6, 8, 0, 0, 123456000, time.UTC), r.Time)
	assert.Equal(t, "/v1/tenants/a?[2J?b?c", r.Object)
	assert.Len(t, r.Action, maxField+len("…"))
	assert.LessOrEqual(t, len(r.Detail), maxDetail+len("…"))
	assert.True(t, strings.HasSuffix(r.Detail, "€…"), "never cut inside a character")
}

func TestResultOf(t *testing.T) {
	for status, want := range map[int]string{200: ResultOK, 201: ResultOK, 101: ResultOK, 401: ResultDenied, 403: ResultDenied, 404: ResultRejected, 409: ResultRejected, 500: ResultError, 503: ResultError} {
		assert.Equal(t, want, ResultOf(status), status)
	}
}

func TestQueryValidate(t *testing.T) {
	assert.NoError(t, Query{}.Validate())
	assert.NoError(t, Query{Tenants: []string{"contoso", Platform}, Limit: MaxLimit, Before: newID(time.Now(), "")}.Validate())
	for name, q := range map[string]Query{
		"limit":            {Limit: MaxLimit + 1},
		"negative limit":   {Limit: -1},
		"before":           {Before: "zzz"},
		"empty tenants":    {Tenants: []string{}},
		"quote in tenant":  {Tenants: []string{"a' or 'b"}},
		"slash in tenant":  {Tenants: []string{"a/b"}},
		"empty tenant":     {Tenants: []string{""}},
		"question mark id": {Tenants: []string{"a?"}},
	} {
		assert.Error(t, q.Validate(), name)
	}
}

// memStore is a Store in memory that can fail.
type memStore struct {
	records map[string]Record
	err     error
	ctxErr  error // the ctx error seen by the last Append
}

func (m *memStore) Append(ctx context.Context, r Record, key string) (Record, error) {
	m.ctxErr = ctx.Err()
	if m.err != nil {
		return Record{}, m.err
	}
	r = r.normalize()
	r.ID = newID(r.Time, key)
	if _, ok := m.records[r.ID]; ok {
		return Record{}, fmt.Errorf("%s: %w", r.ID, ErrExists)
	}
	m.records[r.ID] = r
	return r, nil
}

func (m *memStore) Query(context.Context, Query) (Page, error) { return Page{}, nil }

func TestRecorder(t *testing.T) {
	store := &memStore{records: map[string]Record{}}
	var logs bytes.Buffer
	rec := NewRecorder(store, slog.New(slog.NewTextHandler(&logs, nil)))
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	rec.now = func() time.Time { return now }

	// Time and origin are filled in; a cancelled caller is still recorded.
	ctx, cancel := context.WithCancel(WithOrigin(context.Background(), Origin{RequestID: "ab12", Client: "10.0.0.1:5000"}))
	cancel()
	rec.Record(ctx, Record{Tenant: "contoso", Action: "POST /x"})
	require.Len(t, store.records, 1)
	require.NoError(t, store.ctxErr, "the write outlives the request")
	for _, r := range store.records {
		assert.Equal(t, now, r.Time)
		assert.Equal(t, "ab12", r.RequestID)
		assert.Equal(t, "10.0.0.1:5000", r.Client)
	}

	// A run transition: who, what, and stored once however often reported.
	run := runs.Run{ID: "run-1", Tenant: "contoso", Workspace: "prod", Operation: runs.OpDestroy, PlanAgent: "a1"}
	moves := []struct {
		tr   runs.Transition
		want string
	}{
		{runs.Transition{To: runs.Queued, At: now, By: "api-key:alice", Reason: "run created"}, "api-key:alice"},
		{runs.Transition{From: runs.Queued, To: runs.Planning, At: now.Add(time.Second), By: "a1"}, "agent:a1"},
		{runs.Transition{From: runs.Planning, To: runs.Failed, At: now.Add(2 * time.Second), By: "sweeper", Reason: "agent a1 stopped heartbeating"}, "system:sweeper"},
	}
	store.records = map[string]Record{}
	for _, m := range moves {
		rec.RunTransition(context.Background(), run, m.tr)
		rec.RunTransition(context.Background(), run, m.tr) // reported twice
	}
	require.Len(t, store.records, len(moves))
	for _, m := range moves {
		r := store.records[newID(m.tr.At, "contoso/run-1/"+string(m.tr.From)+">"+string(m.tr.To))]
		assert.Equal(t, m.want, r.Principal)
		assert.Equal(t, "run."+string(m.tr.To), r.Action)
		assert.Equal(t, "/v1/tenants/contoso/runs/run-1", r.Object)
		assert.Equal(t, "contoso", r.Tenant)
		assert.Equal(t, ResultOK, r.Result)
		assert.True(t, strings.HasPrefix(r.Detail, "workspace prod, destroy: "), r.Detail)
	}
	assert.Empty(t, logs.String(), "a duplicate transition is not an error")

	// A record that cannot be stored goes to the process log, whole.
	store.err = errors.New("table storage down")
	rec.Record(context.Background(), Record{Tenant: "contoso", Principal: "api-key:bob", Action: "POST /v1/tenants/{tenant}/runs/{run}/approve", Status: 200})
	assert.Contains(t, logs.String(), "cannot store audit record")
	assert.Contains(t, logs.String(), "table storage down")
	assert.Contains(t, logs.String(), "principal=api-key:bob")
	assert.Contains(t, logs.String(), "status=200")
}
