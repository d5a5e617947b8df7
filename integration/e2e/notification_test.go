package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/notify"
)

// webhook is a receiver on loopback: it verifies every request's
// signature and timestamp and answers 500 while failing is set.
type webhook struct {
	t       *testing.T
	secret  atomic.Value // string, once known
	failing atomic.Bool

	mu     sync.Mutex
	status []int          // what it answered, in order
	events []notify.Event // delivered (answered 2xx)
	ids    map[string]int // Bote-Webhook-Id of delivered requests
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	secret, _ := h.secret.Load().(string)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := notify.Verify(secret, r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature), body, time.Now()); err != nil {
		h.t.Errorf("webhook not verified: %v", err)
		h.status = append(h.status, 401)
		w.WriteHeader(401)
		return
	}
	if h.failing.Load() {
		h.status = append(h.status, 500)
		http.Error(w, "not now", 500)
		return
	}
	var ev notify.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		h.t.Errorf("webhook body: %v", err)
	}
	h.status = append(h.status, 200)
	h.events = append(h.events, ev)
	h.ids[r.Header.Get(notify.HeaderID)]++
}

func (h *webhook) delivered(typ notify.EventType, run string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.events {
		if e.Type == typ && e.Run != nil && e.Run.ID == run {
			n++
		}
	}
	return n
}

// TestWebhooksSurviveRestartAndRetry: a webhook added with opsbot (its
// secret printed once) receives a real run's events signed; while it
// answers 500 the opsserver restarts, and the pending delivery is still
// made afterwards, once; the delivery log shows the 500s. Not parallel: it
// restarts the opsserver.
func TestWebhooksSurviveRestartAndRetry(t *testing.T) {
	const ws = "notified"
	h := &webhook{t: t, ids: map[string]int{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	createWorkspace(t, contoso, ws)

	r := expect(t, exitcode.OK, contoso, "notifications", "create", "chat", "--url", srv.URL+"/hook", "-w", ws)
	secret := regexp.MustCompile(`whsec_[A-Za-z0-9_-]+`).FindString(r.Stdout)
	require.NotEmpty(t, secret, r.Stdout)
	h.secret.Store(secret)
	list := expect(t, exitcode.OK, contoso, "notifications", "list", "-o", "json")
	assert.NotContains(t, list.Stdout, secret, "the secret is never shown again")

	h.failing.Store(true)
	r = expect(t, exitcode.Changes, contoso, "plan", "-w", ws, "-d", config(t, "quick"))
	id := runID(t, r)
	require.Eventually(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.status) >= 2
	}, 30*time.Second, 100*time.Millisecond, "two attempts answered 500")

	// The receiver recovers while the server is down, so the delivery that
	// succeeds is one the restarted server found pending in the outbox.
	// --webhook-retry-max 2s keeps its next attempt near however many
	// attempts a loaded machine made before the stop.
	require.NoError(t, plat.StopOpsServer())
	h.failing.Store(false)
	require.NoError(t, plat.StartOpsServer())
	require.Eventually(t, func() bool { return h.delivered(notify.NeedsApproval, id) == 1 }, 60*time.Second, 100*time.Millisecond,
		"the pending delivery is made after the restart")

	expect(t, exitcode.OK, contoso, "apply", id, "--yes")
	require.Eventually(t, func() bool { return h.delivered(notify.Applied, id) == 1 }, 30*time.Second, 100*time.Millisecond)

	d := expect(t, exitcode.OK, contoso, "notifications", "deliveries", "chat")
	assert.Regexp(t, `run\.needs_approval\s+`+id+`\s+delivered\s+\d+\s+500 500 (500 )*200`, d.Stdout)
	assert.Regexp(t, `run\.applied\s+`+id+`\s+delivered\s+1\s+200`, d.Stdout)
	h.mu.Lock()
	defer h.mu.Unlock()
	for hid, n := range h.ids {
		assert.Equal(t, 1, n, "%s delivered more than once", hid)
	}
	for _, e := range h.events {
		assert.Equal(t, ws, string(e.Workspace))
		assert.True(t, strings.HasPrefix(e.ID, id), e.ID)
	}
	expect(t, exitcode.OK, contoso, "notifications", "delete", "chat")
}
