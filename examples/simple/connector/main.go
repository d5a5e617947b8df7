// Command connector is the on-premises half of the "simple" sample: a
// connector that answers every call from the cloud and calls the cloud
// service "simple" -count times.
//
//	set -a; . .demo/sample-1.env; set +a
//	go run ./examples/simple/connector
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/botehq/platform/runtime/connector"
)

func main() {
	count := flag.Int("count", 3, "calls to the cloud, one a second, once connected")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *count); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, count int) error {
	cfg, err := connector.ConfigFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	var c *connector.Client
	cfg.Handler = connector.HandlerFunc(func(ctx context.Context, m *connector.Message) error {
		fmt.Printf("%s asks: %s\n", m.From, m.Body)
		if m.Deadline.IsZero() {
			return nil // not a call: nothing to answer
		}
		_, err := c.Reply(ctx, m, connector.OutMessage{Body: []byte("pong from " + cfg.Connector + ": " + string(m.Body)), ContentType: "text/plain"})
		return err
	})
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if c, err = connector.New(cfg); err != nil {
		return err
	}
	go func() {
		if err := c.WaitConnected(ctx); err != nil {
			return
		}
		fmt.Printf("connected as %s/%s\n", cfg.Tenant, cfg.Connector)
		for i := 1; i <= count && ctx.Err() == nil; i++ {
			callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			reply, err := c.Call(callCtx, "simple", connector.OutMessage{Body: []byte(fmt.Sprintf("hello %d", i)), ContentType: "text/plain"})
			cancel()
			if err != nil {
				fmt.Printf("call %d: %v\n", i, err)
			} else {
				fmt.Printf("%s answered: %s\n", reply.From, reply.Body)
			}
			time.Sleep(time.Second)
		}
	}()
	return c.Run(ctx)
}
