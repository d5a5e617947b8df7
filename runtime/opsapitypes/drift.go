package opsapitypes

import (
	"encoding/json"
	"time"
)

// DriftSchedule is when a workspace's drift is checked: a cron
// expression (five fields or @hourly, @daily...; UTC) or an interval (a
// Go duration, at least 1m). Both empty: no schedule.
type DriftSchedule struct {
	Cron  string `json:"cron,omitempty"`
	Every string `json:"every,omitempty"`
}

// DriftStatus is a workspace's drift record: its schedule and what the
// latest check found.
type DriftStatus struct {
	Tenant    string         `json:"tenant"`
	Workspace string         `json:"workspace"`
	Schedule  *DriftSchedule `json:"schedule,omitempty"`
	// NextCheck is when the schedule fires next.
	NextCheck *time.Time `json:"next_check,omitempty"`
	// Status is drifted, clean, or unknown (never checked, or cleared by
	// an apply: Cleared says which).
	Status    string          `json:"status"`
	CheckedAt *time.Time      `json:"checked_at,omitempty"`
	CheckRun  string          `json:"check_run,omitempty"`
	Cleared   string          `json:"cleared,omitempty"`
	Resources []DriftResource `json:"resources,omitempty"`
	// MoreResources counts drifted resources beyond Resources (a record
	// keeps at most 100, in 24 KiB); the check's plan has them all.
	MoreResources int    `json:"more_resources,omitempty"`
	LastRun       string `json:"last_run,omitempty"`
	LastError     string `json:"last_error,omitempty"`
}

// DriftResource is one drifted resource and its differing attributes.
type DriftResource struct {
	Address    string           `json:"address"`
	Type       string           `json:"type"`
	Actions    []string         `json:"actions"`
	Attributes []DriftAttribute `json:"attributes,omitempty"`
	// Diff is the change as Terraform prints it ("# a has changed" and
	// the attribute diff, sensitive values masked); absent when the
	// record had no room for it.
	Diff string `json:"diff,omitempty"`
}

// DriftAttribute is a top-level attribute whose value in the state
// (before) differs from the real one (after); sensitive values masked.
type DriftAttribute struct {
	Name   string          `json:"name"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
}

// DriftList is the body of GET /v1/tenants/{tenant}/drift.
type DriftList struct {
	Workspaces []DriftStatus `json:"workspaces"`
}
