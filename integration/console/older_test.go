package console_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/console"
)

// TestConsoleOlderServer: an ops server older than GET /v1/tenants answers
// it 404 (no such endpoint); the tenants page then lists the principal's
// grants instead of failing. No platform: the console in front of a fake
// API, and the page under its own Content-Security-Policy.
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
			notFound(w, r)
		}
	})
	srv := fakeServer(t, api)
	ctx, _ := browser(t)
	// This page runs under its Content-Security-Policy (the other tests
	// bypass it to inject axe-core): Trusted Types refuse any string as
	// HTML, and the console works without.
	_, err := chromedp.Call(ctx, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: false})
	require.NoError(t, err)
	do(t, ctx, 30*time.Second, chromedp.Navigate(srv.URL+console.Prefix+"#session=k"),
		chromedp.WaitVisible(chromedp.CSS(`a[href="#/t/contoso"]`)))
	assert.Equal(t, "TypeError", eval[string](t, ctx, `(() => { try { document.body.insertAdjacentHTML('beforeend', '<img src=x>'); return 'allowed' } catch (e) { return e.name } })()`))
	assert.Equal(t, "TypeError", eval[string](t, ctx, `(() => { try { document.createElement('div').innerHTML = '<b>x</b>'; return 'allowed' } catch (e) { return e.name } })()`))
}

// fakeServer serves the console in front of api, a fake ops API.
func fakeServer(t *testing.T, api http.Handler) *httptest.Server {
	t.Helper()
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
	return srv
}

// notFound answers as the ops API does for a path it does not have.
func notFound(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no such endpoint: ` + r.URL.Path + `"}}`))
}
