// Package ids is the home of the names the platform gives its parties: the
// tenant, connector, agent and workspace ids, label keys, and ConnectorID,
// the identity of one connector (its tenant and its connector id together,
// as a token's subject, an envelope's sender or a queue's owner).
//
// Every such id follows one rule, Validate: 1 to MaxLength characters of ASCII
// letters, digits, '.', '_' and '-', starting with a letter or digit. The rule
// is narrow enough that an id is safe in a path, a log line, a header and a
// table key, and wide enough for the ids customers already have. What derives
// a name from an id (package queuename for Storage Queues) relies on it.
package ids

import (
	"errors"
	"fmt"
	"regexp"
)

// MaxLength is the longest id accepted.
const MaxLength = 128

var pattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ErrInvalid reports an id that breaks the rule.
var ErrInvalid = errors.New("invalid id")

// Validate reports whether id may be used as a tenant, connector, agent or
// workspace id or a label key. kind names the id in the error ("tenant",
// "connector").
func Validate(kind, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: %s id is empty", ErrInvalid, kind)
	case len(id) > MaxLength:
		return fmt.Errorf("%w: %s id %q is %d characters, the limit is %d", ErrInvalid, kind, id, len(id), MaxLength)
	case !pattern.MatchString(id):
		return fmt.Errorf("%w: %s id %q must start with a letter or digit and contain only letters, digits, '.', '_' and '-'", ErrInvalid, kind, id)
	}
	return nil
}

// MaxLabelValue is the longest label value accepted.
const MaxLabelValue = 256

// ValidateLabel checks one agent label: the key is an id (Validate), the
// value at most MaxLabelValue bytes. Registrations, heartbeats and
// workspaces' agentLabels all follow it.
func ValidateLabel(k, v string) error {
	if err := Validate("label", k); err != nil {
		return err
	}
	if len(v) > MaxLabelValue {
		return fmt.Errorf("label %s value is longer than %d characters", k, MaxLabelValue)
	}
	return nil
}

// TenantID is a tenant id that passed Validate. Parse one where it enters
// (a flag, a token claim, a decoded message, a request path) with
// ParseTenantID; code that is given a TenantID does not check it again.
// Convert a string with TenantID(s) only in tests and for ids that were
// validated already (a stored record).
type TenantID string

// ParseTenantID validates s as a tenant id.
func ParseTenantID(s string) (TenantID, error) {
	if err := Validate("tenant", s); err != nil {
		return "", err
	}
	return TenantID(s), nil
}

// String returns the id.
func (t TenantID) String() string { return string(t) }

// WorkspaceID is a workspace id that passed Validate (see TenantID).
type WorkspaceID string

// ParseWorkspaceID validates s as a workspace id.
func ParseWorkspaceID(s string) (WorkspaceID, error) {
	if err := Validate("workspace", s); err != nil {
		return "", err
	}
	return WorkspaceID(s), nil
}

// String returns the id.
func (w WorkspaceID) String() string { return string(w) }

// ConnectorID identifies one connector: connector ids are unique within a
// tenant only. Like TenantID it is parsed where it enters
// (ParseConnectorID, or a verified access token) and carried as is.
type ConnectorID struct {
	Tenant    TenantID
	Connector string
}

// ParseConnectorID validates both ids.
func ParseConnectorID(tenant, connector string) (ConnectorID, error) {
	id := ConnectorID{Tenant: TenantID(tenant), Connector: connector}
	if err := id.Validate(); err != nil {
		return ConnectorID{}, err
	}
	return id, nil
}

// String renders the identity as "tenant/connector".
func (c ConnectorID) String() string { return string(c.Tenant) + "/" + c.Connector }

// Validate checks both ids.
func (c ConnectorID) Validate() error {
	if err := Validate("tenant", string(c.Tenant)); err != nil {
		return err
	}
	return Validate("connector", c.Connector)
}
