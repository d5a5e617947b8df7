package console_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/console"
)

// TestConsoleOlderServer: an ops server older than GET /v1/tenants answers
// it 404 (no such endpoint); the tenants page then lists the principal's
// grants instead of failing. No platform: the console in front of a fake API.
func TestConsoleOlderServer(t *testing.T) {
	t.Parallel()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/whoami":
			_, _ = w.Write([]byte(`{"kind":"key","name":"alice","tenants":{"contoso":"reader"}}`))
		case "/v1/agents":
			_, _ = w.Write([]byte(`{"agents":[]}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no such endpoint: ` + r.URL.Path + `"}}`))
		}
	})
	ui, err := console.New(console.Config{API: api})
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, console.Prefix) {
			ui.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ctx, _ := browser(t)
	do(t, ctx, 30*time.Second, chromedp.Navigate(srv.URL+console.Prefix+"#session=k"),
		chromedp.WaitVisible(chromedp.CSS(`a[href="#/t/contoso"]`)))
}
