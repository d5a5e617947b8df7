// Package policystore keeps the tenants' policies (package policy
// compiles and evaluates them) with every version: Table in Azure Table
// Storage, Memory for tests. It does not link the Open Policy Agent, so
// the infrastructure components can name its table.
package policystore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
)

// Errors of the store.
var (
	ErrNotFound = errors.New("policy not found")
	ErrConflict = errors.New("policy changed concurrently")
)

// MaxSourceBytes bounds a policy's Rego source.
const MaxSourceBytes = 64 << 10

// Policy is one version of a tenant's policy.
type Policy struct {
	Tenant ids.TenantID `json:"tenant"`
	Name   string       `json:"name"`
	// Workspace limits the policy to one workspace; "" applies it to every
	// workspace of the tenant.
	Workspace   ids.WorkspaceID  `json:"workspace,omitempty"`
	Description string           `json:"description,omitempty"`
	Enforcement runs.Enforcement `json:"enforcement"`
	// Source is the Rego module.
	Source string `json:"source"`
	// Version counts the puts of the name from 1; set by the store.
	Version   int       `json:"version"`
	SHA256    string    `json:"sha256"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
	// Deleted marks a deleted policy's last version (the versions stay).
	Deleted bool `json:"deleted,omitempty"`
}

// Validate checks the fields a caller sets (not the Rego: see Compile;
// the tenant and workspace ids are typed, checked where they entered).
func (p Policy) Validate() error {
	if p.Tenant == "" {
		return errors.New("policy tenant is empty")
	}
	if err := ids.Validate("policy", p.Name); err != nil {
		return err
	}
	if !p.Enforcement.Valid() {
		return fmt.Errorf("policy enforcement %q must be one of %v", p.Enforcement, runs.Enforcements)
	}
	if len(p.Description) > 1024 {
		return errors.New("policy description is longer than 1024 characters")
	}
	if p.Source == "" {
		return errors.New("policy source is empty")
	}
	if len(p.Source) > MaxSourceBytes {
		return fmt.Errorf("policy source is %d bytes, the limit is %d", len(p.Source), MaxSourceBytes)
	}
	return nil
}

// AppliesTo reports whether the policy checks the plans of workspace.
func (p Policy) AppliesTo(workspace ids.WorkspaceID) bool {
	return !p.Deleted && (p.Workspace == "" || p.Workspace == workspace)
}

func sourceHash(src string) string {
	sum := sha256.Sum256([]byte(src))
	return hex.EncodeToString(sum[:])
}
