package runs

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/ids"
)

// ErrPolicyFailed: the run's plan failed a mandatory policy, so it cannot
// be approved (or only with an override, see PolicyCheck).
var ErrPolicyFailed = errors.New("policy check failed")

// Enforcement is what a failed policy does to a run's approval.
type Enforcement string

// Enforcement levels.
const (
	// Advisory: a failure is shown, nothing is blocked.
	Advisory Enforcement = "advisory"
	// Mandatory: a failure blocks the approval, for everyone.
	Mandatory Enforcement = "mandatory"
	// MandatoryOverride: a failure blocks the approval unless an approver
	// overrides it (recorded in the run and the audit log).
	MandatoryOverride Enforcement = "mandatory-with-override"
)

// Enforcements lists the levels, weakest first.
var Enforcements = []Enforcement{Advisory, MandatoryOverride, Mandatory}

// Valid reports whether e is one of Enforcements.
func (e Enforcement) Valid() bool { return slices.Contains(Enforcements, e) }

// PolicyCheck is the outcome of the policies that applied to a run's
// plan, evaluated by the server after the plan and before its approval.
type PolicyCheck struct {
	At      time.Time      `json:"at"`
	Results []PolicyResult `json:"results"`
	// OverriddenBy names the approver who approved the run although
	// policies with MandatoryOverride failed; "" if nobody did.
	OverriddenBy string `json:"overriddenBy,omitempty"`
}

// PolicyResult is one policy's verdict on a plan.
type PolicyResult struct {
	Policy      string          `json:"policy"`
	Version     int             `json:"version"`
	Workspace   ids.WorkspaceID `json:"workspace,omitempty"` // "" for every workspace of the tenant
	Enforcement Enforcement     `json:"enforcement"`
	Passed      bool            `json:"passed"`
	// Messages say why it failed (its deny rule's values); Warnings are
	// its warn rule's values, which never fail it.
	Messages []string `json:"messages,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Error says why it could not be evaluated (it then failed).
	Error string `json:"error,omitempty"`
}

// Failed returns the results that failed with enforcement e.
func (c *PolicyCheck) Failed(e Enforcement) []PolicyResult {
	if c == nil {
		return nil
	}
	var out []PolicyResult
	for _, r := range c.Results {
		if !r.Passed && r.Enforcement == e {
			out = append(out, r)
		}
	}
	return out
}

// Blocks reports whether the check stops an approval without an override.
func (c *PolicyCheck) Blocks() bool {
	return len(c.Failed(Mandatory)) > 0 || len(c.Failed(MandatoryOverride)) > 0
}

// Bounds of a policy check kept in a run record (whose entity holds 400
// KiB in all).
const (
	maxPolicyResults  = 50
	maxPolicyMessages = 20
	maxPolicyMsgBytes = 1 << 10
	maxPolicyBytes    = 64 << 10
)

// bound cuts c to what a run record keeps: at most 50 results, each with
// at most 20 messages and warnings of 1 KiB, and fewer of them until the
// whole check is under 64 KiB (every result keeps its verdict and first
// message).
func (c PolicyCheck) bound() PolicyCheck {
	results := c.Results[:min(len(c.Results), maxPolicyResults)]
	for _, limit := range []int{maxPolicyMessages, 10, 5, 2, 1} {
		c.Results = make([]PolicyResult, len(results))
		for i, r := range results {
			r.Messages, r.Warnings, r.Error = cutMessages(r.Messages, limit), cutMessages(r.Warnings, limit-1), cutText(r.Error)
			c.Results[i] = r
		}
		if b, _ := json.Marshal(c); len(b) <= maxPolicyBytes {
			break
		}
	}
	return c
}

// cutMessages keeps the first limit messages, each cut to
// maxPolicyMsgBytes, and says how many more there were.
func cutMessages(msgs []string, limit int) []string {
	out := make([]string, 0, min(len(msgs), limit+1))
	for _, m := range msgs[:min(len(msgs), max(limit, 0))] {
		out = append(out, cutText(m))
	}
	if n := len(msgs) - len(out); n > 0 {
		out = append(out, fmt.Sprintf("(%d more)", n))
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// cutText cuts s to maxPolicyMsgBytes on a character boundary.
func cutText(s string) string {
	if len(s) <= maxPolicyMsgBytes {
		return s
	}
	return strings.ToValidUTF8(s[:maxPolicyMsgBytes], "") + "…"
}

// names lists the results' policies, for messages.
func names(rs []PolicyResult) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Policy
		if m := firstOf(r); m != "" {
			out[i] += " (" + m + ")"
		}
	}
	return strings.Join(out, ", ")
}

func firstOf(r PolicyResult) string {
	if r.Error != "" {
		return r.Error
	}
	if len(r.Messages) > 0 {
		return r.Messages[0]
	}
	return ""
}

// checkPolicy decides whether r may be approved by by, overriding
// overridable failures if override is set; it returns the approval's
// reason.
func checkPolicy(r *Run, by string, override bool) (string, error) {
	reason := "approved by " + by
	c := r.Policy
	if hard := c.Failed(Mandatory); len(hard) > 0 {
		return "", fmt.Errorf("%w: run %s failed mandatory policy %s; change the configuration and plan again", ErrPolicyFailed, r.ID, names(hard))
	}
	soft := c.Failed(MandatoryOverride)
	switch {
	case len(soft) == 0:
		return reason, nil
	case !override:
		return "", fmt.Errorf("%w: run %s failed policy %s; an approver may approve it anyway with an override (opsbot approve --override-policy)", ErrPolicyFailed, r.ID, names(soft))
	}
	c.OverriddenBy = by
	return reason + ", overriding failed policy " + names(soft), nil
}
