package worker

import (
	"context"
	"errors"
	"log/slog"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/claimcheck"
)

// openServiceBus opens the Azure Service Bus driver.
func openServiceBus(_ context.Context, _ *Config, _ *claimcheck.Store, _ *slog.Logger) (bus.Driver, error) {
	return nil, errors.New("worker: the servicebus bus driver is not available in this build yet")
}
