package drift_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/botehq/platform/runtime/drift"
)

func TestFitBoundsARecord(t *testing.T) {
	res := func(n, valueBytes int) []drift.Resource {
		var out []drift.Resource
		v, _ := json.Marshal(strings.Repeat("x", valueBytes))
		for i := range n {
			out = append(out, drift.Resource{Address: fmt.Sprintf("terraform_data.r%03d", i), Type: "terraform_data", Actions: []string{"update"},
				Attributes: []drift.AttrDiff{{Name: "input", Before: v, After: v}}})
		}
		return out
	}
	withDiffs := res(40, 10)
	for i := range withDiffs {
		withDiffs[i].Diff = strings.Repeat("d", 1000)
	}
	for _, tc := range []struct {
		name       string
		found      []drift.Resource
		kept, more int
	}{
		{"none", nil, 0, 0},
		{"a few", res(3, 10), 3, 0},
		{"more than 100 small ones", res(150, 1), 100, 50},
		{"large values fill 24 KiB first", res(150, 256), 38, 112},
		{"diffs go before resources", withDiffs, 40, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kept, more := drift.Fit(tc.found)
			assert.Len(t, kept, tc.kept)
			assert.Equal(t, tc.more, more)
			if len(kept) > 0 {
				assert.Equal(t, "terraform_data.r000", kept[0].Address, "the plan's order")
			}
			b, _ := json.Marshal(kept)
			assert.LessOrEqual(t, len(b), 24<<10)
			if tc.name == "diffs go before resources" {
				assert.NotEmpty(t, kept[0].Diff, "the first diffs stay")
				assert.Empty(t, kept[39].Diff, "the last go")
				assert.NotEmpty(t, withDiffs[39].Diff, "what was found is not changed")
			}
		})
	}
}

func TestResourcesCutALongDiffAfterAWholeLine(t *testing.T) {
	plan := fmt.Sprintf(`{"format_version":"1.2","resource_drift":[{"address":"terraform_data.a","mode":"managed","type":"terraform_data","name":"a",
 "change":{"actions":["update"],"before":{"input":%q},"after":{"input":%q},"after_unknown":{},"before_sensitive":{},"after_sensitive":{}}}]}`,
		strings.Repeat("é\n", 2000), strings.Repeat("è\n", 2000))
	got, err := drift.Resources([]byte(plan))
	assert.NoError(t, err)
	if assert.Len(t, got, 1) {
		d := got[0].Diff
		assert.LessOrEqual(t, len(d), 2<<10+100)
		assert.True(t, strings.HasSuffix(d, "\n      … (cut: opsbot runs show RUN --plan has it all)\n"), d[len(d)-80:])
		assert.True(t, utf8.ValidString(d))
	}
}
