package opsapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/audit"
	"github.com/botehq/platform/runtime/secretstore"
)

// fakeAudit keeps records in memory and remembers the last query.
type fakeAudit struct {
	mu      sync.Mutex
	records []audit.Record
	query   *audit.Query
	err     error
}

func (f *fakeAudit) Record(_ context.Context, r audit.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records = append(f.records, r)
}

func (f *fakeAudit) Query(_ context.Context, q audit.Query) (audit.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.query = &q
	if f.err != nil {
		return audit.Page{}, f.err
	}
	return audit.Page{Records: append([]audit.Record{}, f.records...)}, nil
}

func (f *fakeAudit) take() []audit.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.records
	f.records = nil
	return out
}

func TestAuditRecordsMutationsAndRefusals(t *testing.T) {
	f := newRunsFixture(t)
	log := &fakeAudit{}
	f.s.cfg.Audit = log
	runPath := "/v1/tenants/contoso/runs/" + f.planned

	tests := []struct {
		name, method, path, cred string
		want                     *audit.Record // nil: nothing recorded
	}{
		{"approve", "POST", runPath + "/approve", goodKey, &audit.Record{
			Tenant: "contoso", Principal: "api-key:alice", Action: "POST /v1/tenants/{tenant}/runs/{run}/approve",
			Object: runPath + "/approve", Result: audit.ResultOK, Status: 200}},
		{"approve again is rejected", "POST", runPath + "/approve", goodKey, &audit.Record{
			Tenant: "contoso", Principal: "api-key:alice", Action: "POST /v1/tenants/{tenant}/runs/{run}/approve",
			Object: runPath + "/approve", Result: audit.ResultRejected, Status: 409, Detail: "cannot go from approved to approved"}},
		{"bad key on a mutation goes to the platform", "POST", runPath + "/cancel", "stolen", &audit.Record{
			Action: "POST /v1/tenants/{tenant}/runs/{run}/cancel", Object: runPath + "/cancel",
			Result: audit.ResultDenied, Status: 401, Detail: "missing or invalid operator credential"}},
		{"bad key on a read", "GET", "/v1/tenants/contoso/runs", "", &audit.Record{
			Action: "GET /v1/tenants/{tenant}/runs", Object: "/v1/tenants/contoso/runs", Result: audit.ResultDenied, Status: 401}},
		{"a credential without the API's role goes to the platform", "GET", "/v1/agents?tenant=contoso", forbiddenKey, &audit.Record{
			Action: "GET /v1/agents", Object: "/v1/agents?tenant=contoso", Result: audit.ResultDenied, Status: 403, Detail: "lacks the role"}},
		{"missing role names it", "POST", runPath + "/cancel", readerKey, &audit.Record{
			Tenant: "contoso", Principal: "api-key:reader", Action: "POST /v1/tenants/{tenant}/runs/{run}/cancel", Object: runPath + "/cancel",
			Result: audit.ResultDenied, Status: 403, Detail: "needs the operator role in tenant contoso"}},
		{"a reader's denied read in another tenant", "GET", "/v1/tenants/globex/runs", readerKey, &audit.Record{
			Tenant: "globex", Principal: "api-key:reader", Action: "GET /v1/tenants/{tenant}/runs", Object: "/v1/tenants/globex/runs",
			Result: audit.ResultDenied, Status: 403, Detail: "needs the reader role in tenant globex"}},
		{"a mutation outside a tenant is the platform's, whatever its query", "POST", "/v1/keys?tenant=contoso", readerKey, &audit.Record{
			Principal: "api-key:reader", Action: "POST /v1/keys", Object: "/v1/keys?tenant=contoso",
			Result: audit.ResultDenied, Status: 403, Detail: "not a platform administrator"}},
		{"reads are not recorded", "GET", runPath, goodKey, nil},
		{"unrouted requests are not API calls", "POST", "/v1/nope", goodKey, nil},
		{"wrong method is not an API call", "DELETE", runPath, goodKey, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, f.srv.URL+tc.path, tc.cred)
			got := log.take()
			if tc.want == nil {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1, "status %d", r.status)
			rec := got[0]
			assert.Equal(t, r.status, rec.Status)
			assert.Equal(t, r.header.Get("X-Request-Id"), rec.RequestID)
			assert.True(t, strings.HasPrefix(rec.Client, "127.0.0.1:"), rec.Client)
			assert.Equal(t, runsNow, rec.Time)
			assert.Contains(t, rec.Detail, tc.want.Detail)
			rec.RequestID, rec.Client, rec.Time, rec.Detail = "", "", runsNow, tc.want.Detail
			want := *tc.want
			want.Time = runsNow
			assert.Equal(t, want, rec)
		})
	}
}

