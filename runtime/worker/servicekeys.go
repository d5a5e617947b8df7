package worker

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/registry"
)

// ParseServiceKeys reads a cloud service keys file: a JSON object naming
// each cloud service allowed to send to connectors with the public keys
// (EC P-256 JWKs, several while one is rotated) its envelopes must be
// signed with:
//
//	{"relayserver": [{"kty":"EC","crv":"P-256","x":"…","y":"…"}]}
func ParseServiceKeys(data []byte) (map[string][]*ecdsa.PublicKey, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw map[string][]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("cannot decode service keys: %w", err)
	}
	if dec.More() {
		return nil, errors.New("cannot decode service keys: data after the object")
	}
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	keys := make(map[string][]*ecdsa.PublicKey, len(raw))
	for _, name := range names {
		if err := (envelope.Identity{Service: name}).Validate(); err != nil {
			return nil, fmt.Errorf("service keys: %w", err)
		}
		if len(raw[name]) == 0 {
			return nil, fmt.Errorf("service keys: %s: no key", name)
		}
		for i, jwk := range raw[name] {
			k, err := registry.ParsePublicJWK(jwk)
			if err != nil {
				return nil, fmt.Errorf("service keys: %s[%d]: %w", name, i, err)
			}
			keys[name] = append(keys[name], k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("service keys: no service")
	}
	return keys, nil
}

// LoadServiceKeys reads the service keys file at path (ParseServiceKeys).
func LoadServiceKeys(path string) (map[string][]*ecdsa.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read service keys: %w", err)
	}
	keys, err := ParseServiceKeys(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}
