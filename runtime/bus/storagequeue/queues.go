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

// existing returns the client for name without creating the queue.
func (d *Driver) existing(name string) (*azqueue.QueueClient, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, bus.ErrClosed
	}
	if q, ok := d.queues[name]; ok {
		return q, nil
	}
	return d.svc.NewQueueClient(name), nil
}

var _ bus.QueueManager = (*Driver)(nil)

// CreateQueue implements bus.QueueManager; it creates the queue whatever
// Config.CreateQueues says.
func (d *Driver) CreateQueue(ctx context.Context, name string) error {
	q, err := d.existing(name)
	if err != nil {
		return err
	}
	if _, err := q.Create(ctx, nil); err != nil && !queueerror.HasCode(err, queueerror.QueueAlreadyExists) {
		return fmt.Errorf("cannot create queue %q: %w", name, err)
	}
	return nil
}

// DeleteQueue implements bus.QueueManager.
func (d *Driver) DeleteQueue(ctx context.Context, name string) error {
	q, err := d.existing(name)
	if err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.queues, name)
	d.mu.Unlock()
	if _, err := q.Delete(ctx, nil); err != nil && !queueerror.HasCode(err, queueerror.QueueNotFound) {
		return fmt.Errorf("cannot delete queue %q: %w", name, err)
	}
	return nil
}
