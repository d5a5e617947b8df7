package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsconfig"
)

// configCommand is opsbot config show.
func (a *app) configCommand() *cobra.Command {
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
	return config
}
