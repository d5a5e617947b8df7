package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/buildinfo"
	"github.com/botehq/platform/runtime/cmd/internal/program"
	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/opsconfig"
	"github.com/botehq/platform/runtime/relay"
)

// app holds what commands share: the resolved config and, once built, the
// client and where it points.
type app struct {
	lookup         func(string) (string, bool)
	stdin          io.Reader
	stdout, stderr io.Writer
	// terminal reports whether stdin is a terminal an operator can answer
	// a confirmation on.
	terminal func() bool
	cfg      *opsconfig.Config
	// redact is the config as resolved, even when invalid: what to hide
	// from messages.
	redact *opsconfig.Config
	target target
	azure  azcore.TokenCredential // set by tests; else made on first use
	api    runsAPI                // set by tests; else the ops client
	// logsToStdout: the command's output is a run's log (opsbot logs).
	logsToStdout bool
	// cancelWindow is how long a second Ctrl-C cancels a followed run
	// (default 3 s; interrupt.go).
	cancelWindow time.Duration
	// shownWaiting is the last reason a run waits that was printed.
	shownWaiting string
}

// run executes the CLI; a failure is a *program.ExitError with the exit
// code (exitcodes.go) and the message to print.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	a := &app{
		// An empty variable is unset (opsconfig treats it so too).
		lookup: func(k string) (string, bool) { v := getenv(k); return v, v != "" },
		stdin:  stdin, stdout: stdout, stderr: stderr,
		terminal: func() bool { return isTerminal(stdin) },
	}
	return a.run(ctx, args)
}

// isTerminal reports whether r is a character device other than the null
// device: a terminal, not a pipe, a file or /dev/null (which CI and nohup
// give).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}

func (a *app) stdinIsTerminal() bool { return a.terminal != nil && a.terminal() }

func (a *app) run(ctx context.Context, args []string) error {
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return &program.ExitError{Code: exitInterrupted}
	}
	code, msg := explain(err, a.target)
	if msg == "" { // a run outcome already printed says it all
		return &program.ExitError{Code: code}
	}
	// Errors can echo a setting (a connection string, a URL).
	return &program.ExitError{Code: code, Err: errors.New(a.redact.Redact(msg))}
}

