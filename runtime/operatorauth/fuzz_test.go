package operatorauth

import (
	"encoding/json"
	"testing"
)

// FuzzParseKeysFile: the ops server's API keys file never panics the
// parser, and what it accepts encodes and parses again.
func FuzzParseKeysFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"keys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		kf, err := ParseKeysFile(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(kf)
		if err != nil {
			t.Fatalf("parsed keys file does not encode: %v", err)
		}
		if _, err := ParseKeysFile(out); err != nil {
			t.Fatalf("encoding does not parse: %v\n%s", err, out)
		}
	})
}

// FuzzParseRoleMap: the ops server's OAuth role map (--oauth-roles,
// --oauth-roles-file) never panics the parser, and what it accepts encodes
// and parses again.
func FuzzParseRoleMap(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseRoleMap(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("parsed role map does not encode: %v", err)
		}
		if _, err := ParseRoleMap(out); err != nil {
			t.Fatalf("encoding does not parse: %v\n%s", err, out)
		}
	})
}
