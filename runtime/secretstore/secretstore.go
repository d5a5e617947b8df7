// Package secretstore keeps the deployment secrets of each tenant's
// workspaces (environment for the Terraform process, such as
// ARM_CLIENT_SECRET, and sensitive input variables) on the server side.
// The dispatcher reads them when it assigns a run and seals them to the
// agent's key (runproto.SealSecrets); they never travel or rest in clear
// anywhere else.
//
// Two implementations share the Store interface: File, a local JSON file
// (mode 0600, written atomically) for local mode and tests, and KeyVault,
// one Azure Key Vault secret per workspace, for Azure.
package secretstore

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runproto"
)

// Store keeps a workspace's secrets. Its tenant and workspace ids are
// typed: they were checked where they entered, and a Store does not check
// them again.
type Store interface {
	// Get returns the workspace's secrets; none stored is not an error
	// (empty Secrets).
	Get(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (runproto.Secrets, error)
	// Put replaces the workspace's secrets.
	Put(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, s runproto.Secrets) error
	// Delete removes them; deleting nothing is not an error.
	Delete(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) error
}

// Limits keep one workspace's secrets small enough for a Key Vault secret
// (25 KiB) and for a queue message once sealed.
const (
	MaxEntries    = 100
	MaxValueBytes = 8 << 10
	MaxTotalBytes = 20 << 10
)

// ErrInvalid reports bad secrets.
var ErrInvalid = errors.New("invalid secrets")

// Validate checks names and sizes; environment names must be usable as
// environment variables and variable names as Terraform identifiers.
func Validate(s runproto.Secrets) error {
	if n := len(s.Env) + len(s.Vars); n > MaxEntries {
		return fmt.Errorf("%w: %d entries, the limit is %d", ErrInvalid, n, MaxEntries)
	}
	total := 0
	for what, m := range map[string]map[string]string{"env": s.Env, "vars": s.Vars} {
		for k, v := range m {
			if !validName(k) {
				return fmt.Errorf("%w: %s name %q must be letters, digits and '_', not starting with a digit", ErrInvalid, what, k)
			}
			if len(v) > MaxValueBytes {
				return fmt.Errorf("%w: %s %s is %d bytes, the limit is %d", ErrInvalid, what, k, len(v), MaxValueBytes)
			}
			total += len(k) + len(v)
		}
	}
	if total > MaxTotalBytes {
		return fmt.Errorf("%w: %d bytes in all, the limit is %d", ErrInvalid, total, MaxTotalBytes)
	}
	return nil
}

func validName(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func clone(s runproto.Secrets) runproto.Secrets {
	return runproto.Secrets{Env: maps.Clone(s.Env), Vars: maps.Clone(s.Vars)}
}

// None is a Store without secrets: Get returns none, Put refuses.
type None struct{}

// Get implements Store.
func (None) Get(context.Context, ids.TenantID, ids.WorkspaceID) (runproto.Secrets, error) {
	return runproto.Secrets{}, nil
}

// Put implements Store.
func (None) Put(context.Context, ids.TenantID, ids.WorkspaceID, runproto.Secrets) error {
	return errors.New("cannot store secrets: no secret store is configured")
}

// Delete implements Store.
func (None) Delete(context.Context, ids.TenantID, ids.WorkspaceID) error { return nil }
