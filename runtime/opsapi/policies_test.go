package opsapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/audit"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/policystore"
	"github.com/botehq/platform/runtime/runs"
)

const denyAll = "package p\n\ndeny contains \"no\"\n"

func putPolicyBody(t *testing.T, enforcement, src string) []byte {
	b, err := json.Marshal(PutPolicyRequest{Enforcement: enforcement, Source: src})
	require.NoError(t, err)
	return b
}

func TestPolicyAPI(t *testing.T) {
	f := newRunsFixture(t)
	base := f.srv.URL + "/v1/tenants/contoso/policies"
	put := func(cred, name string, body []byte) response {
		return send(t, http.MethodPut, base+"/"+name, cred, "application/json", body)
	}
	for _, cred := range []string{readerKey, operatorKey, approverKey} {
		r := put(cred, "p", putPolicyBody(t, "mandatory", denyAll))
		assert.Equal(t, 403, r.status, "%s: %s", cred, r.body)
		assert.Contains(t, string(r.body), ReasonAdminRequired)
	}
	r := put(goodKey, "p", putPolicyBody(t, "mandatory", "package p\n\ndeny contains msg if {\n  msg := nosuch(input)\n}\n"))
	require.Equal(t, 400, r.status)
	assert.Contains(t, string(r.body), CodePolicyInvalid)
	assert.Contains(t, string(r.body), "p.rego:4: rego_type_error: undefined function nosuch", "the compiler's message, with the line")
	for _, bad := range [][]byte{putPolicyBody(t, "strict", denyAll), []byte(`{"source":"x","enforcement":"advisory","extra":1}`)} {
		r = put(goodKey, "p", bad)
		assert.Equal(t, 400, r.status, "%s", r.body)
	}
	r = put(goodKey, "bad name!", putPolicyBody(t, "advisory", denyAll))
	assert.Equal(t, 400, r.status)
	badWorkspace, err := json.Marshal(PutPolicyRequest{Enforcement: "advisory", Source: denyAll, Workspace: "-bad"})
	require.NoError(t, err)
	r = put(goodKey, "p", badWorkspace)
	assert.Equal(t, 400, r.status)
	assert.Contains(t, string(r.body), "workspace", "a malformed workspace in the body is named")

	for i, enf := range []string{"advisory", "mandatory"} {
		r = put(goodKey, "p", putPolicyBody(t, enf, denyAll))
		require.Equal(t, 200, r.status, "%s", r.body)
		var p Policy
		require.NoError(t, json.Unmarshal(r.body, &p))
		assert.Equal(t, i+1, p.Version)
		assert.Equal(t, "api-key:alice", p.CreatedBy)
	}
	var list PolicyList
	r = send(t, http.MethodGet, base, readerKey, "", nil)
	require.Equal(t, 200, r.status)
	require.NoError(t, json.Unmarshal(r.body, &list))
	require.Len(t, list.Policies, 1)
	assert.Equal(t, "mandatory", list.Policies[0].Enforcement)
	assert.Empty(t, list.Policies[0].Source, "lists leave sources out")

	var one Policy
	r = send(t, http.MethodGet, base+"/p?version=1", readerKey, "", nil)
	require.Equal(t, 200, r.status)
	require.NoError(t, json.Unmarshal(r.body, &one))
	assert.Equal(t, "advisory", one.Enforcement)
	assert.Equal(t, denyAll, one.Source)
	assert.Equal(t, 404, send(t, http.MethodGet, base+"/p?version=9", readerKey, "", nil).status)
	assert.Equal(t, 400, send(t, http.MethodGet, base+"/p?version=x", readerKey, "", nil).status)

	assert.Equal(t, 403, send(t, http.MethodDelete, base+"/p", approverKey, "", nil).status)
	require.Equal(t, 200, send(t, http.MethodDelete, base+"/p", goodKey, "", nil).status)
	assert.Equal(t, 404, send(t, http.MethodGet, base+"/p", readerKey, "", nil).status)
	r = send(t, http.MethodGet, base+"/p/versions", readerKey, "", nil)
	require.NoError(t, json.Unmarshal(r.body, &list))
	require.Len(t, list.Policies, 3)
	assert.True(t, list.Policies[2].Deleted)
}

