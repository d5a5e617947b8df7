package console_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
)

// TestConsoleAdvisoryPolicy: a run whose plan failed only an advisory
// policy is approved as usual, and the confirmation restates the failure
// with its message and says nothing is blocked. No platform: the console
// in front of a fake API.
func TestConsoleAdvisoryPolicy(t *testing.T) {
	t.Parallel()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/whoami":
			_, _ = w.Write([]byte(`{"kind":"key","name":"alice","tenants":{"contoso":"approver"}}`))
		case "/v1/tenants/contoso/workspaces":
			_, _ = w.Write([]byte(`{"workspaces":[{"name":"web"}]}`))
		case "/v1/tenants/contoso/runs/run-1":
			_, _ = w.Write([]byte(`{"id":"run-1","workspace":"web","operation":"apply","state":"planned","created_by":"key:bob",
			 "created_at":"2026-12-06T09:00:00Z","updated_at":"2026-12-06T09:00:01Z","history":[],
			 "policy":{"checked_at":"2026-12-06T09:00:01Z","blocked":false,"results":[
			  {"policy":"types","version":3,"enforcement":"advisory","passed":false,"messages":["terraform_data.x is not an allowed type"],"warnings":["no environment tag"]},
			  {"policy":"tags","version":1,"enforcement":"mandatory","passed":true}]}}`))
		case "/v1/tenants/contoso/runs/run-1/logs":
			_, _ = w.Write([]byte(`{"text":"","offset":0,"next_offset":0,"done":true}`))
		default:
			notFound(w, r)
		}
	})
	srv := fakeServer(t, api)
	ctx, _ := browser(t)
	do(t, ctx, 30*time.Second, chromedp.Navigate(srv.URL+"/ui/#session=k&/t/contoso/runs/run-1"), chromedp.WaitVisible(chromedp.ID("approve")))
	assert.Contains(t, eval[string](t, ctx, `document.getElementById('policy-outcome').textContent`), "Advisory policy types failed; approval is not blocked.")
	checks := eval[string](t, ctx, `document.getElementById('run-policy').textContent`)
	for _, want := range []string{"typesv3advisoryFAILEDterraform_data.x is not an allowed type", "warning: no environment tag", "tagsv1mandatorypassed"} {
		assert.Contains(t, checks, want)
	}
	assert.False(t, eval[bool](t, ctx, `!!document.getElementById('override-approve') || !!document.getElementById('policy-blocked')`))
	do(t, ctx, 30*time.Second, chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.ID("confirm-policy")))
	assert.Contains(t, eval[string](t, ctx, `document.getElementById('confirm-policy').textContent`),
		"The advisory policy types failed; nothing is blocked.types: terraform_data.x is not an allowed type")
	checkAccessibility(t, ctx, "run with an advisory failure")
}

// TestConsolePolicyChanged: a planned run whose policies changed since
// its plan was checked (the API's policy_changed; it refuses the approval
// with 409 policy_failed) says so, naming the policies and versions the
// API gives, and that the run must be planned again; it offers neither
// approve nor the override, whether its plan failed an overridable policy
// or no policy applied when it was planned.
func TestConsolePolicyChanged(t *testing.T) {
	t.Parallel()
	const changed = `the policies changed since run %[1]s's plan was checked (no-destroy v1 is new, tags is v2, checked at v1); plan again to check it on them`
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/whoami":
			_, _ = w.Write([]byte(`{"kind":"key","name":"alice","tenants":{"contoso":"approver"}}`))
		case "/v1/tenants/contoso/workspaces":
			_, _ = w.Write([]byte(`{"workspaces":[{"name":"web"}]}`))
		case "/v1/tenants/contoso/runs/run-1":
			_, _ = fmt.Fprintf(w, `{"id":"run-1","workspace":"web","operation":"apply","state":"planned","created_by":"key:bob",
			 "created_at":"2026-12-06T09:00:00Z","updated_at":"2026-12-06T09:00:01Z","history":[],
			 "policy_changed":%q,
			 "policy":{"checked_at":"2026-12-06T09:00:01Z","blocked":true,"results":[
			  {"policy":"tags","version":1,"enforcement":"mandatory-with-override","passed":false,"messages":["no owner tag"]}]}}`, fmt.Sprintf(changed, "run-1"))
		case "/v1/tenants/contoso/runs/run-2":
			_, _ = fmt.Fprintf(w, `{"id":"run-2","workspace":"web","operation":"apply","state":"planned","created_by":"key:bob",
			 "created_at":"2026-12-06T09:00:00Z","updated_at":"2026-12-06T09:00:01Z","history":[],
			 "plan_result":{"plan":{"add":1,"change":0,"destroy":0}},
			 "policy_changed":%q}`, fmt.Sprintf(changed, "run-2"))
		case "/v1/tenants/contoso/runs/run-1/logs", "/v1/tenants/contoso/runs/run-2/logs":
			_, _ = w.Write([]byte(`{"text":"","offset":0,"next_offset":0,"done":true}`))
		default:
			notFound(w, r)
		}
	})
	srv := fakeServer(t, api)
	ctx, _ := browser(t)
	for _, id := range []string{"run-1", "run-2"} {
		do(t, ctx, 30*time.Second, chromedp.Navigate("about:blank"), chromedp.Navigate(srv.URL+"/ui/#session=k&/t/contoso/runs/"+id), chromedp.WaitVisible(chromedp.ID("policy-changed")))
		notice := eval[string](t, ctx, `document.getElementById('policy-changed').textContent`)
		assert.Contains(t, notice, "This run cannot be approved: the policies changed since run "+id+"'s plan was checked (no-destroy v1 is new, tags is v2, checked at v1)", id)
		assert.Contains(t, notice, "Plan the run again", id)
		assert.Contains(t, eval[string](t, ctx, `document.getElementById('policy-changed-outcome').textContent`), "The policies changed since this plan was checked", id)
		assert.False(t, eval[bool](t, ctx, `!!document.getElementById('approve') || !!document.getElementById('override-approve')`), "%s offers approve or override", id)
		assert.True(t, eval[bool](t, ctx, `!!document.getElementById('cancel')`), "%s: cancel is still offered", id)
		checkAccessibility(t, ctx, "run whose policies changed "+id)
	}
}
