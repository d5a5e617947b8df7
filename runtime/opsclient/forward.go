package opsclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Forward sends one API request on the operator's behalf, as `opsbot ui`
// does for its browser: method, path (escaped) and query (rawQuery) as given, the
// client's own credential in place of any other, and body with
// contentType. The response is returned unread, whatever its status; the
// caller closes its body. A request with a body gets the upload timeout,
// others the request timeout.
func (c *Client) Forward(ctx context.Context, method, path, rawQuery string, body io.Reader, contentType string) (*http.Response, error) {
	if !strings.HasPrefix(path, "/v1/") {
		return nil, fmt.Errorf("cannot forward %q: only /v1/ paths are API calls", path)
	}
	if _, err := url.ParseQuery(rawQuery); err != nil {
		return nil, fmt.Errorf("cannot forward %s: bad query: %w", path, err)
	}
	target := c.base.String() + path
	if rawQuery != "" {
		target += "?" + rawQuery
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	if req.Header, err = c.header(ctx); err != nil {
		return nil, err
	}
	hc := c.http
	if body != nil {
		hc = c.upload
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, unwrapURLError(err)
	}
	return resp, nil
}
