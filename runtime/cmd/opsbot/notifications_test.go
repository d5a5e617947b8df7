package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
)

func (f *fakeRuns) Notifications(context.Context, string) ([]opsapi.Notification, error) {
	var out []opsapi.Notification
	for _, w := range f.webhooks {
		out = append(out, opsapi.Notification{ID: w.ID, URL: w.URL, Workspace: w.Workspace, Events: w.Events})
	}
	return out, nil
}

func (f *fakeRuns) CreateNotification(_ context.Context, tenant string, req opsapi.CreateNotificationRequest) (*opsapi.NewNotification, error) {
	f.webhooks = append(f.webhooks, req)
	return &opsapi.NewNotification{Notification: opsapi.Notification{Tenant: tenant, ID: req.ID, URL: req.URL}, Secret: "whsec_test"}, nil
}

func (f *fakeRuns) DeleteNotification(_ context.Context, _, id string) (*opsapi.Notification, error) {
	return &opsapi.Notification{ID: id}, nil
}

func (f *fakeRuns) Deliveries(context.Context, string, string, int) ([]opsapi.Delivery, error) {
	return f.deliveries, nil
}

func TestNotificationsCommands(t *testing.T) {
	f := newFakeRuns()
	c := cli{t: t, api: f}
	r := c.run("notifications", "create", "chat", "--url", "https://hooks.example.com/x", "-w", "prod", "--event", "run.failed,run.applied")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "Signing secret (shown once, keep it with the receiver):\n\n  whsec_test\n")
	require.Len(t, f.webhooks, 1)
	assert.Equal(t, []string{"run.failed", "run.applied"}, f.webhooks[0].Events)
	assert.Equal(t, exitcode.Usage, c.run("notifications", "create", "chat").code, "--url is required")

	r = c.run("notifications", "list")
	assert.Regexp(t, `chat\s+https://hooks.example.com/x\s+prod\s+run.failed,run.applied`, r.stdout)

	at := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	next := at.Add(time.Minute)
	f.deliveries = []opsapi.Delivery{
		{ID: "e2.chat", EventType: "run.failed", Run: "run-2", Created: at, State: "pending", NextAttempt: &next, Tries: 2,
			Attempts: []opsapi.DeliveryAttempt{{Status: 500}, {Status: 0, Error: "dial tcp: connection refused"}}},
		{ID: "e1.chat", EventType: "run.applied", Run: "run-1", Created: at, State: "delivered", Tries: 1, Attempts: []opsapi.DeliveryAttempt{{Status: 204}}},
	}
	r = c.run("notifications", "deliveries", "chat")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Regexp(t, `run.failed\s+run-2\s+pending \(next 2026-12-06T09:01:00Z\)\s+2\s+500 error`, r.stdout)
	assert.Regexp(t, `run.applied\s+run-1\s+delivered\s+1\s+204`, r.stdout)
	assert.Contains(t, r.stdout, "e2.chat: dial tcp: connection refused\n")
}
