package program

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExit(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		code   int
		stderr string
	}{
		{"success", nil, 0, ""},
		{"help asked for", fmt.Errorf("cannot parse: %w", flag.ErrHelp), 0, ""},
		{"error", errors.New("--key is required"), 1, "gateway: --key is required\n"},
		{"exit code with a message", Exitf(3, "cannot reach %s", "relay"), 3, "gateway: cannot reach relay\n"},
		{"exit code, already reported", &ExitError{Code: 130}, 130, ""},
		{"wrapped exit code", fmt.Errorf("apply: %w", &ExitError{Code: 11}), 11, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			assert.Equal(t, tt.code, Exit("gateway", tt.err, &stderr))
			assert.Equal(t, tt.stderr, stderr.String())
		})
	}
}

// routed starts signal routing on a channel the test sends to; resets
// counts the calls of reset.
func routed(t *testing.T) (ctx context.Context, sigs chan os.Signal, resets chan struct{}) {
	sigs, resets = make(chan os.Signal), make(chan struct{}, 4)
	ctx, stop := WithSignals(context.Background(), sigs, func() { resets <- struct{}{} })
	t.Cleanup(stop)
	return ctx, sigs, resets
}

func TestFirstSignalCancelsLaterOnesAreIgnored(t *testing.T) {
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, sigs, resets := routed(t)
			require.NoError(t, ctx.Err())
			sigs <- sig
			<-ctx.Done()
			sigs <- sig // taken, not acted on: the graceful stop goes on
			sigs <- sig
			assert.Empty(t, resets, "no second-signal step: signals stay caught")
		})
	}
}

func TestSecondSignalTakesTheFastWayThenTheDefault(t *testing.T) {
	ctx, sigs, resets := routed(t)
	urgent := make(chan struct{})
	OnSecondSignal(ctx, func() { close(urgent) })
	sigs <- syscall.SIGTERM
	<-ctx.Done()
	select {
	case <-urgent:
		t.Fatal("the first signal is the graceful stop only")
	case <-resets:
		t.Fatal("reset after one signal")
	default:
	}
	sigs <- syscall.SIGINT
	<-urgent
	<-resets // a third signal has its default effect: it ends the process
}

func TestInterruptHandlerTakesSIGINTButNotSIGTERM(t *testing.T) {
	ctx, sigs, _ := routed(t)
	presses := make(chan struct{}, 4)
	restore := OnInterrupt(ctx, func() { presses <- struct{}{} })
	sigs <- syscall.SIGINT
	<-presses
	sigs <- syscall.SIGINT
	<-presses
	assert.NoError(t, ctx.Err(), "Ctrl-C went to the handler")

	restore()
	sigs <- syscall.SIGINT
	<-ctx.Done()
	assert.Empty(t, presses)

	ctx, sigs, _ = routed(t)
	OnInterrupt(ctx, func() { presses <- struct{}{} })
	sigs <- syscall.SIGTERM
	<-ctx.Done()
	assert.Empty(t, presses)
}

func TestOutsideMainRegisteringDoesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	OnSecondSignal(ctx, func() { t.Fatal("called") })
	OnInterrupt(ctx, func() { t.Fatal("called") })()
}

func TestStopCancels(t *testing.T) {
	ctx, stop := WithSignals(context.Background(), make(chan os.Signal), func() {})
	stop()
	stop()
	assert.ErrorIs(t, ctx.Err(), context.Canceled)
}
