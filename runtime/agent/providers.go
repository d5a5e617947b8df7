package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/tfproviders"
	"github.com/botehq/platform/runtime/tfrun"
)

// cliConfigFile is the run's Terraform CLI configuration, in the run's
// directory beside tf/ (so it is never packed).
const cliConfigFile = "terraform.tfrc"

// providers sets up where the phase's terraform init gets providers: it
// writes the run's CLI configuration (the agent's plugin cache and
// sources, the workspace's overrides) into dir and points job at it. end
// releases the run's hold on the plugin cache; call it once the working
// directory is packed or gone.
func (a *Agent) providers(dir string, asg *runproto.Assign, job *tfrun.Job) (sources tfproviders.Sources, end func(), err error) {
	end = func() {}
	if err := asg.Providers.Validate(); err != nil {
		return sources, end, fmt.Errorf("the workspace's %w", err)
	}
	sources = a.cfg.ProviderSources.Override(asg.Providers)
	cli := tfproviders.CLIConfig{Sources: sources, Base: a.cfg.CLIConfig}
	if c := a.cfg.ProviderCache; c != nil {
		cli.PluginCacheDir = c.Dir()
		use := c.Begin()
		job.InitGuard, end = use, use.End
	}
	if cli.PluginCacheDir == "" && sources.IsZero() {
		return sources, end, nil // Terraform's own installation, the agent's CLI configuration
	}
	if err := cli.CheckBase(); err != nil {
		return sources, end, err
	}
	path := filepath.Join(dir, cliConfigFile)
	if err := os.WriteFile(path, cli.Render(), 0o600); err != nil {
		return sources, end, fmt.Errorf("cannot write the run's Terraform CLI configuration: %w", err)
	}
	job.CLIConfigFile = path
	return sources, end, nil
}

// explainProviders puts a clear error first when init could not install
// a provider: which one, and the sources the agent tried.
func explainProviders(tr *tfrun.Result, runErr error, sources tfproviders.Sources) error {
	var te *tfrun.Error
	if tr == nil || !errors.As(runErr, &te) {
		return runErr
	}
	d, ok := tfproviders.Explain(tr.Errors(), sources)
	if !ok {
		return runErr
	}
	tr.Diagnostics = append([]tfrun.Diagnostic{d}, tr.Diagnostics...)
	return &tfrun.Error{Op: te.Op, Diagnostics: tr.Errors(), Err: te.Err}
}
