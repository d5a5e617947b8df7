package nudge

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/stretchr/testify/assert"

	"github.com/botehq/platform/runtime/queuename"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{Queues: &azqueue.ServiceClient{}, Tables: &aztables.ServiceClient{}, Replica: "r1"}
	assert.NoError(t, ok.Validate())
	for field, mut := range map[string]func(*Config){
		"Queues":  func(c *Config) { c.Queues = nil },
		"Tables":  func(c *Config) { c.Tables = nil },
		"Replica": func(c *Config) { c.Replica = "Replica_1" },
		"PollMin": func(c *Config) { c.PollMin, c.PollMax = time.Second, time.Millisecond },
	} {
		c := ok
		mut(&c)
		assert.ErrorContains(t, c.Validate(), field)
	}
	// The local sessions are given to Run, which cannot go without them.
	assert.ErrorContains(t, (&Fanout{cfg: ok}).Run(context.Background(), nil), "Local")
}

func TestQueueNamesAreValid(t *testing.T) {
	for _, r := range []string{"a", "w123", "0123456789012345678901234567890123456789"} {
		assert.True(t, queuename.Valid(QueuePrefix+r), r)
	}
}
