package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
)

// deleteHolder is a reverse proxy in front of Azurite's queue service that,
// when armed for a queue, holds every message delete on it until the client
// goes away: a connector whose delete never completes, as when it crashes
// right after its handler succeeded.
type deleteHolder struct {
	srv   *httptest.Server
	queue atomic.Value // string: the queue whose deletes are held ("" none)
	held  chan struct{}
}

func newDeleteHolder(t *testing.T, emu *azurite.Emulator) *deleteHolder {
	t.Helper()
	target, err := url.Parse(emu.QueueURL)
	require.NoError(t, err)
	target.Path = ""
	h := &deleteHolder{held: make(chan struct{}, 10)}
	h.queue.Store("")
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := h.queue.Load().(string); q != "" && r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/"+q+"/messages/") {
			h.held <- struct{}{}
			<-r.Context().Done()
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// connectionString is emu's with the queue endpoint behind the proxy.
func (h *deleteHolder) connectionString(emu *azurite.Emulator) string {
	return strings.Replace(emu.ConnectionString, "QueueEndpoint="+emu.QueueURL, "QueueEndpoint="+h.srv.URL+"/"+emu.AccountName, 1)
}

// TestSidecarCrashAfterHandlingWithDurableDedup: the sidecar is killed
// (SIGKILL) after the local program handled a message and before the
// message was deleted. Restarted, it gets the message again once its
// visibility timeout passes: with --dedup-file the program sees it once,
// without it twice (so the test can tell the two apart).
func TestSidecarCrashAfterHandlingWithDurableDedup(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		dedup bool
		want  int
	}{{"dedup on", true, 1}, {"dedup off", false, 2}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // a gateway and storage account each
			g := newGateway(t)
			holder := newDeleteHolder(t, g.emu)
			// The sidecar's queue URL comes from this gateway replica, so its
			// deletes go through the proxy.
			w := g.startReplica("--storage-connection-string", holder.connectionString(g.emu))
			svc := g.cloud("crash", nil)
			extra := []string{"--visibility", "2s", "--safety-poll", "1s"}
			if tt.dedup {
				extra = append(extra, "--dedup-file", filepath.Join(g.dir, "a2-seen"))
			}
			sc := g.sidecarAt(w, "tenant-a", "a2", extra...)
			q, err := queuename.For(ids.ConnectorID{Tenant: "tenant-a", Connector: "a2"})
			require.NoError(t, err)
			holder.queue.Store(q)

			id, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a2", botecloud.OutMessage{Body: []byte("once")})
			require.NoError(t, err)
			select {
			case h := <-sc.arrived:
				require.Equal(t, id, h.Get(envelope.HeaderMessageID))
			case <-time.After(20 * time.Second):
				t.Fatal("the program got nothing")
			}
			select {
			case <-holder.held: // handled; the delete is in flight
			case <-time.After(10 * time.Second):
				t.Fatal("the sidecar never deleted the message")
			}
			sc.Proc.Kill()
			holder.queue.Store("")

			sc.start(t)
			require.Eventually(t, func() bool { return storedMessages(t, g, q) == 0 },
				30*time.Second, 200*time.Millisecond, "the restarted sidecar settles the redelivered message")
			time.Sleep(500 * time.Millisecond)
			n := 0
			for _, h := range sc.all() {
				if h.Get(envelope.HeaderMessageID) == id {
					n++
				}
			}
			assert.Equal(t, tt.want, n, "deliveries of %s to the local program", id)
			if tt.dedup {
				_, err := sc.Proc.WaitOutput("already handled; deleting duplicate", time.Second)
				assert.NoError(t, err, "the message came back and was recognised")
			}
		})
	}
}
