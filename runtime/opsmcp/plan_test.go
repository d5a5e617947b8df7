package opsmcp

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/planrender"
)

// largePlan has n resource changes of about 4 KB each: creates, updates,
// deletes and replaces in turn, and one output.
func largePlan(n int) *tfjson.Plan {
	p := &tfjson.Plan{FormatVersion: "1.2", OutputChanges: map[string]*tfjson.Change{
		"count": {Actions: tfjson.Actions{tfjson.ActionCreate}, After: float64(n)},
	}}
	acts := []tfjson.Actions{{tfjson.ActionCreate}, {tfjson.ActionUpdate}, {tfjson.ActionDelete}, {tfjson.ActionDelete, tfjson.ActionCreate}}
	for i := range n {
		attrs := func(v string) map[string]any {
			m := map[string]any{"name": fmt.Sprintf("r-%d", i)}
			for k := range 40 {
				m[fmt.Sprintf("attribute_%02d", k)] = fmt.Sprintf("%s-%d-%s", v, k, strings.Repeat("x", 40))
			}
			return m
		}
		c := &tfjson.Change{Actions: acts[i%4]}
		if !c.Actions.Create() {
			c.Before = attrs("old")
		}
		if !c.Actions.Delete() {
			c.After = attrs("new")
		}
		p.ResourceChanges = append(p.ResourceChanges, &tfjson.ResourceChange{
			Address: fmt.Sprintf("terraform_data.r[%d]", i), Type: "terraform_data", Name: "r", Change: c,
		})
	}
	return p
}

// TestShowPlanPages: show_plan of a 1,000-resource plan answers pages
// within PlanBudget, which cover every resource change once, each with
// the whole plan's summary and "Plan:" line and the way to the next page.
func TestShowPlanPages(t *testing.T) {
	f := newFake()
	f.plan = largePlan(1000)
	var whole strings.Builder
	require.NoError(t, planrender.Render(&whole, f.plan))
	t.Logf("the whole plan renders to %d bytes", whole.Len())
	cs := connect(t, Config{API: f}, nil)

	sum := planrender.Summarize(f.plan)
	require.Equal(t, planrender.Summary{Add: 500, Change: 250, Destroy: 500}, planrender.Summary{Add: sum.Add, Change: sum.Change, Destroy: sum.Destroy})
	seen := map[string]int{}
	offset, pages := 0, 0
	for {
		args := map[string]any{"run": "run-1"}
		if offset > 0 {
			args["offset"] = offset
		}
		res, err := call(t, cs, "show_plan", args)
		require.NoError(t, err)
		require.False(t, res.IsError, "%v", res.Content)
		answer, err := json.Marshal(res)
		require.NoError(t, err)
		assert.Less(t, len(answer), PlanBudget, "page %d: the answer is %d bytes", pages, len(answer))
		var out PlanOut
		raw, _ := json.Marshal(res.StructuredContent)
		require.NoError(t, json.Unmarshal(raw, &out))
		if pages == 0 {
			t.Logf("the first page: %d resource changes, %d bytes", len(out.Changes), len(answer))
		}
		pages++
		assert.Equal(t, 1000, out.Total)
		assert.Equal(t, offset, out.Offset)
		assert.Equal(t, sum.Add, out.Summary.Add, "the summary counts the whole plan")
		assert.Equal(t, sum.Destroy, out.Summary.Destroy)
		assert.Equal(t, sum.Change, out.Summary.Change)
		assert.Equal(t, 250, out.Summary.Replace)
		assert.Contains(t, out.Diff, "\nPlan: 500 to add, 250 to change, 500 to destroy.\n")
		assert.Equal(t, out.Diff, res.Content[0].(*mcp.TextContent).Text)
		require.NotEmpty(t, out.Changes)
		for _, c := range out.Changes {
			seen[c.Address]++
			assert.Contains(t, out.Diff, "# "+c.Address+" ", "the diff is of the page's changes")
		}
		assert.Equal(t, strings.Count(out.Diff, "# terraform_data.r["), len(out.Changes))
		assert.Contains(t, out.Diff, fmt.Sprintf("Resource changes %d to %d of 1000", offset+1, offset+len(out.Changes)))
		if out.NextOffset == 0 {
			assert.Equal(t, 1000, offset+len(out.Changes))
			assert.Contains(t, out.Diff, "Changes to Outputs:", "the last page has the outputs")
			break
		}
		assert.Equal(t, offset+len(out.Changes), out.NextOffset)
		assert.Contains(t, out.Diff, fmt.Sprintf("Call show_plan with offset %d for the next page.", out.NextOffset))
		assert.NotContains(t, out.Diff, "Changes to Outputs:")
		offset = out.NextOffset
	}
	assert.Len(t, seen, 1000)
	for a, n := range seen {
		assert.Equal(t, 1, n, a)
	}
	assert.Greater(t, pages, 10)
	t.Logf("%d pages", pages)

	// limit caps a page; offsets out of the plan are refused.
	var out PlanOut
	res, err := call(t, cs, "show_plan", map[string]any{"run": "run-1", "offset": 998, "limit": 5})
	require.NoError(t, err)
	raw, _ := json.Marshal(res.StructuredContent)
	require.NoError(t, json.Unmarshal(raw, &out))
	assert.Len(t, out.Changes, 2)
	res, err = call(t, cs, "show_plan", map[string]any{"run": "run-1", "offset": 3, "limit": 2})
	require.NoError(t, err)
	raw, _ = json.Marshal(res.StructuredContent)
	require.NoError(t, json.Unmarshal(raw, &out))
	assert.Equal(t, []string{"terraform_data.r[3]", "terraform_data.r[4]"}, []string{out.Changes[0].Address, out.Changes[1].Address})
	assert.Equal(t, 5, out.NextOffset)
	for _, bad := range []map[string]any{{"offset": 1000}, {"offset": -1}, {"limit": -1}} {
		bad["run"] = "run-1"
		res, err := call(t, cs, "show_plan", bad)
		if err == nil {
			assert.True(t, res.IsError, "%v", bad)
		}
	}
}
