package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/procs"
)

// chromiumPath is Debian's chromium (make deps installs it), or
// $BOTE_CHROMIUM.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BOTE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: `make deps` installs Debian's chromium package (apt-get install chromium), or set BOTE_CHROMIUM to a Chromium binary")
	return ""
}

// browser starts a headless Chromium for the test and returns the context
// of its first tab; more tabs (other principals) come from tab.
func browser(t *testing.T) (ctx context.Context, tab func() context.Context) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("lang", "en-US"),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	first, cancelFirst := chromedp.NewContext(alloc)
	t.Cleanup(cancelFirst)
	started := false
	tab = func() context.Context {
		ctx := first
		if started { // further tabs: a browser context of their own (no shared storage)
			var cancel context.CancelFunc
			ctx, cancel = chromedp.NewContext(first, chromedp.WithNewBrowserContext())
			t.Cleanup(cancel)
		}
		started = true
		// The tab's first Run starts the browser; no timeout on it (chromedp.Run).
		_, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Europe/Berlin"})
		require.NoError(t, err)
		_, err = chromedp.Call(ctx, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true}) // to inject axe-core
		require.NoError(t, err)
		return ctx
	}
	return tab(), tab
}

// do runs steps with a deadline.
func do(t *testing.T, ctx context.Context, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("location.href + '\\n' + document.body.innerText"))
		t.Fatalf("%v; the page says:\n%s", err, body)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) into T.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	require.NoError(t, err, expr)
	return v
}

// waitJS waits until a JavaScript condition is true.
func waitJS(t *testing.T, ctx context.Context, d time.Duration, cond string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body.innerText"))
			t.Fatalf("timed out waiting for %s (last error %v); the page says:\n%s", cond, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// artifacts is where the screenshots go: $BOTE_ARTIFACTS_DIR/console, or a
// directory under the system's temporary directory that the test prints
// and leaves behind.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BOTE_ARTIFACTS_DIR")
	if dir == "" {
		root, err := os.MkdirTemp("", "bote-console-")
		require.NoError(t, err)
		dir = root
	}
	dir = filepath.Join(dir, "console")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	t.Logf("screenshots in %s", dir)
	return dir
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// axeViolation is the part of an axe-core result the test reports.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []string `json:"target"`
	} `json:"nodes"`
}

// axeSource is axe-core's script (node_modules, from package-lock.json).
func axeSource(t *testing.T) string {
	t.Helper()
	root, err := procs.RepoRoot()
	require.NoError(t, err)
	src, err := os.ReadFile(filepath.Join(root, "node_modules", "axe-core", "axe.min.js"))
	require.NoError(t, err, "axe-core is installed by `make deps` (npm ci)")
	return string(src)
}

// axeRun runs axe-core on the page (injecting it first) and lists its violations.
const axeRun = `(typeof axe === 'undefined' ? Promise.reject(new Error('no axe')) : axe.run(document, {resultTypes: ['violations']}))
  .then(r => r.violations.map(v => ({id: v.id, impact: v.impact || '', help: v.help, nodes: v.nodes.map(n => ({target: n.target.map(String)}))})))`

// serious lists the serious and critical violations, with where they are.
func serious(vs []axeViolation) []string {
	var bad []string
	for _, v := range vs {
		if v.Impact == "serious" || v.Impact == "critical" {
			var where []string
			for _, n := range v.Nodes {
				where = append(where, strings.Join(n.Target, " "))
			}
			bad = append(bad, fmt.Sprintf("%s (%s): %s at %s", v.ID, v.Impact, v.Help, strings.Join(where, "; ")))
		}
	}
	return bad
}

// checkAccessibility runs axe-core on the page in the light and the dark
// theme and fails on any serious or critical violation.
func checkAccessibility(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	if !eval[bool](t, ctx, "typeof axe !== 'undefined'") {
		eval[bool](t, ctx, axeSource(t)+";true")
	}
	for _, scheme := range []string{"light", "dark"} {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		require.NoError(t, err)
		require.Empty(t, serious(eval[[]axeViolation](t, ctx, axeRun)), "axe-core on the %s page, %s theme", page, scheme)
	}
	_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{})
	require.NoError(t, err)
}
