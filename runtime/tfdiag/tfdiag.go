// Package tfdiag holds Terraform's diagnostic (an error or warning with the
// configuration range it is about) as the platform carries it: tfrun reads
// it from Terraform, the agent reports it, and the ops API hands it to
// opsbot. It is a leaf package of plain types so that the CLI's wire types
// (opsapitypes) share it without linking the executor.
package tfdiag

import "fmt"

// Diagnostic is one Terraform warning or error.
type Diagnostic struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail,omitempty"`
	Address  string `json:"address,omitempty"`
	// File, Line and Column start the configuration range the diagnostic
	// is about; EndLine and EndColumn end it (exclusive).
	File      string `json:"file,omitempty"`
	Line      int    `json:"line,omitempty"`
	Column    int    `json:"column,omitempty"`
	EndLine   int    `json:"endLine,omitempty"`
	EndColumn int    `json:"endColumn,omitempty"`
	// Context ("resource \"x\" \"y\"") and Code (the source line at
	// Line) are Terraform's snippet of the configuration.
	Context string `json:"context,omitempty"`
	Code    string `json:"code,omitempty"`
}

// Where is "main.tf line 2" (or the address), "" when Terraform gave
// neither.
func (d Diagnostic) Where() string {
	switch {
	case d.File != "" && d.Line > 0:
		return fmt.Sprintf("%s line %d", d.File, d.Line)
	case d.File != "":
		return d.File
	}
	return d.Address
}
