package registry

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
)

// keyNamePattern is the form of a name in a key set (a service name, as in
// envelope.Identity.Service).
var keyNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ParseKeySet reads a key set file: a JSON object naming principals (cloud
// services, the gateway) with the public keys (EC P-256 JWKs, several while
// one is rotated) their envelopes are signed with:
//
//	{"relayserver": [{"kty":"EC","crv":"P-256","x":"…","y":"…"}]}
//
// The gateway reads the cloud services' (--cloud-service-keys), the relay
// server the gateway's (--gateway-keys).
func ParseKeySet(data []byte) (map[string][]*ecdsa.PublicKey, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw map[string][]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("cannot decode key set: %w", err)
	}
	if dec.More() {
		return nil, errors.New("cannot decode key set: data after the object")
	}
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	keys := make(map[string][]*ecdsa.PublicKey, len(raw))
	for _, name := range names {
		if !keyNamePattern.MatchString(name) {
			return nil, fmt.Errorf("key set: name %q must be 1 to 128 letters, digits, '.', '_' or '-'", name)
		}
		if len(raw[name]) == 0 {
			return nil, fmt.Errorf("key set: %s: no key", name)
		}
		for i, jwk := range raw[name] {
			k, err := ParsePublicJWK(jwk)
			if err != nil {
				return nil, fmt.Errorf("key set: %s[%d]: %w", name, i, err)
			}
			keys[name] = append(keys[name], k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("key set: no name")
	}
	return keys, nil
}

// LoadKeySet reads the key set file at path (ParseKeySet).
func LoadKeySet(path string) (map[string][]*ecdsa.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read key set: %w", err)
	}
	keys, err := ParseKeySet(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}
