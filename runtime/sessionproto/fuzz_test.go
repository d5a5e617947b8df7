package sessionproto

import "testing"

// FuzzDecode: a frame from a connector never panics the decoder, and what
// it accepts has a type and encodes again.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"send","id":"1","message":{"id":"m1","headers":{"a":"b"},"body":"aGk="}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := Decode(data)
		if err != nil {
			return
		}
		if fr.Type == "" {
			t.Fatal("accepted a frame without a type")
		}
		if _, err := Encode(fr); err != nil {
			t.Fatalf("decoded frame does not encode: %v", err)
		}
	})
}
