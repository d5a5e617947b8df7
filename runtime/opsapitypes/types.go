// Package opsapitypes holds the wire types of the ops API (runtime/opsapi):
// the JSON bodies its clients (runtime/opsclient, opsbot) send and read.
// It imports no server code, so a client links none; runtime/opsapi
// aliases these types and converts its server types to them.
package opsapitypes

import (
	"time"

	"github.com/botehq/platform/runtime/operator"
)

// APIVersion is the path prefix of this version of the API. Breaking
// changes get a new prefix; additions (new fields, new endpoints) do not.
const APIVersion = "v1"

// Status is the body of GET /v1/status.
type Status struct {
	// Version of the opsserver binary.
	Version string `json:"version"`
	// StartedAt is when the server started.
	StartedAt time.Time `json:"started_at"`
	// UptimeSeconds since StartedAt, whole seconds.
	UptimeSeconds int64 `json:"uptime_seconds"`
	// RelayConnected is whether the relay listener's control channel is up
	// (false when the server runs only on its local port).
	RelayConnected bool `json:"relay_connected"`
	// AgentCount is the number of registered agents.
	AgentCount int `json:"agent_count"`
	// Time is the server's clock when it answered.
	Time time.Time `json:"time"`
}

// Agent states.
const (
	AgentOnline   = "online"
	AgentOffline  = "offline"
	AgentUnknown  = "unknown"
	AgentDisabled = "disabled"
)

// Agent is a deployment agent as the ops server knows it.
type Agent struct {
	// ID is the agent's client id, "tenant/agent".
	ID string `json:"id"`
	// Tenant the agent belongs to.
	Tenant string `json:"tenant"`
	// Name is the agent's id within its tenant.
	Name string `json:"name"`
	// State is one of online, offline, unknown, disabled.
	State string `json:"state"`
	// Version of the agent software, when it has reported one.
	Version string `json:"version,omitempty"`
	// TerraformVersion is the version of the agent's terraform, when it
	// has reported one.
	TerraformVersion string `json:"terraform_version,omitempty"`
	// Outdated is set when the agent reported a version other than the
	// one the stack deployed (AgentList.DeployedVersion).
	Outdated bool `json:"outdated,omitempty"`
	// LastSeen is the agent's last heartbeat, when there was one.
	LastSeen *time.Time `json:"last_seen,omitempty"`
	// Labels are free-form attributes used to pick agents for runs.
	Labels map[string]string `json:"labels,omitempty"`
	// Capacity is how many runs the agent executes at once, as it last
	// reported (0: it never heartbeated).
	Capacity int `json:"capacity,omitempty"`
	// Running lists the runs it is executing.
	Running []string `json:"running,omitempty"`
}

// AgentList is the body of GET /v1/agents.
type AgentList struct {
	Agents []Agent `json:"agents"`
	// DeployedVersion is the agent version the stack deployed (the agent
	// image's version), when the server was told it; agents reporting
	// another version are marked Outdated.
	DeployedVersion string `json:"deployed_version,omitempty"`
}

// Event types sent on GET /v1/events.
const (
	EventStatus = "status"
)

// Event is one message on the events WebSocket (a JSON text message).
type Event struct {
	// Type says which field is set; clients ignore types they do not know.
	Type string `json:"type"`
	// Seq numbers the events of one connection from 1.
	Seq int64 `json:"seq"`
	// Time the event was sent.
	Time time.Time `json:"time"`
	// Status is set for type "status".
	Status *Status `json:"status,omitempty"`
}

// Error codes in ErrorBody.
const (
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeBadRequest       = "bad_request"
	CodeUpgradeRequired  = "upgrade_required"
	CodeInternal         = "internal"
	CodeUnavailable      = "unavailable"
)

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong.
type ErrorDetail struct {
	// Code is stable and meant for programs (see the Code* constants).
	Code string `json:"code"`
	// Message is for humans.
	Message string `json:"message"`
	// RequestID is also in the X-Request-Id response header; quote it when
	// reporting a problem.
	RequestID string `json:"request_id,omitempty"`
	// Reason says why a request was forbidden (403): missing_role,
	// admin_required or four_eyes.
	Reason string `json:"reason,omitempty"`
	// MissingRole is the tenant role a 403 missing_role lacked.
	MissingRole string `json:"missing_role,omitempty"`
	// Tenant is the tenant a 403 is about.
	Tenant string `json:"tenant,omitempty"`
}

// Health is the body of GET /healthz.
type Health struct {
	Status string `json:"status"`
}

// Whoami is the body of GET /v1/whoami: the principal the credential
// authenticates as (kind, id, name) and its grants (admin, tenants).
type Whoami = operator.Principal

// TenantList is the body of GET /v1/tenants: the tenants of this server
// the caller holds a role in (every one for an admin), sorted by id.
type TenantList struct {
	Tenants []Tenant `json:"tenants"`
}

// Tenant is a tenant of the server, with the caller's role in it.
type Tenant struct {
	ID string `json:"id"`
	// Role is the caller's role there (approver for an admin).
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}
