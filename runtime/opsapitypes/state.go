package opsapitypes

import "time"

// StateVersion is one kept Terraform state of a workspace (local backend).
type StateVersion struct {
	// Version names it for GET .../state?version=.
	Version string `json:"version"`
	// Run and Claim made it; empty for a state kept from before versions.
	Run   string `json:"run,omitempty"`
	Claim string `json:"claim,omitempty"`
	Size  int64  `json:"size"`
	// SHA256 of the state file, hex.
	SHA256  string    `json:"sha256,omitempty"`
	Created time.Time `json:"created"`
	// Current: the state the workspace's next plan starts from.
	Current bool `json:"current"`
}

// StateVersionList answers GET /v1/tenants/{tenant}/workspaces/{workspace}/state/versions,
// newest first.
type StateVersionList struct {
	Versions []StateVersion `json:"versions"`
}

// StateRollbackRequest is the body of POST
// /v1/tenants/{tenant}/workspaces/{workspace}/state/rollback.
type StateRollbackRequest struct {
	// Version to make current again (from .../state/versions).
	Version string `json:"version"`
}

// Headers of GET .../state.
const (
	HeaderStateVersion = "Bote-State-Version"
	HeaderStateSHA256  = "Bote-State-Sha256"
)
