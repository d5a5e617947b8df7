// Package registry is the connector registration file: which connectors
// exist, which tenant each belongs to, the public key each one proves its
// identity with, and the roles each holds.
//
// The Pulumi tenant component writes this file from stack config; the idp
// and the gateway read it (and reload it when it changes) to authenticate
// connectors, and the ops server reads it to know which connectors are
// deployment agents of a tenant and which labels each may serve. This
// package is the one definition of the format. A registration never holds
// private key material: Parse rejects a JWK that carries a private part.
//
// Format (JSON, version 1), connectors sorted by tenant then id:
//
//	{
//	  "version": 1,
//	  "connectors": [
//	    {"tenant": "contoso", "id": "agent-01",
//	     "jwk": {"kty": "EC", "crv": "P-256", "x": "...", "y": "...", "kid": "..."},
//	     "roles": ["agent"], "labels": {"env": "prod"}},
//	    {"tenant": "contoso", "id": "erp-bridge", "jwk": {...}}
//	  ]
//	}
//
// A connector without roles is a plain gateway connector: it can send and
// receive through the gateway but the ops server neither hands it runs nor
// seals deployment secrets to it. Only RoleAgent exists so far; labels are
// allowed only with it.
package registry

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
)

// Version is the format version this package reads and writes.
const Version = 1

// File is the whole registration file.
type File struct {
	Version    int         `json:"version"`
	Connectors []Connector `json:"connectors"`
}

// Connector is one registered connector.
type Connector struct {
	Tenant string `json:"tenant"`
	ID     string `json:"id"`
	// JWK is the connector's ES256 (EC P-256) public key.
	JWK json.RawMessage `json:"jwk"`
	// Disabled connectors stay registered (their queue is kept) but cannot
	// obtain tokens.
	Disabled bool `json:"disabled,omitempty"`
	// Roles the connector holds (RoleAgent), sorted, each once.
	Roles []string `json:"roles,omitempty"`
	// Labels an agent may serve: a workspace whose agentLabels are all
	// among them may run on it (a pool is a label, e.g. "pool": "prod").
	// Only with RoleAgent. The agent's heartbeat may narrow them, never
	// widen them.
	Labels map[string]string `json:"labels,omitempty"`

	key *ecdsa.PublicKey
}

// RoleAgent makes a connector a deployment agent of its tenant: the ops
// server accepts its heartbeats and run reports, hands it the tenant's
// runs and seals the tenant's deployment secrets to its key.
const RoleAgent = "agent"

// roles are the roles this build knows.
var roles = []string{RoleAgent}

// HasRole reports whether the connector is registered with role.
func (c Connector) HasRole(role string) bool { return slices.Contains(c.Roles, role) }

// ActiveAgent reports whether the connector is an agent that may act now:
// registered with RoleAgent and not disabled.
func (c Connector) ActiveAgent() bool { return !c.Disabled && c.HasRole(RoleAgent) }

// ValidateGrants checks a connector's roles and labels: known roles, each
// once; labels only with RoleAgent, each valid (ValidateLabel).
func ValidateGrants(roleList []string, labels map[string]string) error {
	for i, r := range roleList {
		if !slices.Contains(roles, r) {
			return fmt.Errorf("roles[%d]: unknown role %q (known: %s)", i, r, strings.Join(roles, ", "))
		}
		if slices.Contains(roleList[:i], r) {
			return fmt.Errorf("roles[%d]: role %q is listed twice", i, r)
		}
	}
	if len(labels) > 0 && !slices.Contains(roleList, RoleAgent) {
		return fmt.Errorf("labels: only an agent has labels (add the role %q or remove them)", RoleAgent)
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if err := ValidateLabel(k, labels[k]); err != nil {
			return fmt.Errorf("labels: %w", err)
		}
	}
	return nil
}

// MaxLabelValue is the longest label value accepted (ids.ValidateLabel).
const MaxLabelValue = ids.MaxLabelValue

// ValidateLabel checks one agent label (ids.ValidateLabel).
func ValidateLabel(k, v string) error { return ids.ValidateLabel(k, v) }

// ClientID is the OAuth2 client id of the connector: "tenant/connector".
func (c Connector) ClientID() string { return ClientID(c.Tenant, c.ID) }

