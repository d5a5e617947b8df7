package runs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/botehq/platform/runtime/internal/golden"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/tfresult"
)

// TestTransitionTable pins the whole lifecycle: every (from, to) pair of
// states is checked against testdata/transitions.golden, so a change to
// the table shows up as a reviewed golden diff.
func TestTransitionTable(t *testing.T) {
	var b strings.Builder
	for _, from := range States() {
		var legal []string
		for _, to := range States() {
			err := CheckTransition("run-x", from, to)
			if err == nil {
				legal = append(legal, string(to))
				continue
			}
			var te *TransitionError
			require.True(t, errors.As(err, &te))
			assert.ErrorIs(t, err, ErrIllegalTransition)
			assert.Equal(t, from, te.From)
			assert.Equal(t, to, te.To)
		}
		flags := []string{}
		if from.Terminal() {
			flags = append(flags, "terminal")
		}
		if from.HoldsLock() {
			flags = append(flags, "holds-lock")
		}
		if from.Runnable() {
			flags = append(flags, "runnable")
		}
		if from.Executing() {
			flags = append(flags, "executing")
		}
		fmt.Fprintf(&b, "%-15s [%s] -> %s\n", from, strings.Join(flags, ","), strings.Join(legal, " "))
	}
	golden.Check(t, "transitions.golden", []byte(b.String()))
}

func TestLifecycleInvariants(t *testing.T) {
	for _, s := range States() {
		assert.True(t, s.Valid())
		assert.Equal(t, s.Terminal(), len(s.Next()) == 0, "%s: terminal iff no way out", s)
		assert.False(t, s.Terminal() && s.HoldsLock(), "%s: a finished run never holds its workspace", s)
		if s != Queued && !s.Terminal() {
			for _, to := range []State{Cancelled, TimedOut} {
				if s == NeedsAttention && to == TimedOut {
					continue // it waits for a person, however long
				}
				assert.NoError(t, CheckTransition("r", s, to), "every active state can be stopped: %s → %s", s, to)
			}
		}
	}
	assert.False(t, State("paused").Valid())
	assert.False(t, State("paused").Terminal())
	assert.ErrorIs(t, CheckTransition("r", "paused", Queued), ErrIllegalTransition)
	err := CheckTransition("run-1", Applied, Queued)
	assert.EqualError(t, err, "run run-1 cannot go from applied to queued (allowed: none, it is final)")
	err = CheckTransition("run-1", Queued, Applied)
	assert.EqualError(t, err, "run run-1 cannot go from queued to applied (allowed: [planning cancelled])")
}

func TestRunIDsSortByCreation(t *testing.T) {
	base := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 200 {
		at := base.Add(time.Duration(i/10) * time.Millisecond) // ten per millisecond
		if i == 150 {
			at = base // the clock steps back
		}
		ids = append(ids, NewRunID(at))
	}
	assert.True(t, sort.StringsAreSorted(ids), "ids from one process are strictly increasing")
	seen := map[string]bool{}
	for _, id := range ids {
		assert.True(t, ValidRunID(id), id)
		assert.False(t, seen[id], "duplicate %s", id)
		seen[id] = true
	}
	later := NewRunID(base.Add(time.Hour))
	assert.Greater(t, later, ids[len(ids)-1])
	for _, bad := range []string{"", "run-", "run-0123456789abcdeF", "run-0123456789abcde", "job-0123456789abcdef", "run-0123456789abcdew"} {
		assert.False(t, ValidRunID(bad), bad)
	}
}

func TestValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"workspace ok", Workspace{Tenant: "contoso", Name: "prod"}.Validate(), ""},
		{"workspace tenant", Workspace{Tenant: "bad/tenant", Name: "prod"}.Validate(), "tenant id"},
		{"workspace name", Workspace{Tenant: "contoso", Name: "prod|x"}.Validate(), "workspace id"},
		{"workspace label", Workspace{Tenant: "c", Name: "w", AgentLabels: map[string]string{"a b": "x"}}.Validate(), "agentLabels"},
		{"negative timeout", Options{PlanTimeout: -time.Second}.Validate(), "planTimeout"},
		{"huge timeout", Options{ApplyTimeout: 8 * 24 * time.Hour}.Validate(), "applyTimeout"},
		{"approval timeout", Options{ApprovalTimeout: -1}.Validate(), "approvalTimeout"},
		{"agent ok", Agent{Tenant: "c", ID: "a", Capacity: 1}.Validate(), ""},
		{"agent capacity", Agent{Tenant: "c", ID: "a"}.Validate(), "capacity 0"},
		{"agent id", Agent{Tenant: "c", ID: "", Capacity: 1}.Validate(), "agent id is empty"},
		{"tenant", Tenant{ID: "-x"}.Validate(), "tenant id"},
		{"config store", Config{}.Validate(), "Store is required"},
		{"config roster", Config{Store: nilStore{}}.Validate(), "Roster is required"},
		{"config silent", Config{Store: nilStore{}, Roster: Unrestricted, SilentAfter: -1}.Validate(), "SilentAfter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" {
				assert.NoError(t, tc.err)
				return
			}
			assert.ErrorContains(t, tc.err, tc.want)
		})
	}
}

// nilStore satisfies Store for configuration tests only.
type nilStore struct{ Store }

