package envelope

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ReservedHeaderPrefix starts every header name that only the gateway sets.
const ReservedHeaderPrefix = "bote-"

// Header names the gateway sets where a transport or a local program needs
// routing and identity as plain headers (Service Bus application
// properties, the sidecar's HTTP delivery). They mirror envelope fields and
// are never read back as a source of identity.
const (
	HeaderMessageID     = "bote-message-id"
	HeaderCorrelationID = "bote-correlation-id"
	HeaderKind          = "bote-kind"
	HeaderTenant        = "bote-tenant"
	HeaderConnector     = "bote-connector"
	HeaderTopic         = "bote-topic"
	HeaderFrom          = "bote-from"
	HeaderDeadLetter    = "bote-dead-letter-reason"
)

// Limits on application headers.
const (
	MaxHeaders          = 64
	MaxHeaderNameLength = 128
	MaxHeaderBytes      = 16 * 1024 // names plus values
)

// identityNames are header names that look like identity or routing under
// common conventions, in normalised form (see normalizeHeaderName), with or
// without a leading "x". A connector setting one is trying, or mistakenly
// hoping, to choose who it is or where a message goes.
var identityNames = map[string]bool{
	"tenant": true, "tenantid": true, "connector": true, "connectorid": true,
	"from": true, "sender": true, "senderid": true, "clientid": true,
	"topic": true, "replyto": true, "correlationid": true, "messageid": true,
}

// reservedNormalizedPrefix is ReservedHeaderPrefix normalised.
var reservedNormalizedPrefix = normalizeHeaderName(ReservedHeaderPrefix)

// ErrReservedHeader reports a header name that only the gateway may set.
var ErrReservedHeader = errors.New("reserved header")

// IsReservedHeader reports whether name is reserved for the gateway. Names
// are compared normalised, because servers do not agree on which spellings
// are the same header: many (CGI, WSGI, Rack, nginx with
// underscores_in_headers) read "bote_from" as "Bote-From", and some map '.'
// too. So every name whose normalised form starts with "bote" is reserved
// ("bote_from", "Bote.Tenant", "botefrom"), as is every identity-looking
// name with any separators and an optional "x" in front ("x_tenant_id",
// "X.Connector.Id", "XTenantId").
func IsReservedHeader(name string) bool {
	n := normalizeHeaderName(name)
	if strings.HasPrefix(n, reservedNormalizedPrefix) {
		return true
	}
	return identityNames[n] || strings.HasPrefix(n, "x") && identityNames[n[1:]]
}

// normalizeHeaderName lowercases name and drops every '-', '_' and '.'.
func normalizeHeaderName(name string) string {
	return headerSeparators.Replace(strings.ToLower(name))
}

var headerSeparators = strings.NewReplacer("-", "", "_", "", ".", "")

// CheckConnectorHeaders rejects headers a sender supplied that it may not:
// reserved (identity and routing) names, and malformed ones. The gateway
// calls it on every message a connector sends, before stamping From, and
// on every message a cloud service puts on "bote-connectors" (whether or
// not through package botecloud); botecloud.Client calls it before sending. The
// error wraps ErrReservedHeader when a reserved name is present and lists
// every offending name, sorted.
func CheckConnectorHeaders(h map[string]string) error {
	return checkHeaders(h, false)
}

// checkHeaders refuses reserved names, except the protocol headers when
// protocol is set, and malformed headers.
func checkHeaders(h map[string]string, protocol bool) error {
	if protocol {
		if err := checkProtocolHeaders(h); err != nil {
			return err
		}
	}
	var bad []string
	for k := range h {
		if IsReservedHeader(k) && !(protocol && IsProtocolHeader(k)) {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%w: only the gateway may set %s (identity and routing come from verified credentials, never from headers)", ErrReservedHeader, strings.Join(bad, ", "))
	}
	return validateHeaderSyntax(h)
}

// validateHeaderSyntax checks count, size and name syntax: names are
// 1 to MaxHeaderNameLength printable ASCII characters without spaces or
// ':' (HTTP token-like, so the sidecar can pass them as HTTP headers).
func validateHeaderSyntax(h map[string]string) error {
	if len(h) > MaxHeaders {
		return fmt.Errorf("headers: %d headers, the limit is %d", len(h), MaxHeaders)
	}
	total := 0
	for k, v := range h {
		total += len(k) + len(v)
		if k == "" || len(k) > MaxHeaderNameLength {
			return fmt.Errorf("headers: name %q must be 1 to %d characters", k, MaxHeaderNameLength)
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; c <= ' ' || c >= 0x7f || c == ':' {
				return fmt.Errorf("headers: name %q contains %q", k, c)
			}
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < ' ' && c != '\t' {
				return fmt.Errorf("headers: value of %q contains control character %#x", k, c)
			}
		}
	}
	if total > MaxHeaderBytes {
		return fmt.Errorf("headers: %d bytes, the limit is %d", total, MaxHeaderBytes)
	}
	return nil
}
