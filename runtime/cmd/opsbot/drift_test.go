package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
)

func (f *fakeRuns) Drift(context.Context, string) ([]opsapi.DriftStatus, error) { return f.drift, nil }

func (f *fakeRuns) WorkspaceDrift(_ context.Context, _, ws string) (*opsapi.DriftStatus, error) {
	for _, st := range f.drift {
		if st.Workspace == ws {
			return &st, nil
		}
	}
	return &opsapi.DriftStatus{Workspace: ws, Status: "unknown"}, nil
}

func (f *fakeRuns) SetDriftSchedule(_ context.Context, _, ws string, s opsapi.DriftSchedule) (*opsapi.DriftStatus, error) {
	f.schedules = append(f.schedules, s)
	st := &opsapi.DriftStatus{Workspace: ws, Status: "unknown"}
	if s != (opsapi.DriftSchedule{}) {
		next := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
		st.Schedule, st.NextCheck = &s, &next
	}
	return st, nil
}

func (f *fakeRuns) CheckDrift(_ context.Context, _, ws string) (*opsapi.DriftStatus, error) {
	return &opsapi.DriftStatus{Workspace: ws, LastRun: "run-9"}, nil
}

func TestDriftCommands(t *testing.T) {
	f := newFakeRuns()
	c := cli{t: t, api: f}
	r := c.run("drift", "schedule", "prod", "--cron", "0 3 * * *")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Equal(t, "Drift of workspace prod is checked cron 0 3 * * *; next check 2026-12-07T03:00:00Z.\n", r.stdout)
	r = c.run("drift", "schedule", "prod", "--off")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Equal(t, []opsapi.DriftSchedule{{Cron: "0 3 * * *"}, {}}, f.schedules)
	for _, args := range [][]string{{"drift", "schedule", "prod"}, {"drift", "schedule", "prod", "--every", "1h", "--off"}} {
		assert.Equal(t, exitcode.Usage, c.run(args...).code, "%q", args)
	}
	assert.Contains(t, c.run("drift", "check", "prod").stdout, "Drift check run-9 queued for workspace prod")

	at := time.Date(2026, 12, 6, 9, 48, 12, 0, time.UTC)
	f.drift = []opsapi.DriftStatus{{Tenant: "contoso", Workspace: "prod", Status: "drifted", CheckedAt: &at, CheckRun: "run-9",
		Schedule: &opsapi.DriftSchedule{Every: "6h"}, Resources: []opsapi.DriftResource{{Address: "botetest_file.motd", Actions: []string{"update"},
			Attributes: []opsapi.DriftAttribute{{Name: "content", Before: json.RawMessage(`"hello"`), After: json.RawMessage(`"changed"`)}}}}}}
	r = c.run("drift")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Regexp(t, `prod\s+drifted\s+1\s+2026-12-06T09:48:12Z\s+every 6h\s+-\s+botetest_file.motd\n`, r.stdout)
	f.drift[0].Resources = append(f.drift[0].Resources, opsapi.DriftResource{Address: "b"}, opsapi.DriftResource{Address: "c"}, opsapi.DriftResource{Address: "d"})
	f.drift[0].MoreResources = 10
	assert.Contains(t, c.run("drift").stdout, "botetest_file.motd, b, c, and 11 more\n")
	r = c.run("drift", "show", "prod")
	assert.Contains(t, r.stdout, "Drifted resources (state -> real):\n  botetest_file.motd (update)\n      content: \"hello\" -> \"changed\"\n")
}