func (a *app) rootCommand() *cobra.Command {
	// size: the root command's help text, global flags and subcommands declared together, as cobra reads them.
	root := &cobra.Command{
		Use:   "opsbot",
		Short: "Operate the bote ops server through Azure Relay",
		Long: `opsbot talks to the ops server (relayserver) through Azure Relay Hybrid
Connections, or directly to a relayserver's local port with --local-url.

Every setting can be a flag, an OPSBOT_* environment variable or a key in the
config file ($XDG_CONFIG_HOME/opsbot/config.yaml by default; --config), at
its top level or in a named profile (--profile gov or OPSBOT_PROFILE; the
file's profile key names the default one): flags win over the environment,
which wins over the profile, which wins over the file's top level. Prefer
the environment or the file for secrets (key, api_key). opsbot config show
says where each value came from.

Commands that follow a run (plan, apply, destroy, logs -f) end with the
run's outcome, like terraform plan -detailed-exitcode: 0 success (no
changes, or applied), 10 the plan has changes and waits for approval, 11
the run failed, 12 it was cancelled or timed out.

Ctrl-C while following a run stops following, not the run; a second
Ctrl-C within 3 s cancels a run this command started or approved.

Exit codes: 0 ok, 1 error, 2 usage or configuration (unknown command or
flag, bad value), 3 relay unreachable, 4 no relayserver listening, 5 relay
refused credentials, 6 ops server refused the API key, 7 hybrid connection
not found, 8 timeout, 9 no such tenant, workspace or run, 10 plan has
changes, 11 run failed, 12 run cancelled or timed out, 130 interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Read().String(),
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if !needsConfig(cmd) {
				return nil
			}
			cfg, warnings, err := opsconfig.Resolve(cmd.Flags(), a.lookup)
			a.redact = cfg
			for _, w := range warnings {
				fmt.Fprintln(a.stderr, "opsbot: warning:", w)
			}
			if err != nil && cfg != nil && cmd.Name() == "show" {
				fmt.Fprintln(a.stderr, "opsbot: warning: the configuration is invalid:", cfg.Redact(err.Error()))
				err = nil
			}
			if err != nil {
				return usageError{err}
			}
			a.cfg = cfg
			return nil
		},
	}
	root.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	opsconfig.RegisterFlags(root.PersistentFlags())

	status := &cobra.Command{
		Use:   "status",
		Short: "Show the server's version, uptime, relay connection and agent count",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(st, func(w io.Writer) { printStatus(w, st) })
		},
	}

	agentsList := &cobra.Command{
		Use:   "list",
		Short: "List deployment agents with their last heartbeat (all tenants' unless --tenant)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tenant, err := a.tenantOf(cmd)
			if err != nil {
				tenant = "" // optional here: every tenant's agents
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			list, err := c.AgentList(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			return a.print(list, func(w io.Writer) { printAgents(w, *list) })
		},
	}
	agents := &cobra.Command{Use: "agents", Short: "Deployment agents"}
	agents.AddCommand(agentsList)

	var interval time.Duration
	var count int
	events := &cobra.Command{
		Use:   "events",
		Short: "Follow server events over a relayed WebSocket (Ctrl-C to stop)",
		Long: `Follow server events. The stream is a WebSocket carried by the relay, so it
is not bound by the relay's 60 s HTTP deadline; if the server restarts, opsbot
reconnects.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return a.followEvents(cmd.Context(), c, interval, count)
		},
	}
	events.Flags().DurationVar(&interval, "interval", 0, "time between status events (server default when 0)")
	events.Flags().IntVar(&count, "count", 0, "stop after this many events (0: follow until interrupted)")

	configShow := &cobra.Command{
		Use:   "show",
		Short: "Show the resolved configuration and where each value came from (secrets redacted)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, profile := a.cfg.File, a.cfg.Profile
			if file == "" {
				file = "none"
			}
			if profile == "" {
				profile = "none"
			} else {
				profile += " (" + a.cfg.ProfileSource + ")"
			}
			fmt.Fprintf(a.stdout, "Config file: %s\nProfile:     %s\n\n", file, profile)
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SETTING\tVALUE\tSOURCE")
			for _, s := range opsconfig.Settings() {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Key, s.Get(a.cfg), a.cfg.Source(s.Key))
			}
			return tw.Flush()
		},
	}
	config := &cobra.Command{Use: "config", Short: "Inspect the CLI configuration"}
	config.AddCommand(configShow)

	root.AddCommand(status, agents, events, config)
	root.AddCommand(a.runsCommands()...)
	root.AddCommand(a.auditCommand())
	root.AddCommand(a.keysCommand(), a.whoamiCommand())
	root.AddCommand(a.stateCommand())
	strict(root)
	return root
}

