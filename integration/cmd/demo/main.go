// Command demo runs the platform's main job locally on Azurite: it starts
// the emulator and the platform's processes on loopback (idp, gateway,
// devrelay, opsserver and one deployment agent; package
// integration/platform), then drives them the way an operator would with
// the opsbot CLI: create a workspace, plan the sample configuration in
// examples/, apply the saved plan and print the outputs. Everything stops
// at the end, also on Ctrl-C. `make demo` runs it.
//
// Binaries come from $BOTE_BIN_DIR (as `make demo` sets it after `make
// build`), else they are built into a temporary directory. Keys, the connector registry and the
// processes' files go to .demo/ at the repository root (git-ignored),
// recreated on every run; --keep (make demo KEEP=1) leaves the platform
// running until Ctrl-C, with the web console served by `opsbot ui`, so
// that opsbot and the console can be tried by hand.
//
// With --gateway it starts the messaging gateway alone (Azurite, idp,
// gateway) with the sample connectors contoso/sample-1 to sample-3
// registered, writes .demo/sample-N.env for each and keeps running until
// Ctrl-C: the platform the samples in examples/ run against (`make
// demo-gateway`).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/botehq/platform/integration/platform"
	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
)

const (
	tenant    = "contoso"
	agentID   = "agent-01"
	workspace = "demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run is the demo, in the shape of every binary's run (runtime/cmd): the
// arguments without the program name, the streams and the environment;
// main alone handles signals (Ctrl-C ends ctx) and the exit code.
func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer, _ func(string) string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keep := fs.Bool("keep", false, "leave the platform running after the demo, until Ctrl-C")
	gateway := fs.Bool("gateway", false, "start only the messaging gateway with the sample connectors, for examples/, until Ctrl-C")
	verbose := fs.Bool("v", false, "show every process's output")
	if err := fs.Parse(args); err != nil {
		return err
	}

	root, err := procs.RepoRoot()
	if err != nil {
		return err
	}
	cleanup, err := platform.Binaries()
	if err != nil {
		return err
	}
	defer cleanup()
	d := &demo{dir: filepath.Join(root, ".demo"), root: root, stdout: stdout, stderr: stderr}
	if err := os.RemoveAll(d.dir); err != nil {
		return fmt.Errorf("cannot clear %s: %w", d.dir, err)
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return fmt.Errorf("cannot create %s: %w", d.dir, err)
	}
	if *gateway {
		return d.runGateway(ctx)
	}
	if *verbose {
		d.output = stderr
	}
	if err := d.start(ctx); err != nil {
		return err
	}
	defer d.stopAll()
	runID, err := d.planAndApply(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\nThe main job ran: a plan and its apply on a deployment agent, through the gateway and the relay.")
	if !*keep {
		fmt.Fprintln(stdout, "`make demo KEEP=1` keeps the platform up and serves the web console to click through this run.")
		return nil
	}
	return d.keep(ctx, runID)
}

// demo is one run of the demo: where it writes, and the platform once
// started.
type demo struct {
	dir, root      string
	stdout, stderr io.Writer
	output         io.Writer // the processes' output (-v), or nil
	p              *platform.Platform
}

// start starts the platform with one agent and writes opsbot.env.
func (d *demo) start(ctx context.Context) error {
	d.step(1, "starting the platform on loopback: Azurite, idp, gateway, devrelay, opsserver, agent "+tenant+"/"+agentID)
	started := time.Now()
	p, err := platform.Start(ctx, platform.Options{
		Dir:    d.dir,
		Agents: []platform.Agent{{Tenant: tenant, ID: agentID, Start: true}},
		Output: d.output,
		// Everything is on loopback: webhooks may reach a receiver there
		// (docs/notifications.md, examples/webhook).
		OpsServerArgs: []string{"--webhook-allow-private"},
	})
	if err != nil {
		return err
	}
	d.p = p
	fmt.Fprintf(d.stdout, "   up in %s (scratch directory %s)\n", time.Since(started).Round(time.Millisecond), d.dir)
	fmt.Fprintf(d.stdout, "   Azurite (%s) %s\n   idp         %s\n   gateway     %s\n   relay       %s (hybrid connection %q)\n",
		p.Emulator.Via, p.Emulator.BlobURL, p.IdpURL, p.GatewayURL, p.RelayNamespace, platform.HybridConnection)
	return writeEnv(p.OpsbotEnv(tenant), filepath.Join(d.dir, "opsbot.env"))
}

// planAndApply drives opsbot as an operator would: the agents, a new
// workspace, a plan of examples/ and its apply; it returns the run's id.
func (d *demo) planAndApply(ctx context.Context) (string, error) {
	opsbot := func(args ...string) (int, error) { return d.opsbot(ctx, args...) }
	d.step(2, "opsbot agents list")
	if _, err := mustOK(opsbot("agents", "list")); err != nil {
		return "", err
	}
	d.step(3, "opsbot workspaces create "+workspace)
	if _, err := mustOK(opsbot("workspaces", "create", workspace)); err != nil {
		return "", err
	}

	examples := filepath.Join(d.root, "examples")
	d.step(4, "opsbot plan --workspace "+workspace+" --dir examples   (packs, uploads, follows the run live)")
	code, err := opsbot("plan", "--workspace", workspace, "--dir", examples)
	if err != nil {
		return "", err
	}
	if code != exitcode.Changes {
		return "", fmt.Errorf("opsbot plan exited %d, expected %d (plan with changes)", code, exitcode.Changes)
	}
	runID, err := plannedRun(ctx, d.p)
	if err != nil {
		return "", err
	}

	d.step(5, "opsbot apply "+runID+" --yes   (applies exactly the saved plan, prints the outputs)")
	if _, err := mustOK(opsbot("apply", runID, "--yes")); err != nil {
		return "", err
	}
	d.step(6, "opsbot runs list")
	if _, err := mustOK(opsbot("runs", "list", "--workspace", workspace)); err != nil {
		return "", err
	}
	return runID, nil
}

// keep serves the web console and leaves the platform up until ctx ends.
func (d *demo) keep(ctx context.Context, runID string) error {
	d.step(7, "opsbot ui   (the web console on loopback, through the relay with the operator's key)")
	ui, url, err := startConsole(d.p)
	if err != nil {
		return err
	}
	defer ui.Stop()
	fmt.Fprintf(d.stdout, "   The console is at %s\n   The run it made: %s&/t/%s/runs/%s\n", url, url, tenant, runID)
	fmt.Fprintf(d.stdout, "\nThe platform keeps running. In another shell:\n\n   set -a; . %s; set +a\n   %s runs list\n\nCtrl-C stops everything.\n",
		filepath.Join(d.dir, "opsbot.env"), opsbotPath())
	<-ctx.Done()
	return nil
}

// startConsole runs `opsbot ui` as the demo's operator and returns the
// console's URL (with its session secret).
func startConsole(p *platform.Platform) (*procs.Process, string, error) {
	path, err := procs.BuildBinary("opsbot")
	if err != nil {
		return nil, "", err
	}
	ui, err := procs.Launch(procs.Spec{Name: "opsbot ui", Path: path, Args: []string{"ui"}, Dir: p.Dir,
		Env: append(p.OpsbotEnv(tenant), "XDG_CONFIG_HOME="+filepath.Join(p.Dir, "xdg")), StopGrace: 5 * time.Second})
	if err != nil {
		return nil, "", err
	}
	line, err := ui.WaitOutput("The console is at ", 30*time.Second)
	if err != nil {
		_ = ui.Stop()
		return nil, "", fmt.Errorf("opsbot ui did not start: %w\n%s", err, ui.Output())
	}
	_, url, _ := strings.Cut(strings.TrimSpace(line), "The console is at ")
	return ui, url, nil
}

// opsbot runs the CLI with the platform's environment, its output going
// to the terminal, and returns its exit code.
func (d *demo) opsbot(ctx context.Context, args ...string) (int, error) {
	path, err := procs.BuildBinary("opsbot")
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), d.p.OpsbotEnv(tenant)...)
	cmd.Env = append(cmd.Env, "XDG_CONFIG_HOME="+filepath.Join(d.p.Dir, "xdg"))
	cmd.Stdout, cmd.Stderr = d.stdout, d.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return 0, errors.New("interrupted")
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("cannot run opsbot: %w", err)
	}
	return 0, nil
}

