// Command agent is the deployment agent: a bote connector that runs the
// Terraform phases the ops server assigns to it, in the customer's network,
// reaching the cloud only through the gateway over HTTPS.
//
//	agent --gateway-url URL --issuer URL --tenant T --id A --key key.pem [flags]
//
// The key is the connector key made by `connector keygen` (its public JWK
// is registered for the connector T/A); sealed run secrets are opened with
// it. Every flag can also come from the environment as BOTE_AGENT_<FLAG>,
// e.g. BOTE_AGENT_GATEWAY_URL (--worker-url and BOTE_AGENT_WORKER_URL, the
// names from before the rename, are still read with a warning for one more
// release). SIGINT or SIGTERM stops taking runs and lets
// running ones finish for --shutdown-grace before they are cancelled; a
// second signal cancels them at once, a third ends the agent. See
// docs/agent.md.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/agent"
	"github.com/botehq/platform/runtime/buildinfo"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/cmd/internal/program"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envflag"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/tfrun"
)

const envPrefix = "BOTE_AGENT"

// renamed are the names of flags before the worker became the gateway.
var renamed = envflag.Renamed{Flags: map[string]string{"worker-url": "gateway-url"}}

// readyLine starts what the agent prints once its gateway session is up.
const readyLine = "agent connected"

func main() { program.Main("agent", run) }

// options are the command line, before it becomes an agent.Config.
type options struct {
	gatewayURL, tokenURL, issuer string
	tenant, id, keyPath          string
	workDir, terraform           string
	server                       string
	concurrency                  int
	cancelGrace, heartbeat       time.Duration
	shutdownGrace, queueWait     time.Duration
	safetyPoll, visibility       time.Duration
	labels                       labels
	level                        slog.Level
	providers                    providerOptions
	deprecated                   []envflag.Deprecation // old names given
}

func parse(args []string, stderr io.Writer, getenv func(string) string) (*options, error) {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{labels: labels{}}
	fs.StringVar(&o.gatewayURL, "gateway-url", "", "gateway base URL")
	fs.StringVar(&o.tokenURL, "token-url", "", "idp token endpoint (or set --issuer)")
	fs.StringVar(&o.issuer, "issuer", "", "idp issuer URL; the token endpoint is <issuer>/oauth2/token")
	fs.StringVar(&o.tenant, "tenant", "", "tenant id")
	fs.StringVar(&o.id, "id", "", "agent (connector) id")
	fs.StringVar(&o.id, "agent", "", "same as --id")
	fs.StringVar(&o.keyPath, "key", "", "private key file (from connector keygen)")
	fs.StringVar(&o.workDir, "work-dir", "", "directory for the runs' working directories, 0700; each agent process works in its own locked subdirectory (default <tmp>/bote-agent/<tenant>/<id>)")
	fs.IntVar(&o.concurrency, "concurrency", 1, "Terraform runs at once")
	fs.IntVar(&o.concurrency, "capacity", 1, "same as --concurrency")
	fs.DurationVar(&o.cancelGrace, "cancel-grace", 30*time.Second, "how long Terraform gets after SIGINT before it is killed")
	fs.DurationVar(&o.heartbeat, "heartbeat-interval", runproto.HeartbeatInterval, "heartbeat interval")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", 5*time.Minute, "on shutdown, how long running runs may go on before they are cancelled")
	fs.DurationVar(&o.queueWait, "queue-wait", time.Minute, "how long an assignment above --concurrency waits for a slot before it is refused")
	fs.DurationVar(&o.safetyPoll, "safety-poll", 0, "queue read interval without nudges (default 5m)")
	fs.DurationVar(&o.visibility, "visibility", 0, "how long a message being delivered stays hidden before it is extended; one delivered to a session that was lost comes back this late (default 60s, at least 2s)")
	fs.StringVar(&o.terraform, "terraform", "terraform", "terraform executable")
	fs.StringVar(&o.server, "server", agent.DefaultServer, "the ops server's service name on the gateway (opsserver --service-name); run messages from any other sender are dropped")
	fs.Var(o.labels, "labels", "narrow the labels the agent serves to these: k=v[,k=v...] (repeatable); the registration grants the labels, this can only drop some")
	fs.Var(o.labels, "label", "same as --labels")
	fs.TextVar(&o.level, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	o.providers.flags(fs)
	var err error
	if o.deprecated, err = renamed.Parse(fs, args, envPrefix, getenv); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.tokenURL == "" && o.issuer == "":
		return nil, errors.New("--token-url or --issuer is required")
	case o.tokenURL != "" && o.issuer != "":
		return nil, errors.New("give --token-url or --issuer, not both")
	case o.keyPath == "":
		return nil, errors.New("--key is required")
	case o.concurrency < 1:
		return nil, fmt.Errorf("--concurrency %d must be at least 1", o.concurrency)
	case o.heartbeat <= 0 || o.cancelGrace <= 0 || o.shutdownGrace <= 0 || o.queueWait <= 0:
		return nil, errors.New("--heartbeat-interval, --cancel-grace, --shutdown-grace and --queue-wait must be positive")
	case o.visibility != 0 && o.visibility < 2*time.Second:
		return nil, fmt.Errorf("--visibility %s must be at least 2s", o.visibility)
	}
	if o.workDir == "" {
		o.workDir = filepath.Join(os.TempDir(), "bote-agent", o.tenant, o.id)
	}
	if o.issuer != "" {
		o.tokenURL = strings.TrimSuffix(o.issuer, "/") + "/oauth2/token"
	}
	if err := o.providers.check(o.workDir); err != nil {
		return nil, err
	}
	return o, nil
}

