// Package drift finds where a workspace's real infrastructure drifted from
// its Terraform state: per-workspace schedules (cron or an interval) queue
// refresh-only plans (terraform plan -refresh-only, with -detailed-exitcode
// semantics: changes mean drift) on the workspace's agents when it is
// idle; the result records which resources drifted and how (from the
// plan's resource_drift), marks the workspace drifted until a later apply
// or a clean check, and notifies (docs/drift.md).
//
// Schedules are stored (one row per workspace), so they survive restarts;
// every replica runs a Scheduler, and a due schedule fires on the replica
// whose ETag-conditional update of its next time wins, so once.
package drift

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/robfig/cron/v3"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/planrender"
)

// Errors of the store.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("changed concurrently")
)

// Status of a workspace.
type Status string

// Statuses.
const (
	Unknown Status = ""        // never checked, or cleared by an apply
	Drifted Status = "drifted" // the last check found drift
	Clean   Status = "clean"   // the last check found none
)

// Schedule is when a workspace is checked: a cron expression (five
// fields, or @hourly, @daily, ...; UTC) or an interval.
type Schedule struct {
	Cron  string        `json:"cron,omitempty"`
	Every time.Duration `json:"every,omitempty"`
}

// MinEvery is the shortest interval (a check is a Terraform run).
const MinEvery = time.Minute

// IsZero reports whether there is no schedule.
func (s Schedule) IsZero() bool { return s.Cron == "" && s.Every == 0 }

// Validate names what is wrong with the schedule.
func (s Schedule) Validate() error {
	switch {
	case s.Cron != "" && s.Every != 0:
		return errors.New("drift schedule: give a cron expression or an interval, not both")
	case s.Every != 0 && s.Every < MinEvery:
		return fmt.Errorf("drift schedule: interval %s is shorter than %s", s.Every, MinEvery)
	case s.Cron != "":
		c, err := cron.ParseStandard(s.Cron)
		if err != nil {
			return fmt.Errorf("drift schedule: cron %q: %w", s.Cron, err)
		}
		// A date that does not exist (February 30) parses, and would
		// leave the workspace unchecked without a word.
		first := c.Next(time.Now())
		if first.IsZero() {
			return fmt.Errorf("drift schedule: cron %q never fires", s.Cron)
		}
		// Five fields fire a minute apart at most; "@every 1s" would not.
		if gap := c.Next(first).Sub(first); gap < MinEvery {
			return fmt.Errorf("drift schedule: cron %q fires %s apart, more often than every %s", s.Cron, gap, MinEvery)
		}
	}
	return nil
}

// Next is the schedule's first time after t (zero without a schedule).
func (s Schedule) Next(t time.Time) time.Time {
	switch {
	case s.Every != 0:
		return t.Add(s.Every)
	case s.Cron != "":
		c, err := cron.ParseStandard(s.Cron)
		if err != nil {
			return time.Time{}
		}
		return c.Next(t.UTC())
	}
	return time.Time{}
}

// String renders the schedule for people.
func (s Schedule) String() string {
	switch {
	case s.Every != 0:
		return "every " + s.Every.String()
	case s.Cron != "":
		return "cron " + s.Cron
	}
	return "none"
}

// State is a workspace's drift record and schedule.
type State struct {
	Tenant    ids.TenantID    `json:"tenant"`
	Workspace ids.WorkspaceID `json:"workspace"`
	Schedule  Schedule        `json:"schedule,omitzero"`
	// Next is when the schedule fires next; zero without one.
	Next time.Time `json:"next,omitzero"`
	// Status and what the latest check found.
	Status    Status     `json:"status,omitempty"`
	CheckedAt time.Time  `json:"checkedAt,omitzero"`
	CheckRun  string     `json:"checkRun,omitempty"`
	Resources []Resource `json:"resources,omitempty"`
	// More counts drifted resources the check found beyond Resources (see
	// Fit); its plan has them all.
	More int `json:"more,omitempty"`
	// Cleared says what cleared a drifted status (an apply).
	Cleared string `json:"cleared,omitempty"`
	// LastRun is the latest check queued; LastError why the latest
	// firing or check did not give a result.
	LastRun   string    `json:"lastRun,omitempty"`
	LastFired time.Time `json:"lastFired,omitzero"`
	LastError string    `json:"lastError,omitempty"`
	ETag      string    `json:"-"`
}

