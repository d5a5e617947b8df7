// Package runspec holds the rules for what operators ask of workspaces and
// runs: workspace fields and options (timeouts, four-eyes, auto-apply),
// variable names and sizes, plan options (-target, -replace,
// -refresh-only) and the size of a Terraform state. The ops server checks
// them (packages runs and tfrun alias these types) and clients check them
// before sending (opsbot names the bad flag), without linking the
// server's code: this package depends on nothing of ours but ids.
package runspec

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-version"

	"github.com/botehq/platform/runtime/ids"
)

// MaxStateBytes bounds a state file: what an agent uploads to its run's
// StateUploadURL (runproto), the server promotes and an agent or operator
// downloads.
const MaxStateBytes = 256 << 20

// Workspace is what an operator says about a workspace: the fields the
// server stores it with, less the server's own (creation time, ETag).
type Workspace struct {
	Tenant, Name, Description string
	AgentLabels               map[string]string
	Vars                      map[string]string
	TerraformVersion          string
	Options                   Options
}

// MaxDescription is the longest workspace description accepted.
const MaxDescription = 1024

// Validate checks the workspace's fields.
func (w Workspace) Validate() error {
	if err := ids.Validate("tenant", w.Tenant); err != nil {
		return err
	}
	if err := ids.Validate("workspace", w.Name); err != nil {
		return err
	}
	if len(w.Description) > MaxDescription {
		return fmt.Errorf("workspace description is longer than %d characters", MaxDescription)
	}
	for k, v := range w.AgentLabels {
		if err := ids.ValidateLabel(k, v); err != nil {
			return fmt.Errorf("workspace agentLabels: %w", err)
		}
	}
	if err := ValidateVars(w.Vars); err != nil {
		return fmt.Errorf("workspace vars: %w", err)
	}
	if w.TerraformVersion != "" {
		if len(w.TerraformVersion) > 100 {
			return errors.New("workspace terraformVersion: longer than 100 characters")
		}
		if _, err := version.NewConstraint(w.TerraformVersion); err != nil {
			return fmt.Errorf("workspace terraformVersion %q is not a version constraint such as \"~> 1.9\" or \">= 1.10, < 2.0\": %w", w.TerraformVersion, err)
		}
	}
	return w.Options.Validate()
}

// Options tune a workspace's runs. Zero durations take the defaults.
type Options struct {
	// AutoApply approves a plan with changes as soon as it is saved.
	AutoApply bool `json:"autoApply,omitempty"`
	// FourEyes requires that a run be approved by someone other than who
	// queued it (the server refuses the approval). It excludes AutoApply,
	// which approves without anyone.
	FourEyes bool `json:"fourEyes,omitempty"`
	// PlanTimeout bounds planning (default DefaultPlanTimeout).
	PlanTimeout time.Duration `json:"planTimeout,omitempty"`
	// ApplyTimeout bounds applying (default DefaultApplyTimeout).
	ApplyTimeout time.Duration `json:"applyTimeout,omitempty"`
	// ApprovalTimeout bounds how long a saved plan waits for approval while
	// it holds the workspace (default DefaultApprovalTimeout).
	ApprovalTimeout time.Duration `json:"approvalTimeout,omitempty"`
}

// Defaults for Options.
const (
	DefaultPlanTimeout     = time.Hour
	DefaultApplyTimeout    = 2 * time.Hour
	DefaultApprovalTimeout = 24 * time.Hour
	// MaxTimeout caps every timeout (a week: runs must end).
	MaxTimeout = 7 * 24 * time.Hour
)

// Validate names the first bad option.
func (o Options) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"planTimeout", o.PlanTimeout}, {"applyTimeout", o.ApplyTimeout}, {"approvalTimeout", o.ApprovalTimeout}} {
		if d.v < 0 || d.v > MaxTimeout {
			return fmt.Errorf("workspace options: %s %s must be between 0 (default) and %s", d.name, d.v, MaxTimeout)
		}
	}
	if o.FourEyes && o.AutoApply {
		return errors.New("workspace options: fourEyes and autoApply exclude each other (auto-apply approves without a second person)")
	}
	return nil
}

// Limits of a workspace's plain variables (they are stored with it).
const (
	MaxVars         = 100
	MaxVarBytes     = 8 << 10
	MaxAllVarsBytes = 64 << 10
)

// ValidateVars checks variable names (letters, digits and '_', not
// starting with a digit) and sizes.
func ValidateVars(vars map[string]string) error {
	if len(vars) > MaxVars {
		return fmt.Errorf("%d variables, the limit is %d", len(vars), MaxVars)
	}
	total := 0
	for k, v := range vars {
		if !ValidVarName(k) {
			return fmt.Errorf("variable name %q must be letters, digits and '_', not starting with a digit", k)
		}
		if len(v) > MaxVarBytes {
			return fmt.Errorf("variable %s is %d bytes, the limit is %d", k, len(v), MaxVarBytes)
		}
		total += len(k) + len(v)
	}
	if total > MaxAllVarsBytes {
		return fmt.Errorf("the variables take %d bytes, the limit is %d", total, MaxAllVarsBytes)
	}
	return nil
}

// ValidVarName reports whether k can name a workspace variable.
func ValidVarName(k string) bool {
	if k == "" || len(k) > 128 || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// PlanOptions narrow a plan: -target and -replace resource addresses and
// -refresh-only.
type PlanOptions struct {
	Targets     []string `json:"targets,omitempty"`
	Replace     []string `json:"replace,omitempty"`
	RefreshOnly bool     `json:"refreshOnly,omitempty"`
}

// MaxPlanAddresses bounds the addresses of each PlanOptions list.
const MaxPlanAddresses = 100

// Validate checks the addresses (non-empty, one line, at most 512 bytes,
// at most MaxPlanAddresses of each) and the combination: a destroy plan
// takes targets only, and -replace does not go with -refresh-only.
func (o PlanOptions) Validate(destroy bool) error {
	for what, list := range map[string][]string{"target": o.Targets, "replace": o.Replace} {
		if len(list) > MaxPlanAddresses {
			return fmt.Errorf("plan options: %d %s addresses, the limit is %d", len(list), what, MaxPlanAddresses)
		}
		for _, a := range list {
			if a == "" || len(a) > 512 || strings.HasPrefix(a, "-") || strings.ContainsFunc(a, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				return fmt.Errorf("plan options: %s address %q must be a resource address such as aws_instance.web or module.net", what, a)
			}
		}
	}
	switch {
	case destroy && (o.RefreshOnly || len(o.Replace) > 0):
		return errors.New("plan options: a destroy takes -target only, not -replace or -refresh-only")
	case o.RefreshOnly && len(o.Replace) > 0:
		return errors.New("plan options: -replace and -refresh-only exclude each other")
	}
	return nil
}

// Empty reports whether no option is set.
func (o PlanOptions) Empty() bool {
	return len(o.Targets) == 0 && len(o.Replace) == 0 && !o.RefreshOnly
}
