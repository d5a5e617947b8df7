package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/console"
	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/tfarchive"
)

func (a *app) uiCommand() *cobra.Command {
	var listen string
	var open bool
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Serve the web console on this machine, talking to the ops server as you",
		Long: `Serve the web console on a loopback port of this machine. The browser's API
calls go to the ops server through the relay (or --local-url) with your own
credential and profile, as every other opsbot command: nothing listens on the
server, and the console can do exactly what you may.

The URL printed carries a session secret made for this run: only a browser
given it is served, and it stops working when opsbot ui ends (Ctrl-C).
--open opens it in the browser ($BROWSER, else the system's).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return a.serveUI(cmd.Context(), c, listen, open)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "loopback address to serve the console on (port 0: any free port)")
	cmd.Flags().BoolVar(&open, "open", false, "open the console in the browser")
	return cmd
}

// serveUI serves the console and the forwarding proxy until ctx ends.
func (a *app) serveUI(ctx context.Context, c *opsclient.Client, listen string, open bool) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return usageError{fmt.Errorf("--listen %q: %w", listen, err)}
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return usageError{fmt.Errorf("--listen %q: the console serves only a loopback address (127.0.0.1, ::1 or localhost)", listen)}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", listen, err)
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	p := &uiProxy{client: c, session: base64.RawURLEncoding.EncodeToString(secret), addr: ln.Addr().String(), target: a.target, redact: a.redact.Redact}
	ui, err := console.New(console.Config{API: p})
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: p.guard(ui), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.NewTextHandler(a.stderr, nil), slog.LevelWarn)}
	url := fmt.Sprintf("http://%s%s#session=%s", ln.Addr(), console.Prefix, p.session)
	fmt.Fprintf(a.stdout, "The console is at %s\n(Ctrl-C stops it; the link stops working then)\n", url)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if open {
		defer a.openConsole(url, p.addr)()
	}
	select {
	case err := <-done:
		return fmt.Errorf("the console server stopped: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// uiProxy forwards the console's API calls to the ops server with the
// operator's credential, for a browser holding the session secret.
type uiProxy struct {
	client  *opsclient.Client
	session string
	addr    string // host:port served; other Host headers are refused
	target  target
	redact  func(string) string // hides the configuration's secrets in messages
}

// guard serves the console under /ui/ and the API under /v1/ to requests
// naming this address as their Host (a page of another site that made a
// name resolve to 127.0.0.1 is refused: DNS rebinding).
func (p *uiProxy) guard(ui http.Handler) http.Handler {
	_, port, _ := net.SplitHostPort(p.addr)
	allowed := map[string]bool{p.addr: true, "localhost:" + port: true}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !allowed[r.Host]:
			uiError(w, http.StatusMisdirectedRequest, opsapitypes.CodeBadRequest, "this console answers only at http://"+p.addr)
		case strings.HasPrefix(r.URL.Path, "/v1/"):
			p.ServeHTTP(w, r)
		case r.URL.Path == "/":
			http.Redirect(w, r, console.Prefix, http.StatusFound)
		default:
			ui.ServeHTTP(w, r)
		}
	})
}

func (p *uiProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+p.session)) != 1 {
		uiError(w, http.StatusUnauthorized, opsapitypes.CodeUnauthorized, "this console session is not valid: open the URL opsbot ui printed")
		return
	}
	if r.Header.Get("Upgrade") != "" {
		uiError(w, http.StatusNotImplemented, opsapitypes.CodeBadRequest, "opsbot ui forwards no WebSockets")
		return
	}
	if r.ContentLength > tfarchive.BundleLimits.MaxBytes { // said before it is sent
		uiError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the request is over %d bytes", tfarchive.BundleLimits.MaxBytes))
		return
	}
	var body io.Reader
	if r.ContentLength != 0 && r.Body != nil {
		// Whole, so that the relay sends it with its length; bounded by the largest bundle.
		data, err := io.ReadAll(io.LimitReader(r.Body, tfarchive.BundleLimits.MaxBytes+1))
		if err != nil {
			uiError(w, http.StatusBadRequest, opsapitypes.CodeBadRequest, "cannot read the request: "+err.Error())
			return
		}
		if int64(len(data)) > tfarchive.BundleLimits.MaxBytes {
			uiError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the request is over %d bytes", tfarchive.BundleLimits.MaxBytes))
			return
		}
		body = bytes.NewReader(data)
	}
	resp, err := p.client.Forward(r.Context(), r.Method, r.URL.EscapedPath(), r.URL.RawQuery, body, r.Header.Get("Content-Type"))
	if errors.Is(err, opsclient.ErrNotAPICall) {
		uiError(w, http.StatusBadRequest, opsapitypes.CodeBadRequest, err.Error())
		return
	}
	if err != nil {
		_, msg := explain(err, p.target)
		status := http.StatusBadGateway
		if errors.Is(err, context.DeadlineExceeded) {
			status = http.StatusGatewayTimeout
		}
		uiError(w, status, opsapitypes.CodeUnavailable, p.redact(msg))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		// The server refused opsbot's credential, not the browser's session:
		// the page must not take it for a sign-in to redo.
		_, msg := explain(&opsclient.APIError{StatusCode: resp.StatusCode}, p.target)
		uiError(w, http.StatusBadGateway, opsapitypes.CodeUnauthorized, p.redact(msg))
		return
	}
	for _, k := range []string{"Content-Type", "X-Request-Id", "Allow", "Bote-State-Version", "Bote-State-Sha256"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func uiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(opsapitypes.ErrorBody{Error: opsapitypes.ErrorDetail{Code: code, Message: msg}})
}

// openConsole opens url in the browser, or says why it cannot and how
// else to reach addr; the returned func removes what it wrote.
func (a *app) openConsole(url, addr string) (remove func()) {
	remove = func() {}
	err := canOpenBrowser(a.lookup)
	if err == nil {
		var page string
		var rm func()
		if page, rm, err = launchPage(a.lookup, url); err == nil {
			remove = rm
			err = openBrowser(a.lookup, page)
		}
	}
	if err != nil {
		_, port, _ := net.SplitHostPort(addr)
		fmt.Fprintf(a.stderr, "opsbot: warning: cannot open the browser (%v); open the URL above\n"+
			"  (from another machine: ssh -L %s:%s THIS-HOST, the same port on both ends)\n", err, port, addr)
	}
	return remove
}

// launchPage writes a page that sends the browser on to url into a new
// directory only this user can read ($XDG_RUNTIME_DIR, else the temporary
// directory), and returns its file:// URL and what removes it. The browser
// is given that URL, not url: a command line is visible to every user of
// the machine (ps), and the session secret must not be.
func launchPage(lookup func(string) (string, bool), url string) (string, func(), error) {
	base, _ := lookup("XDG_RUNTIME_DIR")
	dir, err := os.MkdirTemp(base, "opsbot-ui-") // mode 0700
	if err != nil && base != "" {
		dir, err = os.MkdirTemp("", "opsbot-ui-")
	}
	if err != nil {
		return "", nil, fmt.Errorf("cannot write the page that opens the console: %w", err)
	}
	remove := func() { _ = os.RemoveAll(dir) }
	u := html.EscapeString(url)
	page := `<!doctype html><meta charset="utf-8"><meta name="referrer" content="no-referrer">` +
		`<meta http-equiv="refresh" content="0;url=` + u + `"><title>opsbot ui</title>` +
		`<p><a href="` + u + `">Open the console</a></p>` + "\n"
	name := filepath.Join(dir, "open.html")
	if err := os.WriteFile(name, []byte(page), 0o600); err != nil {
		remove()
		return "", nil, fmt.Errorf("cannot write the page that opens the console: %w", err)
	}
	path := filepath.ToSlash(name)
	if !strings.HasPrefix(path, "/") { // C:/...
		path = "/" + path
	}
	return (&neturl.URL{Scheme: "file", Path: path}).String(), remove, nil
}

// openWait is how long openBrowser waits for the opener to fail.
const openWait = 2 * time.Second

// canOpenBrowser says why no browser can be opened here: on a Linux or
// BSD box without a display, xdg-open would at best start a text browser
// on opsbot's terminal.
func canOpenBrowser(lookup func(string) (string, bool)) error {
	if _, ok := lookup("BROWSER"); ok || runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		return nil
	}
	_, x := lookup("DISPLAY")
	_, wayland := lookup("WAYLAND_DISPLAY")
	if !x && !wayland {
		return errors.New("no display: DISPLAY and WAYLAND_DISPLAY are unset, and no $BROWSER")
	}
	return nil
}

// openBrowser opens url with $BROWSER, else the system's opener, and
// reports the opener's failure if it fails within openWait (one still
// running then is a browser that stays in the foreground).
func openBrowser(lookup func(string) (string, bool), url string) error {
	var cmd *exec.Cmd
	switch b, ok := lookup("BROWSER"); {
	case ok:
		cmd = exec.Command(b, url)
	case runtime.GOOS == "darwin":
		cmd = exec.Command("open", url)
	case runtime.GOOS == "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("%s: %w", cmd.Path, err)
		}
	case <-time.After(openWait):
	}
	return nil
}
