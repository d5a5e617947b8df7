package opsapitypes

import "slices"

// Run states, the values of Run.State and Transition.From/To (runs.State on
// the server; opsapi's tests check the two agree).
const (
	StateQueued         = "queued"
	StatePlanning       = "planning"
	StatePlanned        = "planned"
	StateApproved       = "approved"
	StateApplying       = "applying"
	StateNeedsAttention = "needs_attention"
	StateApplied        = "applied"
	StateNoChanges      = "no_changes"
	StateFailed         = "failed"
	StateCancelled      = "cancelled"
	StateTimedOut       = "timed_out"
)

// States lists every run state in lifecycle order.
func States() []string {
	return []string{StateQueued, StatePlanning, StatePlanned, StateApproved, StateApplying, StateNeedsAttention,
		StateApplied, StateNoChanges, StateFailed, StateCancelled, StateTimedOut}
}

// Run operations, the values of Run.Operation.
const (
	OpApply   = "apply"
	OpDestroy = "destroy"
)

// Terminal reports whether the run has ended.
func (r Run) Terminal() bool { return Terminal(r.State) }

// Settled reports whether nothing more happens to the run unless a person
// acts: it ended, or it needs attention.
func (r Run) Settled() bool { return Terminal(r.State) || r.State == StateNeedsAttention }

// Terminal reports whether a run in state has ended for good.
func Terminal(state string) bool {
	return slices.Contains([]string{StateApplied, StateNoChanges, StateFailed, StateCancelled, StateTimedOut}, state)
}
