package opsapitypes

import "time"

// CreateNotificationRequest is the body of POST
// /v1/tenants/{tenant}/notifications: a webhook for run events.
type CreateNotificationRequest struct {
	// ID names it (an id: letters, digits, '.', '_', '-').
	ID  string `json:"id"`
	URL string `json:"url"`
	// Workspace limits it to one workspace's events; empty: every one.
	Workspace string `json:"workspace,omitempty"`
	// Events it receives (run.needs_approval, run.applied, run.failed,
	// run.cancelled, run.policy_failed, workspace.drift_detected); empty:
	// every type.
	Events      []string `json:"events,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Notification is a webhook destination, never with its secret.
type Notification struct {
	Tenant string `json:"tenant"`
	ID     string `json:"id"`
	// URL is whole in the creation's answer only; elsewhere its query
	// (where receivers often put a token) is shown as "?…".
	URL         string    `json:"url"`
	Workspace   string    `json:"workspace,omitempty"`
	Events      []string  `json:"events,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by,omitempty"`
}

// NewNotification is the answer to its creation: the destination and its
// signing secret, shown this once.
type NewNotification struct {
	Notification Notification `json:"notification"`
	Secret       string       `json:"secret"`
}

// NotificationList is the body of GET .../notifications.
type NotificationList struct {
	Notifications []Notification `json:"notifications"`
}

// Delivery is one event sent (or being sent) to one webhook.
type Delivery struct {
	ID           string    `json:"id"`
	Notification string    `json:"notification"`
	EventType    string    `json:"event_type"`
	Run          string    `json:"run,omitempty"`
	Workspace    string    `json:"workspace"`
	Created      time.Time `json:"created"`
	// State is pending, delivered or failed (every attempt failed, or the
	// webhook was deleted).
	State string `json:"state"`
	// NextAttempt is when a pending delivery is tried again.
	NextAttempt *time.Time        `json:"next_attempt,omitempty"`
	Tries       int               `json:"tries"`
	Attempts    []DeliveryAttempt `json:"attempts"`
}

// DeliveryAttempt is one try: the response's status code (0: none) or
// the error.
type DeliveryAttempt struct {
	At         time.Time `json:"at"`
	Status     int       `json:"status"`
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

// DeliveryList is the body of GET .../notifications/{id}/deliveries.
type DeliveryList struct {
	Deliveries []Delivery `json:"deliveries"`
}
