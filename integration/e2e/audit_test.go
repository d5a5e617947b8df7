package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/platform"
	"github.com/botehq/platform/runtime/audit"
	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/relay"
)

// auditRecords runs opsbot audit -o json with key and returns the records.
func auditRecords(t *testing.T, key string, args ...string) []audit.Record {
	t.Helper()
	r, err := plat.Opsbot(context.Background(), "", []string{"OPSBOT_API_KEY=" + key}, append([]string{"audit", "-o", "json", "--since", "1h", "--limit", "1000"}, args...)...)
	require.NoError(t, err)
	require.Equal(t, exitcode.OK, r.Code, r)
	var page audit.Page
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &page))
	return page.Records
}

func find(records []audit.Record, match func(audit.Record) bool) (audit.Record, bool) {
	for _, r := range records {
		if match(r) {
			return r, true
		}
	}
	return audit.Record{}, false
}

// TestAuditLog: an operator's create, plan and approve, the run's every
// transition and a refused cross-tenant call are in the audit log with
// who, what, where from and the request id; an operator reads only their
// tenant's log; nothing in the API changes or deletes a record.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	op := newOperator(t, "audit-contoso", "contoso=approver")
	as := func(code int, args ...string) platform.Result {
		t.Helper()
		r := op.as(t, contoso, args...)
		require.Equal(t, code, r.Code, "opsbot %s: %s", strings.Join(args, " "), r)
		return r
	}
	as(exitcode.OK, "workspaces", "create", "audited")
	id := runID(t, as(exitcode.Changes, "plan", "--workspace", "audited", "--dir", config(t, examples(t))))
	as(exitcode.OK, "apply", id, "--yes")
	// Across the tenant boundary: refused, and audited.
	as(exitcode.APIAuth, "runs", "list", "--tenant", fabrikam)
	as(exitcode.APIAuth, "audit", "--tenant", fabrikam)

	const me = "api-key:audit-contoso"
	records := auditRecords(t, op.key) // OPSBOT_TENANT is not set: every tenant the key may read
	for _, rec := range records {
		assert.Equal(t, contoso, rec.Tenant, "an operator of contoso reads only contoso's records: %+v", rec)
	}
	api := func(action, object string, status int) audit.Record {
		t.Helper()
		rec, ok := find(records, func(r audit.Record) bool {
			return r.Action == action && r.Principal == me && strings.HasPrefix(r.Object, object)
		})
		require.True(t, ok, "no %s %s by %s in %+v", action, object, me, records)
		assert.Equal(t, status, rec.Status)
		assert.Equal(t, audit.ResultOK, rec.Result)
		assert.Regexp(t, `^[0-9a-f]{16}$`, rec.RequestID)
		assert.Regexp(t, `^127\.0\.0\.1:[0-9]+$`, rec.Client, "the sender's address as the relay reports it")
		assert.WithinDuration(t, time.Now(), rec.Time, 10*time.Minute)
		return rec
	}
	api("POST /v1/tenants/{tenant}/workspaces", "/v1/tenants/contoso/workspaces", http.StatusCreated)
	created := api("POST /v1/tenants/{tenant}/workspaces/{workspace}/runs", "/v1/tenants/contoso/workspaces/audited/runs", http.StatusAccepted)
	approved := api("POST /v1/tenants/{tenant}/runs/{run}/approve", "/v1/tenants/contoso/runs/"+id+"/approve", http.StatusOK)

	runObject := "/v1/tenants/contoso/runs/" + id
	var states []string
	for i := len(records) - 1; i >= 0; i-- { // oldest first
		if rec := records[i]; rec.Object == runObject && strings.HasPrefix(rec.Action, "run.") {
			states = append(states, strings.TrimPrefix(rec.Action, "run."))
			switch rec.Action {
			case "run.queued":
				assert.Equal(t, me, rec.Principal)
				assert.Equal(t, created.RequestID, rec.RequestID, "the transition names the request that caused it")
			case "run.approved":
				assert.Equal(t, me, rec.Principal)
				assert.Equal(t, approved.RequestID, rec.RequestID)
			case "run.planning", "run.planned", "run.applying", "run.applied":
				assert.Regexp(t, `^agent:agent-[ab]$`, rec.Principal)
				assert.Empty(t, rec.RequestID, "agents report over the gateway, not the API")
			}
			assert.True(t, strings.HasPrefix(rec.Detail, "workspace audited, apply: "), rec.Detail)
		}
	}
	assert.Equal(t, []string{"queued", "planning", "planned", "approved", "applying", "applied"}, states)

	// The refused calls are in fabrikam's log, which the admin reads.
	theirs := auditRecords(t, plat.APIKey, "--tenant", fabrikam, "--principal", me)
	for _, action := range []string{"GET /v1/tenants/{tenant}/runs", "GET /v1/audit"} {
		rec, ok := find(theirs, func(r audit.Record) bool { return r.Action == action })
		if assert.True(t, ok, "no refused %s in %+v", action, theirs) {
			assert.Equal(t, audit.ResultDenied, rec.Result)
			assert.Equal(t, http.StatusForbidden, rec.Status)
			assert.Equal(t, fabrikam, rec.Tenant)
			assert.Regexp(t, `^127\.0\.0\.1:[0-9]+$`, rec.Client)
			assert.Contains(t, rec.Detail, "fabrikam")
		}
	}

	// Key management is the platform's: the admin reads it there.
	platformRecs := auditRecords(t, plat.APIKey, "--tenant", audit.Platform, "--principal", "api-key:operator")
	rec, ok := find(platformRecs, func(r audit.Record) bool { return r.Action == "POST /v1/keys" && r.Status == http.StatusCreated })
	if assert.True(t, ok, "no key creation in %+v", platformRecs) {
		assert.Empty(t, rec.Tenant)
		assert.NotContains(t, rec.Detail+rec.Object, op.key[strings.Index(op.key, ".")+1:], "the secret is never recorded")
	}

	// No method of the API changes or deletes a record, the admin's
	// included; the log is as it was.
	sender, err := relay.NewSender(relaySenderConfig(t))
	require.NoError(t, err)
	client := &http.Client{Transport: sender, Timeout: 30 * time.Second}
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		for _, path := range []string{"/v1/audit", "/v1/audit/" + records[0].ID, "/v1/tenants/contoso/audit"} {
			req, err := http.NewRequest(method, "http://ops"+path, strings.NewReader(`{"records":[]}`))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+plat.APIKey)
			resp, err := client.Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			assert.Contains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, resp.StatusCode, "%s %s", method, path)
		}
	}
	after := auditRecords(t, op.key)
	for _, rec := range records {
		_, ok := find(after, func(r audit.Record) bool { return r == rec })
		assert.True(t, ok, "record %s is unchanged", rec.ID)
	}
}

// relaySenderConfig is opsbot's relay configuration of the platform.
func relaySenderConfig(t *testing.T) relay.SenderConfig {
	t.Helper()
	ns, err := relay.ParseNamespace(plat.SendConnectionString)
	require.NoError(t, err)
	return relay.SenderConfig{Namespace: ns, Insecure: true}
}
