// Package notify tells a tenant's webhooks about run events (a plan needs
// approval, a run applied, failed or was cancelled, a plan failed a
// policy, a workspace drifted): JSON payloads signed with HMAC-SHA256 over
// the timestamp and the body, kept in a durable outbox (a table) until
// delivered, retried with backoff, each delivery and its attempts logged
// for operators (docs/notifications.md).
//
// Every replica of the ops server runs a Notifier on the same outbox: a
// delivery is leased with an ETag-conditional update before it is sent, so
// one replica sends it; a replica that dies mid-delivery leaves the lease
// to expire and another sends it again (receivers deduplicate by the
// Bote-Webhook-Id header).
package notify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/botehq/platform/runtime/ids"
)

// Errors of the store.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("changed concurrently")
)

// EventType names what happened.
type EventType string

// Event types.
const (
	NeedsApproval EventType = "run.needs_approval"
	Applied       EventType = "run.applied"
	Failed        EventType = "run.failed"
	Cancelled     EventType = "run.cancelled"
	PolicyFailed  EventType = "run.policy_failed"
	DriftDetected EventType = "workspace.drift_detected"
)

// EventTypes lists every event type.
var EventTypes = []EventType{NeedsApproval, Applied, Failed, Cancelled, PolicyFailed, DriftDetected}

// Valid reports whether t is one of EventTypes.
func (t EventType) Valid() bool { return slices.Contains(EventTypes, t) }

// Destination is a tenant's webhook.
type Destination struct {
	Tenant ids.TenantID `json:"tenant"`
	ID     string       `json:"id"`
	URL    string       `json:"url"`
	// Workspace limits it to one workspace's events; "" for all.
	Workspace   ids.WorkspaceID `json:"workspace,omitempty"`
	Description string          `json:"description,omitempty"`
	// Events it receives; empty for every type.
	Events []EventType `json:"events,omitempty"`
	// Secret signs the payloads. The API returns it once, at creation.
	Secret    string    `json:"secret"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
}

// Validate names the first bad field. allowHTTP admits http URLs (tests,
// local use); otherwise a destination must be https. (The tenant and
// workspace ids are typed: they were checked where they entered.)
func (d Destination) Validate(allowHTTP bool) error {
	if d.Tenant == "" {
		return errors.New("notification tenant is empty")
	}
	if err := ids.Validate("notification", d.ID); err != nil {
		return err
	}
	u, err := url.Parse(d.URL)
	switch {
	case err != nil || u.Host == "" || len(d.URL) > 2048:
		return fmt.Errorf("notification url %q must be an absolute URL of at most 2048 characters", d.URL)
	case u.User != nil:
		return errors.New("notification url must not carry a user or password")
	case u.Scheme != "https" && !(allowHTTP && u.Scheme == "http"):
		return fmt.Errorf("notification url %q must be https", d.URL)
	}
	for _, t := range d.Events {
		if !t.Valid() {
			return fmt.Errorf("notification event %q must be one of %v", t, EventTypes)
		}
	}
	if len(d.Description) > 1024 {
		return errors.New("notification description is longer than 1024 characters")
	}
	return nil
}

// RedactURL is u as lists, logs and errors show it: its query, where
// receivers often put their token, becomes "?…" and its fragment goes.
// The whole URL is in the creation's answer only.
func RedactURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	hidden := parsed.RawQuery != "" || parsed.ForceQuery
	parsed.RawQuery, parsed.ForceQuery, parsed.Fragment, parsed.RawFragment = "", false, "", ""
	if hidden {
		return parsed.String() + "?…"
	}
	return parsed.String()
}

// Wants reports whether the destination receives e.
func (d Destination) Wants(e Event) bool {
	return (d.Workspace == "" || d.Workspace == e.Workspace) && (len(d.Events) == 0 || slices.Contains(d.Events, e.Type))
}

// NewSecret returns a fresh signing secret ("whsec_" and 32 random bytes).
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b)
}

// Event is the JSON payload of a webhook (schema in docs/notifications.md).
type Event struct {
	// ID identifies the event; a redelivery carries the same id.
	ID        string          `json:"id"`
	Type      EventType       `json:"type"`
	Time      time.Time       `json:"time"`
	Tenant    ids.TenantID    `json:"tenant"`
	Workspace ids.WorkspaceID `json:"workspace"`
	Run       *RunInfo        `json:"run,omitempty"`
	// Policy names the failed policies (run.policy_failed).
	Policy []PolicyInfo `json:"policy,omitempty"`
	// Drift lists what drifted (workspace.drift_detected).
	Drift []DriftInfo `json:"drift,omitempty"`
	// Message says what happened, for people.
	Message string `json:"message"`
}

// RunInfo is the run an event is about.
type RunInfo struct {
	ID        string `json:"id"`
	Operation string `json:"operation"`
	State     string `json:"state"`
	CreatedBy string `json:"created_by,omitempty"`
	// Reason is the latest transition's reason.
	Reason string `json:"reason,omitempty"`
	Add    int    `json:"add"`
	Change int    `json:"change"`
	// Destroy counts what the plan destroys.
	Destroy int `json:"destroy"`
}

// PolicyInfo is a failed policy.
type PolicyInfo struct {
	Policy      string   `json:"policy"`
	Version     int      `json:"version"`
	Enforcement string   `json:"enforcement"`
	Messages    []string `json:"messages,omitempty"`
}

// DriftInfo is one drifted resource.
type DriftInfo struct {
	Address string   `json:"address"`
	Actions []string `json:"actions"`
	// Attributes names the attributes that differ.
	Attributes []string `json:"attributes,omitempty"`
}

// Headers of a webhook request.
const (
	HeaderID        = "Bote-Webhook-Id"
	HeaderTimestamp = "Bote-Webhook-Timestamp"
	HeaderSignature = "Bote-Webhook-Signature"
)

// ReplayWindow is how far a receiver should accept a timestamp from its
// own clock (docs/notifications.md).
const ReplayWindow = 5 * time.Minute

// Sign is the signature header's value for body sent at ts: "v1=" and the
// hex HMAC-SHA256 of "<unix seconds>.<body>" with the secret.
func Sign(secret string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10) + "."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a webhook as a receiver should: the signature over the
// timestamp and body, and the timestamp within ReplayWindow of now.
func Verify(secret, timestamp, signature string, body []byte, now time.Time) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("bad %s %q", HeaderTimestamp, timestamp)
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > ReplayWindow || d < -ReplayWindow {
		return fmt.Errorf("%s %s is outside the replay window of %s", HeaderTimestamp, ts.UTC().Format(time.RFC3339), ReplayWindow)
	}
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(signature)) {
		return errors.New("signature does not match")
	}
	return nil
}
