package opsmcp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/planrender"
)

// A run's log and plan are resources a client reads and subscribes to;
// while the run is active, a subscription gets an update notification for
// every batch of log lines and every state change (watcher).
const (
	uriPrefix       = "opsbot://tenants/"
	logTemplate     = uriPrefix + "{tenant}/runs/{run}/log"
	planTemplate    = uriPrefix + "{tenant}/runs/{run}/plan"
	maxResourceText = 4 << 20
)

func logURI(tenant, run string) string {
	return uriPrefix + url.PathEscape(tenant) + "/runs/" + url.PathEscape(run) + "/log"
}

func planURI(tenant, run string) string {
	return uriPrefix + url.PathEscape(tenant) + "/runs/" + url.PathEscape(run) + "/plan"
}

// runKey names a run.
type runKey struct{ tenant, run string }

// parseURI splits a log or plan URI.
func parseURI(uri string) (runKey, string, error) {
	rest, ok := strings.CutPrefix(uri, uriPrefix)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 4 || parts[1] != "runs" || (parts[3] != "log" && parts[3] != "plan") {
		return runKey{}, "", mcp.ResourceNotFoundError(uri)
	}
	tenant, err1 := url.PathUnescape(parts[0])
	run, err2 := url.PathUnescape(parts[2])
	if err1 != nil || err2 != nil || tenant == "" || run == "" {
		return runKey{}, "", mcp.ResourceNotFoundError(uri)
	}
	return runKey{tenant, run}, parts[3], nil
}

func (s *Server) addResources() {
	s.srv.AddResourceTemplate(&mcp.ResourceTemplate{
		Name:        "run-log",
		Title:       "Run log",
		URITemplate: logTemplate,
		Description: "A run's Terraform log so far. Subscribe to be told when lines are added, until the run ends.",
		MIMEType:    "text/plain",
	}, s.readResource)
	s.srv.AddResourceTemplate(&mcp.ResourceTemplate{
		Name:        "run-plan",
		Title:       "Run plan",
		URITemplate: planTemplate,
		Description: "A run's plan as terraform plan prints it (sensitive values masked). Subscribe to be told when the plan is ready.",
		MIMEType:    "text/plain",
	}, s.readResource)
}

func (s *Server) readResource(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	key, kind, err := parseURI(uri)
	if err != nil {
		return nil, err
	}
	var text string
	if kind == "log" {
		text, err = s.wholeLog(ctx, key)
	} else {
		text, err = s.planText(ctx, key)
	}
	if err != nil {
		return nil, err
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "text/plain", Text: text}}}, nil
}

// wholeLog reads a run's log from the start, up to maxResourceText.
func (s *Server) wholeLog(ctx context.Context, key runKey) (string, error) {
	var b strings.Builder
	offset := int64(0)
	for {
		c, err := s.api.Logs(ctx, key.tenant, key.run, offset)
		if err != nil {
			return "", s.apiErr(err)
		}
		b.WriteString(c.Text)
		if c.Done || c.NextOffset <= offset || c.Text == "" {
			return b.String(), nil
		}
		if b.Len() > maxResourceText {
			fmt.Fprintf(&b, "\n[log cut at %d bytes: read on with read_log from offset %d]\n", b.Len(), c.NextOffset)
			return b.String(), nil
		}
		offset = c.NextOffset
	}
}

// planText renders a run's plan, or says why there is none yet.
func (s *Server) planText(ctx context.Context, key runKey) (string, error) {
	run, err := s.api.Run(ctx, key.tenant, key.run)
	if err != nil {
		return "", s.apiErr(err)
	}
	if !run.PlanChanges {
		return fmt.Sprintf("Run %s has no plan to show yet: it is %s.\n", run.ID, run.State), nil
	}
	p, err := s.api.Plan(ctx, key.tenant, key.run)
	if err != nil {
		return "", s.apiErr(err)
	}
	var diff strings.Builder
	if err := planrender.Render(&diff, p); err != nil {
		return "", fmt.Errorf("cannot render the plan of run %s: %w", run.ID, err)
	}
	return diff.String(), nil
}

// watcher follows one run for its subscribers.
type watcher struct {
	cancel context.CancelFunc
	subs   map[string]int // URI → subscriptions
}

func (s *Server) subscribe(ctx context.Context, req *mcp.SubscribeRequest) error {
	key, _, err := parseURI(req.Params.URI)
	if err != nil {
		return err
	}
	// Refuse what the principal may not read now, rather than later in
	// silence.
	run, err := s.api.Run(ctx, key.tenant, key.run)
	if err != nil {
		return s.apiErr(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.watchers[key]; w != nil {
		w.subs[req.Params.URI]++
		return nil
	}
	if run.Terminal() {
		return nil // nothing will change; reading it is enough
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &watcher{cancel: cancel, subs: map[string]int{req.Params.URI: 1}}
	s.watchers[key] = w
	go s.watch(wctx, key, w)
	return nil
}

func (s *Server) unsubscribe(_ context.Context, req *mcp.UnsubscribeRequest) error {
	key, _, err := parseURI(req.Params.URI)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.watchers[key]
	if w == nil {
		return nil
	}
	if w.subs[req.Params.URI]--; w.subs[req.Params.URI] <= 0 {
		delete(w.subs, req.Params.URI)
	}
	if len(w.subs) == 0 {
		w.cancel()
		delete(s.watchers, key)
	}
	return nil
}

// watch follows the run and notifies its subscribers of each change
// until it ends or nobody listens.
func (s *Server) watch(ctx context.Context, key runKey, w *watcher) {
	defer func() {
		s.mu.Lock()
		if s.watchers[key] == w {
			delete(s.watchers, key)
		}
		s.mu.Unlock()
		w.cancel()
	}()
	notify := func(uris ...string) {
		for _, uri := range uris {
			if err := s.srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: uri}); err != nil {
				s.log.Debug("cannot notify a resource update", "uri", uri, "err", err)
			}
		}
	}
	err := s.api.Follow(ctx, key.tenant, key.run, 0, func(f opsapitypes.FollowFrame) error {
		switch {
		case f.Type == opsapitypes.FrameLog:
			notify(logURI(key.tenant, key.run))
		case f.Run != nil:
			notify(logURI(key.tenant, key.run), planURI(key.tenant, key.run))
		}
		return nil
	})
	if err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("stopped following a run for its subscribers", "tenant", key.tenant, "run", key.run, "err", err)
	}
}

// stopWatchers ends every watcher (the server is stopping).
func (s *Server) stopWatchers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, w := range s.watchers {
		w.cancel()
		delete(s.watchers, k)
	}
}
