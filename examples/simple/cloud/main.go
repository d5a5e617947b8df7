// Command cloud is the cloud half of the "simple" sample: a cloud service
// named "simple" that answers every call from a connector, and calls one
// connector -count times (it exits 1 if any call failed).
//
//	set -a; . .demo/sample-1.env; set +a
//	go run ./examples/simple/cloud -connector sample-1 -count 3
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/botehq/platform/runtime/botecloud"
)

func main() {
	connector := flag.String("connector", "sample-1", "the connector to call (of tenant $BOTE_TENANT)")
	count := flag.Int("count", 3, "calls to make, one a second; 0 only answers, until Ctrl-C")
	timeout := flag.Duration("timeout", 10*time.Second, "how long a call waits for its reply")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Getenv("BOTE_TENANT"), *connector, *count, *timeout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, tenant, connector string, count int, timeout time.Duration) error {
	c, err := botecloud.NewFromEnv(ctx, func(name string) string {
		if name == botecloud.EnvService {
			return "simple"
		}
		return os.Getenv(name)
	})
	if err != nil {
		return err
	}
	defer c.Close(context.Background())

	// Answer what connectors ask; Run also receives the replies to Call.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go func() {
		_ = c.Run(runCtx, botecloud.HandlerFunc(func(ctx context.Context, m *botecloud.Message) error {
			fmt.Printf("%s asks: %s\n", m.From, m.Body)
			_, err := c.Reply(ctx, m, botecloud.OutMessage{Body: []byte("pong: " + string(m.Body)), ContentType: "text/plain"})
			return err
		}))
	}()

	if count == 0 {
		<-ctx.Done()
		return nil
	}
	failed := 0
	for i := 1; i <= count; i++ {
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		reply, err := c.Call(callCtx, tenant, connector, botecloud.OutMessage{Body: []byte(fmt.Sprintf("ping %d", i)), ContentType: "text/plain"})
		cancel()
		if err != nil {
			failed++
			fmt.Printf("call %d: %v\n", i, err)
		} else {
			fmt.Printf("%s answered: %s\n", reply.From, reply.Body)
		}
		// Also after the last call: Run goes on answering the connector's
		// calls for that second before the program ends.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d calls failed", failed, count)
	}
	return nil
}