// plannedRun finds the workspace's run waiting for approval, the way a
// script would: opsbot runs list --state planned --limit 1 -o json.
func plannedRun(ctx context.Context, p *platform.Platform) (string, error) {
	r, err := p.Opsbot(ctx, tenant, nil, "runs", "list", "--workspace", workspace, "--state", "planned", "--limit", "1", "-o", "json")
	if err != nil {
		return "", err
	}
	if r.Code != 0 {
		return "", fmt.Errorf("opsbot runs list failed: %s", r)
	}
	var list struct {
		Runs []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &list); err != nil {
		return "", fmt.Errorf("cannot read opsbot runs list -o json: %w", err)
	}
	for _, run := range list.Runs {
		if run.State == "planned" {
			return run.ID, nil
		}
	}
	return "", fmt.Errorf("no run of workspace %s waits for approval:\n%s", workspace, r.Stdout)
}

func mustOK(code int, err error) (int, error) {
	if err == nil && code != 0 {
		err = fmt.Errorf("opsbot exited %d", code)
	}
	return code, err
}

// writeEnv writes variables (k=v) as a shell file to source, mode 0600.
func writeEnv(vars []string, path string) error {
	var b bytes.Buffer
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "%s='%s'\n", k, v)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

func opsbotPath() string {
	if path, err := procs.BuildBinary("opsbot"); err == nil {
		return path
	}
	return "opsbot"
}

