package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/botehq/platform/runtime/opsapi"
)

func writeJSONIndent(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode output: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// writeJSONLine writes one compact JSON value per line (for streams).
func writeJSONLine(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode output: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

func printStatus(w io.Writer, st *opsapi.Status) {
	relayState := "not connected"
	if st.RelayConnected {
		relayState = "connected"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Server version:\t%s\n", st.Version)
	fmt.Fprintf(tw, "Started:\t%s (up %s)\n", st.StartedAt.UTC().Format(time.RFC3339), time.Duration(st.UptimeSeconds)*time.Second)
	fmt.Fprintf(tw, "Relay listener:\t%s\n", relayState)
	fmt.Fprintf(tw, "Agents:\t%d\n", st.AgentCount)
	tw.Flush()
}

func printAgents(w io.Writer, agents []opsapi.Agent) {
	if len(agents) == 0 {
		fmt.Fprintln(w, "No agents.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTENANT\tNAME\tSTATE\tVERSION\tLAST SEEN")
	for _, a := range agents {
		lastSeen := "-"
		if a.LastSeen != nil {
			lastSeen = a.LastSeen.UTC().Format(time.RFC3339)
		}
		ver := a.Version
		if ver == "" {
			ver = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Tenant, a.Name, a.State, ver, lastSeen)
	}
	tw.Flush()
}
