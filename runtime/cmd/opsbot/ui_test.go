package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/console"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/tfarchive"
)

// uiHandler is opsbot ui's handler in front of the real API, with session
// secret "s3cret" at 127.0.0.1:4000.
func uiHandler(t *testing.T) http.Handler {
	t.Helper()
	url, key := startServer(t)
	return uiHandlerAs(t, url, key)
}

func uiHandlerAs(t *testing.T, url, key string) http.Handler {
	t.Helper()
	c, err := opsclient.New(opsclient.Config{BaseURL: url, Credential: key})
	require.NoError(t, err)
	p := &uiProxy{client: c, session: "s3cret", addr: "127.0.0.1:4000", target: target{host: url, local: true}, redact: func(s string) string { return s }}
	ui, err := console.New(console.Config{API: p})
	require.NoError(t, err)
	return p.guard(ui)
}

func TestUIProxy(t *testing.T) {
	h := uiHandler(t)
	tests := []struct {
		name, method, path, host, auth, body string
		header                               map[string]string
		status                               int
		contains                             string
	}{
		{name: "the API as the operator", path: "/v1/whoami", auth: "Bearer s3cret", status: 200, contains: `"name":"cli-test"`},
		{name: "localhost works too", path: "/v1/whoami", host: "localhost:4000", auth: "Bearer s3cret", status: 200},
		{name: "a body goes through", method: "POST", path: "/v1/keys", auth: "Bearer s3cret", body: `{"id":"from-ui","tenants":{"contoso":"reader"}}`,
			header: map[string]string{"Content-Type": "application/json"}, status: 201, contains: `"key":"obk_from-ui.`},
		{name: "no session", path: "/v1/whoami", status: 401, contains: "open the URL opsbot ui printed"},
		{name: "wrong session", path: "/v1/whoami", auth: "Bearer s3cre", status: 401},
		{name: "the operator's own key is not the session", path: "/v1/whoami", auth: "Bearer obk_cli-test.x", status: 401},
		{name: "another host name (DNS rebinding)", path: "/v1/whoami", host: "evil.example:4000", auth: "Bearer s3cret", status: 421},
		{name: "no WebSockets", path: "/v1/events", auth: "Bearer s3cret", header: map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"}, status: 501},
		{name: "nothing outside /v1 (dot segments)", path: "/v1/../healthz", auth: "Bearer s3cret", status: 400, contains: "a dot segment in an API path"},
		{name: "nothing outside /v1 (escaped dot segments)", path: "/v1/%2e%2e/healthz", auth: "Bearer s3cret", status: 400, contains: "a dot segment in an API path"},
		{name: "the pages need no session", path: "/ui/", status: 200, contains: "<title>bote ops console</title>"},
		{name: "the root goes to the pages", path: "/", status: 302},
		{name: "the API's answer as it is", path: "/v1/tenants/contoso/runs/run-x/plan", auth: "Bearer s3cret", status: 400, contains: `"code":"bad_request"`},
		{name: "rendered plan, API error passed on", path: "/ui/render/tenants/contoso/runs/run-0123456789abcdef/plan", auth: "Bearer s3cret", status: 503, contains: `"code":"unavailable"`},
		{name: "rendered plan, no session", path: "/ui/render/tenants/contoso/runs/run-x/plan", status: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req := httptest.NewRequest(method, tt.path, strings.NewReader(tt.body))
			req.Host = "127.0.0.1:4000"
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, tt.status, rec.Code, rec.Body.String())
			assert.Contains(t, rec.Body.String(), tt.contains)
		})
	}
}

