package clientauth

import "testing"

// FuzzParseKeyPEM: a connector's or agent's key file never panics the
// parser, and what it accepts is a usable P-256 key.
func FuzzParseKeyPEM(f *testing.F) {
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKeyPEM(data)
		if err != nil {
			return
		}
		if _, err := PublicJWK(k, ""); err != nil {
			t.Fatalf("accepted key has no public JWK: %v", err)
		}
	})
}
