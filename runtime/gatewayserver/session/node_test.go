package session

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/sessionproto"
)

// nodeEvent is one line testdata/node/wsclient.js prints.
type nodeEvent struct {
	Event, Protocol, Type, ID, Code, Data, Message string
	Status                                         int // of a close
}

// The Node `ws` client (the version package-lock.json pins, as a browser
// or a Node connector would speak) is served as our own connector is: a
// message in one frame and one in fragments with a ping between them,
// idle through the gateway's pings (ws answers them), a close echoed.
func TestNodeWSClient(t *testing.T) {
	requireNodeWS(t)
	readModes(t, func(t *testing.T, h *harness) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", filepath.Join("testdata", "node", "wsclient.js"))
		cmd.Env = append(os.Environ(), "URL=ws"+strings.TrimPrefix(h.http.URL, "http")+sessionproto.ConnectPath,
			"PROTO="+sessionproto.Subprotocol, "TOKEN=tok-acme-node")
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			cancel()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("node stderr:\n%s", stderr.String())
			}
		})
		events := make(chan nodeEvent, 256)
		go func() {
			defer close(events)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var e nodeEvent
				if assert.NoError(t, json.Unmarshal(sc.Bytes(), &e), "%s", sc.Text()) {
					events <- e
				}
			}
		}()
		pings := 0
		// next returns the next event other than a ping (counted).
		next := func() nodeEvent {
			t.Helper()
			for e := range events {
				if e.Event == "ping" {
					pings++
					continue
				}
				require.NotEqual(t, "error", e.Event, e.Message)
				return e
			}
			t.Fatal("the Node client ended")
			return nodeEvent{}
		}
		command := func(format string, args ...any) {
			t.Helper()
			_, err := io.WriteString(stdin, fmt.Sprintf(format, args...)+"\n")
			require.NoError(t, err)
		}

		e := next()
		require.Equal(t, "open", e.Event)
		assert.Equal(t, sessionproto.Subprotocol, e.Protocol)
		assert.Equal(t, sessionproto.TypeHello, next().Type)

		command(`{"send":"1","size":100}`)
		assert.Equal(t, nodeEvent{Event: "frame", Type: sessionproto.TypeAck, ID: "1"}, next())
		command(`{"send":"big","size":100000,"fragments":50}`)
		got := map[string]bool{}
		for range 2 {
			e := next()
			got[e.Event+":"+e.Type+e.ID+e.Data] = true
		}
		assert.Equal(t, map[string]bool{"pong:mid": true, "frame:ackbig": true}, got)

		for want := pings + 5; pings < want; { // idle: the gateway pings, ws answers
			e, ok := <-events
			require.True(t, ok, "the Node client ended")
			require.Equal(t, "ping", e.Event, "%+v while idle", e)
			pings++
		}
		command(`{"send":"late","size":100}`)
		assert.Equal(t, nodeEvent{Event: "frame", Type: sessionproto.TypeAck, ID: "late"}, next())

		command(`{"close":1000}`)
		assert.Equal(t, nodeEvent{Event: "close", Status: 1000}, next(), "the gateway echoes the close")
		require.Eventually(t, func() bool { return h.srv.Sessions() == 0 }, 20*time.Second, 10*time.Millisecond)
	}, func(c *Config) { c.PingInterval = 30 * time.Millisecond })
}

// requireNodeWS fails the test, with how to fix it, unless node and the
// ws package (installed by `make deps`) are there.
func requireNodeWS(t *testing.T) {
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
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws", "package.json")); err != nil {
		t.Fatalf("ws is not installed in %s/node_modules: run `make deps` (npm ci) in the repository root", dir)
	}
}
