package console_test

import (
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
