package botecloud

import (
	"context"
	"fmt"

	"github.com/botehq/platform/runtime/bus/busdriver"
	"github.com/botehq/platform/runtime/claimcheck"
)

// Environment variables NewFromEnv reads.
const (
	EnvService = "BOTE_SERVICE" // this service's name (Config.Service)
	// EnvBus is busdriver.StorageQueue (the default) or busdriver.ServiceBus.
	EnvBus = "BOTE_BUS"
	// EnvStorageConnectionString is the storage account: the bus with
	// Storage Queues, and the claim check container either way.
	EnvStorageConnectionString    = "BOTE_STORAGE_CONNECTION_STRING"
	EnvServiceBusConnectionString = "BOTE_SERVICEBUS_CONNECTION_STRING"
	EnvWakeURL                    = "BOTE_WAKE_URL" // optional: Config.WakeURL
)

// NewFromConnectionString returns a client for service on the Storage
// Queue bus of the storage account in connectionString (Azurite's for a
// local platform), with claim check in the same account. The queues and
// the claims container must exist (the gateway creates them locally). Close
// the client to close the bus.
func NewFromConnectionString(ctx context.Context, service, connectionString string) (*Client, error) {
	return NewFromEnv(ctx, func(name string) string {
		switch name {
		case EnvService:
			return service
		case EnvStorageConnectionString:
			return connectionString
		}
		return ""
	})
}

// NewFromEnv returns a client configured from the environment (read with
// getenv, os.Getenv in a program): EnvService, EnvBus, the connection
// strings and EnvWakeURL. Close the client to close the bus.
func NewFromEnv(ctx context.Context, getenv func(string) string) (*Client, error) {
	storage := getenv(EnvStorageConnectionString)
	if storage == "" {
		return nil, fmt.Errorf("cloud config from the environment: %s is not set", EnvStorageConnectionString)
	}
	claims, err := claimcheck.New(ctx, claimcheck.Config{ConnectionString: storage})
	if err != nil {
		return nil, fmt.Errorf("cloud config from the environment: %w", err)
	}
	d, err := busdriver.Open(busdriver.Config{Kind: getenv(EnvBus), StorageConnectionString: storage,
		ServiceBusConnectionString: getenv(EnvServiceBusConnectionString), Claims: claims})
	if err != nil {
		return nil, fmt.Errorf("cloud config from the environment: %w", err)
	}
	c, err := New(Config{Bus: d, Service: getenv(EnvService), WakeURL: getenv(EnvWakeURL)})
	if err != nil {
		_ = d.Close(ctx)
		return nil, fmt.Errorf("cloud config from the environment: %w", err)
	}
	c.closeBus = d.Close
	return c, nil
}

// Close closes the bus if the client opened it (NewFromEnv,
// NewFromConnectionString); a bus passed in Config is the caller's to
// close.
func (c *Client) Close(ctx context.Context) error {
	if c.closeBus == nil {
		return nil
	}
	return c.closeBus(ctx)
}
