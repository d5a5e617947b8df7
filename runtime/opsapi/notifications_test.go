package opsapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/notify"
)

func TestNotificationAPI(t *testing.T) {
	f := newRunsFixture(t)
	base := f.srv.URL + "/v1/tenants/contoso/notifications"
	body := []byte(`{"id":"chat","url":"https://hooks.example.com/x","events":["run.needs_approval","run.failed"],"workspace":"prod"}`)
	assert.Equal(t, 403, send(t, http.MethodPost, base, operatorKey, "application/json", body).status, "approvers add webhooks")
	r := send(t, http.MethodPost, base, approverKey, "application/json", body)
	require.Equal(t, 201, r.status, "%s", r.body)
	var created NewNotification
	require.NoError(t, json.Unmarshal(r.body, &created))
	assert.True(t, strings.HasPrefix(created.Secret, "whsec_"))
	assert.Equal(t, []string{"run.needs_approval", "run.failed"}, created.Notification.Events)
	assert.Equal(t, 409, send(t, http.MethodPost, base, approverKey, "application/json", body).status)
	for _, bad := range []string{
		`{"id":"x","url":"ftp://h/x"}`, `{"id":"x","url":"https://h/x","events":["run.exploded"]}`, `{"id":"a b","url":"https://h/x"}`, `{"id":"x","url":"https://h/x","secret":"mine"}`,
		`{"id":"x","url":"https://h/x","workspace":"-bad"}`, // a malformed workspace
	} {
		assert.Equal(t, 400, send(t, http.MethodPost, base, approverKey, "application/json", []byte(bad)).status, bad)
	}

	r = send(t, http.MethodGet, base, readerKey, "", nil)
	require.Equal(t, 200, r.status)
	assert.NotContains(t, string(r.body), created.Secret, "the secret is shown once")
	assert.NotContains(t, string(r.body), "secret")

	require.NoError(t, f.notify.Enqueue(context.Background(), []notify.Delivery{{ID: "e1.chat", Tenant: "contoso", Destination: "chat",
		Event: notify.Event{Type: notify.Failed, Workspace: "prod", Run: &notify.RunInfo{ID: f.planned}}, Created: runsNow, State: notify.Pending, Due: runsNow,
		Tries: 1, Attempts: []notify.Attempt{{At: runsNow, Status: 500, Error: "the webhook answered 500", Duration: 30 * time.Millisecond}}}}))
	assert.Equal(t, 403, send(t, http.MethodGet, base+"/chat/deliveries", readerKey, "", nil).status, "operators read deliveries")
	r = send(t, http.MethodGet, base+"/chat/deliveries", operatorKey, "", nil)
	require.Equal(t, 200, r.status)
	var dl DeliveryList
	require.NoError(t, json.Unmarshal(r.body, &dl))
	require.Len(t, dl.Deliveries, 1)
	assert.Equal(t, 500, dl.Deliveries[0].Attempts[0].Status)
	assert.Equal(t, int64(30), dl.Deliveries[0].Attempts[0].DurationMS)
	assert.Equal(t, f.planned, dl.Deliveries[0].Run)

	log := &fakeAudit{}
	f.s.cfg.Audit = log
	require.Equal(t, 201, send(t, http.MethodPost, base, approverKey, "application/json", []byte(`{"id":"tok","url":"https://h.example.com/x?token=s3cr3t"}`)).status)
	recs := log.take()
	require.NotEmpty(t, recs)
	assert.Contains(t, recs[len(recs)-1].Detail, "notification tok to https://h.example.com/x")
	assert.NotContains(t, recs[len(recs)-1].Detail, "s3cr3t", "a token in the URL's query is not audited")
	r = send(t, http.MethodGet, base, readerKey, "", nil)
	require.Equal(t, 200, r.status)
	assert.NotContains(t, string(r.body), "s3cr3t", "nor listed")
	assert.Contains(t, string(r.body), `"url":"https://h.example.com/x?…"`)

	assert.Equal(t, 200, send(t, http.MethodDelete, base+"/chat", approverKey, "", nil).status)
	assert.Equal(t, 404, send(t, http.MethodDelete, base+"/chat", approverKey, "", nil).status)
}

// provokeNotifications makes a notification route answer with code, for
// the OpenAPI shape test.
func provokeNotifications(t *testing.T, method, path, code string) ([]byte, bool) {
	t.Helper()
	f := newRunsFixture(t)
	require.NoError(t, f.notify.AddDestination(context.Background(), notify.Destination{Tenant: "contoso", ID: "hook", URL: "https://h/x", Secret: "s", CreatedAt: runsNow}))
	require.NoError(t, f.notify.Enqueue(context.Background(), []notify.Delivery{{ID: "e.hook", Tenant: "contoso", Destination: "hook", Created: runsNow, State: notify.Pending, Due: runsNow,
		Event: notify.Event{Type: notify.Applied, Workspace: "prod"}, Attempts: []notify.Attempt{{At: runsNow, Status: 500, Error: "x"}}, Tries: 1}}))
	url := f.srv.URL + strings.NewReplacer("{tenant}", "contoso", "{notification}", "hook").Replace(path)
	ok := []byte(`{"id":"new","url":"https://h/y"}`)
	switch {
	case code == "409":
		ok = []byte(`{"id":"hook","url":"https://h/y"}`)
	case code == "400" && method == http.MethodGet:
		url += "?limit=0"
	}
	return provokeRoute(t, f, method, url, code, ok, []byte(`{"id":"new","url":"ftp://h/y"}`))
}
