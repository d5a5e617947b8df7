package registry

import (
	"bytes"
	"testing"
)

// FuzzParse: a registration file never panics the parser; what it accepts
// renders canonically and parses to the same rendering.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":1,"connectors":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		out, err := Marshal(r.sorted)
		if err != nil {
			t.Fatalf("parsed registry does not render: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("rendering does not parse: %v", err)
		}
		out2, err := Marshal(again.sorted)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the registry:\n%s\n%s (%v)", out, out2, err)
		}
	})
}