// step says which step of the script runs now (0: the last, stopping).
func (d *demo) step(n int, what string) {
	if n == 0 {
		fmt.Fprintf(d.stdout, "\n[-] %s\n", what)
		return
	}
	fmt.Fprintf(d.stdout, "\n[%d] %s\n", n, what)
}

// samples are the connectors --gateway registers for examples/.
var samples = []string{"sample-1", "sample-2", "sample-3"}

// runGateway starts the gateway alone for the samples and waits for ctx.
func (d *demo) runGateway(ctx context.Context) error {
	d.step(1, "starting the messaging gateway on loopback: Azurite, idp, gateway; connectors "+tenant+"/"+strings.Join(samples, ", "))
	var conns []platform.Connector
	for _, id := range samples {
		conns = append(conns, platform.Connector{Tenant: tenant, ID: id})
	}
	p, err := platform.Start(ctx, platform.Options{Dir: d.dir, Connectors: conns, GatewayOnly: true})
	if err != nil {
		return err
	}
	d.p = p
	defer d.stopAll()
	fmt.Fprintf(d.stdout, "   idp     %s\n   gateway %s\n", p.IdpURL, p.GatewayURL)
	for _, id := range samples {
		if err := writeEnv(p.SampleEnv(tenant, id), filepath.Join(d.dir, id+".env")); err != nil {
			return err
		}
	}
	fmt.Fprintf(d.stdout, "\nThe gateway runs. In another shell, for each sample program (see examples/README.md):\n\n"+
		"   set -a; . %s; set +a\n   go run ./examples/simple/connector\n\nCtrl-C stops everything.\n", filepath.Join(d.dir, samples[0]+".env"))
	<-ctx.Done()
	return nil
}

// stopAll stops the platform, saying so.
func (d *demo) stopAll() {
	d.step(0, "stopping everything")
	if err := d.p.Stop(); err != nil {
		fmt.Fprintln(d.stderr, "demo:", err)
	}
}
