package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/opsconfig"
)

// followEvents prints events until ctx ends or count events were printed,
// following the server across restarts (opsclient.FollowEvents).
func (a *app) followEvents(ctx context.Context, c *opsclient.Client, interval time.Duration, count int) error {
	seen := 0
	errEnough := errors.New("enough events")
	resume := opsclient.Resume{OnResume: func(err error, wait time.Duration) {
		fmt.Fprintf(a.stderr, "opsbot: event stream ended (%v); reconnecting in %s\n", err, wait.Round(time.Millisecond))
	}}
	err := c.FollowEvents(ctx, interval, func(ev opsapitypes.Event) error {
		if err := a.printEvent(ev); err != nil {
			return err
		}
		if seen++; count > 0 && seen >= count {
			return errEnough
		}
		return nil
	}, resume)
	if errors.Is(err, errEnough) {
		return nil
	}
	return err
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

// eventsCommand is opsbot events: server events, live.
func (a *app) eventsCommand() *cobra.Command {
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
	return events
}
