// Command devrelay runs the test relay (package relay/relaytest) on a
// loopback port for local runs: opsserver listens on it and opsbot sends
// through it exactly as they would through Azure Relay, with plain ws/http
// (clients must set Insecure) unless --tls is given.
//
// It prints, one per line, in KEY=VALUE form that a shell can source:
//
//	devrelay listening on 127.0.0.1:9354
//	RELAY_NAMESPACE=127.0.0.1:9354
//	RELAY_HYBRID_CONNECTION=opsbot
//	RELAY_LISTEN_CONNECTION_STRING=Endpoint=sb://127.0.0.1:9354/;SharedAccessKeyName=listen;SharedAccessKey=...;EntityPath=opsbot
//	RELAY_SEND_CONNECTION_STRING=Endpoint=sb://127.0.0.1:9354/;SharedAccessKeyName=send;SharedAccessKey=...;EntityPath=opsbot
//
// and runs until interrupted.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/botehq/platform/runtime/buildinfo"
	"github.com/botehq/platform/runtime/cmd/internal/program"
	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/relay/relaytest"
)

func main() { program.Main("devrelay", run) }

type config struct {
	listen        string
	hc            string
	listenKeyName string
	listenKey     string
	sendKeyName   string
	sendKey       string
	tls           bool
	envFile       string
	verbose       bool
}

func (c config) Validate() error {
	if c.listen == "" {
		return errors.New("--listen: required")
	}
	if strings.TrimSpace(c.hc) == "" {
		return errors.New("--hybrid-connection: required")
	}
	if c.listenKeyName == "" || c.sendKeyName == "" {
		return errors.New("--listen-key-name and --send-key-name: must not be empty")
	}
	if c.listenKeyName == c.sendKeyName {
		return errors.New("--send-key-name: must differ from --listen-key-name")
	}
	return nil
}

func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer, _ func(string) string) error {
	if buildinfo.Requested(args) {
		_, err := fmt.Fprintln(stdout, "devrelay", buildinfo.Read())
		return err
	}
	var c config
	fs := flag.NewFlagSet("devrelay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9354", "TCP address to serve the relay on (port 0 picks a free one)")
	fs.StringVar(&c.hc, "hybrid-connection", "opsbot", "hybrid connection names to create, comma-separated; the first is used in the printed connection strings")
	fs.StringVar(&c.listenKeyName, "listen-key-name", "listen", "name of the SAS rule with the Listen right")
	fs.StringVar(&c.listenKey, "listen-key", "", "key of the Listen rule (default: random)")
	fs.StringVar(&c.sendKeyName, "send-key-name", "send", "name of the SAS rule with the Send right")
	fs.StringVar(&c.sendKey, "send-key", "", "key of the Send rule (default: random)")
	fs.BoolVar(&c.tls, "tls", false, "serve wss/https with a self-signed certificate")
	fs.StringVar(&c.envFile, "env-file", "", "also write the RELAY_* lines to this file")
	fs.BoolVar(&c.verbose, "v", false, "log relay activity to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("invalid flags: %w", err)
	}
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var names []string
	for _, n := range strings.Split(c.hc, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	srv, err := relaytest.Start(relaytest.Options{Addr: c.listen, TLS: c.tls, HybridConnections: names, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	if c.listenKey == "" {
		c.listenKey = randomKey()
	}
	if c.sendKey == "" {
		c.sendKey = randomKey()
	}
	srv.AddRule(c.listenKeyName, c.listenKey, relaytest.Listen)
	srv.AddRule(c.sendKeyName, c.sendKey, relaytest.Send)

	listenCS := relay.Namespace{Host: srv.Host, KeyName: c.listenKeyName, Key: c.listenKey, EntityPath: names[0]}.ConnectionString()
	sendCS := relay.Namespace{Host: srv.Host, KeyName: c.sendKeyName, Key: c.sendKey, EntityPath: names[0]}.ConnectionString()
	env := fmt.Sprintf("RELAY_NAMESPACE=%s\nRELAY_HYBRID_CONNECTION=%s\nRELAY_LISTEN_CONNECTION_STRING=%s\nRELAY_SEND_CONNECTION_STRING=%s\n",
		srv.Host, names[0], listenCS, sendCS)
	if c.envFile != "" {
		if err := os.WriteFile(c.envFile, []byte(env), 0o600); err != nil {
			return fmt.Errorf("cannot write --env-file %s: %w", c.envFile, err)
		}
	}
	scheme := "ws"
	if c.tls {
		scheme = "wss"
	}
	fmt.Fprintf(stdout, "devrelay listening on %s (%s)\n%s", srv.Host, scheme, env)
	<-ctx.Done()
	return nil
}

func randomKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}