// A plan that failed a policy cannot be approved: 409 policy_failed with
// the policies' messages; an override is for mandatory-with-override only
// and is in the run and the audit log.
func TestApprovalBlockedByPolicy(t *testing.T) {
	for _, tc := range []struct {
		enforcement runs.Enforcement
		override    bool
		status      int
		want        string
	}{
		{runs.Mandatory, false, 409, "failed mandatory policy tags (untagged)"},
		{runs.Mandatory, true, 409, "failed mandatory policy tags"},
		{runs.MandatoryOverride, false, 409, "approve it anyway with an override"},
		{runs.MandatoryOverride, true, 200, ""},
		{runs.Advisory, false, 200, ""},
	} {
		t.Run(string(tc.enforcement)+" override="+strconv.FormatBool(tc.override), func(t *testing.T) {
			f := newRunsFixture(t)
			log := &fakeAudit{}
			f.s.cfg.Audit = log
			ctx := context.Background()
			// plan a second run whose check failed (the fixture's planned run holds prod)
			_, err := f.m.Cancel(ctx, runs.CancelRequest{Tenant: "contoso", Run: f.planned, By: "t"})
			require.NoError(t, err)
			id := runs.NewRunID(runsNow)
			_, err = f.m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "contoso", Workspace: "prod", ID: id, Operation: runs.OpApply, CreatedBy: "api-key:alice",
				Bundle: claimFor(id, "bundle-1.tar.gz")})
			require.NoError(t, err)
			_, err = f.m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
			require.NoError(t, err)
			_, err = f.m.Report(ctx, runs.Report{Tenant: "contoso", Run: id, Agent: "a1", State: runs.Planned, Plan: claimFor(id, "workdir.tar.gz"),
				Policy: &runs.PolicyCheck{At: runsNow, Results: []runs.PolicyResult{{Policy: "tags", Version: 3, Enforcement: tc.enforcement, Messages: []string{"untagged"}}}}})
			require.NoError(t, err)

			var run Run
			r := send(t, http.MethodGet, f.srv.URL+"/v1/tenants/contoso/runs/"+id, readerKey, "", nil)
			require.NoError(t, json.Unmarshal(r.body, &run))
			require.NotNil(t, run.Policy)
			assert.Equal(t, tc.enforcement != runs.Advisory, run.Policy.Blocked)
			assert.Equal(t, []string{"untagged"}, run.Policy.Results[0].Messages)

			url := f.srv.URL + "/v1/tenants/contoso/runs/" + id + "/approve"
			if tc.override {
				url += "?override_policy=true"
			}
			r = send(t, http.MethodPost, url, approverKey, "", nil)
			require.Equal(t, tc.status, r.status, "%s", r.body)
			recs := log.take()
			require.NotEmpty(t, recs)
			rec := recs[len(recs)-1]
			if tc.want != "" {
				assert.Contains(t, string(r.body), CodePolicyFailed)
				assert.Contains(t, string(r.body), tc.want)
				assert.Equal(t, audit.ResultRejected, rec.Result)
				return
			}
			require.NoError(t, json.Unmarshal(r.body, &run))
			assert.Equal(t, "approved", run.State)
			if tc.override {
				assert.Equal(t, "api-key:approver", run.Policy.OverriddenBy)
				assert.False(t, run.Policy.Blocked)
				assert.Contains(t, rec.Detail, "approved overriding failed policies: tags v3")
				assert.Contains(t, run.History[len(run.History)-1].Reason, "overriding failed policy tags (untagged)")
			}
		})
	}
}

// provokePolicies makes a policy route answer with code, for the OpenAPI
// shape test.
func provokePolicies(t *testing.T, method, path, code string) ([]byte, bool) {
	t.Helper()
	f := newRunsFixture(t)
	_, err := f.policies.Put(context.Background(), policyFixture())
	require.NoError(t, err)
	url := f.srv.URL + strings.NewReplacer("{tenant}", "contoso", "{policy}", "p").Replace(path)
	bad := putPolicyBody(t, "advisory", "package p\n")
	if code == "400" && method == http.MethodGet {
		url += "?version=zero"
	}
	return provokeRoute(t, f, method, url, code, putPolicyBody(t, "advisory", denyAll), bad)
}

// provokeRoute makes a route of the runs fixture f answer code: ok is the
// body of a request that succeeds (or conflicts), bad that of a 400 (whose
// URL the caller has already spoiled for a GET).
func provokeRoute(t *testing.T, f *runsFixture, method, url, code string, ok, bad []byte) ([]byte, bool) {
	t.Helper()
	var r response
	switch code {
	case "200", "201", "202", "409":
		r = send(t, method, url, goodKey, "application/json", ok)
	case "400":
		r = send(t, method, url, goodKey, "application/json", bad)
	case "401":
		r = send(t, method, url, "bad", "application/json", ok)
	case "403":
		r = send(t, method, url, nobodyKey, "application/json", ok)
	case "404":
		r = send(t, method, strings.Replace(url, "/contoso/", "/nobody/", 1), goodKey, "application/json", ok)
	case "503":
		_, srv := newTestServer(t, nil)
		r = send(t, method, srv.URL+strings.TrimPrefix(url, f.srv.URL), goodKey, "application/json", ok)
	default:
		return nil, false
	}
	require.Equal(t, code, strconv.Itoa(r.status), "body: %s", r.body)
	return r.body, true
}

