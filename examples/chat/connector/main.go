// Command connector is a chat member: it joins the topic "chat" of its
// tenant, sends every line typed on stdin to the cloud service "chat" and
// prints what the others say (-say sends one line instead of reading
// stdin).
//
//	set -a; . .demo/sample-2.env; set +a
//	go run ./examples/chat/connector
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/botehq/platform/runtime/connector"
)

func main() {
	say := flag.String("say", "", "send this line instead of reading stdin, then stay to listen")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg, err := connector.ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	cfg.Handler = connector.HandlerFunc(func(_ context.Context, m *connector.Message) error {
		if m.Topic == "chat" && m.Headers["nick"] != cfg.Connector {
			fmt.Printf("%s: %s\n", m.Headers["nick"], m.Body)
		}
		return nil
	})
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := connector.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := c.WaitConnected(ctx); err != nil {
			return
		}
		if err := c.Subscribe(ctx, "chat"); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("joined chat as %s; type a line and Enter\n", cfg.Connector)
		var in io.Reader = os.Stdin
		if *say != "" {
			in = strings.NewReader(*say + "\n")
		}
		lines := bufio.NewScanner(in)
		for lines.Scan() {
			if _, err := c.Send(ctx, connector.OutMessage{Body: lines.Bytes(), ContentType: "text/plain"}); err != nil {
				fmt.Println("not sent:", err)
			}
		}
	}()
	if err := c.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