func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	// size: the agent's wiring in start-up order (terraform, providers, agent, session, signals); each piece needs the one before.
	if buildinfo.Requested(args) {
		printVersion(ctx, stdout, args, getenv)
		return nil
	}
	o, err := parse(args, stderr, getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: o.level}))
	envflag.Warn(log, o.deprecated)
	key, err := clientauth.LoadKeyFile(o.keyPath)
	if err != nil {
		return err
	}
	tf, err := tfrun.New(tfrun.Config{TerraformPath: o.terraform, CancelGrace: o.cancelGrace})
	if err != nil {
		return err
	}
	vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	tfVersion, err := tf.Version(vctx)
	cancel()
	if err != nil {
		// Runs would fail too, with their own reason; the agent still
		// serves and says so in its heartbeats (no terraform version).
		log.Warn("cannot read the terraform version", "terraform", o.terraform, "err", err)
	}

	cache, cliConfig, err := o.providers.open(log, getenv)
	if err != nil {
		return err
	}

	// The agent sends through the client it handles messages for: it
	// registers as the client's handler once it exists.
	client, err := connector.New(connector.Config{
		GatewayURL: o.gatewayURL, TokenURL: o.tokenURL, Tenant: o.tenant, Connector: o.id, Key: key,
		SafetyPoll: o.safetyPoll, Visibility: o.visibility, Logger: log,
		// Assignments waiting for a slot hold a handler; keep room for
		// run.cancel messages beside them.
		Concurrency: 2*o.concurrency + 4,
	})
	if err != nil {
		return err
	}
	a, err := agent.New(agent.Config{
		ProviderCache: cache, ProviderSources: o.providers.sources, CLIConfig: cliConfig, PlanWithoutProviders: o.providers.planWithout,
		Tenant: o.tenant, ID: o.id, Key: key, WorkDir: o.workDir, Server: o.server,
		Concurrency: o.concurrency, QueueWait: o.queueWait, HeartbeatInterval: o.heartbeat, ShutdownGrace: o.shutdownGrace,
		Labels: o.labels, Version: buildinfo.Read().Version, TerraformVersion: tfVersion, Terraform: tf, Logger: log,
		Sender: client,
	})
	if err != nil {
		return err
	}
	client.Handle(a)

	// The session outlives the agent's shutdown: results of runs still
	// finishing must go out through it.
	sessCtx, endSession := context.WithCancel(context.WithoutCancel(ctx))
	defer endSession()
	sessDone := make(chan error, 1)
	go func() { sessDone <- client.Run(sessCtx) }()

	// A signal ends ctx: running runs finish (up to --shutdown-grace); a
	// second one cancels them now.
	defer context.AfterFunc(ctx, func() {
		log.Info("signal: finishing running runs; signal again to cancel them now")
	})()
	program.OnSecondSignal(ctx, func() {
		log.Warn("second signal: cancelling running runs; a third one ends the agent at once")
		a.Stop()
	})

	go func() {
		if client.WaitConnected(ctx) == nil {
			// Scripts and tests wait for this line.
			fmt.Fprintf(stdout, "%s %s/%s: concurrency %d, work dir %s, labels %s\n", readyLine, o.tenant, o.id, o.concurrency, o.workDir, o.labels)
		}
	}()
	err = a.Run(ctx)
	endSession()
	return errors.Join(err, <-sessDone)
}

// printVersion prints the agent's build and the version of the terraform
// it would run (--terraform or BOTE_AGENT_TERRAFORM, default terraform on
// PATH).
func printVersion(ctx context.Context, w io.Writer, args []string, getenv func(string) string) {
	fmt.Fprintln(w, "agent", buildinfo.Read())
	path := cmp.Or(terraformFlag(args), getenv(envPrefix+"_TERRAFORM"), "terraform")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := terraformVersion(ctx, path)
	if err != nil {
		fmt.Fprintln(w, "terraform: unknown:", err)
		return
	}
	fmt.Fprintln(w, "terraform", v)
}

// terraformFlag is the value of --terraform on a command line that is not
// otherwise parsed (--version needs no other flag).
func terraformFlag(args []string) string {
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "terraform" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func terraformVersion(ctx context.Context, path string) (string, error) {
	tf, err := tfrun.New(tfrun.Config{TerraformPath: path})
	if err != nil {
		return "", err
	}
	return tf.Version(ctx)
}

// labels is a k=v[,k=v...] flag that may be repeated.
type labels map[string]string

func (l labels) String() string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

func (l labels) Set(s string) error {
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return fmt.Errorf("label %q: want key=value", kv)
		}
		l[k] = v
	}
	return nil
}
