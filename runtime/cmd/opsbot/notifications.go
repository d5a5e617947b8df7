package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// notifyAPI is what `opsbot notifications` needs (*opsclient.Client).
type notifyAPI interface {
	Notifications(ctx context.Context, tenant string) ([]opsapitypes.Notification, error)
	CreateNotification(ctx context.Context, tenant string, req opsapitypes.CreateNotificationRequest) (*opsapitypes.NewNotification, error)
	DeleteNotification(ctx context.Context, tenant, id string) (*opsapitypes.Notification, error)
	Deliveries(ctx context.Context, tenant, id string, limit int) ([]opsapitypes.Delivery, error)
}

func (a *app) withNotify(fn func(cmd *cobra.Command, args []string, tenant string, api notifyAPI) error) func(*cobra.Command, []string) error {
	return withClient(a, "manage notifications", fn)
}

// notificationsCommand is `opsbot notifications`: a tenant's webhooks for
// run events (docs/notifications.md).
func (a *app) notificationsCommand() *cobra.Command {
	// size: the notifications command group's subcommands and flags declared together, as cobra reads them.
	var (
		req   opsapitypes.CreateNotificationRequest
		limit int
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List the tenant's webhooks",
		Args:  cobra.NoArgs,
		RunE: a.withNotify(func(cmd *cobra.Command, _ []string, tenant string, api notifyAPI) error {
			ns, err := api.Notifications(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			return a.print(opsapitypes.NotificationList{Notifications: ns}, func(w io.Writer) {
				if len(ns) == 0 {
					fmt.Fprintln(w, "No notifications.")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tURL\tWORKSPACE\tEVENTS")
				for _, n := range ns {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.ID, n.URL, cmp.Or(n.Workspace, "*"), cmp.Or(strings.Join(n.Events, ","), "all"))
				}
				tw.Flush()
			})
		}),
	}
	create := &cobra.Command{
		Use:   "create ID --url URL [--workspace W] [--event TYPE ...]",
		Short: "Add a webhook for run events (approver role); prints its signing secret once",
		Long: `Add a webhook: the server POSTs a JSON event to URL when a plan needs
approval, a run is applied, fails or is cancelled, a plan fails a policy, or a
workspace drifted (--event narrows it: run.needs_approval, run.applied,
run.failed, run.cancelled, run.policy_failed, workspace.drift_detected).

Each request is signed: Bote-Webhook-Signature is "v1=" and the hex
HMAC-SHA256, keyed with the secret printed here (and never again), of the
Bote-Webhook-Timestamp value, a dot, and the body. Keep the secret where the
receiver can read it; see docs/notifications.md for verifying.`,
		Args: cobra.ExactArgs(1),
		RunE: a.withNotify(func(cmd *cobra.Command, args []string, tenant string, api notifyAPI) error {
			if req.URL == "" {
				return usageError{errors.New("--url is required")}
			}
			req.ID = args[0]
			n, err := api.CreateNotification(cmd.Context(), tenant, req)
			if err != nil {
				return err
			}
			return a.print(n, func(w io.Writer) {
				fmt.Fprintf(w, "Notification %s added: %s.\nSigning secret (shown once, keep it with the receiver):\n\n  %s\n", n.Notification.ID, n.Notification.URL, n.Secret)
			})
		}),
	}
	create.Flags().StringVar(&req.URL, "url", "", "where to POST events (https)")
	create.Flags().StringVarP(&req.Workspace, "workspace", "w", "", "only this workspace's events")
	create.Flags().StringSliceVar(&req.Events, "event", nil, "only these event types (repeatable or comma-separated)")
	create.Flags().StringVar(&req.Description, "description", "", "what the webhook is for")
	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a webhook (approver role)",
		Args:  cobra.ExactArgs(1),
		RunE: a.withNotify(func(cmd *cobra.Command, args []string, tenant string, api notifyAPI) error {
			n, err := api.DeleteNotification(cmd.Context(), tenant, args[0])
			if err != nil {
				return err
			}
			return a.print(n, func(w io.Writer) { fmt.Fprintf(w, "Notification %s deleted.\n", n.ID) })
		}),
	}
	deliveries := &cobra.Command{
		Use:   "deliveries ID [--limit N]",
		Short: "A webhook's delivery log: each event, its state and every attempt's status (operator role)",
		Args:  cobra.ExactArgs(1),
		RunE: a.withNotify(func(cmd *cobra.Command, args []string, tenant string, api notifyAPI) error {
			ds, err := api.Deliveries(cmd.Context(), tenant, args[0], limit)
			if err != nil {
				return err
			}
			return a.print(opsapitypes.DeliveryList{Deliveries: ds}, func(w io.Writer) { printDeliveries(w, ds) })
		}),
	}
	deliveries.Flags().IntVar(&limit, "limit", 0, "at most this many (default 50)")
	c := &cobra.Command{Use: "notifications", Aliases: []string{"notification", "webhooks"}, Short: "Webhooks for run events"}
	c.AddCommand(list, create, del, deliveries)
	return c
}

func printDeliveries(w io.Writer, ds []opsapitypes.Delivery) {
	if len(ds) == 0 {
		fmt.Fprintln(w, "No deliveries.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CREATED\tEVENT\tRUN\tSTATE\tTRIES\tATTEMPTS")
	for _, d := range ds {
		var codes []string
		for _, a := range d.Attempts {
			c := fmt.Sprint(a.Status)
			if a.Status == 0 {
				c = "error"
			}
			codes = append(codes, c)
		}
		state := d.State
		if d.NextAttempt != nil {
			state += " (next " + timeOrDash(*d.NextAttempt) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", timeOrDash(d.Created), d.EventType, cmp.Or(d.Run, "-"), state, d.Tries, strings.Join(codes, " "))
	}
	tw.Flush()
	for _, d := range ds {
		if n := len(d.Attempts); n > 0 && d.Attempts[n-1].Error != "" && d.State != "delivered" {
			fmt.Fprintf(w, "%s: %s\n", d.ID, d.Attempts[n-1].Error)
		}
	}
}