func TestTimeoutsPerState(t *testing.T) {
	o := Options{PlanTimeout: time.Minute}
	assert.Equal(t, time.Minute, timeout(o, Planning))
	assert.Equal(t, DefaultApplyTimeout, timeout(o, Applying))
	assert.Equal(t, DefaultApprovalTimeout, timeout(o, Planned))
	assert.Zero(t, timeout(o, Queued), "a queued run waits as long as it takes")
	assert.Zero(t, timeout(o, Approved), "an approved run waits for an agent")
}

func TestMoveRecordsAndClears(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := Run{ID: "run-1", State: Planning, Agent: "a1", CancelRequested: true, CancelReason: "x"}
	require.NoError(t, r.move(Planned, now, "a1", "plan saved", Options{}))
	assert.Equal(t, Planned, r.State)
	assert.Empty(t, r.Agent)
	assert.False(t, r.CancelRequested)
	assert.Empty(t, r.CancelReason)
	assert.Equal(t, now.Add(DefaultApprovalTimeout), r.Deadline)
	assert.Equal(t, []Transition{{From: Planning, To: Planned, At: now, By: "a1", Reason: "plan saved"}}, r.History)
	assert.Error(t, r.move(Planning, now, "", "", Options{}))
	assert.Len(t, r.History, 1, "an illegal move records nothing")
}

func TestTerraformOp(t *testing.T) {
	for _, tc := range []struct {
		op    Operation
		state State
		want  tfresult.Operation
	}{
		{OpApply, Planning, tfresult.Plan},
		{OpDestroy, Planning, tfresult.PlanDestroy},
		{OpApply, Applying, tfresult.Apply},
		{OpDestroy, Applying, tfresult.Apply},
		{OpDestroy, Approved, tfresult.Apply},
	} {
		r := Run{Operation: tc.op, State: tc.state}
		assert.Equal(t, tc.want, r.TerraformOp(), "%s %s", tc.op, tc.state)
	}
}

func TestBoundResult(t *testing.T) {
	res := tfresult.Result{Outputs: map[string]tfresult.Output{
		"small": {Value: []byte(`"ok"`)},
		"big":   {Value: []byte(`"` + strings.Repeat("x", maxOutputBytes) + `"`)},
	}, LockFile: &tfresult.LockFile{Changed: true, Content: strings.Repeat("#", 1<<20)}}
	for i := range maxDiagnostics + 5 {
		res.Diagnostics = append(res.Diagnostics, tfresult.Diagnostic{Severity: "error", Summary: fmt.Sprint(i), Detail: strings.Repeat("d", maxDiagnosticBytes+1)})
	}
	got := boundResult(res)
	require.Len(t, got.Diagnostics, maxDiagnostics+1)
	assert.Equal(t, "5 more diagnostics are in the run log", got.Diagnostics[maxDiagnostics].Summary)
	assert.Contains(t, got.Diagnostics[0].Detail, "truncated")
	assert.Len(t, res.Diagnostics[0].Detail, maxDiagnosticBytes+1, "the input is not modified")
	assert.Equal(t, `"ok"`, string(got.Outputs["small"].Value))
	assert.Contains(t, string(got.Outputs["big"].Value), "too large to keep")
	assert.Equal(t, &tfresult.LockFile{Changed: true, Truncated: true}, got.LockFile, "an agent's lock file over the bound is not kept")
	assert.Len(t, res.LockFile.Content, 1<<20, "the input is not modified")
	small := tfresult.Result{LockFile: &tfresult.LockFile{Content: "# ok"}}
	assert.Equal(t, small.LockFile, boundResult(small).LockFile)
}

func TestReportReason(t *testing.T) {
	changes := &tfresult.Result{HasChanges: true, Changes: &tfresult.ChangeSummary{Add: 2, Change: 1}}
	failed := &tfresult.Result{Failed: true, Diagnostics: []tfresult.Diagnostic{{Severity: "warning", Summary: "deprecated"}, {Severity: "error", Summary: "Unsupported argument"}}}
	for _, tc := range []struct {
		from, to State
		rep      Report
		want     string
	}{
		{Planning, Planned, Report{Result: changes}, "plan saved: 2 to add, 1 to change, 0 to destroy"},
		{Planning, NoChanges, Report{}, "plan has no changes"},
		{Applying, Applied, Report{}, "apply complete"},
		{Planning, Failed, Report{Result: failed}, "planning failed: Unsupported argument"},
		{Applying, Failed, Report{}, "applying failed"},
		{Applying, Cancelled, Report{}, "agent stopped applying"},
		{Planning, Failed, Report{Reason: "terraform not found"}, "terraform not found"},
	} {
		assert.Equal(t, tc.want, reportReason(tc.from, tc.to, tc.rep))
	}
}

func TestQueueFloor(t *testing.T) {
	idAt := func(at time.Time) string { // NewRunID never goes back in time
		var b [10]byte
		binary.BigEndian.PutUint64(b[:8], uint64(at.UnixMilli())<<16)
		return "run-" + idEncoding.EncodeToString(b[:])
	}
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	started := idAt(at)
	floor := queueFloor(started)
	got, ok := runIDTime(started)
	require.True(t, ok)
	assert.Equal(t, at, got.UTC())
	assert.Less(t, floor, started)
	assert.Equal(t, idAt(at.Add(-queueSlack)), floor)
	assert.Greater(t, idAt(at.Add(-queueSlack+time.Millisecond)), floor, "a run within the slack is still read")
	assert.Less(t, "run-"+idEncoding.EncodeToString(make([]byte, 10)), floor)
	for _, bad := range []string{"", "run-x", "run-0000000000000000"} {
		assert.Empty(t, queueFloor(bad), bad)
	}
}
