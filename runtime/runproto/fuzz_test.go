package runproto

import (
	"bytes"
	"testing"
)

// FuzzDecode: a run message from the bus never panics the decoder; what it
// accepts validates, encodes and decodes to the same encoding.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"run.cancel","runId":"r1","claimToken":"1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded %s does not encode: %v", TypeOf(m), err)
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("encoding of %s does not decode: %v", TypeOf(m), err)
		}
		enc2, err := Encode(again)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the message:\n%s\n%s (%v)", enc, enc2, err)
		}
	})
}

// FuzzParseClaimToken: claim tokens come back from agents; parsing never
// panics and accepts only what ClaimToken writes.
func FuzzParseClaimToken(f *testing.F) {
	f.Add("7")
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := ParseClaimToken(s)
		if ok && ClaimToken(n) != s {
			t.Fatalf("accepted %q as %d, which is written %q", s, n, ClaimToken(n))
		}
	})
}
