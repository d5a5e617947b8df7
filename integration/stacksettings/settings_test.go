// Package stacksettings checks the contract between the Pulumi stacks and
// the binaries they deploy: every BOTE_<APP>_<FLAG> setting the dev and gov
// stacks give an app (as recorded in stacks/testdata) is a flag of that
// app's binary, so a renamed or misspelt setting fails here, not as an app
// that ignores it in Azure.
package stacksettings

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/procs"
)

func TestMain(m *testing.M) { procs.Main(m) }

// flags lists the flags bin prints for -h.
func flags(t *testing.T, bin string) map[string]bool {
	t.Helper()
	out, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits non-zero
	got := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		got[m[1]] = true
	}
	require.NotEmpty(t, got, "%s -h printed no flags:\n%s", bin, out)
	return got
}

// settings returns app name -> its BOTE_ settings from a stack golden.
func settings(t *testing.T, golden string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(golden)
	require.NoError(t, err)
	var resources []struct {
		Type   string         `json:"type"`
		Name   string         `json:"name"`
		Inputs map[string]any `json:"inputs"`
	}
	require.NoError(t, json.Unmarshal(raw, &resources))
	out := map[string][]string{}
	add := func(list []any) {
		for _, e := range list {
			name, _ := e.(map[string]any)["name"].(string)
			if rest, ok := strings.CutPrefix(name, "BOTE_"); ok && name != "BOTE_AZURE_CLOUD" {
				app, _, _ := strings.Cut(rest, "_")
				out[strings.ToLower(app)] = append(out[strings.ToLower(app)], name)
			}
		}
	}
	for _, r := range resources {
		switch {
		case r.Type == "azure-native:web:WebApp":
			add(r.Inputs["siteConfig"].(map[string]any)["appSettings"].([]any))
		case strings.HasPrefix(r.Type, "azure-native:app") && strings.HasSuffix(r.Type, ":ContainerApp"):
			for _, c := range r.Inputs["template"].(map[string]any)["containers"].([]any) {
				add(c.(map[string]any)["env"].([]any))
			}
		}
	}
	return out
}

func TestStackSettingsAreFlagsOfTheBinaries(t *testing.T) {
	binFlags := map[string]map[string]bool{}
	for _, app := range []string{"gateway", "idp", "opsserver"} {
		binFlags[app] = flags(t, procs.Build(t, app))
	}
	for _, stack := range []string{"dev", "gov"} {
		byApp := settings(t, filepath.Join("..", "..", "stacks", "testdata", "stack-"+stack+".golden.json"))
		require.Len(t, byApp, 3, stack)
		for app, names := range byApp {
			require.Contains(t, binFlags, app, "%s: settings for an unknown app %s", stack, app)
			for _, name := range names {
				flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "BOTE_"+strings.ToUpper(app)+"_")), "_", "-")
				assert.True(t, binFlags[app][flag], "%s stack: %s is not a flag of %s (--%s)", stack, name, app, flag)
			}
		}
	}
}
