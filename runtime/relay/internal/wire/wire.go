// Package wire holds the JSON control messages of the Azure Relay Hybrid
// Connections protocol, shared by the client (package relay) and the test
// relay (package relaytest) so both speak exactly the same frames.
package wire

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/coder/websocket"
)

// Query parameters and headers of the protocol.
const (
	ParamAction            = "sb-hc-action"
	ParamID                = "sb-hc-id"
	ParamToken             = "sb-hc-token"
	ParamStatusCode        = "sb-hc-statusCode"
	ParamStatusDescription = "sb-hc-statusDescription"

	ActionListen  = "listen"
	ActionConnect = "connect"
	ActionAccept  = "accept"
	ActionRequest = "request"

	// HeaderAuthorization carries the token, as Microsoft's SDKs send it.
	HeaderAuthorization = "ServiceBusAuthorization"

	// PathPrefix starts every WebSocket path: wss://{ns}/$hc/{path}.
	PathPrefix = "/$hc/"
)

// Size limits of the control channel: a request or response whose body is
// larger than MaxControlBody (or whose headers are larger than
// MaxControlHeaders) travels over a rendezvous WebSocket instead.
const (
	MaxControlBody    = 64 * 1024
	MaxControlHeaders = 32 * 1024
)

// ConnectionHeaders are the headers RFC 7230 defines that the protocol
// keeps off the relayed HTTP exchange: the service strips them from
// requestHeaders, and a listener "MUST NOT" put them in responseHeaders
// (protocol document, "Request message" and "Responding to requests"). Host
// is in the document's list but in its own request example too, and in the
// .NET SDK's (ListenerCommand.cs); the test relay passes it, the listener
// ignores it for anything but http.Request.Host.
var ConnectionHeaders = []string{
	"Connection", "Content-Length", "Host", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Close",
	// Obsolete connection options, hop-by-hop as well.
	"Keep-Alive", "Proxy-Connection",
}

// IsConnectionHeader reports whether name is one of ConnectionHeaders.
func IsConnectionHeader(name string) bool {
	for _, h := range ConnectionHeaders {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// Message is one JSON text frame; exactly one field is set.
type Message struct {
	Accept     *Accept     `json:"accept,omitempty"`
	Request    *Request    `json:"request,omitempty"`
	Response   *Response   `json:"response,omitempty"`
	RenewToken *RenewToken `json:"renewToken,omitempty"`
}

// Accept tells a listener a sender wants a WebSocket; the listener dials
// Address as given to take it.
type Accept struct {
	Address        string            `json:"address"`
	ID             string            `json:"id"`
	ConnectHeaders map[string]string `json:"connectHeaders,omitempty"`
	RemoteEndpoint *RemoteEndpoint   `json:"remoteEndpoint,omitempty"`
}

// RemoteEndpoint is the sender's address; the .NET SDK parses it though the
// protocol document does not list it.
type RemoteEndpoint struct {
	Address string `json:"address"`
	Port    int    `json:"port"`
}

// HostPort is the endpoint as "host:port"; "" when e is nil or has no
// address.
func (e *RemoteEndpoint) HostPort() string {
	if e == nil || e.Address == "" {
		return ""
	}
	return net.JoinHostPort(e.Address, strconv.Itoa(e.Port))
}

// Request is an HTTP request relayed to a listener. When Method is empty the
// request was too large for the control channel and the listener must dial
// Address (a rendezvous) to read it.
type Request struct {
	Address       string `json:"address,omitempty"`
	ID            string `json:"id"`
	RequestTarget string `json:"requestTarget,omitempty"`
	Method        string `json:"method,omitempty"`
	// RemoteEndpoint is the sender's address (as in the .NET SDK's
	// RequestCommand; the protocol document does not list it).
	RemoteEndpoint *RemoteEndpoint   `json:"remoteEndpoint,omitempty"`
	RequestHeaders map[string]string `json:"requestHeaders,omitempty"`
	Body           bool              `json:"body,omitempty"`
}

// Response answers Request RequestID. A body follows as one binary message.
type Response struct {
	RequestID         string            `json:"requestId"`
	StatusCode        int               `json:"statusCode"`
	StatusDescription string            `json:"statusDescription,omitempty"`
	ResponseHeaders   map[string]string `json:"responseHeaders,omitempty"`
	Body              bool              `json:"body"`
}

// RenewToken hands the service a fresh token for an open control channel.
type RenewToken struct {
	Token string `json:"token"`
}

// Write sends m as a text frame and, when body is not nil, body as the binary
// frame that follows it. Callers serialize Writes on a shared socket so a
// frame and its body are never split by another message.
func Write(ctx context.Context, ws *websocket.Conn, m Message, body []byte) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("cannot encode control message: %w", err)
	}
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		return err
	}
	if body != nil {
		return ws.Write(ctx, websocket.MessageBinary, body)
	}
	return nil
}
