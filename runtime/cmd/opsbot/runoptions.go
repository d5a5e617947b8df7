package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/runspec"
	"github.com/botehq/platform/runtime/tfarchive"
)

// runOptions are terraform plan's everyday options for one run: --var and
// --var-file travel in the bundle as auto-loaded variable files, --target,
// --replace and --refresh-only with the run.
type runOptions struct {
	vars     []string
	varFiles []string
	plan     opsapitypes.PlanOptions
}

func (o *runOptions) flags(c *cobra.Command, destroy bool) {
	f := c.Flags()
	f.StringArrayVar(&o.vars, "var", nil, "set an input variable for this run, NAME=VALUE (repeatable; the value is a string, as with terraform -var for a primitive type)")
	f.StringArrayVar(&o.varFiles, "var-file", nil, "load input variables from a .tfvars or .tfvars.json file for this run (repeatable)")
	f.StringArrayVar(&o.plan.Targets, "target", nil, "plan only this resource address and what it depends on, as terraform -target (repeatable)")
	if !destroy {
		f.StringArrayVar(&o.plan.Replace, "replace", nil, "plan to replace this resource instance, as terraform -replace (repeatable)")
		f.BoolVar(&o.plan.RefreshOnly, "refresh-only", false, "plan only to update the state to match the real infrastructure, as terraform -refresh-only")
	}
}

// The --var-file files a run's options add to its bundle, named to sort
// before runspec.RunVarsFile (--var), so that --var wins over --var-file
// as on terraform's command line.
const (
	varFilePattern = "zzz-opsbot-var-file-%02d.auto%s"
	maxVarFiles    = 99
)

// bundleFiles returns the variable files to add to the bundle.
func (o runOptions) bundleFiles() ([]tfarchive.File, error) {
	// The server checks again; checking here names the flags first.
	if err := (runspec.PlanOptions{Targets: o.plan.Targets, Replace: o.plan.Replace, RefreshOnly: o.plan.RefreshOnly}).Validate(false); err != nil {
		return nil, usageError{err}
	}
	if len(o.varFiles) > maxVarFiles {
		return nil, usageError{fmt.Errorf("--var-file: at most %d files", maxVarFiles)}
	}
	var out []tfarchive.File
	for i, path := range o.varFiles {
		ext := ".tfvars"
		switch {
		case strings.HasSuffix(path, ".tfvars.json"):
			ext = ".tfvars.json"
		case !strings.HasSuffix(path, ".tfvars"):
			return nil, usageError{fmt.Errorf("--var-file %s: must end in .tfvars or .tfvars.json", path)}
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, usageError{fmt.Errorf("--var-file: %w", err)}
		}
		out = append(out, tfarchive.File{Name: fmt.Sprintf(varFilePattern, i+1, ext), Data: data})
	}
	if len(o.vars) > 0 {
		vars := map[string]string{}
		for _, kv := range o.vars {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || !runspec.ValidRunVarName(k) {
				return nil, usageError{fmt.Errorf("--var %q: must be NAME=VALUE with NAME a Terraform variable name", kv)}
			}
			vars[k] = v
		}
		data, err := runspec.RunVarsJSON(vars)
		if err != nil {
			return nil, err
		}
		out = append(out, tfarchive.File{Name: runspec.RunVarsFile, Data: data})
	}
	return out, nil
}

// planOptionsString writes plan options as terraform's flags.
func planOptionsString(o opsapitypes.PlanOptions) string {
	var parts []string
	for _, a := range o.Targets {
		parts = append(parts, "-target="+a)
	}
	for _, a := range o.Replace {
		parts = append(parts, "-replace="+a)
	}
	if o.RefreshOnly {
		parts = append(parts, "-refresh-only")
	}
	return strings.Join(parts, " ")
}
