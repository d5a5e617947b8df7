package subscriptions

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPartitionKeyIsOneToOne(t *testing.T) {
	tests := []struct{ tenant, topic, want string }{
		{"acme", "chat", "acme|chat"},
		{"acme", "chat/eu", "acme|chat:eu"},
		{"acme", "chat-eu", "acme|chat-eu"},
		{"acme.eu", "chat", "acme.eu|chat"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		got := PartitionKey(tt.tenant, tt.topic)
		assert.Equal(t, tt.want, got)
		assert.NotContains(t, got, "/", "table keys may not hold '/'")
		assert.False(t, seen[got])
		seen[got] = true
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct{ tenant, topic, connector string }{
		{"", "chat", "c"}, {"a|b", "chat", "c"}, {"acme", "", "c"}, {"acme", "bad topic", "c"}, {"acme", "chat", "c/d"},
	} {
		assert.Error(t, validate(tc.tenant, tc.topic, tc.connector), "%+v", tc)
	}
	assert.NoError(t, validate("acme", "chat/eu", "agent-1"))
}
