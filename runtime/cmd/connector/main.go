// Command connector is the on-premises connector sidecar.
//
//	connector keygen --out key.pem     write a new private key (0600) and
//	                                   print its public JWK to register
//	connector run [flags]              keep a session with the gateway,
//	                                   deliver messages to --deliver-to and
//	                                   serve the local API on --listen
//
// Flags of run can also come from the environment as
// BOTE_CONNECTOR_<FLAG>, e.g. BOTE_CONNECTOR_GATEWAY_URL. The gateway's URL
// was --worker-url (BOTE_CONNECTOR_WORKER_URL) before the rename; that
// name is still read, with a warning, for one more release. See package
// connector/sidecar for the local HTTP contract.
package main

import (
	"context"
	"crypto/ecdh"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/botehq/platform/runtime/buildinfo"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/cmd/internal/program"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/connector/sidecar"
	"github.com/botehq/platform/runtime/envflag"
	"github.com/botehq/platform/runtime/registry"
)

const envPrefix = "BOTE_CONNECTOR"

// renamed are the names of run's flags before the worker became the gateway.
var renamed = envflag.Renamed{Flags: map[string]string{"worker-url": "gateway-url"}}

func main() { program.Main("connector", run) }

const usage = `usage:
  connector keygen --out key.pem [--kid id]
  connector run --gateway-url URL --token-url URL --tenant T --connector C --key key.pem --deliver-to URL [--listen 127.0.0.1:0]`

func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if buildinfo.Requested(args) {
		_, err := fmt.Fprintln(stdout, "connector", buildinfo.Read())
		return err
	}
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "run":
		return serve(ctx, args[1:], stdout, stderr, getenv)
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], usage)
	}
}

func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "private key file to create (refuses to overwrite)")
	kid := fs.String("kid", "", "key id in the JWK (default: RFC 7638 thumbprint)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("keygen: --out is required")
	}
	key, err := clientauth.GenerateKey()
	if err != nil {
		return err
	}
	if err := clientauth.WriteKeyFile(*out, key); err != nil {
		return err
	}
	jwk, err := clientauth.PublicJWK(key, *kid)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", jwk)
	return err
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg connector.Config
	var keyPath, deliverTo, listen string
	var deliverTimeout time.Duration
	fs.StringVar(&cfg.GatewayURL, "gateway-url", "", "gateway base URL")
	fs.StringVar(&cfg.TokenURL, "token-url", "", "idp token endpoint")
	fs.StringVar(&cfg.Tenant, "tenant", "", "tenant id")
	fs.StringVar(&cfg.Connector, "connector", "", "connector id")
	fs.StringVar(&keyPath, "key", "", "private key file (from connector keygen)")
	fs.StringVar(&deliverTo, "deliver-to", "", "local URL each message from the cloud is POSTed to (2xx = handled)")
	fs.DurationVar(&deliverTimeout, "deliver-timeout", 30*time.Second, "how long the local program may take per message")
	fs.StringVar(&listen, "listen", "127.0.0.1:0", "local API address (keep it on loopback)")
	fs.DurationVar(&cfg.SafetyPoll, "safety-poll", 0, "queue read interval without nudges (default 5m)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "messages delivered at once (default 4)")
	fs.DurationVar(&cfg.Visibility, "visibility", 0, "how long a message being delivered stays hidden before it is extended; after a crash it comes back this late (default 60s, at least 2s)")
	fs.DurationVar(&cfg.RetryDelay, "retry-delay", 0, "how long a message the local program failed stays hidden before it is delivered again, doubling with each further attempt up to 5m (default 5s; whole seconds)")
	fs.StringVar(&cfg.DedupFile, "dedup-file", "", "local file keeping the ids of handled messages, so none is delivered twice across a crash or restart (one fsync per message; default off)")
	fs.IntVar(&cfg.DedupSize, "dedup-size", 0, "ids the dedup file keeps (default 10000)")
	fs.IntVar(&cfg.CompressAbove, "compress-above", 0, "gzip bodies sent to the cloud that are longer than this many bytes (default off)")
	var cloudKeyPath string
	fs.StringVar(&cloudKeyPath, "cloud-key", "", "file with the cloud services' public key (a P-256 JWK): bodies sent to the cloud are encrypted to it end to end (default off)")
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	deprecated, err := renamed.Parse(fs, args, envPrefix, getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	envflag.Warn(log, deprecated)
	if deliverTo == "" {
		return errors.New("run: --deliver-to is required")
	}
	if keyPath == "" {
		return errors.New("run: --key is required")
	}
	key, err := clientauth.LoadKeyFile(keyPath)
	if err != nil {
		return err
	}
	cfg.Key = key
	if cloudKeyPath != "" {
		if cfg.CloudKey, err = loadPublicKey(cloudKeyPath); err != nil {
			return fmt.Errorf("run: --cloud-key: %w", err)
		}
	}
	cfg.Logger = log
	deliverer := &sidecar.Deliverer{URL: deliverTo, Client: &http.Client{Timeout: deliverTimeout}, Logger: log}
	cfg.Handler = deliverer
	client, err := connector.New(cfg)
	if err != nil {
		return err
	}
	deliverer.Replier = client // the local program's answer to a call is the reply

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", listen, err)
	}
	hs := &http.Server{Handler: (&sidecar.API{Gateway: client}).Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("local API stopped", "err", err)
		}
	}()
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())

	err = client.Run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	return err
}

// loadPublicKey reads a P-256 public JWK file as an ECDH key.
func loadPublicKey(path string) (*ecdh.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, err := registry.ParsePublicJWK(data)
	if err != nil {
		return nil, err
	}
	return pub.ECDH()
}
