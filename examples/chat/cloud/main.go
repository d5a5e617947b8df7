// Command cloud is the cloud half of the "chat" sample: the service "chat"
// relays every line a connector sends to all connectors of its tenant
// subscribed to the topic "chat", naming the sender.
//
//	set -a; . .demo/sample-1.env; set +a
//	go run ./examples/chat/cloud
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/botehq/platform/runtime/botecloud"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := botecloud.NewFromEnv(ctx, func(name string) string {
		if name == botecloud.EnvService {
			return "chat"
		}
		return os.Getenv(name)
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(context.Background())
	fmt.Println("chat service running")
	err = c.Run(ctx, botecloud.HandlerFunc(func(ctx context.Context, m *botecloud.Message) error {
		// The sender is the identity the gateway verified, not anything the
		// connector wrote; it goes out as an application header.
		fmt.Printf("%s: %s\n", m.From, m.Body)
		_, err := c.Broadcast(ctx, m.From.Tenant, "chat", botecloud.OutMessage{
			Body: m.Body, ContentType: "text/plain", Headers: map[string]string{"nick": m.From.Connector},
		})
		return err
	}))
	if err != nil {
		log.Fatal(err)
	}
}
