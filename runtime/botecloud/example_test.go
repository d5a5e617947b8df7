package botecloud_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/bus/busdriver"
)

// The smallest cloud service: a client from the environment
// (BOTE_SERVICE, BOTE_STORAGE_CONNECTION_STRING, ...), answering every
// connector message.
func ExampleNewFromEnv() {
	ctx := context.Background()
	c, err := botecloud.NewFromEnv(ctx, os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
	err = c.Run(ctx, botecloud.HandlerFunc(func(ctx context.Context, m *botecloud.Message) error {
		_, err := c.Reply(ctx, m, botecloud.OutMessage{Body: []byte("pong")})
		return err
	}))
	if err != nil {
		log.Fatal(err)
	}
}

// A client on the Storage Queue bus of one storage account (here Azurite's).
func ExampleNewFromConnectionString() {
	ctx := context.Background()
	c, err := botecloud.NewFromConnectionString(ctx, "billing", "UseDevelopmentStorage=true")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
}

// New takes a bus driver the program opened itself.
func ExampleNew() {
	d, err := busdriver.Open(busdriver.Config{Kind: busdriver.ServiceBus, ServiceBusConnectionString: os.Getenv("SERVICEBUS")})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close(context.Background())
	c, err := botecloud.New(botecloud.Config{Bus: d, Service: "billing", Concurrency: 16})
	if err != nil {
		log.Fatal(err)
	}
	_ = c
}

var c *botecloud.Client // as made by New, NewFromEnv or NewFromConnectionString

// Call a connector and wait for its answer, at most 5 seconds.
func ExampleClient_Call() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := c.Call(ctx, "contoso", "agent-1", botecloud.OutMessage{Body: []byte("status?")})
	if errors.Is(err, context.DeadlineExceeded) {
		log.Print("agent-1 did not answer in time")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s answered %s\n", reply.From, reply.Body)
}

// Send to one connector, scheduled and with a time to live.
func ExampleClient_SendToConnector() {
	id, err := c.SendToConnector(context.Background(), "contoso", "agent-1", botecloud.OutMessage{
		Body: []byte("nightly job"), ContentType: "text/plain",
		Delay: time.Hour, TTL: 10 * time.Minute, // delivered in an hour; expired if not handled 10 minutes after
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent", id)
}

// Broadcast to every connector of a tenant subscribed to a topic.
func ExampleClient_Broadcast() {
	if _, err := c.Broadcast(context.Background(), "contoso", "chat", botecloud.OutMessage{Body: []byte("hello all")}); err != nil {
		log.Fatal(err)
	}
}

// Receive what connectors send; From is the identity the gateway verified.
func ExampleClient_Run() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	err := c.Run(ctx, botecloud.HandlerFunc(func(ctx context.Context, m *botecloud.Message) error {
		log.Printf("%s sent %q (id %s)", m.From, m.Body, m.ID)
		return nil // completes the message; an error retries it
	}))
	if err != nil {
		log.Fatal(err)
	}
}

// Answer a connector's Call with one call; the reply carries the call's
// deadline, which also bounds the handler's context.
func ExampleClient_Reply() {
	_ = c.Run(context.Background(), botecloud.HandlerFunc(func(ctx context.Context, m *botecloud.Message) error {
		_, err := c.Reply(ctx, m, botecloud.OutMessage{Body: []byte("done")})
		return err
	}))
}

// Stats counts late replies and expired messages.
func ExampleClient_Stats() {
	s := c.Stats()
	fmt.Println(s.LateReplies, s.Expired)
}

// A message that can never succeed goes to the error queue at once.
func ExamplePermanent() {
	_ = c.Run(context.Background(), botecloud.HandlerFunc(func(ctx context.Context, m *botecloud.Message) error {
		if len(m.Body) == 0 {
			return botecloud.Permanent(errors.New("empty request"))
		}
		return nil
	}))
}

// IsPermanent tells a permanent failure from one worth retrying.
func ExampleIsPermanent() {
	err := botecloud.Permanent(errors.New("no such order"))
	fmt.Println(botecloud.IsPermanent(err), botecloud.IsPermanent(errors.New("timeout")))
	// Output: true false
}

// Validate names the first bad field.
func ExampleConfig_Validate() {
	err := botecloud.Config{Service: "billing"}.Validate()
	fmt.Println(err)
	// Output: botecloud config: Bus is required
}

// Close closes the bus a client opened itself.
func ExampleClient_Close() {
	ctx := context.Background()
	c, err := botecloud.NewFromConnectionString(ctx, "billing", "UseDevelopmentStorage=true")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)
}
