package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/relay/relaytest"
)

// interopNS is the namespace host Microsoft's clients address; their
// scripts send its TLS connections to the test relay (testdata/interop/common.js).
const interopNS = "contoso.servicebus.windows.net"

// TestInteropWithMicrosoftNodeSDK drives our client and test relay against
// Microsoft's own Node clients, hyco-https 1.4.5 and hyco-ws 1.0.5, pinned
// in the repository's package-lock.json (`make deps` installs them): their
// listeners serving our sender over HTTP and WebSocket, and their senders
// reaching our listener, over TLS with the namespace form of their URLs
// and the tokens they make, with bodies across the 64 KiB rendezvous
// boundary, application 401/404/204, and a 10 MB WebSocket echo.
func TestInteropWithMicrosoftNodeSDK(t *testing.T) {
	t.Parallel() // waits on real token lifetimes or processes; touches no package setting
	requireNodeSDK(t)
	s := newRelay(t, relaytest.Options{TLS: true, DNSNames: []string{interopNS}, HybridConnections: []string{"hc", "ws"}})
	s.AddRule("listen", "lk", relaytest.Listen)
	s.AddRule("send", "sk", relaytest.Send)
	ca := filepath.Join(t.TempDir(), "relay-ca.pem")
	require.NoError(t, os.WriteFile(ca, s.CACertPEM(), 0o600))
	_, port, _ := strings.Cut(s.Host, ":")
	env := func(hc, keyName, key string) []string {
		return append(os.Environ(), "NODE_EXTRA_CA_CERTS="+ca, "RELAY_NS="+interopNS, "RELAY_PORT="+port,
			"RELAY_HC="+hc, "RELAY_KEY_NAME="+keyName, "RELAY_KEY="+key)
	}
	sender := func(t *testing.T, hc string) *relay.Sender {
		snd, err := relay.NewSender(relay.SenderConfig{Namespace: s.Namespace(), HybridConnection: hc,
			Credential: relay.NewSASCredential("send", "sk"), TLSConfig: s.ClientTLSConfig()})
		require.NoError(t, err)
		t.Cleanup(snd.CloseIdleConnections)
		return snd
	}

	t.Run("hyco-https listener, Go sender", func(t *testing.T) {
		n := startNode(t, "https_listener.js", env("hc", "listen", "lk"))
		n.waitFor(t, "listening")
		require.Eventually(t, func() bool { return s.ListenerCount("hc") == 1 }, 10*time.Second, 10*time.Millisecond)
		client := &http.Client{Transport: sender(t, "hc"), Timeout: 20 * time.Second}
		do := func(method, path string, body []byte) (*http.Response, []byte) {
			t.Helper()
			req, _ := http.NewRequest(method, "http://ops"+path, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer app")
			resp, err := client.Do(req)
			require.NoError(t, err, "%s %s", method, path)
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			return resp, b
		}
		for _, size := range []int{0, 65535, 65536, 65537, 300000} {
			body := payload(size)
			resp, b := do("POST", "/echo", body)
			require.Equal(t, 200, resp.StatusCode, "size %d: %s", size, b)
			assert.True(t, bytes.Equal(body, b), "size %d echoed", size)
			assert.JSONEq(t, fmt.Sprintf(`{"method":"POST","url":"/hc/echo","len":%d,"host":%q,"authorization":"Bearer app","contentLength":""}`, size, s.Host),
				resp.Header.Get("X-Seen"), "size %d: what the Node app saw", size)
		}
		for _, n := range []int{65536, 65537, 1 << 20} {
			resp, b := do("GET", "/big?n="+strconv.Itoa(n), nil)
			assert.Equal(t, 200, resp.StatusCode)
			assert.Len(t, b, n, "response of %d bytes", n)
		}
		before := s.Stats().EmptyFrames
		for range 2 { // an empty binary frame follows each 204
			resp, _ := do("DELETE", "/status/204", nil)
			assert.Equal(t, 204, resp.StatusCode)
		}
		assert.Eventually(t, func() bool { return s.Stats().EmptyFrames == before+2 }, 5*time.Second, 10*time.Millisecond,
			"hyco-https sent an empty binary frame after each 204")
		for _, code := range []int{401, 404} {
			resp, b := do("GET", "/status/"+strconv.Itoa(code), nil)
			assert.Equal(t, code, resp.StatusCode, "the app's %d is a response, not a relay error", code)
			assert.Equal(t, fmt.Sprintf("app says %d", code), string(b))
			assert.Equal(t, "hyco-https", resp.Header.Get("X-App"), "the listener's own headers come with its error statuses")
		}
		resp, _ := do("GET", "/echo", nil)
		assert.Equal(t, 200, resp.StatusCode, "the control channel is still up")
		n.noErrors(t)
	})

	t.Run("hyco-ws listener, Go sender", func(t *testing.T) {
		n := startNode(t, "ws_listener.js", env("ws", "listen", "lk"))
		n.waitFor(t, "listening")
		require.Eventually(t, func() bool { return s.ListenerCount("ws") == 1 }, 10*time.Second, 10*time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ws, err := sender(t, "ws").DialWebSocket(ctx, "/chat", http.Header{"Sec-WebSocket-Protocol": {"chat.v1, chat.v2"}})
		require.NoError(t, err)
		defer ws.CloseNow()
		assert.Equal(t, "chat.v1", ws.Subprotocol(), "hyco-ws accepts the first offered subprotocol")
		assert.Equal(t, "chat.v1", n.waitFor(t, "accepted")["protocol"])
		big := payload(10 << 20)
		require.NoError(t, ws.Write(ctx, websocket.MessageBinary, big))
		typ, got, err := ws.Read(ctx)
		require.NoError(t, err)
		assert.Equal(t, websocket.MessageBinary, typ)
		assert.True(t, bytes.Equal(big, got), "10 MB echoed unchanged (%d bytes back)", len(got))
		require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte("hello")))
		typ, got, err = ws.Read(ctx)
		require.NoError(t, err)
		assert.Equal(t, websocket.MessageText, typ)
		assert.Equal(t, "hello", string(got))
		_ = ws.Close(websocket.StatusNormalClosure, "")
		n.noErrors(t)
	})

	t.Run("hyco-https and hyco-ws senders, Go listeners", func(t *testing.T) {
		mux := http.NewServeMux()
		mux.HandleFunc("/v1/echo", func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			seen, _ := json.Marshal(map[string]any{"path": r.URL.String(), "len": len(b), "contentLength": r.ContentLength, "authorization": r.Header.Get("Authorization")})
			w.Header().Set("X-Seen", string(seen))
			_, _ = w.Write(b)
		})
		mux.HandleFunc("/v1/status/{code}", func(w http.ResponseWriter, r *http.Request) {
			code, _ := strconv.Atoi(r.PathValue("code"))
			http.Error(w, "go app says "+r.PathValue("code"), code)
		})
		cfg := relay.ListenerConfig{Namespace: s.Namespace(), HybridConnection: "hc", Credential: relay.NewSASCredential("listen", "lk"),
			TLSConfig: s.ClientTLSConfig(), Logger: testLogger(t)}
		serve(t, cfg, mux)
		wcfg := cfg
		wcfg.HybridConnection, wcfg.Subprotocols = "ws", []string{"opsbot.v1"}
		wl, err := relay.Listen(context.Background(), wcfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = wl.Close() })
		go func() {
			for {
				c, err := wl.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
			}
		}()

		n := startNode(t, "senders.js", append(env("hc", "send", "sk"), "RELAY_WS_HC=ws"))
		results := map[string]map[string]any{}
		for r := n.next(t, 60*time.Second); r["name"] != "done"; r = n.next(t, 60*time.Second) {
			require.Nil(t, r["error"], "%v", r)
			results[r["name"].(string)] = r
		}
		sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
		for _, size := range []int{0, 65535, 65536, 65537, 300000} {
			r := results["query "+strconv.Itoa(size)]
			require.NotNil(t, r, "size %d", size)
			assert.EqualValues(t, 200, r["status"], "size %d", size)
			assert.Equal(t, sum(bytes.Repeat([]byte("x"), size)), r["sum"], "size %d echoed", size)
			wantLen := int64(size)
			if size > 64<<10 {
				wantLen = -1 // streamed over a rendezvous: no length, as on Azure
			}
			assert.JSONEq(t, fmt.Sprintf(`{"path":"/v1/echo?size=%d","len":%d,"contentLength":%d,"authorization":"Bearer app"}`, size, size, wantLen),
				r["seen"].(string), "size %d: token from the query, the app's Authorization untouched", size)
			assert.Contains(t, r["via"], interopNS, "the relay marks the listener's response")
		}
		r := results["header 100000"]
		assert.EqualValues(t, 200, r["status"])
		assert.Contains(t, r["seen"], `"authorization":"Bearer app"`)
		assert.EqualValues(t, 401, results["app 401"]["status"])
		assert.EqualValues(t, 404, results["app 404"]["status"])
		r = results["relayedConnect 10MB"]
		assert.EqualValues(t, 10<<20, r["len"])
		assert.Equal(t, true, r["same"])
		assert.Equal(t, "opsbot.v1", results["subprotocol"]["protocol"], "a client that asks for a subprotocol gets it")
		assert.Equal(t, true, results["subprotocol"]["same"])
	})
}

