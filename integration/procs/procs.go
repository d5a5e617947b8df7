// Package procs runs the platform's real binaries for end-to-end tests and
// local runs: it builds runtime/cmd/<name> once per test binary, starts
// processes with their output captured, shows that output when a test fails,
// and stops them (SIGTERM, then SIGKILL) when the test ends.
//
// Launch is the non-test core (used by `make demo` and the Azurite harness);
// Start wraps it for tests.
package procs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Spec describes a process to start.
type Spec struct {
	Name string   // short label used in logs; defaults to the base of Path
	Path string   // executable
	Args []string // arguments, without the executable
	Env  []string // added to the current environment
	Dir  string   // working directory; empty means the current one
	// Output, if set, also receives everything the process prints.
	Output io.Writer
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL
	// (default 10s).
	StopGrace time.Duration
}

// Process is a started process whose output is kept.
type Process struct {
	spec Spec
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // exit status, valid once done is closed
}

// Launch starts spec's process. The caller must Stop it.
func Launch(spec Spec) (*Process, error) {
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Path)
	}
	if spec.StopGrace == 0 {
		spec.StopGrace = 10 * time.Second
	}
	out := &syncBuffer{changed: make(chan struct{})}
	var w io.Writer = out
	if spec.Output != nil {
		w = io.MultiWriter(out, spec.Output)
	}
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", spec.Name, err)
	}
	p := &Process{spec: spec, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
		out.notify()
	}()
	return p, nil
}

// Start launches spec's process for a test: its output is logged if the test
// fails and it is stopped at cleanup.
func Start(t testing.TB, spec Spec) *Process {
	t.Helper()
	p, err := Launch(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop()
		if t.Failed() {
			t.Logf("--- output of %s (pid %d) ---\n%s", p.spec.Name, p.Pid(), p.Output())
		}
	})
	return p
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output returns everything the process has printed so far.
func (p *Process) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr returns the process's exit status once it has exited.
func (p *Process) ExitErr() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM to the process group, waits for the grace period, then
// kills it. It returns the exit status (nil for a clean exit).
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = signalGroup(p.cmd, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(p.spec.StopGrace):
		_ = signalGroup(p.cmd, syscall.SIGKILL)
		<-p.done
	}
	return p.err
}

// Signal sends sig to the process group and returns at once.
func (p *Process) Signal(sig syscall.Signal) error { return signalGroup(p.cmd, sig) }

// Pause stops the process group (SIGSTOP): alive but doing nothing, as a
// hung host or a cut network would leave it; Resume lets it go on. It
// returns once the process has stopped (on Linux), not only once the
// signal was sent.
func (p *Process) Pause() error {
	if err := signalGroup(p.cmd, syscall.SIGSTOP); err != nil {
		return err
	}
	return waitStopped(p.cmd.Process.Pid, 10*time.Second)
}

// Resume continues a paused process group (SIGCONT).
func (p *Process) Resume() error { return signalGroup(p.cmd, syscall.SIGCONT) }

// Kill ends the process group at once, as a crash or an OOM kill would.
func (p *Process) Kill() {
	_ = signalGroup(p.cmd, syscall.SIGKILL)
	<-p.done
}

// WaitOutput waits until the process has printed substr and returns the
// line holding it. It fails early if the process exits.
func (p *Process) WaitOutput(substr string, timeout time.Duration) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := p.out.changedCh()
		if line, ok := p.out.line(substr); ok {
			return line, nil
		}
		select {
		case <-p.done:
			if line, ok := p.out.line(substr); ok {
				return line, nil
			}
			return "", fmt.Errorf("%s exited (%v) before printing %q", p.spec.Name, p.err, substr)
		case <-deadline.C:
			return "", fmt.Errorf("%s did not print %q within %s", p.spec.Name, substr, timeout)
		case <-changed:
		}
	}
}

// ListenAddr waits for the conventional "listening on <url>" line the
// platform's binaries print and returns the URL.
func (p *Process) ListenAddr(timeout time.Duration) (string, error) {
	line, err := p.WaitOutput("listening on ", timeout)
	if err != nil {
		return "", err
	}
	rest := line[strings.Index(line, "listening on ")+len("listening on "):]
	return strings.Trim(strings.Fields(rest)[0], `",}`), nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Prefer binaries that listen on :0 and report their address; use this only
// where a port must be known up front.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitHTTP waits until url answers with any HTTP status below 500.
func WaitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer within %s: %w", url, timeout, errors.Join(last, ctx.Err()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// syncBuffer is a goroutine-safe buffer that signals every write.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	b.mu.Unlock()
	b.notify()
	return n, err
}

func (b *syncBuffer) notify() {
	b.mu.Lock()
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

func (b *syncBuffer) changedCh() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// line returns the first complete line containing substr.
func (b *syncBuffer) line(substr string) (string, bool) {
	s := b.String()
	i := strings.Index(s, substr)
	if i < 0 {
		return "", false
	}
	start := strings.LastIndexByte(s[:i], '\n') + 1
	end := strings.IndexByte(s[i:], '\n')
	if end < 0 {
		return s[start:], true
	}
	return s[start : i+end], true
}
