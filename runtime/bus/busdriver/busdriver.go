// Package busdriver opens the bus driver a binary is configured for: every
// binary that talks to the gateway bus (the gateway, the ops server) calls
// Open with the same Config, so the choice between the drivers and what each
// one needs is made in one place.
//
// It is a package of its own because the drivers import package bus; bus
// cannot import them back.
package busdriver

import (
	"fmt"
	"log/slog"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/bus/servicebus"
	"github.com/botehq/platform/runtime/bus/storagequeue"
	"github.com/botehq/platform/runtime/claimcheck"
)

// Kinds of bus.
const (
	StorageQueue = "storagequeue" // Azure Storage Queues (Azurite locally); the default
	ServiceBus   = "servicebus"   // Azure Service Bus
)

// Config says which driver to open and how to reach it. Each driver checks
// its own part (storagequeue.Config.Validate, servicebus.Config.Validate).
type Config struct {
	// Kind is StorageQueue (also when empty) or ServiceBus.
	Kind string

	// Storage Queue: StorageConnectionString, or QueueURL with Credential.
	StorageConnectionString string
	QueueURL                string
	// CreateQueues creates missing queues (local runs and tests; deployed
	// queues come from the infrastructure).
	CreateQueues bool

	// Service Bus: ServiceBusConnectionString, or ServiceBusNamespace with
	// Credential.
	ServiceBusConnectionString string
	ServiceBusNamespace        string

	// Credential is used where no connection string is given.
	Credential azcore.TokenCredential
	// Claims carries bodies too large for the transport (claim check).
	Claims *claimcheck.Store
	Logger *slog.Logger
}

// Validate checks the choice of driver.
func (c Config) Validate() error {
	switch c.Kind {
	case "", StorageQueue, ServiceBus:
		return nil
	}
	return fmt.Errorf("busdriver config: Kind %q must be %q or %q", c.Kind, StorageQueue, ServiceBus)
}

// Open opens the configured driver.
func Open(cfg Config) (bus.Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Kind == ServiceBus {
		sc := servicebus.Config{Claims: cfg.Claims, Logger: cfg.Logger}
		if cfg.ServiceBusConnectionString != "" {
			sc.ConnectionString = cfg.ServiceBusConnectionString
		} else {
			sc.Namespace, sc.Credential = cfg.ServiceBusNamespace, cfg.Credential
		}
		d, err := servicebus.New(sc)
		if err != nil {
			return nil, err
		}
		return d, nil
	}
	sc := storagequeue.Config{Claims: cfg.Claims, CreateQueues: cfg.CreateQueues, Logger: cfg.Logger}
	if cfg.StorageConnectionString != "" {
		sc.ConnectionString = cfg.StorageConnectionString
	} else {
		sc.ServiceURL, sc.Credential = cfg.QueueURL, cfg.Credential
	}
	d, err := storagequeue.New(sc)
	if err != nil {
		return nil, err
	}
	return d, nil
}