// TestUIRefusesLargeBodies: a body over the largest bundle is refused as
// such, before it is read when its length is said up front.
func TestUIRefusesLargeBodies(t *testing.T) {
	h := uiHandler(t)
	for _, tc := range []struct {
		name   string
		length int64
		body   io.Reader
	}{
		{"said up front, not read", tfarchive.BundleLimits.MaxBytes + 1, iotest.ErrReader(errors.New("the body was read"))},
		{"chunked", -1, io.LimitReader(zeros{}, tfarchive.BundleLimits.MaxBytes+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/v1/tenants/contoso/workspaces/prod/runs", tc.body)
			req.ContentLength = tc.length
			req.Host = "127.0.0.1:4000"
			req.Header.Set("Authorization", "Bearer s3cret")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, rec.Body.String())
			assert.Contains(t, rec.Body.String(), "the request is over 67108864 bytes")
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestUIServerRefusesOpsbot: the server refusing opsbot's own credential
// is no 401 to the page (which would ask to sign in again) but says what
// to check.
func TestUIServerRefusesOpsbot(t *testing.T) {
	url, _ := startServer(t)
	h := uiHandlerAs(t, url, "obk_cli-test.wrong")
	req := httptest.NewRequest(http.MethodGet, "/v1/whoami", nil)
	req.Host = "127.0.0.1:4000"
	req.Header.Set("Authorization", "Bearer s3cret")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusBadGateway, rec.Code)
	assert.Contains(t, rec.Body.String(), "the ops server refused the operator credential: check api_key")
}

func TestUIListensOnlyOnLoopback(t *testing.T) {
	url, key := startServer(t)
	r := runCLI(t, map[string]string{"OPSBOT_LOCAL_URL": url, "OPSBOT_API_KEY": key}, "ui", "--listen", "0.0.0.0:0")
	assert.Equal(t, exitcode.Usage, r.code)
	assert.Contains(t, r.stderr, "the console serves only a loopback address")
}

// TestUIOpen: --open hands $BROWSER a page readable by this user only
// that leads to the URL (the session secret stays out of the browser's
// command line, which every local user can read with ps); the link works
// until opsbot ui ends, and the page is removed then.
func TestUIOpen(t *testing.T) {
	url, key := startServer(t)
	dir := t.TempDir()
	runtimeDir := t.TempDir()
	opened := filepath.Join(dir, "opened")
	browser := filepath.Join(dir, "browser")
	require.NoError(t, os.WriteFile(browser, []byte("#!/bin/sh\necho \"$@\" > "+opened+"\n"), 0o755))
	ctx, cancel := context.WithCancel(context.Background())
	var out syncWriter
	done := make(chan error, 1)
	go func() {
		env := map[string]string{"OPSBOT_LOCAL_URL": url, "OPSBOT_API_KEY": key, "BROWSER": browser, "HOME": dir, "XDG_RUNTIME_DIR": runtimeDir}
		done <- run(ctx, []string{"ui", "--open"}, strings.NewReader(""), &out, &out, func(k string) string { return env[k] })
	}()
	var argv string
	require.Eventually(t, func() bool {
		data, err := os.ReadFile(opened)
		argv = strings.TrimSpace(string(data))
		return err == nil && argv != ""
	}, 10*time.Second, 20*time.Millisecond)
	_, link, ok := strings.Cut(out.String(), "The console is at ")
	require.True(t, ok, out.String())
	link, _, _ = strings.Cut(link, "\n")
	base, session, ok := strings.Cut(link, "#session=")
	require.True(t, ok, link)
	assert.NotContains(t, argv, session, "the session secret is not on the browser's command line")
	page, ok := strings.CutPrefix(argv, "file://")
	require.True(t, ok, argv)
	require.True(t, strings.HasPrefix(page, runtimeDir+"/"), page)
	st, err := os.Stat(page)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	st, err = os.Stat(filepath.Dir(page))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	html, err := os.ReadFile(page)
	require.NoError(t, err)
	assert.Contains(t, string(html), `<meta http-equiv="refresh" content="0;url=`+link+`">`)
	whoami := func() (int, error) {
		req, _ := http.NewRequest(http.MethodGet, strings.TrimSuffix(base, "/ui/")+"/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+session)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	code, err := whoami()
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	cancel()
	require.NoError(t, <-done)
	_, err = whoami()
	assert.Error(t, err, "the console is gone once opsbot ui ends")
	assert.NoFileExists(t, page, "the page holding the secret is removed")
}

type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestUIOpenFails: --open that cannot open a browser says why and how
// else to reach the console (an SSH tunnel with the same port: the Host
// check refuses another), and the console is served all the same.
func TestUIOpenFails(t *testing.T) {
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		t.Skip("always has a display")
	}
	url, key := startServer(t)
	failing := filepath.Join(t.TempDir(), "browser")
	require.NoError(t, os.WriteFile(failing, []byte("#!/bin/sh\nexit 3\n"), 0o755))
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		// xdg-open would at best start a text browser on opsbot's terminal.
		{"no display", map[string]string{}, "cannot open the browser (no display: DISPLAY and WAYLAND_DISPLAY are unset, and no $BROWSER)"},
		{"the opener fails", map[string]string{"BROWSER": failing}, "cannot open the browser (" + failing + ": exit status 3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"OPSBOT_LOCAL_URL": url, "OPSBOT_API_KEY": key, "HOME": t.TempDir(), "XDG_RUNTIME_DIR": t.TempDir()}
			for k, v := range tc.env {
				env[k] = v
			}
			ctx, cancel := context.WithCancel(context.Background())
			var stdout, stderr syncWriter
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, []string{"ui", "--open"}, strings.NewReader(""), &stdout, &stderr, func(k string) string { return env[k] })
			}()
			require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "warning") }, 10*time.Second, 20*time.Millisecond)
			_, link, ok := strings.Cut(stdout.String(), "The console is at ")
			require.True(t, ok)
			base, _, _ := strings.Cut(link, "#")
			_, port, _ := strings.Cut(strings.TrimPrefix(strings.TrimSuffix(base, "/ui/"), "http://"), ":")
			assert.Contains(t, stderr.String(), tc.want)
			assert.Contains(t, stderr.String(), "ssh -L "+port+":127.0.0.1:"+port+" THIS-HOST")
			resp, err := http.Get(base)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, 200, resp.StatusCode, "the console is served all the same")
			cancel()
			require.NoError(t, <-done)
			assert.Empty(t, mustGlob(t, filepath.Join(env["XDG_RUNTIME_DIR"], "*")), "nothing left behind")
		})
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	require.NoError(t, err)
	return m
}