// client builds the API client for the resolved config: through the relay,
// or straight to a local port.
func (a *app) client() (*opsclient.Client, error) {
	cfg := a.cfg
	ccfg := opsclient.Config{Credential: cfg.APIKey, Timeout: cfg.Timeout, UserAgent: "opsbot/" + version}
	switch {
	case cfg.APIScope != "":
		cred, err := a.azureCredential()
		if err != nil {
			return nil, err
		}
		scopes := []string{cfg.APIScope}
		ccfg.TokenSource = func(ctx context.Context) (string, error) {
			tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: scopes})
			return tok.Token, err
		}
	case cfg.APIKey == "":
		return nil, usageError{errors.New("api_key: required (or api_scope for an Entra login); set OPSBOT_API_KEY, api_key in the config file, or --api-key")}
	}
	if cfg.LocalURL != "" {
		a.target = target{host: cfg.LocalURL, local: true}
		ccfg.BaseURL = cfg.LocalURL
		return opsclient.New(ccfg)
	}
	ns, err := cfg.ParseNamespace()
	if err != nil {
		return nil, usageError{fmt.Errorf("namespace: %w", err)}
	}
	hc := cfg.HybridConnection
	if hc == "" {
		hc = ns.EntityPath
	}
	a.target = target{host: ns.Host, hybridConnection: hc}
	scfg := relay.SenderConfig{Namespace: ns, HybridConnection: hc, Insecure: cfg.RelayInsecure}
	switch {
	case cfg.RelayAuth == opsconfig.RelayAuthEntra:
		cred, err := a.azureCredential()
		if err != nil {
			return nil, err
		}
		scfg.Credential = relay.NewEntraCredential(cred)
	case cfg.KeyName != "":
		scfg.Credential = relay.NewSASCredential(cfg.KeyName, cfg.Key)
	}
	sender, err := relay.NewSender(scfg)
	if err != nil {
		return nil, usageError{err}
	}
	// The relay ignores the host; the path reaches the server as is.
	ccfg.BaseURL = "http://" + hc
	ccfg.Transport = sender
	ccfg.StreamTransport = sender.StreamTransport()
	return opsclient.New(ccfg)
}

// azureCredential is the Entra login (az login, AZURE_* environment,
// workload or managed identity), made once and shared by the relay and the
// API token.
func (a *app) azureCredential() (azcore.TokenCredential, error) {
	if a.azure == nil {
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("cannot set up the Entra login (az login, environment or managed identity): %w", err)
		}
		a.azure = cred
	}
	return a.azure, nil
}

// followEvents prints events until ctx ends or count events were printed,
// reconnecting with jittered backoff when the server ends the stream.
func (a *app) followEvents(ctx context.Context, c *opsclient.Client, interval time.Duration, count int) error {
	seen := 0
	errEnough := errors.New("enough events")
	delay := 500 * time.Millisecond
	for {
		err := c.Events(ctx, interval, func(ev opsapitypes.Event) error {
			seen++
			delay = 500 * time.Millisecond
			if err := a.printEvent(ev); err != nil {
				return err
			}
			if count > 0 && seen >= count {
				return errEnough
			}
			return nil
		})
		switch {
		case errors.Is(err, errEnough), err == nil:
			return nil
		case errors.Is(err, opsclient.ErrStreamEnded), errors.Is(err, relay.ErrNoListener) && seen > 0:
			// The server went away (restart, redeploy); follow it.
			wait := delay/2 + rand.N(delay/2+1)
			fmt.Fprintf(a.stderr, "opsbot: event stream ended (%v); reconnecting in %s\n", err, wait.Round(time.Millisecond))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			delay = min(2*delay, 15*time.Second)
		default:
			return err
		}
	}
}

func (a *app) printEvent(ev opsapitypes.Event) error {
	if a.cfg.Output == opsconfig.OutputJSON {
		return writeJSONLine(a.stdout, ev)
	}
	switch {
	case ev.Type == opsapitypes.EventStatus && ev.Status != nil:
		relayState := "disconnected"
		if ev.Status.RelayConnected {
			relayState = "connected"
		}
		_, err := fmt.Fprintf(a.stdout, "%s  status  version=%s uptime=%s relay=%s agents=%d\n",
			ev.Time.Local().Format(time.TimeOnly), ev.Status.Version, time.Duration(ev.Status.UptimeSeconds)*time.Second, relayState, ev.Status.AgentCount)
		return err
	default:
		_, err := fmt.Fprintf(a.stdout, "%s  %s\n", ev.Time.Local().Format(time.TimeOnly), ev.Type)
		return err
	}
}

// print writes v as JSON or calls table.
func (a *app) print(v any, table func(io.Writer)) error {
	if a.cfg.Output == opsconfig.OutputJSON {
		return writeJSONIndent(a.stdout, v)
	}
	table(a.stdout)
	return nil
}
