package opsapi

import (
	"slices"
	"testing"

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
