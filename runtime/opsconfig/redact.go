package opsconfig

import (
	"regexp"
	"strings"
)

// Redacted replaces a secret in what opsbot prints.
const Redacted = "<redacted>"

// Credentials reach the CLI in many forms, and not always in the setting
// meant for them. Redact recognises each form by its shape, so a value
// pasted into the wrong setting, or echoed in an error, is hidden too.
var redactions = []struct {
	re   *regexp.Regexp
	repl string
}{
	// Connection-string parts that are secrets (Service Bus, Relay,
	// Storage, ADO-style): the value runs to the next ';'.
	{regexp.MustCompile(`(?i)\b(SharedAccessKey|SharedAccessSignature|AccountKey|Password|Pwd|ClientSecret|AccessToken|ApiKey)(\s*=)[^;]*`), "${1}${2}" + Redacted},
	// A SAS token on its own: "SharedAccessSignature sr=...&sig=...".
	{regexp.MustCompile(`(?i)\b(SharedAccessSignature)\s+[^;\s"']+`), "${1} " + Redacted},
	// Query parameters that are secrets; the value runs to the next '&',
	// ';', quote or space. "sig" is a SAS signature.
	{regexp.MustCompile(`(?i)([?&])(sig|signature|token|access_token|id_token|refresh_token|code|key|api_key|apikey|secret|client_secret|password)=[^&;\s"']*`), "${1}${2}=" + Redacted},
	// A password in a URL: scheme://user:password@host.
	{regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://[^/?#@\s:]*:)[^/?#@\s]+@`), "${1}" + Redacted + "@"},
	// An HTTP Authorization value.
	{regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+`), "${1} " + Redacted},
	// An operator API key, obk_<id>.<secret> (operatorauth.KeyPrefix).
	{regexp.MustCompile(`obk_[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*)?`), Redacted},
	// A JWT (OAuth2 access token): three base64url parts, the first a JSON
	// object.
	{regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*`), Redacted},
}

// opaqueKey matches a whole value that is a long run of base64 characters
// (an Azure SAS key is 44), e.g. a key pasted into the wrong setting.
var opaqueKey = regexp.MustCompile(`^[A-Za-z0-9+/_-]{32,}={0,2}$`)

// looksLikeKey reports whether the whole of v is a random-looking base64
// string: long, and mixing upper case, lower case and digits as random
// keys do and host names, ids and words do not.
func looksLikeKey(v string) bool {
	return opaqueKey.MatchString(v) &&
		strings.ContainsAny(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
		strings.ContainsAny(v, "abcdefghijklmnopqrstuvwxyz") &&
		strings.ContainsAny(v, "0123456789")
}

// Redact hides every credential it recognises in s: the secrets c holds
// (key, api_key, the namespace connection string's key or SAS, and any
// setting whose whole value looks like a key), wherever they appear; and by
// their shape, secret connection-string parts (SharedAccessKey=,
// SharedAccessSignature=, AccountKey=, ...), SAS tokens, SAS and OAuth
// query parameters (sig=, token=, ...), URL passwords, Authorization
// values, operator API keys (obk_...) and JWTs. c may be nil (shapes only).
//
// It is for what the CLI shows a person (config show, error messages). It
// recognises shapes, so a secret of no known shape that c does not hold
// passes.
func (c *Config) Redact(s string) string {
	for _, v := range c.secrets() {
		s = strings.ReplaceAll(s, v, Redacted)
	}
	for _, r := range redactions {
		s = r.re.ReplaceAllString(s, r.repl)
	}
	return s
}

// secrets are the credential values c holds, for exact replacement.
func (c *Config) secrets() []string {
	if c == nil {
		return nil
	}
	out := []string{c.Key, c.APIKey}
	if ns, err := c.ParseNamespace(); err == nil {
		out = append(out, ns.Key, ns.SharedAccessSignature)
	}
	for _, s := range settings() {
		if v := s.get(c); looksLikeKey(v) {
			out = append(out, v)
		}
	}
	var keep []string
	for _, v := range out {
		if len(v) >= 4 { // shorter values would mangle the text, not hide a key
			keep = append(keep, v)
		}
	}
	return keep
}
