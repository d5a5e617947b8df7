package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/relay/relaytest"
)

// TestInteropWithMicrosoftNodeSDK checks our client and test relay against
// a second implementation, Microsoft's hyco-https: a Node listener serving
// our Go sender, and Node senders reaching our Go listener. It needs node
// and a node_modules directory made by testdata/interop/setup.sh, named by
// RELAY_INTEROP_NODE_MODULES; without them it is skipped.
func TestInteropWithMicrosoftNodeSDK(t *testing.T) {
	modules := os.Getenv("RELAY_INTEROP_NODE_MODULES")
	if modules == "" {
		t.Skip("set RELAY_INTEROP_NODE_MODULES (see testdata/interop/setup.sh) to run against Microsoft's Node SDK")
	}
	node := func(ctx context.Context, script string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "node", append([]string{"testdata/interop/" + script}, args...)...)
		cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
		return cmd
	}
	s := newRelay(t, relaytest.Options{})
	s.AddRule("listen", "lk", relaytest.Listen)
	s.AddRule("send", "sk", relaytest.Send)

	t.Run("node listener, go sender", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out bytes.Buffer
		cmd := node(ctx, "listener.js", s.Host, "hc", "listen", "lk")
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Start())
		defer func() { cancel(); _ = cmd.Wait(); t.Log(out.String()) }()
		require.Eventually(t, func() bool { return s.ListenerCount("hc") == 1 }, 10*time.Second, 20*time.Millisecond)

		snd, err := relay.NewSender(relay.SenderConfig{Namespace: s.Namespace(), HybridConnection: "hc", Credential: relay.NewSASCredential("send", "sk"), Insecure: true})
		require.NoError(t, err)
		client := &http.Client{Transport: snd, Timeout: 10 * time.Second}
		for _, tt := range []struct {
			method, path string
			body         int
			want         string
		}{
			{"GET", "/hello?x=1", 0, "node got GET /hc/hello?x=1 body=0 auth=Bearer app"},
			{"POST", "/post", 100000, "node got POST /hc/post body=100000 auth=Bearer app"}, // request via rendezvous
			{"GET", "/big", 0, strings.Repeat("y", 200000)},                                 // response via rendezvous
		} {
			req, _ := http.NewRequest(tt.method, "http://ops"+tt.path, bytes.NewReader(make([]byte, tt.body)))
			req.Header.Set("Authorization", "Bearer app")
			resp, err := client.Do(req)
			require.NoError(t, err, tt.path)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, 200, resp.StatusCode, tt.path)
			assert.Equal(t, tt.want, string(b), tt.path)
		}
	})

	t.Run("go listener, node senders", func(t *testing.T) {
		mux := http.NewServeMux()
		mux.HandleFunc("/v1/echo", func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "go %s %s body=%d auth=%s", r.Method, r.URL, len(b), r.Header.Get("Authorization"))
		})
		cfg := listenerConfig(t, s)
		cfg.Credential = relay.NewSASCredential("listen", "lk")
		serve(t, cfg, mux)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := node(ctx, "sender.js", s.Host, "hc", "send", "sk").CombinedOutput()
		require.NoError(t, err, string(out))
		assert.Contains(t, string(out), "http: 200 go POST /v1/echo?y=2 body=150000 auth=Bearer app")
		assert.Contains(t, string(out), "stream: HTTP/1.1 200 OK | go GET /v1/echo?over=stream body=0 auth=")
	})
}
