package envelope

import (
	"bytes"
	"testing"
)

// FuzzDecode: Decode never panics; whatever it accepts encodes again to a
// message that fits the same checks and decodes to the same encoding, and
// is pure ASCII.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"m1","kind":"targeted","tenant":"t1","connector":"c1","from":{"service":"svc"},"headers":{"kind":"x"},"body":"aGk=","createdAt":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Decode(data)
		if err != nil {
			return
		}
		enc, err := Encode(env)
		if err != nil {
			t.Fatalf("decoded envelope does not encode: %v", err)
		}
		for _, c := range enc {
			if c >= 0x80 {
				t.Fatalf("encoding is not ASCII: %q", enc)
			}
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("encoding does not decode: %v", err)
		}
		enc2, err := Encode(again)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the envelope:\n%s\n%s (%v)", enc, enc2, err)
		}
		_ = CheckConnectorHeaders(env.Headers)
	})
}
