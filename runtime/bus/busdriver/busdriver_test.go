package busdriver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/bus/servicebus"
	"github.com/botehq/platform/runtime/bus/storagequeue"
)

const (
	storageConn = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
	sbConn      = "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0"
)

func TestOpenPicksTheDriver(t *testing.T) {
	for _, kind := range []string{"", StorageQueue} {
		d, err := Open(Config{Kind: kind, StorageConnectionString: storageConn})
		require.NoError(t, err, "kind %q", kind)
		assert.IsType(t, &storagequeue.Driver{}, d, "kind %q", kind)
	}
	d, err := Open(Config{Kind: ServiceBus, ServiceBusConnectionString: sbConn})
	require.NoError(t, err)
	assert.IsType(t, &servicebus.Driver{}, d)
}

func TestOpenRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		msg  string
	}{
		{"unknown kind", Config{Kind: "kafka", StorageConnectionString: storageConn}, `Kind "kafka" must be "storagequeue" or "servicebus"`},
		{"storage queue without a queue", Config{}, "storagequeue config"},
		{"service bus without a namespace", Config{Kind: ServiceBus, StorageConnectionString: storageConn}, "servicebus config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Open(tt.cfg)
			require.ErrorContains(t, err, tt.msg)
			assert.True(t, d == nil, "no typed nil driver on error")
		})
	}
}
