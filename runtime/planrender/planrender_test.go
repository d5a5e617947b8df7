package planrender_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/internal/golden"
	"github.com/botehq/platform/runtime/planrender"
)

func loadPlan(t *testing.T, dir string) *tfjson.Plan {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "plan.json"))
	require.NoError(t, err)
	var p tfjson.Plan
	p.UseJSONNumber(true)
	require.NoError(t, json.Unmarshal(data, &p))
	return &p
}

// TestRenderAsTerraform renders plans of real Terraform runs (see
// TestRegenerate) and compares the result with what Terraform itself
// printed for the same saved plan, after the plan went through Keep (the
// form a run stores).
func TestRenderAsTerraform(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/plan.json")
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			kept := planrender.Keep(loadPlan(t, dir))
			var got bytes.Buffer
			require.NoError(t, planrender.Render(&got, kept))
			want, err := os.ReadFile(filepath.Join(dir, "terraform.txt"))
			require.NoError(t, err)
			// Terraform's closing advice about the saved plan file is not
			// part of the plan.
			w, _, _ := strings.Cut(string(want), "\n─")
			assert.Equal(t, strings.TrimRight(w, "\n")+"\n", got.String())
			golden.Check(t, filepath.Join(filepath.Base(dir), "rendered.golden"), got.Bytes())
		})
	}
}

// TestKeepMasksSensitive: the kept plan holds no sensitive value, where
// Terraform's own JSON has them in clear (variables, planned values,
// changes).
func TestKeepMasksSensitive(t *testing.T) {
	for dir, secrets := range map[string][]string{
		"testdata/create": {"correct-horse"},
		"testdata/update": {"battery-staple"},
	} {
		raw, err := os.ReadFile(filepath.Join(dir, "plan.json"))
		require.NoError(t, err)
		kept, err := json.Marshal(planrender.Keep(loadPlan(t, dir)))
		require.NoError(t, err)
		for _, s := range secrets {
			require.Contains(t, string(raw), s, "the fixture must hold the secret for this test to mean anything")
			assert.NotContains(t, string(kept), s, dir)
		}
		assert.Contains(t, string(kept), planrender.MaskPrefix, dir)
	}
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want planrender.Summary
	}{
		{"testdata/create", planrender.Summary{Add: 5}},
		{"testdata/nochange", planrender.Summary{}},
		{"testdata/destroy", planrender.Summary{Destroy: 3, Destroyed: []string{"terraform_data.counted[1]", "terraform_data.counted[2]", "terraform_data.gone"}}},
		{"testdata/replace", planrender.Summary{Add: 4, Change: 1, Destroy: 4, Replace: 4, Replaced: []planrender.Replacement{
			{Address: "terraform_data.asked", Reason: "replace_by_request"},
			{Address: "terraform_data.cbd", Reason: "replace_because_cannot_update", Paths: []string{"triggers_replace"}},
			{Address: "terraform_data.follower", Reason: "replace_by_triggers"},
			{Address: "terraform_data.trigger", Reason: "replace_because_cannot_update", Paths: []string{"triggers_replace"}},
		}}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			assert.Equal(t, tc.want, planrender.Summarize(planrender.Keep(loadPlan(t, tc.dir))))
		})
	}
}

func TestWriteDestructive(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, planrender.WriteDestructive(&b, planrender.Summarize(loadPlan(t, "testdata/create"))))
	assert.Empty(t, b.String(), "a plan that only creates has nothing to warn about")
	for _, dir := range []string{"destroy", "replace"} {
		b.Reset()
		require.NoError(t, planrender.WriteDestructive(&b, planrender.Summarize(loadPlan(t, "testdata/"+dir))))
		golden.Check(t, dir+"/destructive.golden", b.Bytes())
	}
}

func TestWriteDestructiveBounded(t *testing.T) {
	s := planrender.Summarize(loadPlan(t, "testdata/destroy"))
	s.Bound(1)
	var b bytes.Buffer
	require.NoError(t, planrender.WriteDestructive(&b, s))
	assert.Equal(t, "Warning: this plan destroys 3 and replaces 0 resource instance(s):\n  - terraform_data.counted[1]\n"+
		"  - ... and 2 more (opsbot runs show RUN --plan shows them all)\n", b.String())
}

// Nested sensitive marks mask exactly the marked values, and the same
// value masks the same way on both sides, so an unchanged sensitive value
// renders unchanged and a changed one as a change.
func TestKeepMasksNestedValues(t *testing.T) {
	p := &tfjson.Plan{FormatVersion: "1.2", ResourceChanges: []*tfjson.ResourceChange{{
		Address: "x.y", Mode: tfjson.ManagedResourceMode, Type: "x", Name: "y",
		Change: &tfjson.Change{
			Actions:         tfjson.Actions{tfjson.ActionUpdate},
			Before:          map[string]any{"list": []any{"pub", "hidden-1"}, "obj": map[string]any{"k": "same-secret", "plain": "a"}},
			After:           map[string]any{"list": []any{"pub", "hidden-2"}, "obj": map[string]any{"k": "same-secret", "plain": "b"}},
			BeforeSensitive: map[string]any{"list": []any{false, true}, "obj": map[string]any{"k": true}},
			AfterSensitive:  map[string]any{"list": []any{false, true}, "obj": map[string]any{"k": true}},
			AfterUnknown:    map[string]any{},
		},
	}}}
	kept := planrender.Keep(p)
	data, err := json.Marshal(kept)
	require.NoError(t, err)
	for _, s := range []string{"hidden-1", "hidden-2", "same-secret"} {
		assert.NotContains(t, string(data), s)
	}
	assert.Contains(t, string(data), `"pub"`)
	var b bytes.Buffer
	require.NoError(t, planrender.Render(&b, kept))
	assert.Contains(t, b.String(), "      ~ list = [\n            \"pub\",\n          ~ (sensitive value),\n        ]\n")
	assert.Contains(t, b.String(), "      ~ obj  = {\n          ~ plain = \"a\" -> \"b\"\n            # (1 unchanged attribute hidden)\n        }\n")
}
