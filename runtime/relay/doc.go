// Package relay is a client for Azure Relay Hybrid Connections: a listener
// that serves any http.Handler through the relay, and a sender that reaches
// it with any http.Client, in public Azure, Azure Government and Azure China.
//
// There is no official Go SDK for this protocol; this package implements it
// from Microsoft's protocol document, following the .NET SDK where the two
// differ (each such place says so). It depends on nothing else in this
// repository. Package relaytest is the service side, for tests and local
// runs.
//
// # Addressing and credentials
//
// ParseNamespace takes a bare name (public cloud by default; InCloud for
// Azure Government or China), a host, or a connection string. Credentials
// are SAS rules (NewSASCredential, or the rule of a connection string) or
// Entra ID (NewEntraCredential over any azcore.TokenCredential).
//
// # Listener
//
//	l, err := relay.Listen(ctx, relay.ListenerConfig{Namespace: ns, HybridConnection: "ops", Credential: cred})
//	...
//	err = (&http.Server{Handler: mux}).Serve(l)
//
// Listen returns once the control channel is up. From then on the listener
// renews its token on the open channel, pings every 30 s, and reconnects with
// jittered exponential backoff after any drop. It stops only on Close or a
// permanent refusal (bad credentials, entity gone), after which Accept (and
// so Serve) returns a *ListenerClosedError.
//
// # Sender
//
//	s, err := relay.NewSender(relay.SenderConfig{Namespace: ns, HybridConnection: "ops", Credential: cred})
//	client := &http.Client{Transport: s}                      // HTTP mode, 60 s deadline per request
//	stream := &http.Client{Transport: s.StreamTransport()}    // HTTP/1.1 over relayed WebSockets, no deadline
//
// The URL's host is ignored; its path and query reach the handler unchanged
// (http://ops/v1/status is served as /v1/status). Errors say what went wrong:
// errors.Is(err, relay.ErrNoListener), ErrUnauthorized, ErrNotFound,
// ErrTimeout, ErrUnreachable.
//
// Plain-text endpoints (ws://, http://) are refused unless Insecure is set,
// which only a local test relay needs.
package relay
