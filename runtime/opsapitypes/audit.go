package opsapitypes

import "time"

// AuditRecord is one entry of the audit log (audit.Record on the server).
type AuditRecord struct {
	// ID is unique and orders the records newest first; pass the last
	// one's as before= for the next page.
	ID string `json:"id"`
	// Time the event happened (UTC).
	Time time.Time `json:"time"`
	// Tenant the event concerns; "" for the platform.
	Tenant string `json:"tenant,omitempty"`
	// Principal who acted: "api-key:alice", "oauth2:bob@contoso.com",
	// "agent:agent-01", "system:sweeper"; "" when the caller was not
	// authenticated.
	Principal string `json:"principal"`
	// Subject is the principal's stable id when Principal is not
	// ("oauth2:<object id>"); "" otherwise.
	Subject string `json:"subject,omitempty"`
	// Action is the API route ("POST /v1/tenants/{tenant}/runs/{run}/approve")
	// or "run.<state>" for a run transition.
	Action string `json:"action"`
	// Object is the request path and query, or the run's path.
	Object string `json:"object"`
	// Result is ok, denied, rejected or error.
	Result string `json:"result"`
	// Status is the HTTP status of an API call; 0 for transitions.
	Status int `json:"status,omitempty"`
	// RequestID is the API request's id (X-Request-Id).
	RequestID string `json:"request_id,omitempty"`
	// Client is the caller's address.
	Client string `json:"client,omitempty"`
	// Detail says more: the error of a refused call, the from state and
	// reason of a transition.
	Detail string `json:"detail,omitempty"`
}

// AuditPage is the body of GET /v1/audit, newest first; More: there are
// older records (ask again with before= the last id).
type AuditPage struct {
	Records []AuditRecord `json:"records"`
	More    bool          `json:"more"`
}

// Limits of GET /v1/audit's limit= (audit.DefaultLimit and MaxLimit).
const (
	AuditDefaultLimit = 100
	AuditMaxLimit     = 1000
)
