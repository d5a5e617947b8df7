// Package audit is the ops server's audit log: who did what, to which
// object, in which tenant, with what result, from where.
//
// Three kinds of event are recorded (see docs/ops.md, "Audit log"):
//
//   - every mutating ops API call (any method but GET, HEAD and OPTIONS),
//     whatever its outcome, by the opsapi middleware;
//   - every refused authorization (401 and 403 answers, reads included),
//     by the same middleware, so that authorization code elsewhere need not
//     call it;
//   - every run transition (queued, planning, planned, approved, applying,
//     applied, no_changes, failed, cancelled, timed_out), from the runs
//     manager's transition hook.
//
// Records live in one Azure Table (Table, TableName), one partition per
// tenant plus the Platform partition for what belongs to no tenant (admin
// actions, unauthenticated requests). Row keys are the inverted record
// time followed by a unique suffix, so a partition lists newest first and
// "since" is a row-key range. Table only ever adds entities (AddEntity,
// which fails on an existing key): nothing in the platform updates or
// deletes a record, and the API has no endpoint that could.
package audit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
)

// Platform is the partition of records that belong to no tenant. A tenant
// id starts with a letter or digit, so it never collides.
const Platform = "_platform"

// Results of a recorded event.
const (
	ResultOK       = "ok"       // done (2xx, 101, a run transition)
	ResultDenied   = "denied"   // authorization refused (401, 403)
	ResultRejected = "rejected" // refused for another reason (other 4xx)
	ResultError    = "error"    // the server failed (5xx)
)

// Limits on stored strings: a caller controls paths and messages, and must
// not be able to make records large.
const (
	maxField  = 512
	maxDetail = 2048
)

// Record is one audit event.
type Record struct {
	// ID is the record's row key: unique, and ordered newest first within
	// a partition. Set by Table.Append.
	ID string `json:"id"`
	// Time the event happened (UTC).
	Time time.Time `json:"time"`
	// Tenant the event concerns; "" for the platform.
	Tenant string `json:"tenant,omitempty"`
	// Principal who acted: "api-key:alice", "oauth2:bob@contoso.com",
	// "agent:agent-01", "system:sweeper"; "" when the caller is not
	// authenticated.
	Principal string `json:"principal"`
	// Subject is the principal's stable id when Principal is not
	// (operatorauth.Principal.Subject: "oauth2:<object id>" for a token,
	// whose user name can change hands); "" otherwise.
	Subject string `json:"subject,omitempty"`
	// Action is what was done: the API route ("POST
	// /v1/tenants/{tenant}/runs/{run}/approve") or "run.<state>" for a run
	// transition.
	Action string `json:"action"`
	// Object is what it was done to: the request path and query, or the run's path
	// for a transition.
	Object string `json:"object"`
	// Result is ResultOK, ResultDenied, ResultRejected or ResultError.
	Result string `json:"result"`
	// Status is the HTTP status of an API call; 0 for transitions.
	Status int `json:"status,omitempty"`
	// RequestID is the API request's id (X-Request-Id), also for the run
	// transitions the request caused.
	RequestID string `json:"request_id,omitempty"`
	// Client is the caller's address as the relay reports it (or the TCP
	// peer on the local listener).
	Client string `json:"client,omitempty"`
	// Detail says more: the error message of a refused call, the from
	// state and reason of a transition.
	Detail string `json:"detail,omitempty"`
}

// LogAttrs are r's fields as slog attributes, for a record that goes to
// the process log instead of the table.
func (r Record) LogAttrs() []any {
	return []any{"time", r.Time, "tenant", r.Tenant, "principal", r.Principal, "subject", r.Subject, "action", r.Action, "object", r.Object,
		"result", r.Result, "status", r.Status, "request_id", r.RequestID, "client", r.Client, "detail", r.Detail}
}

// Partition is the table partition r belongs to.
func (r Record) Partition() string {
	if r.Tenant == "" {
		return Platform
	}
	return r.Tenant
}

// normalize bounds r's strings, drops control characters (a path or a
// message must not be able to rewrite a terminal that prints the log) and
// sets the time to UTC with microsecond precision.
func (r Record) normalize() Record {
	r.Time = r.Time.UTC().Truncate(time.Microsecond)
	for _, f := range []*string{&r.Tenant, &r.Principal, &r.Subject, &r.Action, &r.Object, &r.Result, &r.RequestID, &r.Client} {
		*f = clean(*f, maxField)
	}
	r.Detail = clean(r.Detail, maxDetail)
	return r
}

func clean(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) > limit {
		cut := limit
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// ResultOf classifies an HTTP status.
func ResultOf(status int) string {
	switch {
	case status == 401 || status == 403:
		return ResultDenied
	case status >= 500:
		return ResultError
	case status >= 400:
		return ResultRejected
	}
	return ResultOK
}

// timeKey renders t inverted, fixed width, so that a later time sorts
// first.
func timeKey(t time.Time) string {
	return fmt.Sprintf("%019d", math.MaxInt64-t.UnixNano())
}

// newID is the row key of a record at t: the inverted time, then a
// suffix, random unless the record has a natural identity (key), in which
// case appending the same event twice adds it once.
func newID(t time.Time, key string) string {
	var suffix string
	if key != "" {
		sum := sha256.Sum256([]byte(key))
		suffix = hex.EncodeToString(sum[:8])
	} else {
		var b [8]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		suffix = hex.EncodeToString(b[:])
	}
	return timeKey(t) + "-" + suffix
}

// Origin is the request an event happened in: an API request or nothing
// (the sweeper, an agent's report).
type Origin struct {
	RequestID string
	Client    string
}

type originKey struct{}

// WithOrigin returns ctx carrying o, so that events recorded further down
// (run transitions) name the request that caused them.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// OriginFrom returns the origin WithOrigin put in ctx.
func OriginFrom(ctx context.Context) (Origin, bool) {
	o, ok := ctx.Value(originKey{}).(Origin)
	return o, ok
}
