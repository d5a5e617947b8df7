package runs

import (
	"errors"
	"fmt"
	"slices"
)

// State is where a run is in its lifecycle.
type State string

// Run states. A run starts Queued and ends in one of the terminal states.
const (
	Queued    State = "queued"     // waiting for its workspace and an agent
	Planning  State = "planning"   // an agent is planning it
	Planned   State = "planned"    // plan saved, waiting for approval
	Approved  State = "approved"   // approved, waiting for an agent to apply
	Applying  State = "applying"   // an agent is applying the saved plan
	Applied   State = "applied"    // terminal: applied
	NoChanges State = "no_changes" // terminal: the plan changes nothing
	Failed    State = "failed"     // terminal: Terraform or an agent failed
	Cancelled State = "cancelled"  // terminal: cancelled or discarded
	TimedOut  State = "timed_out"  // terminal: a deadline passed
)

// NeedsAttention: the agent applying the run was lost after Terraform
// started. What the apply changed is unknown, so the run keeps its
// workspace until an operator settles it (cancel), or the agent comes back
// and reports.
const NeedsAttention State = "needs_attention"

// transitions is the whole lifecycle: every legal move, and nothing else.
// A state missing as a key is terminal.
var transitions = map[State][]State{
	Queued: {Planning, Cancelled},
	// Planning → Queued and Applying → Approved give a claim back: its
	// agent refused it or was lost (see Manager.GiveBack).
	Planning:       {Planned, NoChanges, Failed, Cancelled, TimedOut, Queued},
	Planned:        {Approved, Cancelled, TimedOut, Failed},
	Approved:       {Applying, Cancelled, TimedOut, Failed},
	Applying:       {Applied, Failed, Cancelled, TimedOut, Approved, NeedsAttention},
	NeedsAttention: {Applied, Failed, Cancelled},
}

// States lists every state in lifecycle order.
func States() []State {
	return []State{Queued, Planning, Planned, Approved, Applying, NeedsAttention, Applied, NoChanges, Failed, Cancelled, TimedOut}
}

// Valid reports whether s is a known state.
func (s State) Valid() bool { return slices.Contains(States(), s) }

// Terminal reports whether a run in s is finished for good.
func (s State) Terminal() bool {
	_, more := transitions[s]
	return s.Valid() && !more
}

// HoldsLock reports whether a run in s owns its workspace: from the moment
// an agent claims it until it ends, no other run of the workspace may start.
func (s State) HoldsLock() bool {
	switch s {
	case Planning, Planned, Approved, Applying, NeedsAttention:
		return true
	}
	return false
}

// Settled reports whether nothing more happens to a run in s unless a
// person acts: it ended, or it needs attention.
func (s State) Settled() bool { return s.Terminal() || s == NeedsAttention }

// Executing reports whether an agent is working on a run in s.
func (s State) Executing() bool { return s == Planning || s == Applying }

// Runnable reports whether a run in s waits for an agent to claim it.
func (s State) Runnable() bool { return s == Queued || s == Approved }

// Next lists the states a run in s may move to.
func (s State) Next() []State { return slices.Clone(transitions[s]) }

// ErrIllegalTransition is matched (errors.Is) by every *TransitionError.
var ErrIllegalTransition = errors.New("illegal run transition")

// TransitionError reports a move the lifecycle does not allow.
type TransitionError struct {
	Run      string
	From, To State
}

func (e *TransitionError) Error() string {
	next := "none, it is final"
	if n := e.From.Next(); len(n) > 0 {
		next = fmt.Sprint(n)
	}
	return fmt.Sprintf("run %s cannot go from %s to %s (allowed: %s)", e.Run, e.From, e.To, next)
}

// Is makes errors.Is(err, ErrIllegalTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrIllegalTransition }

// CheckTransition returns a *TransitionError unless from → to is legal.
func CheckTransition(run string, from, to State) error {
	if slices.Contains(transitions[from], to) {
		return nil
	}
	return &TransitionError{Run: run, From: from, To: to}
}
