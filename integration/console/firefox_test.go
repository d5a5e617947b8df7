package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/procs"
)

// firefox is Debian's firefox-esr driven over WebDriver BiDi, the W3C
// protocol Firefox speaks natively (no geckodriver, no patched build):
// just what the test needs, navigate and evaluate.
type firefox struct {
	ws      *websocket.Conn
	context string // the browsing context (tab)
	next    atomic.Int64
	mu      sync.Mutex
	waiting map[int64]chan json.RawMessage
}

var bidiListening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// startFirefox starts a headless Firefox with a fresh profile, or skips
// the test when there is none (BOTE_FIREFOX names a binary).
func startFirefox(t *testing.T) *firefox {
	t.Helper()
	path := os.Getenv("BOTE_FIREFOX")
	if path == "" {
		for _, name := range []string{"firefox-esr", "firefox"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		t.Skip("no Firefox on PATH (apt-get install firefox-esr, or set BOTE_FIREFOX): the console is checked in Chromium only")
	}
	proc, err := procs.Launch(procs.Spec{Name: "firefox", Path: path, StopGrace: 5 * time.Second, Env: []string{"MOZ_CRASHREPORTER_DISABLE=1"},
		Args: []string{"--headless", "--no-remote", "--profile", t.TempDir(), "--remote-debugging-port=0", "about:blank"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = proc.Stop() })
	line, err := proc.WaitOutput("WebDriver BiDi listening on ", 60*time.Second)
	require.NoError(t, err, proc.Output())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, bidiListening.FindStringSubmatch(line)[1]+"/session", nil)
	require.NoError(t, err)
	ws.SetReadLimit(64 << 20)
	f := &firefox{ws: ws, waiting: map[int64]chan json.RawMessage{}}
	go f.read()
	t.Cleanup(func() { ws.Close(websocket.StatusNormalClosure, "") })
	_, err = f.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}})
	require.NoError(t, err)
	tree, err := f.call(ctx, "browsingContext.getTree", map[string]any{})
	require.NoError(t, err)
	var contexts struct {
		Contexts []struct{ Context string } `json:"contexts"`
	}
	require.NoError(t, json.Unmarshal(tree, &contexts))
	require.NotEmpty(t, contexts.Contexts)
	f.context = contexts.Contexts[0].Context
	return f
}

func (f *firefox) read() {
	for {
		_, data, err := f.ws.Read(context.Background())
		if err != nil {
			return
		}
		var msg struct {
			ID *int64 `json:"id"`
		}
		if json.Unmarshal(data, &msg) != nil || msg.ID == nil {
			continue // an event
		}
		f.mu.Lock()
		ch := f.waiting[*msg.ID]
		delete(f.waiting, *msg.ID)
		f.mu.Unlock()
		if ch != nil {
			ch <- data
		}
	}
}

// call sends a BiDi command and returns its result.
func (f *firefox) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	id := f.next.Add(1)
	ch := make(chan json.RawMessage, 1)
	f.mu.Lock()
	f.waiting[id] = ch
	f.mu.Unlock()
	req, _ := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err := f.ws.Write(ctx, websocket.MessageText, req); err != nil {
		return nil, err
	}
	select {
	case data := <-ch:
		var resp struct {
			Type    string          `json:"type"`
			Result  json.RawMessage `json:"result"`
			Error   string          `json:"error"`
			Message string          `json:"message"`
		}
		if err := json.Unmarshal(data, &resp); err != nil {
			return nil, err
		}
		if resp.Type == "error" {
			return nil, fmt.Errorf("%s: %s: %s", method, resp.Error, resp.Message)
		}
		return resp.Result, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *firefox) navigate(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := f.call(ctx, "browsingContext.navigate", map[string]any{"context": f.context, "url": url, "wait": "complete"})
	require.NoError(t, err)
}

// run evaluates a script (such as a library to inject) for its effect.
func (f *firefox) run(ctx context.Context, script string) error {
	res, err := f.call(ctx, "script.evaluate", map[string]any{"expression": script, "awaitPromise": false,
		"target": map[string]any{"context": f.context}})
	if err != nil {
		return err
	}
	var r struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return err
	}
	if r.Type == "exception" {
		return fmt.Errorf("the script threw: %s", res)
	}
	return nil
}

// eval evaluates expr (awaiting a promise) and decodes its JSON.stringify'd value into out.
func (f *firefox) eval(ctx context.Context, expr string, out any) error {
	res, err := f.call(ctx, "script.evaluate", map[string]any{
		"expression": "(async () => JSON.stringify(await (" + expr + ")))()", "awaitPromise": true,
		"target": map[string]any{"context": f.context}})
	if err != nil {
		return err
	}
	var r struct {
		Type             string `json:"type"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
		Result struct {
			Value string `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return err
	}
	if r.Type == "exception" {
		return errors.New(r.ExceptionDetails.Text)
	}
	return json.Unmarshal([]byte(r.Result.Value), out)
}

func (f *firefox) waitJS(t *testing.T, d time.Duration, cond string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var ok bool
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := f.eval(ctx, "!!("+cond+")", &ok)
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			var body string
			_ = f.eval(context.Background(), "document.body.innerText", &body)
			t.Fatalf("Firefox: timed out waiting for %s (last error %v); the page says:\n%s", cond, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ffEval[T any](t *testing.T, f *firefox, expr string) T {
	t.Helper()
	var v T
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, f.eval(ctx, expr, &v), expr)
	return v
}

// screenshot saves the tab's viewport as name.png in dir.
func (f *firefox) screenshot(t *testing.T, dir, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := f.call(ctx, "browsingContext.captureScreenshot", map[string]any{"context": f.context, "origin": "document"})
	require.NoError(t, err)
	var shot struct {
		Data []byte `json:"data"` // base64 in the JSON
	}
	require.NoError(t, json.Unmarshal(res, &shot))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), shot.Data, 0o644))
}
