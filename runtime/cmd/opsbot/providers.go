package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// providerFlags are a workspace's provider sources on the command line.
type providerFlags struct {
	mirrorDir, networkMirror string
	direct                   bool
}

var providerFlagNames = []string{"provider-mirror-dir", "provider-network-mirror", "provider-direct"}

func (p *providerFlags) register(fs *pflag.FlagSet, update bool) {
	more := ""
	if update {
		more = "; any --provider-* flag replaces all three (none of them given keeps them, '' clears one)"
	}
	fs.StringVar(&p.mirrorDir, "provider-mirror-dir", "", "a filesystem mirror directory on the agents, instead of theirs"+more)
	fs.StringVar(&p.networkMirror, "provider-network-mirror", "", "the https URL of a provider network mirror, instead of the agents'")
	fs.BoolVar(&p.direct, "provider-direct", true, "--provider-direct=false: never install providers from their origin registries (a workspace cannot turn it back on for an agent that does not)")
}

// sources is what the flags say; nil when none was given.
func (p *providerFlags) sources(fs *pflag.FlagSet) *opsapitypes.ProviderSources {
	for _, n := range providerFlagNames {
		if fs.Changed(n) {
			return &opsapitypes.ProviderSources{FilesystemMirror: p.mirrorDir, NetworkMirror: p.networkMirror, NoDirect: !p.direct}
		}
	}
	return nil
}

// lockFileCommand writes the dependency lock file a run's plan left.
func (a *app) lockFileCommand() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "lockfile RUN [-O FILE]",
		Short: "Write the dependency lock file (.terraform.lock.hcl) the run's terraform init left",
		Long: `Write the .terraform.lock.hcl the run's plan left, to stdout or to the
file -O names (a directory: its .terraform.lock.hcl). When init created
or changed it (the run's result says so with a warning), commit it
beside the configuration so that later runs install exactly these
providers: e.g.
  opsbot runs lockfile RUN -O infra/`,
		Args: cobra.ExactArgs(1),
		RunE: a.withTenant(func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error {
			run, err := api.Run(cmd.Context(), tenant, args[0])
			if err != nil {
				return err
			}
			if run.PlanResult == nil {
				return fmt.Errorf("run %s has no plan result yet (it is %s)", run.ID, run.State)
			}
			lf := run.PlanResult.LockFile
			switch {
			case lf == nil:
				fmt.Fprintf(a.stderr, "opsbot: run %s's configuration uses no providers: Terraform wrote no lock file\n", run.ID)
				return nil
			case lf.Truncated:
				return fmt.Errorf("run %s's lock file is over 64 KiB and was not kept", run.ID)
			}
			what := "unchanged"
			switch {
			case lf.Created:
				what = "created by init"
			case lf.Changed:
				what = "changed by init"
			}
			if out == "" || out == "-" {
				_, err := fmt.Fprint(a.stdout, lf.Content)
				return err
			}
			if fi, err := os.Stat(out); err == nil && fi.IsDir() {
				out = filepath.Join(out, ".terraform.lock.hcl") // -O infra/: the configuration's directory
			}
			if err := writeFileAtomic(out, []byte(lf.Content)); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "opsbot: lock file of run %s (%s) written to %s\n", run.ID, what, out)
			return nil
		}),
	}
	c.Flags().StringVarP(&out, "out-file", "O", "", "write to this file instead of stdout")
	return c
}

// writeFileAtomic replaces path with data (0644) in one rename.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".opsbot-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	err = errors.Join(err, f.Chmod(0o644), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}
