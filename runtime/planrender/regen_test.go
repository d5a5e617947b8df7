package planrender_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var regen = flag.Bool("regen", false, "run terraform to regenerate testdata/*/plan.json and terraform.txt")

// TestRegenerate makes each case's inputs with the real terraform:
// before.tf (if any) is applied, then after.tf is planned with the
// arguments in args, and the saved plan is shown as JSON (plan.json, the
// renderer's input) and as Terraform prints it (terraform.txt, what the
// renderer must agree with). Run: go test ./runtime/planrender -run
// TestRegenerate -regen, then -update for the goldens.
func TestRegenerate(t *testing.T) {
	if !*regen {
		t.Skip("needs -regen")
	}
	tf, err := exec.LookPath("terraform")
	require.NoError(t, err)
	cases, err := filepath.Glob("testdata/*/after.tf")
	require.NoError(t, err)
	for _, after := range cases {
		dir := filepath.Dir(after)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			work := t.TempDir()
			run := func(args ...string) []byte {
				cmd := exec.Command(tf, args...)
				cmd.Dir = work
				// An empty CLI configuration keeps the machine's out of the
				// output (and its "file does not exist" warning).
				cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+filepath.Join(work, "cli.tfrc"), "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1")
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				require.NoError(t, err, "terraform %v: %s", args, stderr.String())
				return out
			}
			require.NoError(t, os.WriteFile(filepath.Join(work, "cli.tfrc"), nil, 0o644))
			copyFile := func(from string) {
				data, err := os.ReadFile(from)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(work, "main.tf"), data, 0o644))
			}
			run("init", "-no-color", "-input=false")
			if _, err := os.Stat(filepath.Join(dir, "before.tf")); err == nil {
				copyFile(filepath.Join(dir, "before.tf"))
				run("apply", "-auto-approve", "-no-color", "-input=false")
			}
			copyFile(after)
			args := []string{"plan", "-no-color", "-input=false", "-out=tfplan"}
			if extra, err := os.ReadFile(filepath.Join(dir, "args")); err == nil {
				args = append(args, strings.Fields(string(extra))...)
			}
			run(args...)
			raw := run("show", "-json", "tfplan")
			var pretty bytes.Buffer
			require.NoError(t, json.Indent(&pretty, raw, "", "  "))
			pretty.WriteByte('\n')
			require.NoError(t, os.WriteFile(filepath.Join(dir, "plan.json"), pretty.Bytes(), 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "terraform.txt"), run("show", "-no-color", "tfplan"), 0o644))
		})
	}
}
