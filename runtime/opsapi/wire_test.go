package opsapi

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/audit"
	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/runs"
)

// The client's copy of the run lifecycle (opsapitypes) must match the
// server's (runs).
func TestWireRunStatesMatchServer(t *testing.T) {
	var want []string
	for _, s := range runs.States() {
		want = append(want, string(s))
		r := Run{State: string(s)}
		if r.Terminal() != s.Terminal() || r.Settled() != s.Settled() {
			t.Errorf("state %s: opsapitypes says terminal %v settled %v, runs says %v %v", s, r.Terminal(), r.Settled(), s.Terminal(), s.Settled())
		}
	}
	if got := opsapitypes.States(); !slices.Equal(got, want) {
		t.Errorf("opsapitypes.States() = %v, runs.States() = %v", got, want)
	}
	if opsapitypes.OpApply != string(runs.OpApply) || opsapitypes.OpDestroy != string(runs.OpDestroy) {
		t.Error("opsapitypes operations differ from runs'")
	}
	if (Run{State: "bogus"}).Terminal() {
		t.Error("an unknown state is terminal")
	}
}

// The audit log's wire copy has the server record's JSON, field for field.
func TestWireAuditMatchesServer(t *testing.T) {
	rec := audit.Record{ID: "id", Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Tenant: "contoso", Principal: "api-key:a", Subject: "api-key:a1",
		Action: "POST /v1/x", Object: "/v1/x?y=1", Result: "ok", Status: 201, RequestID: "req", Client: "10.0.0.1", Detail: "d"}
	for _, p := range []audit.Page{{}, {Records: []audit.Record{}}, {Records: []audit.Record{rec, {}}, More: true}} {
		want, err := json.Marshal(p)
		require.NoError(t, err)
		got, err := json.Marshal(apiAuditPage(p))
		require.NoError(t, err)
		assert.JSONEq(t, string(want), string(got))
	}
	assert.Equal(t, audit.DefaultLimit, opsapitypes.AuditDefaultLimit)
	assert.Equal(t, audit.MaxLimit, opsapitypes.AuditMaxLimit)
}