// PublicKey returns the parsed public key. It is set by Parse and Load.
func (c Connector) PublicKey() *ecdsa.PublicKey { return c.key }

// ClientID builds the OAuth2 client id of a connector. Ids cannot contain
// '/', so the id splits back unambiguously with SplitClientID.
func ClientID(tenant, connector string) string { return tenant + "/" + connector }

// SplitClientID is the inverse of ClientID.
func SplitClientID(clientID string) (tenant, connector string, ok bool) {
	tenant, connector, ok = strings.Cut(clientID, "/")
	return tenant, connector, ok && tenant != "" && connector != ""
}

// Registry is a parsed, validated registration file indexed by client id.
type Registry struct {
	byClient map[string]Connector
	sorted   []Connector
}

// Lookup returns the connector registered under clientID.
func (r *Registry) Lookup(clientID string) (Connector, bool) {
	c, ok := r.byClient[clientID]
	return c, ok
}

// Connectors returns all registrations, sorted by tenant then id.
func (r *Registry) Connectors() []Connector { return append([]Connector(nil), r.sorted...) }

// Load reads and parses the registration file at path.
func Load(path string) (*Registry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read connector registry: %w", err)
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("connector registry %s: %w", path, err)
	}
	return r, nil
}

// Parse validates a registration file: known version, valid ids, no
// duplicates, no two connectors sharing a queue, every key an EC P-256
// public key.
func Parse(data []byte) (*Registry, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("cannot decode: %w", err)
	}
	if f.Version != Version {
		return nil, fmt.Errorf("version: got %d, this build reads %d", f.Version, Version)
	}
	pairs := make([]ids.ConnectorID, 0, len(f.Connectors))
	r := &Registry{byClient: make(map[string]Connector, len(f.Connectors))}
	for i, c := range f.Connectors {
		id, err := ids.ParseConnectorID(c.Tenant, c.ID)
		if err != nil {
			return nil, fmt.Errorf("connectors[%d]: %w", i, err)
		}
		key, err := ParsePublicJWK(c.JWK)
		if err != nil {
			return nil, fmt.Errorf("connectors[%d] (%s): jwk: %w", i, c.ClientID(), err)
		}
		if err := ValidateGrants(c.Roles, c.Labels); err != nil {
			return nil, fmt.Errorf("connectors[%d] (%s): %w", i, c.ClientID(), err)
		}
		c.Roles = slices.Sorted(slices.Values(c.Roles))
		c.key = key
		pairs = append(pairs, id)
		r.byClient[c.ClientID()] = c
		r.sorted = append(r.sorted, c)
	}
	if _, err := queuename.Assign(pairs); err != nil { // duplicates, collisions
		return nil, fmt.Errorf("connectors: %w", err)
	}
	sortConnectors(r.sorted)
	return r, nil
}

// Marshal renders connectors in the canonical form: sorted, indented, with a
// trailing newline, so that the same registrations always give the same bytes.
func Marshal(connectors []Connector) ([]byte, error) {
	f := File{Version: Version, Connectors: append([]Connector{}, connectors...)}
	for i, c := range f.Connectors {
		f.Connectors[i].Roles = slices.Sorted(slices.Values(c.Roles))
	}
	sortConnectors(f.Connectors)
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("cannot encode connector registry: %w", err)
	}
	if _, err := Parse(out); err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

func sortConnectors(cs []Connector) {
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Tenant != cs[j].Tenant {
			return cs[i].Tenant < cs[j].Tenant
		}
		return cs[i].ID < cs[j].ID
	})
}

// ParsePublicJWK parses an EC P-256 public JWK and refuses private keys.
func ParsePublicJWK(raw json.RawMessage) (*ecdsa.PublicKey, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("missing")
	}
	var probe struct {
		D string `json:"d"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("cannot decode: %w", err)
	}
	if probe.D != "" {
		return nil, errors.New("contains a private key (\"d\"); register the public key only")
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("cannot decode: %w", err)
	}
	pub, ok := k.Key.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("must be an EC P-256 public key (ES256), got %T", k.Key)
	}
	return pub, nil
}
