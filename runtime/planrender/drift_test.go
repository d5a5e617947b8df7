package planrender_test

import (
	"encoding/json"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/planrender"
)

// driftPlan found one resource changed (with a sensitive attribute) and
// one deleted, as terraform show -json writes a refresh-only plan.
const driftPlan = `{"format_version":"1.2","terraform_version":"1.11.4","resource_drift":[
 {"address":"botetest_thing.a","mode":"managed","type":"botetest_thing","name":"a","provider_name":"example.com/bote/botetest",
  "change":{"actions":["update"],"before":{"id":"a","name":"old","token":"hunter2"},"after":{"id":"a","name":"new","token":"swordfish"},
   "after_unknown":{},"before_sensitive":{"token":true},"after_sensitive":{"token":true}}},
 {"address":"botetest_thing.gone","mode":"managed","type":"botetest_thing","name":"gone","provider_name":"example.com/bote/botetest",
  "change":{"actions":["delete"],"before":{"id":"g","name":"gone"},"after":null,"after_unknown":{},"before_sensitive":{},"after_sensitive":false}}],
 "resource_changes":[]}`

func TestDrift(t *testing.T) {
	var p tfjson.Plan
	require.NoError(t, json.Unmarshal([]byte(driftPlan), &p))
	got := planrender.Drift(planrender.Keep(&p)) // as the server keeps it
	require.Len(t, got, 2)
	assert.Equal(t, planrender.Drifted{Address: "botetest_thing.a", Action: planrender.Update, Diff: "  # botetest_thing.a has changed\n" +
		`  ~ resource "botetest_thing" "a" {` + "\n" +
		`        id    = "a"` + "\n" +
		`      ~ name  = "old" -> "new"` + "\n" +
		`      ~ token = (sensitive value)` + "\n" +
		"    }\n"}, got[0])
	assert.Equal(t, planrender.Drifted{Address: "botetest_thing.gone", Action: planrender.Delete, Diff: "  # botetest_thing.gone has been deleted\n" +
		`  - resource "botetest_thing" "gone" {` + "\n" +
		`      - id   = "g" -> null` + "\n" +
		`      - name = "gone" -> null` + "\n" +
		"    }\n"}, got[1])
	assert.Empty(t, planrender.Drift(nil))
}
