package runspec

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// RunVarsFile is the variable file a run's own input variables travel in,
// inside its bundle (opsbot plan --var, the plan tool of opsbot mcp).
// Terraform loads *.auto.tfvars files in lexical order, later ones
// winning, after terraform.tfvars: the name sorts after anything a
// configuration names "zz-..." and after the agent's workspace variables
// (zz-bote-run.auto.tfvars.json), so a run's own variables win.
const RunVarsFile = "zzz-opsbot-vars.auto.tfvars.json"

// RunVarsJSON is the content of RunVarsFile: vars as strings (as
// terraform -var gives a primitive type), names checked with
// ValidRunVarName.
func RunVarsJSON(vars map[string]string) ([]byte, error) {
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		if !ValidRunVarName(k) {
			return nil, fmt.Errorf("variable name %q must be a Terraform identifier (letters, digits, '_' and '-', not starting with a digit or '-')", k)
		}
	}
	data, err := json.MarshalIndent(vars, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// ValidRunVarName reports whether s is a Terraform identifier: letters,
// digits, '_' and '-', not starting with a digit or '-'. (Workspace
// variables are stricter: ValidVarName.)
func ValidRunVarName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
