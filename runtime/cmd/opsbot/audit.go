package main

import (
	"cmp"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsclient"
)

func (a *app) auditCommand() *cobra.Command {
	var (
		since, principal string
		limit            int
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the audit log, newest first (every tenant you hold a role in, or --tenant)",
		Long: `Read the audit log: every mutating API call, every refused authorization and
every run transition, newest first. Admins read every tenant and the
platform's records (--tenant _platform); other operators only the tenants
they hold a role in.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := opsclient.AuditQuery{Principal: principal}
			q.Tenant, _ = a.tenantOf(cmd) // optional: every tenant you may read
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return usageError{err}
				}
				q.Since = t
			}
			if limit < 1 {
				return usageError{fmt.Errorf("limit: %d must be at least 1", limit)}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			// Page through until limit records or the end.
			out := opsapitypes.AuditPage{Records: []opsapitypes.AuditRecord{}}
			for len(out.Records) < limit {
				q.Limit = min(limit-len(out.Records), opsapitypes.AuditMaxLimit)
				p, err := c.Audit(cmd.Context(), q)
				if err != nil {
					return err
				}
				out.Records = append(out.Records, p.Records...)
				out.More = p.More
				if !p.More || len(p.Records) == 0 {
					break
				}
				q.Before = p.Records[len(p.Records)-1].ID
			}
			return a.print(out, func(w io.Writer) { printAudit(w, out) })
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "records since this long ago (2h, 7d) or this RFC 3339 time (default: the server's, 24h)")
	cmd.Flags().StringVar(&principal, "principal", "", `only this principal's records, by name or stable id ("api-key:alice", "oauth2:<object id>")`)
	cmd.Flags().IntVar(&limit, "limit", opsapitypes.AuditDefaultLimit, "at most this many records")
	return cmd
}

// parseSince reads a duration back from now ("90m", "2h", "7d") or an
// RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if n, ok := strings.CutSuffix(s, "d"); ok && err != nil {
		var days int
		if days, err = strconv.Atoi(n); err == nil {
			d = time.Duration(days) * 24 * time.Hour
		}
	}
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("since: %q must be a positive duration (90m, 2h, 7d) or an RFC 3339 time", s)
	}
	return now.Add(-d), nil
}

func printAudit(w io.Writer, p opsapitypes.AuditPage) {
	if len(p.Records) == 0 {
		fmt.Fprintln(w, "No audit records.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTENANT\tPRINCIPAL\tACTION\tOBJECT\tRESULT\tCLIENT\tREQUEST\tDETAIL")
	for _, r := range p.Records {
		result := r.Result
		if r.Status != 0 {
			result += " " + strconv.Itoa(r.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), cmp.Or(r.Tenant, "-"), cmp.Or(r.Principal, "-"),
			r.Action, r.Object, result, cmp.Or(r.Client, "-"), cmp.Or(r.RequestID, "-"), r.Detail)
	}
	tw.Flush()
	if p.More {
		fmt.Fprintln(w, "(more records match: raise --limit or narrow --since)")
	}
}