func TestAuditWithoutStoreLogs(t *testing.T) {
	f := newRunsFixture(t)
	r := do(t, "POST", f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned+"/approve", goodKey)
	require.Equal(t, 200, r.status)
	r = do(t, "GET", f.srv.URL+"/v1/audit", goodKey)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Contains(t, string(r.body), "audit log is not configured")
}

func TestReadAudit(t *testing.T) {
	log := &fakeAudit{records: []audit.Record{{ID: "1", Tenant: "contoso", Principal: "api-key:alice", Action: "run.queued", Object: "/v1/tenants/contoso/runs/r", Result: "ok"}}}
	_, srv := newTestServer(t, func(c *Config) { c.Audit = log })

	r := do(t, "GET", srv.URL+"/v1/audit?"+url.Values{"tenant": {"contoso"}, "since": {"2026-03-01T10:00:00Z"}, "principal": {"api-key:alice"}, "limit": {"5"}}.Encode(), goodKey)
	require.Equal(t, 200, r.status, string(r.body))
	var page audit.Page
	require.NoError(t, json.Unmarshal(r.body, &page))
	assert.Equal(t, log.records, page.Records)
	assert.Equal(t, []string{"contoso"}, log.query.Tenants)
	assert.Equal(t, "2026-03-01T10:00:00Z", log.query.Since.Format("2006-01-02T15:04:05Z07:00"))
	assert.Equal(t, "api-key:alice", log.query.Principal)
	assert.Equal(t, 5, log.query.Limit)

	r = do(t, "GET", srv.URL+"/v1/audit", goodKey)
	require.Equal(t, 200, r.status)
	assert.Equal(t, t0.Add(time.Hour+1500*time.Millisecond).Add(-DefaultAuditWindow), log.query.Since, "the last 24 hours by default")

	for _, q := range []string{"since=yesterday", "limit=0", "limit=5000", "before=xyz", "tenant=a/b"} {
		r := do(t, "GET", srv.URL+"/v1/audit?"+q, goodKey)
		assert.Equal(t, 400, r.status, q)
		assert.Equal(t, CodeBadRequest, decode[ErrorBody](t, r).Error.Code, q)
	}
	// A reader of contoso reads contoso only, and a try at another tenant
	// is refused and audited.
	r = do(t, "GET", srv.URL+"/v1/audit", readerKey)
	require.Equal(t, 200, r.status)
	assert.Equal(t, []string{"contoso"}, log.query.Tenants)
	log.take()
	r = do(t, "GET", srv.URL+"/v1/audit?tenant=fabrikam", readerKey)
	require.Equal(t, 403, r.status)
	assert.Contains(t, decode[ErrorBody](t, r).Error.Message, "no role in tenant fabrikam")
	if got := log.take(); assert.Len(t, got, 1) {
		assert.Equal(t, "fabrikam", got[0].Tenant)
		assert.Equal(t, "api-key:reader", got[0].Principal)
		assert.Equal(t, audit.ResultDenied, got[0].Result)
		assert.Equal(t, "GET /v1/audit", got[0].Action)
	}

	log.err = errors.New("table storage down")
	r = do(t, "GET", srv.URL+"/v1/audit", goodKey)
	assert.Equal(t, 500, r.status)
	assert.NotContains(t, string(r.body), "table storage", "internal errors stay in the server log")
}

