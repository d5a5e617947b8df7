package bus

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Only a call id made by CallID names a reply queue, and only a reply
// queue: a connector choosing its reply's correlation id cannot make the
// gateway write to any other queue.
func TestReplyQueueOf(t *testing.T) {
	instance := NewInstance()
	id := CallID(instance)
	q, ok := ReplyQueueOf(id)
	assert.True(t, ok, id)
	assert.Equal(t, "bote-cloud-r-"+instance, q)
	assert.Equal(t, ReplyQueue(instance), q)
	assert.LessOrEqual(t, len(q), 63, "a Storage Queue name holds 63 characters")

	hex32, hex16 := strings.Repeat("a", 32), strings.Repeat("b", 16)
	for _, bad := range []string{
		"",
		hex32,                            // a plain envelope id (NewID)
		hex32 + ".",                      // no instance
		hex32 + "." + hex16 + "0",        // instance too long
		hex32 + "." + hex16[:15],         // instance too short
		hex32 + "." + "BBBBBBBBBBBBBBBB", // upper case
		hex32[:31] + "." + hex16,         // id too short
		hex32 + "." + hex16 + ".x",       // more after
		"../bote-connectors." + hex16,    // another queue
		hex32 + ".bote-connectors",
		"an-application-id." + hex16,
	} {
		_, ok := ReplyQueueOf(bad)
		assert.False(t, ok, "%q", bad)
	}
}
