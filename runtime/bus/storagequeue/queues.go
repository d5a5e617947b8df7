package storagequeue

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/queueerror"

	"github.com/botehq/platform/runtime/bus"
)

// CreateBusQueues creates the bus's queues (bus.QueueCloud,
// bus.QueueConnectors and the error queue) now rather than on first use,
// when CreateQueues is set; otherwise it does nothing. The gateway calls it
// at startup (--create-resources), so a cloud program that opens the bus
// without creating queues (botecloud.NewFromEnv) finds them all, the error
// queue included, which nothing else creates until the first dead letter.
func (d *Driver) CreateBusQueues(ctx context.Context) error {
	if !d.create {
		return nil
	}
	for _, name := range []string{bus.QueueCloud, bus.QueueConnectors, d.errorQueue} {
		if _, err := d.queue(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// queue returns the client for name, creating the queue once if configured.
func (d *Driver) queue(ctx context.Context, name string) (*azqueue.QueueClient, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, bus.ErrClosed
	}
	q, ok := d.queues[name]
	d.mu.Unlock()
	if ok {
		return q, nil
	}
	q = d.svc.NewQueueClient(name)
	if d.create {
		_, err := q.Create(ctx, nil)
		if err != nil && !queueerror.HasCode(err, queueerror.QueueAlreadyExists) {
			return nil, fmt.Errorf("cannot create queue %q: %w", name, err)
		}
	}
	d.mu.Lock()
	d.queues[name] = q
	d.mu.Unlock()
	return q, nil
}
