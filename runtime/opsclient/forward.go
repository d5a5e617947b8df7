package opsclient

import (
	"context"
	"errors"
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
	if err := apiPath(path); err != nil {
		return nil, fmt.Errorf("cannot forward %q: %w: %w", path, ErrNotAPICall, err)
	}
	if _, err := url.ParseQuery(rawQuery); err != nil {
		return nil, fmt.Errorf("cannot forward %s: %w: bad query: %w", path, ErrNotAPICall, err)
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

// ErrNotAPICall is Forward's refusal of a path or query that is not an
// API call's.
var ErrNotAPICall = errors.New("not an API call")

// apiPath checks that path names an API call and nothing else: under
// /v1/, with no query or fragment of its own, and no "." or ".." segment
// (plain or escaped) that a server or relay on the way could resolve to
// a path outside /v1/.
func apiPath(path string) error {
	if !strings.HasPrefix(path, "/v1/") || strings.ContainsAny(path, "?#") {
		return errors.New("only /v1/ paths are API calls")
	}
	decoded, err := url.PathUnescape(path)
	if err != nil {
		return fmt.Errorf("bad path: %w", err)
	}
	for _, seg := range strings.Split(decoded, "/") {
		if seg == "." || seg == ".." {
			return errors.New("a dot segment in an API path")
		}
	}
	return nil
}
