package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/buildinfo"
	"github.com/botehq/platform/runtime/cmd/internal/program"
	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
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
// code (package exitcode, chosen in exitcodes.go) and the message to print.
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
		return &program.ExitError{Code: exitcode.Interrupted}
	}
	code, msg := explain(err, a.target)
	if msg == "" { // a run outcome already printed says it all
		return &program.ExitError{Code: code}
	}
	// Errors can echo a setting (a connection string, a URL).
	return &program.ExitError{Code: code, Err: errors.New(a.redact.Redact(msg))}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "opsbot",
		Short: "Operate the bote ops server through Azure Relay",
		Long: `opsbot talks to the ops server (opsserver) through Azure Relay Hybrid
Connections, or directly to an ops server's local port with --local-url.

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
flag, bad value), 3 relay unreachable, 4 no ops server listening, 5 relay
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

	root.AddCommand(a.statusCommand(), a.agentsCommand(), a.eventsCommand(), a.configCommand())
	root.AddCommand(a.runsCommands()...)
	root.AddCommand(a.auditCommand())
	root.AddCommand(a.keysCommand(), a.whoamiCommand())
	root.AddCommand(a.stateCommand())
	root.AddCommand(a.policiesCommand(), a.notificationsCommand(), a.driftCommand())
	root.AddCommand(a.mcpCommand())
	root.AddCommand(a.uiCommand())
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

// print writes v as JSON or calls table.
func (a *app) print(v any, table func(io.Writer)) error {
	if a.cfg.Output == opsconfig.OutputJSON {
		return writeJSONIndent(a.stdout, v)
	}
	table(a.stdout)
	return nil
}
