package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/audit"
	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
)

// auditServer serves GET /v1/audit from records (newest first), paging
// with before and limit like the real server, and remembers the queries.
func auditServer(t *testing.T, records []audit.Record) (string, *[]string) {
	t.Helper()
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		q := r.URL.Query()
		limit, _ := strconv.Atoi(q.Get("limit"))
		var page audit.Page
		for _, rec := range records {
			if rec.ID <= q.Get("before") {
				continue
			}
			if len(page.Records) == limit {
				page.More = true
				break
			}
			page.Records = append(page.Records, rec)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(page)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &queries
}

func TestAuditCommand(t *testing.T) {
	at := time.Date(2026, 12, 6, 7, 30, 0, 0, time.UTC)
	records := []audit.Record{
		{ID: "1", Time: at, Tenant: "contoso", Principal: "api-key:alice", Action: "run.approved", Object: "/v1/tenants/contoso/runs/run-1", Result: "ok", RequestID: "ab12", Client: "10.1.2.3:50000", Detail: "workspace prod, apply: planned → approved: approved by api-key:alice"},
		{ID: "2", Time: at.Add(-time.Minute), Tenant: "contoso", Principal: "api-key:alice", Action: "POST /v1/tenants/{tenant}/runs/{run}/approve", Object: "/v1/tenants/contoso/runs/run-1/approve", Result: "ok", Status: 200, RequestID: "ab12", Client: "10.1.2.3:50000"},
		{ID: "3", Time: at.Add(-2 * time.Minute), Principal: "", Action: "GET /v1/tenants/{tenant}/runs", Object: "/v1/tenants/fabrikam/runs", Result: "denied", Status: 401, RequestID: "cd34", Client: "10.9.9.9:1234", Detail: "missing or invalid operator credential"},
	}
	url, queries := auditServer(t, records)
	env := map[string]string{"OPSBOT_LOCAL_URL": url, "OPSBOT_API_KEY": "obk_x.y"}

	r := runCLI(t, env, "audit")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	checkGolden(t, "audit.txt", r.stdout)
	assert.Equal(t, []string{"limit=100"}, *queries)

	*queries = nil
	r = runCLI(t, env, "audit", "--limit", "2", "-o", "json", "--tenant", "contoso", "--principal", "api-key:alice", "--since", "2026-12-06T07:00:00Z")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	var page audit.Page
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &page))
	assert.Equal(t, records[:2], page.Records)
	assert.True(t, page.More)
	assert.Equal(t, []string{"limit=2&principal=api-key%3Aalice&since=2026-12-06T07%3A00%3A00Z&tenant=contoso"}, *queries)

	// More records than one page: the CLI pages with before.
	*queries = nil
	many := make([]audit.Record, 1500)
	for i := range many {
		many[i] = audit.Record{ID: strconv.Itoa(100000 + i), Time: at, Action: "run.queued", Result: "ok"}
	}
	url, queries = auditServer(t, many)
	r = runCLI(t, map[string]string{"OPSBOT_LOCAL_URL": url, "OPSBOT_API_KEY": "k"}, "audit", "--limit", "1200", "-o", "json")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &page))
	assert.Len(t, page.Records, 1200)
	assert.True(t, page.More)
	assert.Equal(t, []string{"limit=1000", "before=100999&limit=200"}, *queries)

	for _, bad := range [][]string{{"--since", "yesterday"}, {"--since", "-2h"}, {"--limit", "0"}} {
		r := runCLI(t, env, append([]string{"audit"}, bad...)...)
		assert.Equal(t, exitcode.Usage, r.code, "%v: %s", bad, r.stderr)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"90m":                  now.Add(-90 * time.Minute),
		"2h":                   now.Add(-2 * time.Hour),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"2026-12-01T00:00:00Z": time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseSince(in, now)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "d", "0s", "-1h", "xd", "Monday"} {
		_, err := parseSince(bad, now)
		assert.Error(t, err, bad)
	}
}
