package relay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/botehq/platform/runtime/relay/internal/wire"
)

// FuzzRequestFrame: a control-channel frame from the relay never panics
// the listener's decoding, and a request the listener accepts reaches the
// HTTP server as that one request or none: the method and path the server
// reads are the frame's, and nothing in the frame can start a second
// request on the in-memory connection.
func FuzzRequestFrame(f *testing.F) {
	f.Add([]byte(`{"request":{"id":"1","requestTarget":"/$hc/hc/v1/runs?x=1","method":"POST","requestHeaders":{"Content-Type":"application/json"},"body":true}}`))
	f.Add([]byte(`{"request":{"id":"2","requestTarget":"/hc/a","method":"GET / HTTP/1.1\r\nHost: x\r\n\r\nDELETE"}}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var m wire.Message
		if json.Unmarshal(frame, &m) != nil || m.Request == nil || m.Request.Method == "" {
			return
		}
		body := "body"
		hreq, err := toHTTPRequest(m.Request, "hc", strings.NewReader(body), int64(len(body)))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := hreq.Write(&buf); err != nil {
			return // refused on the way to the server: nothing reaches it
		}
		r := bufio.NewReader(&buf)
		got, err := http.ReadRequest(r)
		if err != nil {
			return // the server answers 400; nothing is served
		}
		if got.Method != hreq.Method {
			t.Fatalf("the server reads method %q, the frame said %q", got.Method, hreq.Method)
		}
		if got.URL.Path != hreq.URL.Path {
			t.Fatalf("the server reads path %q, the listener meant %q", got.URL.Path, hreq.URL.Path)
		}
		_, _ = io.Copy(io.Discard, got.Body)
		if rest, _ := io.ReadAll(r); len(rest) > 0 {
			t.Fatalf("the frame smuggled more after the request: %q", rest)
		}
	})
}

// FuzzParseNamespace: a namespace or connection string from configuration
// never panics the parser.
func FuzzParseNamespace(f *testing.F) {
	f.Add("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=a2V5;EntityPath=hc")
	f.Add("ns.servicebus.usgovcloudapi.net")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseNamespace(s)
	})
}