// requireNodeSDK fails the test, with how to fix it, unless node and the
// pinned Microsoft clients are installed.
func requireNodeSDK(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: install Node.js 20+ and run `make deps` in the repository root")
	}
	dir, _ := os.Getwd()
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err == nil {
			break
		}
	}
	for _, m := range []string{"hyco-https", "hyco-ws"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", m, "package.json")); err != nil {
			t.Fatalf("%s is not installed in %s/node_modules: run `make deps` (npm ci) in the repository root", m, dir)
		}
	}
}

// nodeProc is a running interop script; it reports one JSON object a line.
type nodeProc struct {
	lines chan map[string]any
	mu    sync.Mutex
	out   bytes.Buffer // everything it printed, for failures
}

func startNode(t *testing.T, script string, env []string) *nodeProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", filepath.Join("testdata", "interop", script))
	cmd.Env = env
	n := &nodeProc{lines: make(chan map[string]any, 64)}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = lockedWriter{&n.mu, &n.out}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			n.mu.Lock()
			n.out.Write(sc.Bytes())
			n.out.WriteByte('\n')
			n.mu.Unlock()
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				n.lines <- m
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			n.mu.Lock()
			t.Logf("%s output:\n%s", script, n.out.String())
			n.mu.Unlock()
		}
	})
	return n
}

func (n *nodeProc) next(t *testing.T, within time.Duration) map[string]any {
	t.Helper()
	select {
	case m := <-n.lines:
		return m
	case <-time.After(within):
		t.Fatalf("the Node script reported nothing within %s", within)
		return nil
	}
}

// waitFor returns the next report of event, failing on an error report.
func (n *nodeProc) waitFor(t *testing.T, event string) map[string]any {
	t.Helper()
	for {
		m := n.next(t, 20*time.Second)
		require.NotEqual(t, "error", m["event"], "%v", m)
		if m["event"] == event {
			return m
		}
	}
}

// noErrors checks that the script reported no error so far.
func (n *nodeProc) noErrors(t *testing.T) {
	t.Helper()
	for {
		select {
		case m := <-n.lines:
			assert.NotEqual(t, "error", m["event"], "%v", m)
		default:
			return
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
