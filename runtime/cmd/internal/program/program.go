// Package program is the process around every binary under runtime/cmd: each
// binary's main is
//
//	func main() { program.Main("gateway", run) }
//
// and everything it does is in run, which has one shape (Run) so that
// tests call it like the process would, with their own arguments, streams
// and environment. Main owns what only a process has: os.Args, the
// standard streams, the environment, SIGINT and SIGTERM, and the exit
// code.
//
// Signals. The first SIGINT or SIGTERM cancels run's context: the binary
// stops gracefully. A binary that has a faster way to stop registers it
// with OnSecondSignal (the agent: cancel the running Terraform now); the
// next signal calls it, and the one after that has the signal's default
// effect, ending the process at once. Without it, later signals are
// ignored while the graceful stop runs. A binary that gives Ctrl-C a
// meaning of its own for a while (opsbot following a run) takes SIGINT
// with OnInterrupt; SIGTERM still cancels the context.
//
// Exit codes. A nil error is 0, and so is flag.ErrHelp (the flag set
// printed the usage that was asked for). An *ExitError ends the process
// with its code. Anything else is 1. The error's message is printed on
// stderr after the binary's name, except for an ExitError without one.
package program

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Run is the shape of every binary's run function: args without the
// program name, the standard streams, and getenv for the environment.
type Run func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error

// Main runs run as the process named name and exits with its code.
func Main(name string, run Run) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, stop := WithSignals(context.Background(), sigs, func() { signal.Stop(sigs) })
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(Exit(name, err, os.Stderr))
}

// Exit returns the exit code for run's error err, having written its
// message to stderr after name.
func Exit(name string, err error, stderr io.Writer) int {
	var ee *ExitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		if ee.Err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 1
}

// ExitError ends the process with Code. Err, if not nil, is what is
// printed; nil means the binary already said what there was to say.
type ExitError struct {
	Code int
	Err  error
}

// Exitf is an ExitError whose message is fmt.Errorf(format, args...).
func Exitf(code int, format string, args ...any) error {
	return &ExitError{Code: code, Err: fmt.Errorf(format, args...)}
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// router routes signals as the package comment says.
type router struct {
	mu        sync.Mutex
	cancel    context.CancelFunc
	ctx       context.Context
	interrupt func() // takes SIGINT while set
	second    func() // the signal after the one that cancelled ctx
	reset     func() // back to the signals' default effect
}

type routerKey struct{}

// WithSignals returns a context that the first of sigs cancels, routing
// the later ones as the package comment says; reset restores the
// signals' default effect (Main: signal.Stop). Main passes the process's
// SIGINT and SIGTERM; tests pass their own channel. Calling stop ends the
// routing and cancels the context.
func WithSignals(parent context.Context, sigs <-chan os.Signal, reset func()) (ctx context.Context, stop func()) {
	r := &router{reset: reset}
	ctx = context.WithValue(parent, routerKey{}, r)
	ctx, r.cancel = context.WithCancel(ctx)
	r.ctx = ctx
	done := make(chan struct{})
	go r.route(sigs, done)
	var once sync.Once
	return ctx, func() {
		once.Do(func() { close(done) })
		r.cancel()
	}
}

func (r *router) route(sigs <-chan os.Signal, done <-chan struct{}) {
	for {
		var sig os.Signal
		select {
		case <-done:
			return
		case sig = <-sigs:
		}
		r.mu.Lock()
		interrupt, second := r.interrupt, r.second
		r.mu.Unlock()
		switch {
		case sig == syscall.SIGINT && interrupt != nil:
			interrupt()
		case r.ctx.Err() == nil:
			r.cancel()
		case second != nil:
			r.reset()
			second()
			return
		}
	}
}

func routerOf(ctx context.Context) *router {
	r, _ := ctx.Value(routerKey{}).(*router)
	return r
}

// OnInterrupt has SIGINT call f instead of cancelling ctx's run, until
// the returned function is called. Outside Main (no signals routed in
// ctx) it does nothing.
func OnInterrupt(ctx context.Context, f func()) (restore func()) {
	r := routerOf(ctx)
	if r == nil {
		return func() {}
	}
	r.mu.Lock()
	r.interrupt = f
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.interrupt = nil
		r.mu.Unlock()
	}
}

// OnSecondSignal has the signal after the one that cancelled ctx's run
// call f; a signal after that has its default effect. Outside Main it
// does nothing.
func OnSecondSignal(ctx context.Context, f func()) {
	if r := routerOf(ctx); r != nil {
		r.mu.Lock()
		r.second = f
		r.mu.Unlock()
	}
}