func claimFor(id, name string) *runs.Artifact {
	return &runs.Artifact{Container: "boteruns", Blob: "contoso/prod/" + id + "/" + name, Size: 1, SHA256: strings.Repeat("b", 64)}
}

func policyFixture() policystore.Policy {
	return policystore.Policy{Tenant: "contoso", Name: "p", Enforcement: runs.Advisory, Source: denyAll}
}

// TestApprovalRefusedWhenPoliciesChanged: a plan checked before a policy
// that applies to its workspace was added or changed cannot be approved
// on that old verdict (an admin adds a mandatory policy while plans wait
// for approval); a policy of another workspace or a deleted one changes
// nothing.
func TestApprovalRefusedWhenPoliciesChanged(t *testing.T) {
	f := newRunsFixture(t)
	ctx := context.Background()
	_, err := f.m.Cancel(ctx, runs.CancelRequest{Tenant: "contoso", Run: f.planned, By: "t"})
	require.NoError(t, err)
	put := func(name string, workspace ids.WorkspaceID) {
		p := policyFixture()
		p.Name, p.Workspace, p.Enforcement = name, workspace, runs.Mandatory
		_, err := f.policies.Put(ctx, p)
		require.NoError(t, err)
	}
	put("tags", "")
	put("elsewhere", "staging")
	put("gone", "")
	_, err = f.policies.Delete(ctx, "contoso", "gone", "admin")
	require.NoError(t, err)
	plan := func() string {
		id := runs.NewRunID(runsNow)
		_, err := f.m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "contoso", Workspace: "prod", ID: id, Operation: runs.OpApply, CreatedBy: "api-key:alice",
			Bundle: claimFor(id, "bundle-1.tar.gz")})
		require.NoError(t, err)
		_, err = f.m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
		require.NoError(t, err)
		_, err = f.m.Report(ctx, runs.Report{Tenant: "contoso", Run: id, Agent: "a1", State: runs.Planned, Plan: claimFor(id, "workdir.tar.gz"),
			Policy: &runs.PolicyCheck{At: runsNow, Results: []runs.PolicyResult{{Policy: "tags", Version: 1, Enforcement: runs.Mandatory, Passed: true}}}})
		require.NoError(t, err)
		return id
	}
	approve := func(id string) response {
		return send(t, http.MethodPost, f.srv.URL+"/v1/tenants/contoso/runs/"+id+"/approve?override_policy=true", approverKey, "", nil)
	}

	id := plan()
	var run Run
	require.NoError(t, json.Unmarshal(send(t, http.MethodGet, f.srv.URL+"/v1/tenants/contoso/runs/"+id, readerKey, "", nil).body, &run))
	assert.Empty(t, run.PolicyChanged)
	put("no-destroy", "")
	require.NoError(t, json.Unmarshal(send(t, http.MethodGet, f.srv.URL+"/v1/tenants/contoso/runs/"+id, readerKey, "", nil).body, &run))
	assert.Contains(t, run.PolicyChanged, "(no-destroy v1 is new); plan again", "runs show says so before anyone tries")
	r := approve(id)
	require.Equal(t, 409, r.status, "%s", r.body)
	assert.Contains(t, string(r.body), CodePolicyFailed)
	assert.Contains(t, string(r.body), "(no-destroy v1 is new); plan again")

	_, err = f.policies.Delete(ctx, "contoso", "no-destroy", "admin")
	require.NoError(t, err)
	put("tags", "") // v2
	r = approve(id)
	require.Equal(t, 409, r.status, "%s", r.body)
	assert.Contains(t, string(r.body), "tags is v2, checked at v1")

	_, err = f.m.Cancel(ctx, runs.CancelRequest{Tenant: "contoso", Run: id, By: "t"})
	require.NoError(t, err)
	put("tags", "") // v3
	_, err = f.policies.Delete(ctx, "contoso", "tags", "admin")
	require.NoError(t, err)
	r = approve(plan())
	require.Equal(t, 200, r.status, "deleted and other workspaces' policies do not matter: %s", r.body)
}
