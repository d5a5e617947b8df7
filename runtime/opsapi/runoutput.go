package opsapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
)

func queryInt(r *http.Request, name string, def, lo, hi int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s %q must be an integer from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

func (s *Server) runLogs(w http.ResponseWriter, r *http.Request) {
	offset, err := queryInt(r, "offset", 0, 0, 1<<50)
	if err == nil {
		var max int64
		max, err = queryInt(r, "max", DefaultLogChunk, 1, MaxLogChunk)
		if err == nil {
			s.serveLogs(w, r, offset, int(max))
			return
		}
	}
	writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
}

func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request, offset int64, max int) {
	run, err := s.cfg.Runs.GetRun(r.Context(), pathTenant(r), r.PathValue("run"))
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	data, next, err := s.cfg.Artifacts.ReadLog(r.Context(), runKey(run), offset, max)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, LogChunk{Text: string(data), Offset: offset, NextOffset: next, Done: run.State.Settled() && len(data) < max})
}

// runPlan serves the run's plan as JSON: Terraform's plan format (format
// version, resource_changes, resource_drift, output_changes) as the agent
// kept it, sensitive values masked (planrender.Keep).
func (s *Server) runPlan(w http.ResponseWriter, r *http.Request) {
	run, err := s.cfg.Runs.GetRun(r.Context(), pathTenant(r), r.PathValue("run"))
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	if run.PlanJSON == nil {
		msg := fmt.Sprintf("run %s has no plan to show: it is %s", run.ID, run.State)
		if run.PlanResult != nil {
			msg = fmt.Sprintf("run %s has no plan to show (its agent did not report one; the changes are in its log)", run.ID)
		}
		writeError(w, r, http.StatusNotFound, CodeNotFound, msg)
		return
	}
	rc, err := s.cfg.Artifacts.Open(r.Context(), run.Tenant, run.PlanJSON)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	defer rc.Close()
	data, err := io.ReadAll(rc) // bounded: the agent's plan is at most runproto.MaxPlanBytes
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(data)
}

func runKey(r runs.Run) artifacts.RunKey {
	return artifacts.RunKey{Tenant: r.Tenant, Workspace: r.Workspace, Run: r.ID}
}

// followRun streams a run's log lines and state changes over a WebSocket
// until the run ends (then an end frame and a normal close), the client
// goes away, or the server shuts down (1001). It works through the relay:
// the upgrade answers at once and the relay carries the stream.
func (s *Server) followRun(w http.ResponseWriter, r *http.Request) {
	offset, err := queryInt(r, "offset", 0, 0, 1<<50)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	tenant, id := pathTenant(r), r.PathValue("run")
	if _, err := s.cfg.Runs.GetRun(r.Context(), tenant, id); err != nil {
		s.runsError(w, r, err)
		return
	}
	s.serveStream(w, r, "follow", func(ctx context.Context, c *websocket.Conn) error {
		return s.streamRun(ctx, c, tenant, id, offset)
	})
}

func (s *Server) streamRun(ctx context.Context, c *websocket.Conn, tenant ids.TenantID, id string, offset int64) error {
	var wake <-chan struct{}
	if s.cfg.Dispatcher != nil {
		var stop func()
		wake, stop = s.cfg.Dispatcher.Subscribe(id)
		defer stop()
	}
	poll := time.NewTicker(FollowPoll)
	defer poll.Stop()
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	var seq int64
	send := func(f FollowFrame) error {
		seq++
		f.Seq, f.Time = seq, s.cfg.Now().UTC()
		return writeMessage(ctx, c, f)
	}
	var last string
	for {
		// State first, then the log: lines written before the run ended
		// are in the log by the time its end is visible.
		stored, err := s.cfg.Runs.GetRun(ctx, tenant, id)
		if err != nil {
			return err
		}
		run := s.withWaiting(ctx, stored)
		if key := run.State + "|" + run.UpdatedAt.String() + "|" + run.Waiting + "|" + strconv.FormatBool(run.CancelRequested); key != last {
			last = key
			if err := send(FollowFrame{Type: FrameRun, Run: &run}); err != nil {
				return err
			}
		}
		for {
			data, next, err := s.cfg.Artifacts.ReadLog(ctx, artifacts.RunKey{Tenant: tenant, Workspace: stored.Workspace, Run: id}, offset, DefaultLogChunk)
			if err != nil {
				return err
			}
			if len(data) == 0 {
				break
			}
			offset = next
			if err := send(FollowFrame{Type: FrameLog, Lines: strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"), NextOffset: next}); err != nil {
				return err
			}
		}
		if run.Settled() {
			return send(FollowFrame{Type: FrameEnd, Run: &run})
		}
		if err := waitTick(ctx, c, wake, poll.C, ping.C); err != nil {
			return err
		}
	}
}
