package seen

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSet(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		ttl     time.Duration
		add     []string
		advance time.Duration
		has     map[string]bool
	}{
		{"remembers", 10, time.Minute, []string{"a", "b"}, 0, map[string]bool{"a": true, "b": true, "c": false}},
		{"expires", 10, time.Minute, []string{"a"}, 2 * time.Minute, map[string]bool{"a": false}},
		{"no ttl never expires", 10, 0, []string{"a"}, 24 * time.Hour, map[string]bool{"a": true}},
		{"evicts oldest", 2, 0, []string{"a", "b", "c"}, 0, map[string]bool{"a": false, "b": true, "c": true}},
		{"re-adding refreshes", 2, 0, []string{"a", "b", "a", "c"}, 0, map[string]bool{"a": true, "b": false, "c": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.max, tt.ttl)
			now := time.Unix(0, 0)
			s.now = func() time.Time { return now }
			for _, k := range tt.add {
				s.Add(k)
			}
			now = now.Add(tt.advance)
			for k, want := range tt.has {
				assert.Equal(t, want, s.Has(k), k)
			}
			assert.LessOrEqual(t, s.Len(), tt.max)
		})
	}
}
