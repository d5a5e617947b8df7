package platform

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/botehq/platform/integration/azurite"
)

func (p *Platform) start(ctx context.Context) error {
	if err := p.writeKeys(); err != nil {
		return err
	}
	// Azurite (a Node program, the slowest to start), the idp and the
	// relay need nothing of each other: they start at once. Replicated
	// idps share a replay table in Azurite, so they wait for it.
	var wg sync.WaitGroup
	var azuriteErr, idpErr, relayErr error
	if p.Emulator == nil {
		wg.Go(func() {
			emu, err := azurite.Start(ctx, azurite.Options{})
			if err != nil {
				azuriteErr = fmt.Errorf("cannot start Azurite: %w", err)
				return
			}
			p.mu.Lock()
			p.Emulator, p.ownEmulator = emu, true
			p.mu.Unlock()
		})
	}
	if p.opts.Replicas <= 1 {
		wg.Go(func() { idpErr = p.startGatewayIdp() })
	}
	if !p.opts.GatewayOnly {
		wg.Go(func() { relayErr = p.startRelay() })
	}
	wg.Wait()
	if err := errors.Join(azuriteErr, idpErr, relayErr); err != nil {
		return err
	}
	if p.opts.Replicas > 1 {
		if err := p.startGatewayIdp(); err != nil {
			return err
		}
	}
	if err := p.startGateway(); err != nil {
		return err
	}
	if p.opts.GatewayOnly {
		return nil
	}
	if err := p.StartOpsServer(); err != nil {
		return err
	}
	if err := p.startReplicas(); err != nil {
		return err
	}
	// The agents connect to the gateway and come online at the ops
	// server each on its own: they start at once.
	errs := make([]error, len(p.opts.Agents))
	for i, a := range p.opts.Agents {
		if a.Start {
			wg.Go(func() { _, errs[i] = p.StartAgent(a.Tenant, a.ID) })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// azuriteLog is the log of the Azurite that Start started, "" for one
// given in Options.Emulator (its owner shows it). Read it before Stop: a
// container's log goes with the container.
func (p *Platform) azuriteLog() string {
	p.mu.Lock()
	emu, own := p.Emulator, p.ownEmulator
	p.mu.Unlock()
	if !own || emu == nil {
		return ""
	}
	return fmt.Sprintf("=== Azurite (%s) ===\n%s\n", emu.Via, emu.Logs())
}
