package tfrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/botehq/platform/runtime/tfresult"
	"github.com/hashicorp/terraform-exec/tfexec"
)

// LockFileName is Terraform's dependency lock file in a configuration.
const LockFileName = tfresult.LockFileName

// MaxLockFileBytes bounds the lock file a result carries.
const MaxLockFileBytes = tfresult.MaxLockFileBytes

// init runs terraform init (through the job's InitGuard) and records
// whether it changed the dependency lock file.
func (r *Runner) init(ctx context.Context, tf *tfexec.Terraform, job Job, ev *eventStream, res *Result) error {
	path := filepath.Join(job.Dir, LockFileName)
	before, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot read the lock file: %w", err)
	}
	had := err == nil
	if err := guardedInit(ctx, tf, job, ev); err != nil {
		return err
	}
	after, rerr := os.ReadFile(path)
	if errors.Is(rerr, fs.ErrNotExist) {
		return nil // no providers at all
	}
	if rerr != nil {
		return fmt.Errorf("cannot read the lock file: %w", rerr)
	}
	lf := &LockFile{Changed: !had || !bytes.Equal(before, after), Created: !had}
	if len(after) > MaxLockFileBytes {
		lf.Truncated = true
	} else {
		lf.Content = string(after)
	}
	res.LockFile = lf
	if lf.Changed {
		res.Diagnostics = append(res.Diagnostics, Diagnostic{Severity: "warning", Summary: "terraform init changed the dependency lock file",
			Detail: "The configuration's " + LockFileName + " did not record the providers this run installed (a new provider, version or platform checksum). Commit the updated file (opsbot runs lockfile RUN) so that later runs install exactly these."})
	}
	return nil
}

// guardedInit runs terraform init through the job's InitGuard.
func guardedInit(ctx context.Context, tf *tfexec.Terraform, job Job, ev *eventStream) error {
	init := func(ctx context.Context) error { return tf.InitJSON(ctx, ev, tfexec.Upgrade(false)) }
	if job.InitGuard != nil {
		return job.InitGuard.GuardInit(ctx, job.Dir, init)
	}
	return init(ctx)
}

// providersLeftOut reports whether a saved plan's working directory came
// without its providers (tfarchive.PackOptions.WithoutProviders): it has
// a lock file naming them but no .terraform/providers/.
func providersLeftOut(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, LockFileName)); err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, ".terraform", "providers"))
	return errors.Is(err, fs.ErrNotExist)
}