// Resource is one drifted resource: what Terraform would do to its state
// and which attributes differ.
type Resource struct {
	Address    string     `json:"address"`
	Type       string     `json:"type"`
	Actions    []string   `json:"actions"`
	Attributes []AttrDiff `json:"attributes,omitempty"`
	// Diff is the change as Terraform prints it ("# a has changed", the
	// attribute diff; runtime/planrender's rules, sensitive values
	// masked), cut at 2 KiB; Fit drops it first when a record is full.
	Diff string `json:"diff,omitempty"`
}

// AttrDiff is one top-level attribute whose value in the state differs
// from the real one (sensitive values masked).
type AttrDiff struct {
	Name   string          `json:"name"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
}

// Bounds of a drift record. A table entity's string property holds 64
// KiB of UTF-16: 24 KiB of UTF-8 JSON is at most 48 KiB of it, which
// leaves room for the rest of the State.
const (
	maxResources      = 100
	maxAttributes     = 20
	maxValueBytes     = 256
	maxResourcesBytes = 24 << 10
	maxDiffBytes      = 2 << 10
)

// Fit keeps the drifted resources a record holds: at most 100, in at
// most 24 KiB of JSON, in the plan's order; more counts the others.
// Rendered diffs go first, from the last resource, then resources.
func Fit(found []Resource) (kept []Resource, more int) {
	kept = slices.Clone(found[:min(len(found), maxResources)])
	size := func() int {
		b, _ := json.Marshal(kept) // plain fields and raw JSON from a decoded plan: encodes
		return len(b)
	}
	for i := len(kept) - 1; i >= 0 && size() > maxResourcesBytes; i-- {
		kept[i].Diff = ""
	}
	for len(kept) > 0 && size() > maxResourcesBytes {
		kept = kept[:len(kept)-1]
	}
	return kept, len(found) - len(kept)
}

// plan is what drift reads of a plan's JSON.
type plan struct {
	ResourceDrift []struct {
		Address string `json:"address"`
		Type    string `json:"type"`
		Mode    string `json:"mode"`
		Change  struct {
			Actions []string       `json:"actions"`
			Before  map[string]any `json:"before"`
			After   map[string]any `json:"after"`
		} `json:"change"`
	} `json:"resource_drift"`
}

// Resources reads the drifted resources of a plan's JSON (its
// resource_drift, as planrender.Keep keeps it), each with at most 20
// attributes; Fit bounds them for a record.
func Resources(planJSON []byte) ([]Resource, error) {
	var p plan
	if err := json.Unmarshal(planJSON, &p); err != nil {
		return nil, fmt.Errorf("cannot read the plan's JSON: %w", err)
	}
	diffs := map[string]string{}
	var tp tfjson.Plan
	if err := json.Unmarshal(planJSON, &tp); err == nil {
		for _, d := range planrender.Drift(&tp) {
			if len(d.Diff) > maxDiffBytes { // cut after a whole line
				d.Diff = d.Diff[:strings.LastIndexByte(d.Diff[:maxDiffBytes], '\n')+1] + "      … (cut: opsbot runs show RUN --plan has it all)\n"
			}
			diffs[d.Address] = d.Diff
		}
	}
	var out []Resource
	for _, rd := range p.ResourceDrift {
		r := Resource{Address: rd.Address, Type: rd.Type, Actions: rd.Change.Actions, Diff: diffs[rd.Address]}
		keys := map[string]bool{}
		for k := range rd.Change.Before {
			keys[k] = true
		}
		for k := range rd.Change.After {
			keys[k] = true
		}
		names := make([]string, 0, len(keys))
		for k := range keys {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			b, a := value(rd.Change.Before, k), value(rd.Change.After, k)
			if string(b) != string(a) && len(r.Attributes) < maxAttributes {
				r.Attributes = append(r.Attributes, AttrDiff{Name: k, Before: b, After: a})
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// value is m[k] as JSON, cut to maxValueBytes (as a JSON string then).
func value(m map[string]any, k string) json.RawMessage {
	v, ok := m[k]
	if !ok {
		return json.RawMessage("null")
	}
	b, _ := json.Marshal(v) // decoded from JSON: encodes
	if len(b) > maxValueBytes {
		b, _ = json.Marshal(string(b[:maxValueBytes]) + "…")
	}
	return b
}

// AttributeNames names the drifted attributes.
func (r Resource) AttributeNames() []string {
	out := make([]string, len(r.Attributes))
	for i, a := range r.Attributes {
		out[i] = a.Name
	}
	return slices.Clip(out)
}
