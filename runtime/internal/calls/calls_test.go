package calls

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/envelope"
)

var agent = envelope.Identity{Tenant: "contoso", Connector: "agent-1"}

// A second call with a request id already waiting is refused: it used to
// replace the first, whose end then removed the second, so neither got
// the reply.
func TestDuplicateCallIsRefused(t *testing.T) {
	var s Set[string]
	first, removeFirst, err := s.Add("id-1", agent)
	require.NoError(t, err)
	_, _, err = s.Add("id-1", agent)
	require.ErrorIs(t, err, ErrDuplicateCall)

	took, err := s.Deliver("id-1", agent, "pong")
	require.NoError(t, err)
	assert.True(t, took)
	assert.Equal(t, "pong", <-first)
	removeFirst()

	// The id is free again once the call ended; a stale remove of an
	// earlier call does not remove a later one.
	second, removeSecond, err := s.Add("id-1", agent)
	require.NoError(t, err)
	removeFirst()
	took, err = s.Deliver("id-1", agent, "pong 2")
	require.NoError(t, err)
	assert.True(t, took, "the earlier call's remove took the later call away")
	assert.Equal(t, "pong 2", <-second)
	removeSecond()
}

// A reply from another identity is refused and the call keeps waiting.
func TestReplyFromAnotherIdentity(t *testing.T) {
	var s Set[string]
	reply, remove, err := s.Add("id-1", agent)
	require.NoError(t, err)
	defer remove()
	took, err := s.Deliver("id-1", envelope.Identity{Tenant: "other", Connector: "agent-1"}, "forged")
	require.ErrorIs(t, err, ErrWrongReplier)
	assert.False(t, took)
	took, err = s.Deliver("id-1", agent, "pong")
	require.NoError(t, err)
	assert.True(t, took)
	assert.Equal(t, "pong", <-reply)
	took, err = s.Deliver("id-1", agent, "late")
	require.NoError(t, err)
	assert.False(t, took, "a second reply finds no call")
}
