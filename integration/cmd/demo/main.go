// Command demo runs the platform's main job locally on Azurite: it starts
// the emulator and the platform's processes on loopback (idp, gateway,
// devrelay, relayserver and one deployment agent; package
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
)

const (
	tenant    = "contoso"
	agentID   = "agent-01"
	workspace = "demo"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	// size: the demo's script, step by step.
	keep := flag.Bool("keep", false, "leave the platform running after the demo, until Ctrl-C")
	gateway := flag.Bool("gateway", false, "start only the messaging gateway with the sample connectors, for examples/, until Ctrl-C")
	verbose := flag.Bool("v", false, "show every process's output")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := procs.RepoRoot()
	if err != nil {
		return err
	}
	cleanup, err := platform.Binaries()
	if err != nil {
		return err
	}
	defer cleanup()
	dir := filepath.Join(root, ".demo")
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("cannot clear %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}

	if *gateway {
		return runGateway(ctx, dir)
	}
	step(1, "starting the platform on loopback: Azurite, idp, gateway, devrelay, relayserver, agent "+tenant+"/"+agentID)
	var out io.Writer
	if *verbose {
		out = os.Stderr
	}
	started := time.Now()
	p, err := platform.Start(ctx, platform.Options{
		Dir:    dir,
		Agents: []platform.Agent{{Tenant: tenant, ID: agentID, Start: true}},
		Output: out,
		// Everything is on loopback: webhooks may reach a receiver there
		// (docs/notifications.md, examples/webhook).
		RelayserverArgs: []string{"--webhook-allow-private"},
	})
	if err != nil {
		return err
	}
	defer stopAll(p)
	fmt.Printf("   up in %s (scratch directory %s)\n", time.Since(started).Round(time.Millisecond), dir)
	fmt.Printf("   Azurite (%s) %s\n   idp         %s\n   gateway     %s\n   relay       %s (hybrid connection %q)\n",
		p.Emulator.Via, p.Emulator.BlobURL, p.IdpURL, p.GatewayURL, p.RelayNamespace, platform.HybridConnection)
	if err := writeEnvFile(p, filepath.Join(dir, "opsbot.env")); err != nil {
		return err
	}

	opsbot := func(args ...string) (int, error) { return runOpsbot(ctx, p, args...) }

	step(2, "opsbot agents list")
	if _, err := mustOK(opsbot("agents", "list")); err != nil {
		return err
	}

	step(3, "opsbot workspaces create "+workspace)
	if _, err := mustOK(opsbot("workspaces", "create", workspace)); err != nil {
		return err
	}

	examples := filepath.Join(root, "examples")
	step(4, "opsbot plan --workspace "+workspace+" --dir examples   (packs, uploads, follows the run live)")
	code, err := opsbot("plan", "--workspace", workspace, "--dir", examples)
	if err != nil {
		return err
	}
	if code != 10 { // exit 10: the plan has changes and waits for approval
		return fmt.Errorf("opsbot plan exited %d, expected 10 (plan with changes)", code)
	}
	runID, err := plannedRun(ctx, p)
	if err != nil {
		return err
	}

	step(5, "opsbot apply "+runID+" --yes   (applies exactly the saved plan, prints the outputs)")
	if _, err := mustOK(opsbot("apply", runID, "--yes")); err != nil {
		return err
	}

	step(6, "opsbot runs list")
	if _, err := mustOK(opsbot("runs", "list", "--workspace", workspace)); err != nil {
		return err
	}

	fmt.Println("\nThe main job ran: a plan and its apply on a deployment agent, through the gateway and the relay.")
	if !*keep {
		fmt.Println("`make demo KEEP=1` keeps the platform up and serves the web console to click through this run.")
		return nil
	}
	step(7, "opsbot ui   (the web console on loopback, through the relay with the operator's key)")
	ui, url, err := startConsole(p)
	if err != nil {
		return err
	}
	defer ui.Stop()
	fmt.Printf("   The console is at %s\n   The run it made: %s&/t/%s/runs/%s\n", url, url, tenant, runID)
	fmt.Printf("\nThe platform keeps running. In another shell:\n\n   set -a; . %s; set +a\n   %s runs list\n\nCtrl-C stops everything.\n",
		filepath.Join(dir, "opsbot.env"), opsbotPath())
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

// runOpsbot runs the CLI with the platform's environment, its output going
// to the terminal, and returns its exit code.
func runOpsbot(ctx context.Context, p *platform.Platform, args ...string) (int, error) {
	path, err := procs.BuildBinary("opsbot")
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), p.OpsbotEnv(tenant)...)
	cmd.Env = append(cmd.Env, "XDG_CONFIG_HOME="+filepath.Join(p.Dir, "xdg"))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
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

// writeEnvFile writes the opsbot settings for trying the CLI by hand
// (mode 0600: it holds the API key and the relay key).
func writeEnvFile(p *platform.Platform, path string) error {
	return writeEnv(p.OpsbotEnv(tenant), path)
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

func step(n int, what string) {
	if n == 0 {
		fmt.Printf("\n[-] %s\n", what)
		return
	}
	fmt.Printf("\n[%d] %s\n", n, what)
}

// samples are the connectors --gateway registers for examples/.
var samples = []string{"sample-1", "sample-2", "sample-3"}

// runGateway starts the gateway alone for the samples and waits for ctx.
func runGateway(ctx context.Context, dir string) error {
	step(1, "starting the messaging gateway on loopback: Azurite, idp, gateway; connectors "+tenant+"/"+strings.Join(samples, ", "))
	var conns []platform.Connector
	for _, id := range samples {
		conns = append(conns, platform.Connector{Tenant: tenant, ID: id})
	}
	p, err := platform.Start(ctx, platform.Options{Dir: dir, Connectors: conns, GatewayOnly: true})
	if err != nil {
		return err
	}
	defer stopAll(p)
	fmt.Printf("   idp     %s\n   gateway %s\n", p.IdpURL, p.GatewayURL)
	for _, id := range samples {
		if err := writeEnv(p.SampleEnv(tenant, id), filepath.Join(dir, id+".env")); err != nil {
			return err
		}
	}
	fmt.Printf("\nThe gateway runs. In another shell, for each sample program (see examples/README.md):\n\n"+
		"   set -a; . %s; set +a\n   go run ./examples/simple/connector\n\nCtrl-C stops everything.\n", filepath.Join(dir, samples[0]+".env"))
	<-ctx.Done()
	return nil
}

// stopAll stops the platform, saying so.
func stopAll(p *platform.Platform) {
	step(0, "stopping everything")
	if err := p.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
	}
}
