// Package queuename derives the name of a connector's Azure Storage Queue
// from its tenant and connector ids. It only derives names: what an id may
// be, and the connector identity itself, live in package ids.
//
// Storage Queue names are 3 to 63 characters of lowercase letters, digits and
// single hyphens, starting and ending with a letter or digit. Tenant and
// connector ids are wider than that (mixed case, dots, underscores, any
// length up to 128), so the name is built from a readable, sanitised prefix of
// each id plus a hash of the exact pair. The hash keeps two different pairs
// apart even where their sanitised prefixes agree ("a-b"/"c" and "a"/"b-c",
// or "Contoso" and "contoso"); Assign checks a whole set for collisions anyway,
// so a collision can never go unnoticed.
//
// This is the only implementation: the gateway, the connector and the Pulumi
// components all call it, so they always agree on a queue's name.
package queuename

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/botehq/platform/runtime/ids"
)

const (
	partLen = 20 // readable prefix kept from each id
	hashLen = 12 // hex digits of SHA-256 over the exact pair (48 bits)
)

// For returns the Storage Queue name of connector id. It only derives:
// id was parsed where it entered (ids.ParseConnectorID, a verified token);
// an id that breaks the rule gives an error, not a name.
func For(id ids.ConnectorID) (string, error) {
	tenant, connector := string(id.Tenant), id.Connector
	sum := sha256.Sum256([]byte(tenant + "\x00" + connector))
	name := sanitize(tenant) + "-" + sanitize(connector) + "-" + hex.EncodeToString(sum[:])[:hashLen]
	if tenant == "" || connector == "" || !Valid(name) {
		return "", fmt.Errorf("cannot derive a queue name for %q: not a parsed connector id", id.String())
	}
	return name, nil
}

// sanitize keeps a readable, queue-safe prefix of an id: lowercase letters
// and digits, other characters folded to single hyphens, none at either end.
func sanitize(id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		if b.Len() == partLen {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			if s := b.String(); s != "" && !strings.HasSuffix(s, "-") {
				b.WriteByte('-')
			}
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		s = "x" // ids like "___" still get a readable, valid part
	}
	return s
}

var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9]|-[a-z0-9])*$`)

// Valid reports whether name is a valid Azure Storage Queue name.
func Valid(name string) bool {
	return len(name) >= 3 && len(name) <= 63 && namePattern.MatchString(name)
}

// Assign returns the queue name of every connector and fails if a
// connector is listed twice or two connectors would share a queue (the ids
// were parsed where they entered).
func Assign(conns []ids.ConnectorID) (map[ids.ConnectorID]string, error) {
	names := make(map[ids.ConnectorID]string, len(conns))
	owner := make(map[string]ids.ConnectorID, len(conns))
	sorted := append([]ids.ConnectorID(nil), conns...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].String() < sorted[j].String() })
	for _, p := range sorted {
		if _, dup := names[p]; dup {
			return nil, fmt.Errorf("connector %s is listed twice", p)
		}
		name, err := For(p)
		if err != nil {
			return nil, err
		}
		if other, taken := owner[name]; taken {
			return nil, fmt.Errorf("connectors %s and %s would share queue %q", other, p, name)
		}
		names[p], owner[name] = name, p
	}
	return names, nil
}
