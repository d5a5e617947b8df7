// Package tfresult is what Terraform reports for one phase of a run, as
// the platform carries it: the executor (tfrun) produces a Result, the
// agent sends it in run.result (runproto), the run manager stores it with
// the run (runs) and the ops API shows it. It is a leaf package of plain
// types so that the run model, the run protocol and the servers depend on
// the data, not on the code that runs Terraform (tfrun, terraform-exec);
// tfrun aliases its types.
package tfresult

import (
	"encoding/json"

	"github.com/botehq/platform/runtime/planrender"
	"github.com/botehq/platform/runtime/tfdiag"
)

// Operation is what a run does.
type Operation string

// Operations a run can perform.
const (
	Plan        Operation = "plan"    // plan and save the plan file
	PlanDestroy Operation = "destroy" // plan a destroy and save the plan file
	Apply       Operation = "apply"   // apply exactly the saved plan file
)

// MaxPlanSummaryEntries bounds the addresses a Result's plan summary
// lists as destroyed or replaced (the plan JSON has them all).
const MaxPlanSummaryEntries = 100

// LockFileName is Terraform's dependency lock file in a configuration.
const LockFileName = ".terraform.lock.hcl"

// MaxLockFileBytes bounds the lock file a result carries (one provider
// takes about 1 KiB per platform it has hashes for).
const MaxLockFileBytes = 64 << 10

// Result is what a run produced, ready to report back.
type Result struct {
	Op Operation `json:"op"`
	// HasChanges is set by a plan that would change something.
	HasChanges bool           `json:"hasChanges"`
	Changes    *ChangeSummary `json:"changes,omitempty"`
	// Diagnostics are Terraform's warnings and errors.
	Diagnostics []Diagnostic `json:"diagnostics,omitempty"`
	// Outputs after an apply; sensitive values are left out.
	Outputs   map[string]Output `json:"outputs,omitempty"`
	Failed    bool              `json:"failed,omitempty"`
	Cancelled bool              `json:"cancelled,omitempty"`
	// LogError is set when some log lines could not be delivered; the run
	// itself is not failed for that.
	LogError string `json:"logError,omitempty"`
	// Plan summarizes a saved plan: counts, and what it destroys and
	// replaces (at most MaxPlanSummaryEntries of each).
	Plan *planrender.Summary `json:"plan,omitempty"`
	// LockFile is the dependency lock file after a plan's init (none
	// without providers).
	LockFile *LockFile `json:"lockFile,omitempty"`
	// PlanJSON is the saved plan as planrender.Keep keeps it, JSON; the
	// agent sends it on to be stored beside the run, not in it.
	PlanJSON []byte `json:"-"`
}

// ChangeSummary counts planned or applied changes.
type ChangeSummary struct {
	Add       int    `json:"add"`
	Change    int    `json:"change"`
	Remove    int    `json:"remove"`
	Import    int    `json:"import"`
	Operation string `json:"operation"`
}

// Diagnostic is one Terraform warning or error (package tfdiag).
type Diagnostic = tfdiag.Diagnostic

// Errors returns the error diagnostics.
func (r *Result) Errors() []Diagnostic {
	if r == nil {
		return nil
	}
	var out []Diagnostic
	for _, d := range r.Diagnostics {
		if d.Severity == "error" {
			out = append(out, d)
		}
	}
	return out
}

// Output is one root module output.
type Output struct {
	Sensitive bool            `json:"sensitive"`
	Value     json.RawMessage `json:"value,omitempty"`
}

// LockFile is the dependency lock file a plan's init left.
type LockFile struct {
	// Changed: init created the file (the configuration had none) or
	// changed it (new providers, versions or hashes). Commit Content to
	// the configuration so that the next runs install the same providers.
	Changed bool `json:"changed"`
	// Created: the configuration had no lock file.
	Created bool `json:"created,omitempty"`
	// Content is the file as init left it; empty when over
	// MaxLockFileBytes (Truncated).
	Content   string `json:"content,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}
