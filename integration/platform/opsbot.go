package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/opsapi"
)

// OpsbotEnv is the environment that points opsbot at this platform
// through the relay, with the operator API key (and tenant, unless "").
func (p *Platform) OpsbotEnv(tenant string) []string {
	env := []string{
		"OPSBOT_NAMESPACE=" + p.SendConnectionString,
		"OPSBOT_RELAY_INSECURE=true",
		"OPSBOT_API_KEY=" + p.APIKey,
		"OPSBOT_TIMEOUT=30s",
	}
	if tenant != "" {
		env = append(env, "OPSBOT_TENANT="+tenant)
	}
	return env
}

// Result is a finished opsbot invocation.
type Result struct {
	Code           int
	Stdout, Stderr string
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// queuedRun matches opsbot's "Run run-… queued" line (plan, destroy).
var queuedRun = regexp.MustCompile(`Run (run-[0-9a-v]+) queued`)

// QueuedRun returns the id of the run a plan or destroy command queued.
func QueuedRun(r Result) (string, bool) {
	m := queuedRun.FindStringSubmatch(r.Stderr)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// Expect runs opsbot as tenant's operator for a test or benchmark and
// fails it unless opsbot exits with code.
func (p *Platform) Expect(tb testing.TB, code int, tenant string, args ...string) Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := p.Opsbot(ctx, tenant, nil, args...)
	if err != nil {
		tb.Fatal(err)
	}
	if r.Code != code {
		tb.Fatalf("opsbot %s: want exit %d, got %s", strings.Join(args, " "), code, r)
	}
	return r
}

// MustQueuedRun is QueuedRun for a test: it fails tb without a run id.
func MustQueuedRun(tb testing.TB, r Result) string {
	tb.Helper()
	id, ok := QueuedRun(r)
	if !ok {
		tb.Fatalf("no run id in opsbot's output:\n%s", r)
	}
	return id
}

// Run returns a run as the ops API has it (opsbot runs show -o json).
func (p *Platform) Run(ctx context.Context, tenant, id string) (*opsapi.Run, error) {
	r, err := p.Opsbot(ctx, tenant, nil, "runs", "show", id, "-o", "json")
	if err != nil {
		return nil, err
	}
	if r.Code != 0 {
		return nil, fmt.Errorf("opsbot runs show %s: %s", id, r)
	}
	var run opsapi.Run
	if err := json.Unmarshal([]byte(r.Stdout), &run); err != nil {
		return nil, fmt.Errorf("cannot decode opsbot runs show -o json: %w", err)
	}
	return &run, nil
}

// OpsbotCmd returns an opsbot command against the platform, as tenant's
// operator, in a clean environment (no config file or OPSBOT_* variable
// of the caller's leaks in); the caller sets its output and runs it.
func (p *Platform) OpsbotCmd(ctx context.Context, tenant string, args ...string) (*exec.Cmd, error) {
	path, err := p.opts.Binary("opsbot")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(p.opsbotBaseEnv(), p.OpsbotEnv(tenant)...)
	cmd.Dir = p.Dir
	return cmd, nil
}

// Opsbot runs the CLI to completion against the platform, as tenant's
// operator, and returns its exit code and output. env entries are added
// last (so they win).
func (p *Platform) Opsbot(ctx context.Context, tenant string, env []string, args ...string) (Result, error) {
	cmd, err := p.OpsbotCmd(ctx, tenant, args...)
	if err != nil {
		return Result{}, err
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return Result{ee.ExitCode(), out.String(), errOut.String()}, nil
	case err != nil:
		return Result{}, fmt.Errorf("cannot run opsbot: %w", err)
	}
	return Result{0, out.String(), errOut.String()}, nil
}

// StartOpsbot starts a long-running opsbot (logs -f, a plan that follows)
// as a process the caller waits for or stops; Stop stops it too.
func (p *Platform) StartOpsbot(tenant string, args ...string) (*procs.Process, error) {
	path, err := p.opts.Binary("opsbot")
	if err != nil {
		return nil, err
	}
	env := append(p.OpsbotEnv(tenant), p.isolatedHome()...)
	return p.launchPath("opsbot", path, args, env)
}

// opsbotBaseEnv is a clean environment: no stray config file or
// OPSBOT_* variable of the developer's shell leaks in.
func (p *Platform) opsbotBaseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPSBOT_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, p.isolatedHome()...)
}

// isolatedHome keeps the developer's opsbot config file out.
func (p *Platform) isolatedHome() []string {
	return []string{"HOME=" + p.Dir, "XDG_CONFIG_HOME=" + filepath.Join(p.Dir, "xdg")}
}
