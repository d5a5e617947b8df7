package botecloud

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const azurite = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;"

func TestNewFromEnv(t *testing.T) {
	ctx := context.Background()
	_, err := NewFromEnv(ctx, func(string) string { return "" })
	assert.ErrorContains(t, err, EnvStorageConnectionString+" is not set")
	_, err = NewFromConnectionString(ctx, "", azurite)
	assert.ErrorContains(t, err, "Service is required")
	env := map[string]string{EnvService: "billing", EnvStorageConnectionString: azurite, EnvBus: "kafka"}
	_, err = NewFromEnv(ctx, func(k string) string { return env[k] })
	assert.ErrorContains(t, err, `Kind "kafka"`)

	c, err := NewFromConnectionString(ctx, "billing", azurite)
	require.NoError(t, err)
	assert.Equal(t, "billing", c.cfg.Service)
	require.NoError(t, c.Close(ctx))
	assert.NoError(t, newClient(t, &fakeBus{}, nil).Close(ctx), "a bus passed in is the caller's")
}
