package console_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"

	"github.com/botehq/platform/runtime/console"
)

// driftList is GET /v1/tenants/contoso/drift with a drifted workspace (an
// attribute whose value looks like markup), a clean one, and one cleared
// by an apply; "idle" has no record.
const driftList = `{"workspaces":[
 {"tenant":"contoso","workspace":"web","status":"drifted","checked_at":"2026-12-06T09:00:00Z","check_run":"run-drift1",
  "schedule":{"every":"6h0m0s"},"next_check":"2026-12-06T15:00:00Z","more_resources":2,
  "resources":[{"address":"azurerm_storage_account.logs","type":"azurerm_storage_account","actions":["update"],
   "attributes":[{"name":"min_tls_version","before":"TLS1_2","after":"TLS1_0"},{"name":"tags","before":{"owner":"web"},"after":{"owner":"<img src=x onerror=alert(1)>"}}]}]},
 {"tenant":"contoso","workspace":"db","status":"clean","checked_at":"2026-12-06T08:00:00Z","schedule":{"cron":"0 3 * * *"}},
 {"tenant":"contoso","workspace":"api","status":"unknown","cleared":"run-apply7","last_error":"the check's plan failed"}]}`

// TestConsoleDrift: the tenant page shows each workspace's drift as the
// drift API has it: what drifted (addresses, attributes before and after,
// as text), when it was checked and by which run, the schedule and the
// next check. No platform: the console in front of a fake API (making a
// real drift takes a check run; integration/drift covers that).
func TestConsoleDrift(t *testing.T) {
	t.Parallel()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/whoami":
			_, _ = w.Write([]byte(`{"kind":"key","name":"alice","tenants":{"contoso":"reader"}}`))
		case "/v1/agents":
			_, _ = w.Write([]byte(`{"agents":[]}`))
		case "/v1/tenants/contoso/workspaces":
			_, _ = w.Write([]byte(`{"workspaces":[{"name":"api"},{"name":"db"},{"name":"idle"},{"name":"web"}]}`))
		case "/v1/tenants/contoso/runs":
			_, _ = w.Write([]byte(`{"runs":[]}`))
		case "/v1/tenants/contoso/drift":
			_, _ = w.Write([]byte(driftList))
		default:
			notFound(w, r)
		}
	})
	srv := fakeServer(t, api)
	ctx, _ := browser(t)
	do(t, ctx, 30*time.Second, chromedp.Navigate(srv.URL+console.Prefix+"#session=k&/t/contoso"),
		chromedp.WaitVisible(chromedp.ID("workspace-drift")))
	row := func(ws string) string {
		return eval[string](t, ctx, `[...document.querySelectorAll('#workspace-drift tr')].find(tr => tr.cells[0].textContent === '`+ws+`').textContent`)
	}
	web := row("web")
	for _, want := range []string{"drifted", "run-drift1", "every 6h0m0s", "azurerm_storage_account.logs (update)",
		`min_tls_version: "TLS1_2" → "TLS1_0"`, `tags: {"owner":"web"} → {"owner":"<img src=x onerror=alert(1)>"}`, "and 2 more"} {
		assert.Contains(t, web, want)
	}
	assert.False(t, eval[bool](t, ctx, `!!document.querySelector('#workspace-drift img')`), "a value is text, never markup")
	assert.Equal(t, "#/t/contoso/runs/run-drift1", eval[string](t, ctx, `document.querySelector('#workspace-drift a').getAttribute('href')`), "the check run is linked")
	assert.Contains(t, row("db"), "no drift")
	assert.Contains(t, row("db"), "cron 0 3 * * * (UTC)")
	assert.Contains(t, row("api"), "unknown (cleared by run-apply7)")
	assert.Contains(t, row("api"), "last check failed: the check's plan failed")
	assert.Contains(t, row("idle"), "not checked yet")
	assert.Contains(t, row("idle"), "no schedule")
	checkAccessibility(t, ctx, "tenant drift")
}
