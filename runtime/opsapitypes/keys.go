package opsapitypes

import "github.com/botehq/platform/runtime/operator"

// APIKey describes an operator API key: never its secret or hash.
type APIKey = operator.KeyInfo

// CreateKeyRequest is the body of POST /v1/keys. Give admin or tenants.
type CreateKeyRequest struct {
	ID          string `json:"id"`
	Description string `json:"description,omitempty"`
	// Admin makes a platform administrator key.
	Admin bool `json:"admin,omitempty"`
	// Tenants maps tenant id to role: reader, operator or approver.
	Tenants map[string]operator.Role `json:"tenants,omitempty"`
}

// NewKey is the answer to creating or rotating a key: Key is the secret,
// shown this once; the server keeps only its hash.
type NewKey struct {
	Key    string `json:"key"`
	APIKey APIKey `json:"api_key"`
}

// KeyList is the body of GET /v1/keys.
type KeyList struct {
	Keys []APIKey `json:"keys"`
}
