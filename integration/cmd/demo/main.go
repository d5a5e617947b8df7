// Command demo runs the platform's main job locally on its embedded default,
// Azurite: it starts the emulator and the platform's processes on loopback,
// drives them the way an operator would, prints what happened and stops
// everything at the end. `make demo` runs it.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/botehq/platform/integration/azurite"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	step(1, "starting Azurite (Azure Storage emulator: queues, tables, blobs)")
	az, err := azurite.Start(ctx, azurite.Options{})
	if err != nil {
		return fmt.Errorf("cannot start Azurite: %w", err)
	}
	defer func() {
		if err := az.Stop(); err != nil {
			log.Warn("stopping Azurite", "err", err)
		}
	}()
	fmt.Printf("   Azurite is up via %s\n   queues: %s\n   tables: %s\n   blobs:  %s\n", az.Via, az.QueueURL, az.TableURL, az.BlobURL)

	fmt.Println()
	fmt.Println("The gateway (idp, worker, connectors), the relay path (devrelay, relayserver,")
	fmt.Println("opsbot) and Terraform runs on agents join this demo as they land; see README.md.")
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	step(2, "stopping")
	return nil
}

func step(n int, what string) { fmt.Printf("\n[%d] %s\n", n, what) }
