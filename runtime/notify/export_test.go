package notify

import (
	"net/http"
	"net/netip"
)

// Public is public, for tests.
func Public(ip netip.Addr) bool { return public(ip) }

// Proxied reports whether n's requests may go through a proxy.
func Proxied(n *Notifier) bool { return n.client.Transport.(*http.Transport).Proxy != nil }