// The audit log is append-only through the API: there is no method on
// it but GET, and no other path under it.
func TestAuditCannotBeChangedThroughTheAPI(t *testing.T) {
	log := &fakeAudit{records: []audit.Record{{ID: "1", Action: "run.queued"}}}
	_, srv := newTestServer(t, func(c *Config) { c.Audit = log })
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		for _, p := range []string{"/v1/audit", "/v1/audit/1"} {
			r := do(t, m, srv.URL+p, goodKey)
			assert.Contains(t, []int{404, 405}, r.status, "%s %s", m, p)
		}
	}
	assert.Equal(t, []audit.Record{{ID: "1", Action: "run.queued"}}, log.records)
}

type testGrants struct {
	admin   bool
	tenants []string
}

func (g testGrants) IsAdmin() bool       { return g.admin }
func (g testGrants) TenantIDs() []string { return g.tenants }

func TestAuditScope(t *testing.T) {
	admin := testGrants{admin: true}
	op := testGrants{tenants: []string{"contoso", "fabrikam"}}
	tests := []struct {
		name    string
		g       testGrants
		tenant  string
		want    []string
		wantErr string
	}{
		{"admin reads everything", admin, "", nil, ""},
		{"admin narrows to a tenant", admin, "globex", []string{"globex"}, ""},
		{"admin reads the platform", admin, audit.Platform, []string{audit.Platform}, ""},
		{"operator reads their tenants", op, "", []string{"contoso", "fabrikam"}, ""},
		{"operator narrows to one", op, "fabrikam", []string{"fabrikam"}, ""},
		{"operator cannot read another tenant", op, "globex", nil, "no role in tenant globex"},
		{"operator cannot read the platform", op, audit.Platform, nil, "admins only"},
		{"no roles, nothing to read", testGrants{}, "", nil, "needs a role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := auditScope(tc.g, tc.tenant)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// provokeAudit makes GET /v1/audit answer with code.
func provokeAudit(t *testing.T, method, code string) ([]byte, bool) {
	t.Helper()
	log := &fakeAudit{records: []audit.Record{{ID: "0001", Time: t0, Tenant: "contoso", Principal: "api-key:alice", Action: "POST /v1/tenants/{tenant}/workspaces",
		Object: "/v1/tenants/contoso/workspaces", Result: audit.ResultOK, Status: 201, RequestID: "ab12", Client: "10.0.0.1:5555", Detail: "x"}}}
	_, srv := newTestServer(t, func(c *Config) { c.Audit = log })
	var r response
	switch code {
	case "200":
		r = do(t, method, srv.URL+"/v1/audit", goodKey)
	case "400":
		r = do(t, method, srv.URL+"/v1/audit?limit=-1", goodKey)
	case "401":
		r = do(t, method, srv.URL+"/v1/audit", "bad")
	case "403":
		r = do(t, method, srv.URL+"/v1/audit", forbiddenKey)
	case "404":
		f := newRunsFixture(t)
		_, srv := newTestServer(t, func(c *Config) { c.Runs, c.Artifacts, c.Dispatcher, c.Audit = f.m, f.arts, f.disp, &fakeAudit{} })
		r = do(t, method, srv.URL+"/v1/audit?tenant=nobody", goodKey)
	case "500":
		log.err = errors.New("down")
		r = do(t, method, srv.URL+"/v1/audit", goodKey)
	case "503":
		_, srv := newTestServer(t, nil)
		r = do(t, method, srv.URL+"/v1/audit", goodKey)
	default:
		return nil, false
	}
	require.Equal(t, code, strconv.Itoa(r.status), "body: %s", r.body)
	return r.body, true
}

// A flood of unauthenticated requests is recorded at a bounded rate, and
// the next record says how many were skipped; authenticated refusals have
// a budget of their own (TestRefusalFloodIsSampledPerPrincipal).
func TestUnauthenticatedFloodIsSampled(t *testing.T) {
	log := &fakeAudit{}
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	_, srv := newTestServer(t, func(c *Config) { c.Audit, c.Now = log, clock })
	for range unauthenticatedBurst + 5 {
		do(t, "GET", srv.URL+"/v1/status", "stolen")
	}
	assert.Len(t, log.take(), unauthenticatedBurst)
	for range 3 {
		assert.Equal(t, 403, do(t, "GET", srv.URL+"/v1/tenants/globex/runs", readerKey).status)
	}
	assert.Len(t, log.take(), 3, "authenticated refusals have a budget of their own, per principal")

	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	do(t, "GET", srv.URL+"/v1/status", "stolen")
	got := log.take()
	require.Len(t, got, 1)
	assert.Contains(t, got[0].Detail, "(and 5 more unauthenticated requests since 2026-03-01T12:00:00Z, not recorded one by one)")
}

// An authenticated principal refused again and again, here a reader of
// contoso knocking on another tenant's door, is recorded at a bounded rate
// per principal: it cannot fill tenant globex's audit log, nor crowd out
// another principal's refusals; the next record says how many were
// skipped.
func TestRefusalFloodIsSampledPerPrincipal(t *testing.T) {
	log := &fakeAudit{}
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	_, srv := newTestServer(t, func(c *Config) { c.Audit, c.Now = log, clock })
	for range refusalBurst + 5 {
		assert.Equal(t, http.StatusForbidden, send(t, "POST", srv.URL+"/v1/tenants/globex/workspaces", readerKey, "application/json", []byte(`{"name":"x"}`)).status)
	}
	got := log.take()
	require.Len(t, got, refusalBurst)
	for _, r := range got {
		assert.Equal(t, "globex", r.Tenant)
		assert.Equal(t, audit.ResultDenied, r.Result)
	}
	assert.Equal(t, http.StatusForbidden, do(t, "GET", srv.URL+"/v1/tenants/globex/runs", operatorKey).status)
	got = log.take()
	require.Len(t, got, 1, "another principal's refusal is recorded")
	assert.Equal(t, "api-key:operator", got[0].Principal)

	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	assert.Equal(t, http.StatusForbidden, do(t, "GET", srv.URL+"/v1/tenants/globex/runs", readerKey).status)
	got = log.take()
	require.Len(t, got, 1)
	assert.Contains(t, got[0].Detail, "(and 5 more refused requests of api-key:reader since 2026-03-01T12:00:00Z, not recorded one by one)")
}

// A mutating call whose handler panics is answered 500 and still audited.
func TestAuditRecordsCallsThatPanic(t *testing.T) {
	log := &fakeAudit{}
	s, _ := newTestServer(t, func(c *Config) { c.Audit = log })
	h := s.observe(s.audited(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	r := do(t, "POST", srv.URL+"/v1/tenants/contoso/workspaces", goodKey)
	assert.Equal(t, 500, r.status)
	got := log.take()
	require.Len(t, got, 1)
	assert.Equal(t, 500, got[0].Status)
	assert.Equal(t, audit.ResultError, got[0].Result)
	assert.Equal(t, "/v1/tenants/contoso/workspaces", got[0].Object)
}

// A token the identity provider signed but that lacks the role the API
// requires (any user of the directory can get one) proves no grant in any
// tenant: like an unauthenticated caller, it cannot file records in the
// tenant its path names, nor write one per request.
func TestCredentialWithoutTheAPIRoleIsSampledInThePlatformLog(t *testing.T) {
	log := &fakeAudit{}
	_, srv := newTestServer(t, func(c *Config) { c.Audit, c.Now = log, func() time.Time { return t0 } })
	for range unauthenticatedBurst + 5 {
		assert.Equal(t, http.StatusForbidden, send(t, "POST", srv.URL+"/v1/tenants/contoso/workspaces", forbiddenKey, "application/json", []byte(`{}`)).status)
	}
	got := log.take()
	assert.Len(t, got, unauthenticatedBurst, "sampled like unauthenticated calls")
	for _, r := range got {
		assert.Empty(t, r.Tenant, "filed with the platform, not in tenant contoso's log")
		assert.Equal(t, audit.ResultDenied, r.Result)
	}
}

// An OAuth2 principal's name (preferred_username) can change hands; its
// audit records carry the token's object id too, as four-eyes compares.
func TestAuditRecordsTheStableIDOfOAuthPrincipals(t *testing.T) {
	log := &fakeAudit{}
	_, srv := newTestServer(t, func(c *Config) { c.Audit = log })
	assert.Equal(t, http.StatusForbidden, send(t, "POST", srv.URL+"/v1/tenants/contoso/workspaces", oauthToken, "application/json", []byte(`{}`)).status)
	assert.Equal(t, http.StatusForbidden, send(t, "POST", srv.URL+"/v1/tenants/contoso/workspaces", readerKey, "application/json", []byte(`{}`)).status)
	got := log.take()
	require.Len(t, got, 2)
	assert.Equal(t, "oauth2:carol@contoso.com", got[0].Principal)
	assert.Equal(t, "oauth2:7f3c9a1e-0b6d-4c1a-9e2f-5d8b7a6c4e21", got[0].Subject)
	assert.Equal(t, "api-key:reader", got[1].Principal)
	assert.Empty(t, got[1].Subject, "an API key's name is its id")
}

// Mutations whose object travels in the body say in their audit record
// what they made or changed: which workspace with which approval options,
// which key with which grants, which state version, which variable
// (never its value).
func TestAuditRecordsWhatTheBodyChanged(t *testing.T) {
	f := newRunsFixture(t)
	store, err := secretstore.OpenFile(filepath.Join(t.TempDir(), "secrets.json"))
	require.NoError(t, err)
	km, _ := newKeysServer(t)
	log := &fakeAudit{}
	_, srv := newTestServer(t, func(c *Config) {
		c.Runs, c.Artifacts, c.Dispatcher, c.Secrets, c.Keys, c.Audit = f.m, f.arts, f.disp, store, km, log
	})

	ws := srv.URL + "/v1/tenants/contoso/workspaces"
	for _, tc := range []struct {
		method, url, cred, body string
		detail                  []string
	}{
		{"POST", ws, operatorKey, `{"name":"billing","four_eyes":true,"labels":{"env":"prod"}}`,
			[]string{"workspace billing", "four_eyes=true", "auto_apply=false", "env=prod"}},
		{"PATCH", ws + "/billing", goodKey, `{"four_eyes":false}`, []string{"workspace billing", "four_eyes true→false"}},
		{"PUT", ws + "/billing/vars/db_password", operatorKey, `{"value":"hunter2-secret","sensitive":true}`, []string{"variable db_password", "sensitive"}},
		{"POST", ws + "/billing/state/rollback", approverKey, `{"version":"run-0000000000000001-c5"}`, []string{"state version run-0000000000000001-c5"}},
		{"POST", srv.URL + "/v1/keys", goodKey, `{"id":"dave","tenants":{"contoso":"approver"}}`, []string{"key dave", "contoso=approver"}},
	} {
		r := send(t, tc.method, tc.url, tc.cred, "application/json", []byte(tc.body))
		require.Less(t, r.status, 300, "%s %s: %s", tc.method, tc.url, r.body)
		got := log.take()
		require.Len(t, got, 1)
		t.Logf("%s %s: %s", tc.method, tc.url, got[0].Detail)
		for _, want := range tc.detail {
			assert.Contains(t, got[0].Detail, want, "%s %s", tc.method, tc.url)
		}
		assert.NotContains(t, got[0].Detail, "hunter2")
	}
}

// An admin's read of an unknown tenant's audit log is 404 (opsbot exits 9),
// never an empty page that looks like a quiet tenant; records filed under
// a name no tenant has yet (refusals) are still shown.
func TestReadAuditOfAnUnknownTenant(t *testing.T) {
	f := newRunsFixture(t)
	log := &fakeAudit{}
	_, srv := newTestServer(t, func(c *Config) {
		c.Runs, c.Artifacts, c.Dispatcher, c.Audit = f.m, f.arts, f.disp, log
	})
	r := do(t, "GET", srv.URL+"/v1/audit?tenant=nobody", goodKey)
	require.Equal(t, 404, r.status, string(r.body))
	assert.Contains(t, decode[ErrorBody](t, r).Error.Message, "no tenant nobody")

	r = do(t, "GET", srv.URL+"/v1/audit?tenant=contoso", goodKey)
	assert.Equal(t, 200, r.status, "a known tenant with no records")

	log.records = []audit.Record{{ID: "1", Tenant: "nobody", Principal: "api-key:reader", Action: "GET /v1/agents", Result: audit.ResultDenied}}
	r = do(t, "GET", srv.URL+"/v1/audit?tenant=nobody", goodKey)
	assert.Equal(t, 200, r.status, "its records are shown")
}
