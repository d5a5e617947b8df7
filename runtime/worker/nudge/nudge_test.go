package nudge

import (
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/stretchr/testify/assert"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
)

func TestConfigValidate(t *testing.T) {
	local := LocalFunc(func(ids.ConnectorID) bool { return false })
	ok := Config{Queues: &azqueue.ServiceClient{}, Tables: &aztables.ServiceClient{}, Replica: "r1", Local: local}
	assert.NoError(t, ok.Validate())
	for field, mut := range map[string]func(*Config){
		"Queues":  func(c *Config) { c.Queues = nil },
		"Tables":  func(c *Config) { c.Tables = nil },
		"Replica": func(c *Config) { c.Replica = "Replica_1" },
		"Local":   func(c *Config) { c.Local = nil },
		"PollMin": func(c *Config) { c.PollMin, c.PollMax = time.Second, time.Millisecond },
	} {
		c := ok
		mut(&c)
		assert.ErrorContains(t, c.Validate(), field)
	}
}

func TestQueueNamesAreValid(t *testing.T) {
	for _, r := range []string{"a", "w123", "0123456789012345678901234567890123456789"} {
		assert.True(t, queuename.Valid(QueuePrefix+r), r)
	}
}
