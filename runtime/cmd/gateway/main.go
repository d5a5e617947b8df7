// Command gateway is the bote messaging gateway: it holds connector sessions
// over WebSocket, routes cloud→connector messages into connector queues and
// stamps verified identity on what connectors send to the cloud.
//
// Every flag can also be set from the environment as BOTE_GATEWAY_<FLAG>
// (dashes as underscores), e.g. BOTE_GATEWAY_STORAGE_CONNECTION_STRING.
// The names from before the rename, BOTE_WORKER_<FLAG>, are still read,
// with a warning, for one more release (docs/conventions.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/botehq/platform/runtime/buildinfo"
	"github.com/botehq/platform/runtime/cmd/internal/program"
	"github.com/botehq/platform/runtime/envflag"
	"github.com/botehq/platform/runtime/gatewayserver"
)

const envPrefix = "BOTE_GATEWAY"

// renamed are the names the gateway had as "the worker".
var renamed = envflag.Renamed{Prefix: "BOTE_WORKER"}

func main() { program.Main("gateway", run) }

func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if buildinfo.Requested(args) {
		_, err := fmt.Fprintln(stdout, "gateway", buildinfo.Read())
		return err
	}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	var cfg gatewayserver.Config
	var useIdentity bool
	fs.StringVar(&cfg.Listen, "listen", ":8080", "HTTP listen address (:0 picks a free port)")
	fs.StringVar(&cfg.StorageConnectionString, "storage-connection-string", "", "storage account connection string (queues, tables, blobs)")
	fs.StringVar(&cfg.QueueURL, "queue-url", "", "queue service URL (with --azure-identity)")
	fs.StringVar(&cfg.TableURL, "table-url", "", "table service URL (with --azure-identity)")
	fs.StringVar(&cfg.BlobURL, "blob-url", "", "blob service URL (with --azure-identity)")
	fs.BoolVar(&useIdentity, "azure-identity", false, "authenticate to storage with Microsoft Entra ID (DefaultAzureCredential)")
	fs.StringVar(&cfg.StorageAccountName, "storage-account-name", "", "account name for signing queue SAS URLs (with --azure-identity)")
	fs.StringVar(&cfg.StorageAccountKey, "storage-account-key", "", "account key for signing queue SAS URLs (with --azure-identity)")
	fs.StringVar(&cfg.Issuer, "issuer", "", "idp issuer URL access tokens must carry")
	fs.StringVar(&cfg.JWKSURL, "jwks-url", "", "idp JWKS URL (default <issuer>/.well-known/jwks.json)")
	fs.StringVar(&cfg.Audience, "audience", "bote", "audience access tokens must carry")
	fs.StringVar(&cfg.Bus, "bus", gatewayserver.BusStorageQueue, "bus driver: storagequeue or servicebus")
	fs.StringVar(&cfg.ServiceBusConnectionString, "servicebus-connection-string", "", "Service Bus connection string (with --bus servicebus)")
	fs.StringVar(&cfg.ServiceBusNamespace, "servicebus-namespace", "", "Service Bus fully qualified namespace (with --bus servicebus and --azure-identity)")
	fs.Func("cloud-services", "comma-separated cloud service names allowed as senders on bote-connectors (default: any well-formed name)", func(v string) error {
		cfg.CloudServices = nil
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				cfg.CloudServices = append(cfg.CloudServices, s)
			}
		}
		return nil
	})
	fs.StringVar(&cfg.SigningKeyPath, "signing-key", "", "EC P-256 private key file (PEM) signing every envelope the gateway stamps a connector's identity on (cloud services check it with --gateway-keys)")
	fs.StringVar(&cfg.CloudServiceKeysPath, "cloud-service-keys", "", "JSON file of cloud service names and the public keys (JWKs) their envelopes must be signed with; only these services may send (default: unsigned envelopes accepted)")
	fs.StringVar(&cfg.Replica, "replica", "", "replica id for nudge fan-out (lowercase letters and digits; default random)")
	fs.StringVar(&cfg.RegistryPath, "registry", "", "connector registration file; targeted messages to unknown connectors go to the error queue")
	fs.DurationVar(&cfg.RegistryPoll, "registry-poll", gatewayserver.DefaultRegistryPoll, "how often, at most, to look at the registration file for changes")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", 0, "WebSocket ping interval (default 30s)")
	fs.IntVar(&cfg.MaxSessionsPerConnector, "max-sessions-per-connector", 0, "sessions one connector may hold on this replica; a new one beyond it closes the oldest (default 4)")
	fs.DurationVar(&cfg.SASLifetime, "sas-lifetime", 0, "lifetime of queue SAS URLs (default 15m)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 0, "graceful shutdown limit (default 30s)")
	fs.DurationVar(&cfg.RoutePollMin, "route-poll-min", 0, "router wait after an empty receive on a polling bus (default 20ms)")
	fs.DurationVar(&cfg.RoutePollMax, "route-poll-max", 0, "longest router wait while idle on a polling bus (default 5s: a safety net, since cloud services wake the router on /v1/route-wake after queueing work)")
	fs.DurationVar(&cfg.RouteLock, "route-lock", 0, "how long a message the router received stays invisible to other receives, renewed while it is routed: a message whose receive was lost (a replica killed, the storage service restarting) waits this long (default 30s, at least 2s; Storage Queues only)")
	fs.IntVar(&cfg.FanOut, "route-fan-out", 0, "connector-queue enqueues the router keeps in flight, e.g. for a broadcast (default 64, at most 512; sized to the storage account's 20,000 requests/s target)")
	fs.StringVar(&cfg.PprofListen, "pprof-listen", "", "serve Go pprof endpoints on this loopback address, e.g. 127.0.0.1:6060 (off by default)")
	fs.BoolVar(&cfg.SessionsOnly, "sessions-only", false, "serve sessions but route nothing (routing runs on other replicas)")
	fs.BoolVar(&cfg.CreateResources, "create-resources", false, "create missing queues, tables and the claim container (local use)")
	gcPercent := fs.Int("gc-percent", defaultGCPercent, "Go's GC target percentage for the gateway (GOGC), unless GOGC or GOMEMLIMIT is set in the environment")
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.SetOutput(stderr)
	deprecated, err := renamed.Parse(fs, args, envPrefix, getenv)
	if err != nil {
		return err
	}
	if *gcPercent < 10 || *gcPercent > 1000 {
		return fmt.Errorf("--gc-percent %d must be between 10 and 1000", *gcPercent)
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Stdout = stdout
	envflag.Warn(cfg.Logger, deprecated)
	if cfg.JWKSURL == "" && cfg.Issuer != "" {
		cfg.JWKSURL = cfg.Issuer + "/.well-known/jwks.json"
	}
	if useIdentity {
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return fmt.Errorf("cannot set up Azure identity: %w", err)
		}
		cfg.Credential = cred
	}
	setGCPercent(cfg.Logger, *gcPercent, getenv)
	return gatewayserver.Run(ctx, cfg)
}

// defaultGCPercent is the gateway's GC target. Memory grows with idle
// sessions, and the runtime keeps about (1 + GOGC/100) times the heap in
// use: with Go's default of 100 an idle session costs 14–34 KiB of
// resident memory, with 25 13–19 KiB (26 right after a burst of
// connections), for about 25 % more CPU while
// sessions are opened (docs/benchmarks.md, "Gateway memory per idle
// session").
const defaultGCPercent = 25

// setGCPercent sets the GC target percentage, unless the environment sets
// Go's own GOGC or GOMEMLIMIT, which the runtime has read and which win.
func setGCPercent(log *slog.Logger, percent int, getenv func(string) string) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		log.Info("GC settings from the environment", "GOGC", getenv("GOGC"), "GOMEMLIMIT", getenv("GOMEMLIMIT"))
		return
	}
	debug.SetGCPercent(percent)
}
