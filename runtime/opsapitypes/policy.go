package opsapitypes

import "time"

// Error codes of the policy API.
const (
	// CodePolicyFailed: the run's plan failed a policy that blocks its
	// approval (409); the message names the policies and their messages.
	CodePolicyFailed = "policy_failed"
	// CodePolicyInvalid: an uploaded policy does not compile (400); the
	// message is the compiler's.
	CodePolicyInvalid = "policy_invalid"
)

// Enforcement levels of a policy.
const (
	EnforcementAdvisory          = "advisory"
	EnforcementMandatory         = "mandatory"
	EnforcementMandatoryOverride = "mandatory-with-override"
)

// PolicyCheck is how a run's plan fared against the tenant's policies
// that apply to its workspace, checked by the server after the plan.
type PolicyCheck struct {
	CheckedAt time.Time `json:"checked_at"`
	// Blocked: a failed mandatory or mandatory-with-override policy stops
	// the approval (the latter unless an approver overrides it).
	Blocked bool           `json:"blocked"`
	Results []PolicyResult `json:"results"`
	// OverriddenBy approved the run despite failed
	// mandatory-with-override policies.
	OverriddenBy string `json:"overridden_by,omitempty"`
}

// PolicyResult is one policy's verdict on a plan.
type PolicyResult struct {
	Policy      string   `json:"policy"`
	Version     int      `json:"version"`
	Workspace   string   `json:"workspace,omitempty"`
	Enforcement string   `json:"enforcement"`
	Passed      bool     `json:"passed"`
	Messages    []string `json:"messages,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// PutPolicyRequest is the body of PUT /v1/tenants/{tenant}/policies/{policy}:
// a new version of the policy. The server compiles the source and refuses
// one that does not compile (400 policy_invalid).
type PutPolicyRequest struct {
	Enforcement string `json:"enforcement"`
	// Workspace limits the policy to one workspace; empty: all of the
	// tenant's.
	Workspace   string `json:"workspace,omitempty"`
	Description string `json:"description,omitempty"`
	// Source is the Rego module (Rego v1, with a deny rule).
	Source string `json:"source"`
}

// Policy is one version of a tenant's policy.
type Policy struct {
	Tenant      string    `json:"tenant"`
	Name        string    `json:"name"`
	Workspace   string    `json:"workspace,omitempty"`
	Description string    `json:"description,omitempty"`
	Enforcement string    `json:"enforcement"`
	Version     int       `json:"version"`
	SHA256      string    `json:"sha256"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by,omitempty"`
	Deleted     bool      `json:"deleted,omitempty"`
	// Source is in GET of one policy, not in lists.
	Source string `json:"source,omitempty"`
}

// PolicyList is the body of GET .../policies and .../policies/{policy}/versions.
type PolicyList struct {
	Policies []Policy `json:"policies"`
}
