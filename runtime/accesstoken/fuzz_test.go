package accesstoken

import (
	"context"
	"testing"
	"time"
)

// FuzzVerify: whatever a connector presents as its access token never
// panics the verifier, and a token it accepts names a tenant and a
// connector.
func FuzzVerify(f *testing.F) {
	// Unknown key ids are refused at once rather than refetched.
	fx := newVerifierFixture(f, func(c *VerifierConfig) { c.UnknownKeyRefreshInterval = time.Hour })
	valid := fx.sign(f, "k1", fx.key, fx.claims(f, nil))
	f.Add(valid)
	f.Add(valid[:len(valid)-2])
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := fx.v.Verify(context.Background(), raw)
		if err != nil {
			return
		}
		if c.Tenant == "" || c.Connector == "" {
			t.Fatalf("accepted a token without tenant and connector: %+v", c)
		}
	})
}
