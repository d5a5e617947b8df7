package idp

import (
	"net/http"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzClientAssertion: whatever a client presents as its assertion never
// panics the idp, and only an assertion signed with the key registered for
// the enabled connector it names authenticates it.
func FuzzClientAssertion(f *testing.F) {
	fx := newFixture(f, nil)
	valid := sign(f, jwt.SigningMethodES256, fx.agent, fx.claims(nil))
	f.Add(valid)
	f.Add(sign(f, jwt.SigningMethodES256, fx.disabled, fx.claims(func(c jwt.MapClaims) { c["iss"], c["sub"] = "contoso/off", "contoso/off" })))
	f.Add(sign(f, jwt.SigningMethodES256, fx.stranger, fx.claims(nil)))
	f.Fuzz(func(t *testing.T, assertion string) {
		_, conn, d := fx.srv.authenticate(assertion, "", fx.clk.Now())
		if d != nil {
			return
		}
		if conn.ClientID() != agentID || conn.Disabled {
			t.Fatalf("authenticated %s (disabled %v)", conn.ClientID(), conn.Disabled)
		}
	})
}

// FuzzTokenRequest: a token request body never panics the idp; it is
// answered with a token or an OAuth error.
func FuzzTokenRequest(f *testing.F) {
	fx := newFixture(f, nil)
	f.Add(tokenForm(sign(f, jwt.SigningMethodES256, fx.agent, fx.claims(nil))).Encode())
	f.Add("grant_type=client_credentials&client_assertion_type=x&client_assertion=a.b.c&client_assertion=d")
	f.Fuzz(func(t *testing.T, body string) {
		rec := fx.post(t, body, nil)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("answered %d: %s", rec.Code, rec.Body)
		}
	})
}
