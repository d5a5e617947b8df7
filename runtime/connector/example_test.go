package connector_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/connector"
)

// The smallest connector: configured from the environment (BOTE_GATEWAY_URL,
// BOTE_TOKEN_URL, BOTE_TENANT, BOTE_CONNECTOR, BOTE_KEY_FILE), answering
// every call from the cloud.
func ExampleConfigFromEnv() {
	cfg, err := connector.ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	var c *connector.Client
	cfg.Handler = connector.HandlerFunc(func(ctx context.Context, m *connector.Message) error {
		if m.Deadline.IsZero() {
			return nil // not a call
		}
		_, err := c.Reply(ctx, m, connector.OutMessage{Body: []byte("pong")})
		return err
	})
	if c, err = connector.New(cfg); err != nil {
		log.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// New with every field given.
func ExampleNew() {
	key, err := clientauth.LoadKeyFile("agent-1.pem")
	if err != nil {
		log.Fatal(err)
	}
	c, err := connector.New(connector.Config{
		GatewayURL: "https://gateway.example.com", TokenURL: "https://idp.example.com/oauth2/token",
		Tenant: "contoso", Connector: "agent-1", Key: key,
		Handler: connector.HandlerFunc(func(ctx context.Context, m *connector.Message) error {
			log.Printf("%s sent %q", m.From, m.Body)
			return nil // deletes the message; an error makes it come back
		}),
		DedupFile: "agent-1.seen", // dedup across restarts
	})
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = c.Run(context.Background()) }()
}

var c *connector.Client // as made by New, running

// Send to the cloud; the id is stable across the client's own retries.
func ExampleClient_Send() {
	id, err := c.Send(context.Background(), connector.OutMessage{Body: []byte("hello"), ContentType: "text/plain", TTL: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent", id)
}

// Call a cloud service and wait for its answer, at most 5 seconds.
func ExampleClient_Call() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := c.Call(ctx, "relayserver", connector.OutMessage{Body: []byte("config?")})
	if errors.Is(err, context.DeadlineExceeded) {
		log.Print("no answer in time")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s answered %s\n", reply.From, reply.Body)
}

// Reply answers a cloud service's Call from a handler.
func ExampleClient_Reply() {
	h := connector.HandlerFunc(func(ctx context.Context, m *connector.Message) error {
		_, err := c.Reply(ctx, m, connector.OutMessage{Body: []byte("ok")})
		return err
	})
	_ = h
}

// Subscribe to a topic of the connector's own tenant (broadcasts).
func ExampleClient_Subscribe() {
	if err := c.Subscribe(context.Background(), "chat"); err != nil {
		log.Fatal(err)
	}
	defer c.Unsubscribe(context.Background(), "chat")
}

// Wait for the session before sending.
func ExampleClient_WaitConnected() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Connected(), c.Stats().LateReplies)
}

// Run keeps the session and receives until its context ends.
func ExampleClient_Run() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if err := c.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// Unsubscribe ends a topic subscription.
func ExampleClient_Unsubscribe() {
	if err := c.Unsubscribe(context.Background(), "chat"); err != nil {
		log.Fatal(err)
	}
}

// Connected reports whether a session is up right now.
func ExampleClient_Connected() {
	fmt.Println(c.Connected())
}

// Stats counts late replies and expired messages.
func ExampleClient_Stats() {
	s := c.Stats()
	fmt.Println(s.LateReplies, s.Expired)
}

// HandlerFunc makes a function a Handler.
func ExampleHandlerFunc() {
	var h connector.Handler = connector.HandlerFunc(func(ctx context.Context, m *connector.Message) error {
		if m.Topic == "chat" {
			fmt.Printf("%s: %s\n", m.Headers["nick"], m.Body)
		}
		return nil
	})
	_ = h.Handle(context.Background(), &connector.Message{Topic: "chat", Headers: map[string]string{"nick": "sample-1"}, Body: []byte("hi")})
	// Output: sample-1: hi
}

// Validate names the first bad field.
func ExampleConfig_Validate() {
	cfg := connector.Config{GatewayURL: "gateway.example.com"}
	fmt.Println(cfg.Validate())
	// Output: connector config: GatewayURL "gateway.example.com" must be an absolute http(s) URL
}
