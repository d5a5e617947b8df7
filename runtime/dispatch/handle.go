package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
)

// ErrRefused marks an agent message the server will not apply: not from a
// registered agent, a run of another tenant or agent, a stale claim. Handle
// wraps it in botecloud.Permanent, so the gateway dead-letters the message
// with the reason instead of retrying it.
var ErrRefused = errors.New("agent message refused")

func refuse(format string, args ...any) error {
	return botecloud.Permanent(fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...)))
}

// handle handles one message of an agent (see Handle).
func (d *Dispatcher) handle(ctx context.Context, m *botecloud.Message) error {
	if !m.From.IsConnector() {
		return refuse("message %s has no connector identity", m.ID)
	}
	// The sender was verified and its ids checked when the envelope was
	// decoded.
	tenant, agent := ids.TenantID(m.From.Tenant), m.From.Connector
	if m.ContentType != runproto.ContentType {
		return refuse("message %s from %s has content type %q, not %q", m.ID, m.From, m.ContentType, runproto.ContentType)
	}
	if err := d.checkAgent(ctx, m); err != nil {
		return err
	}
	msg, err := runproto.Decode(m.Body)
	if err != nil {
		return botecloud.Permanent(err)
	}
	switch msg := msg.(type) {
	case *runproto.Heartbeat:
		return d.heartbeat(ctx, tenant, agent, msg)
	case *runproto.Started:
		return d.started(ctx, tenant, agent, msg)
	case *runproto.Logs:
		r, err := d.checkClaim(ctx, tenant, agent, msg.RunID, msg.ClaimToken, true)
		if err != nil {
			return err
		}
		if err := d.appendLogs(ctx, r, msg); err != nil {
			return err
		}
		d.notify(r.ID)
		return nil
	case *runproto.Result:
		return d.result(ctx, tenant, agent, msg)
	case *runproto.Renew:
		return d.renew(ctx, tenant, agent, msg)
	default:
		return refuse("%s sent %s, which only the server sends", m.From, runproto.TypeOf(msg))
	}
}

func claimedAt(r runs.Run) time.Time {
	if g := claimGeneration(r); g > 0 {
		return r.History[g-1].At
	}
	return time.Time{}
}

// checkClaim returns the run if token is agent's current claim of it and
// that claim is still open (the run executes it, or needs attention and
// waits for that agent's result). Reports of someone else's claim are
// refused; those of the agent's own earlier or ended claim (a result after
// the run ended, even a redelivered one: the run already has it; what an
// agent restarted from its queue sends) are stale: dropped quietly. Both
// change nothing. With lateLog, a log batch of a claim its agent ended
// itself with a result passes for lateLogGrace after that end.
func (d *Dispatcher) checkClaim(ctx context.Context, tenant ids.TenantID, agent, runID, token string, lateLog bool) (runs.Run, error) {
	r, err := d.m.GetRun(ctx, tenant, runID)
	if errors.Is(err, runs.ErrNotFound) || errors.Is(err, runs.ErrInvalid) {
		return runs.Run{}, refuse("agent %s/%s reported on run %s, which tenant %s does not have", tenant, agent, runID, tenant)
	}
	if err != nil {
		return runs.Run{}, err
	}
	n, ok := runproto.ParseClaimToken(token)
	if !ok || n > len(r.History) {
		return runs.Run{}, refuse("agent %s/%s reported on run %s with unknown claim %q", tenant, agent, runID, token)
	}
	if h := r.History[n-1]; !h.To.Executing() || h.By != agent {
		return runs.Run{}, refuse("claim %s of run %s is not agent %s's", token, runID, agent)
	}
	if n != claimGeneration(r) {
		return runs.Run{}, stale("claim %s of run %s is stale (the run was claimed again)", token, runID)
	}
	if !r.State.Executing() && !r.SettledBy(agent) && !(lateLog && d.endedByOwnResult(r, n, agent)) {
		return runs.Run{}, stale("claim %s of run %s has ended: the run is %s", token, runID, r.State)
	}
	return r, nil
}

// lateLogGrace is how long after a claim's agent ended it with a result
// the server still takes that claim's log batches: the bus may deliver a
// batch after the result (a batch retried after a failed append, a server
// restart in between), and the result waits for its batches only briefly
// (LogWait). A claim ended any other way (swept, timed out, cancelled by
// force) takes none, nor does any claim after the grace.
const lateLogGrace = 2 * time.Minute

// endedByOwnResult reports whether claim n of r ended with agent's own
// result less than lateLogGrace ago.
func (d *Dispatcher) endedByOwnResult(r runs.Run, n int, agent string) bool {
	if n >= len(r.History) {
		return false
	}
	end := r.History[n]
	return end.From.Executing() && end.By == agent && d.cfg.Now().Sub(end.At) < lateLogGrace
}

func (d *Dispatcher) heartbeat(ctx context.Context, tenant ids.TenantID, agent string, hb *runproto.Heartbeat) error {
	req := runs.Heartbeat{Tenant: tenant, Agent: agent, Labels: hb.Labels, Capacity: hb.Capacity, Version: hb.Version, TerraformVersion: hb.TerraformVersion, Running: hb.Running, Draining: hb.Draining, ProviderSources: hb.ProviderSources}
	stops, err := d.m.Heartbeat(ctx, req)
	if errors.Is(err, runs.ErrNotFound) {
		// A registered agent's tenant appears on its first heartbeat.
		if _, cerr := d.m.CreateTenant(ctx, runs.Tenant{ID: tenant}); cerr != nil && !errors.Is(cerr, runs.ErrExists) {
			return cerr
		}
		stops, err = d.m.Heartbeat(ctx, req)
	}
	if errors.Is(err, runs.ErrNotAgent) {
		return refuse("%v", err)
	}
	if errors.Is(err, runs.ErrInvalid) {
		return botecloud.Permanent(err)
	}
	if err != nil {
		return err
	}
	for _, s := range stops {
		d.send(ctx, tenant, agent, &runproto.Cancel{RunID: s.Run, Reason: s.Reason})
	}
	d.resend(ctx, tenant, agent, hb.Running)
	if d.heartbeatKicks(tenant, agent, hb) {
		d.Kick(tenant, "") // it has room it did not offer before: anything waiting for an agent?
	}
	return nil
}

// resend assigns again the runs claimed for agent that it does not know
// about: the assignment was lost (a server crash between claim and send).
func (d *Dispatcher) resend(ctx context.Context, tenant ids.TenantID, agent string, running []string) {
	locks, err := d.m.ListLocks(ctx, tenant)
	if err != nil {
		d.log.WarnContext(ctx, "cannot list locks to check assignments", "tenant", tenant, "err", err)
		return
	}
	for _, l := range locks {
		if l.Agent != agent || slices.Contains(running, l.Run) {
			continue
		}
		r, err := d.m.GetRun(ctx, tenant, l.Run)
		if err != nil || r.Agent != agent || !r.State.Executing() || d.cfg.Now().Sub(claimedAt(r)) < d.cfg.ResendAfter {
			continue
		}
		d.log.WarnContext(ctx, "agent does not run a run claimed for it; assigning again", "tenant", tenant, "run", r.ID, "agent", agent)
		d.assign(ctx, r)
	}
}

func (d *Dispatcher) result(ctx context.Context, tenant ids.TenantID, agent string, res *runproto.Result) error {
	r, err := d.checkClaim(ctx, tenant, agent, res.RunID, res.ClaimToken, false)
	if err != nil {
		return err
	}
	gen := claimGeneration(r)
	claimedTo := r.History[gen-1].To
	if (claimedTo == runs.Applying) != (res.Phase == runproto.PhaseApply) {
		return refuse("run %s: result of phase %s for a claim to %s", r.ID, res.Phase, claimedTo)
	}
	if res.LastSeq >= 0 {
		d.waitLogs(ctx, r.ID, res.ClaimToken, res.LastSeq)
		// The claim may have ended while the result waited (a forced
		// cancel, a sweep): nothing of an ended claim counts, its state
		// least of all.
		if r, err = d.checkClaim(ctx, tenant, agent, res.RunID, res.ClaimToken, false); err != nil {
			return err
		}
	}
	rep := runs.Report{Tenant: tenant, Run: r.ID, Agent: agent, Claim: gen, Result: res.Result, Reason: res.Reason}
	switch res.Outcome {
	case runproto.Refused:
		return d.refused(ctx, r, agent, res)
	case runproto.Succeeded:
		rep.State = runs.Applied
		if res.Phase == runproto.PhasePlan {
			rep.State = runs.Planned
			if res.WorkdirUploaded {
				rep.Plan = &runs.Artifact{Container: d.cfg.Signer.Container(), Blob: uploadBlob(r, res.ClaimToken), Size: res.WorkdirSize, SHA256: res.WorkdirSHA256}
			} else if res.Result != nil && res.Result.HasChanges {
				rep.State, rep.Reason = runs.Failed, "the plan has changes but the agent did not upload its working directory"
			}
			if rep.State == runs.Planned {
				if rep.Policy, err = d.checkPolicies(ctx, r, res); err != nil {
					return err
				}
			}
			rep.PlanJSON = d.keepPlan(ctx, r, res.Plan)
		}
	case runproto.Failed:
		rep.State = runs.Failed
	case runproto.Cancelled:
		rep.State = runs.Cancelled
		if r.CancelReason != "" && strings.Contains(res.Reason, r.CancelReason) {
			rep.Reason = "" // the agent echoes the cancel reason the run records anyway
		}
	}
	if res.StateUploaded {
		if err := d.promoteState(ctx, r, res, &rep); err != nil {
			return err
		}
	}
	reported, err := d.m.Report(ctx, rep)
	switch {
	case errors.Is(err, runs.ErrNotAssigned):
		return stale("result of run %s from %s/%s: %v", r.ID, tenant, agent, err)
	case errors.Is(err, runs.ErrInvalid), errors.Is(err, runs.ErrIllegalTransition):
		return refuse("result of run %s from %s/%s: %v", r.ID, tenant, agent, err)
	case err != nil:
		return err
	}
	if d.cfg.Drift != nil && res.Phase == runproto.PhasePlan {
		if err := d.cfg.Drift.PlanEnded(ctx, reported, res.Plan); err != nil {
			return err
		}
	}
	d.finishCursor(r.ID, res.ClaimToken, res.LastSeq)
	return nil
}

// checkPolicies evaluates the tenant's policies on a plan that ended well
// (a plan without changes has nothing to approve, but is checked as well
// when its JSON is there).
func (d *Dispatcher) checkPolicies(ctx context.Context, r runs.Run, res *runproto.Result) (*runs.PolicyCheck, error) {
	if d.cfg.Policies == nil || r.DriftCheck || len(res.Plan) == 0 && (res.Result == nil || !res.Result.HasChanges) {
		return nil, nil
	}
	c, err := d.cfg.Policies.Check(ctx, r, res.Plan)
	if err != nil {
		return nil, fmt.Errorf("cannot check the policies of run %s: %w", r.ID, err)
	}
	if c != nil {
		d.log.InfoContext(ctx, "plan checked against policies", "tenant", r.Tenant, "run", r.ID, "policies", len(c.Results), "blocks", c.Blocks())
	}
	return c, nil
}

// keepPlan stores a plan's JSON beside its run. A plan that cannot be
// stored is logged, not fatal: the run goes on, its changes in its log.
func (d *Dispatcher) keepPlan(ctx context.Context, r runs.Run, plan []byte) *runs.Artifact {
	if len(plan) == 0 || d.cfg.Plans == nil {
		return nil
	}
	c, err := d.cfg.Plans.Put(ctx, artifacts.RunKey{Tenant: r.Tenant, Workspace: r.Workspace, Run: r.ID}, artifacts.Plan, bytes.NewReader(plan), runproto.MaxPlanBytes)
	if err != nil {
		d.log.ErrorContext(ctx, "cannot keep the plan's JSON", "tenant", r.Tenant, "run", r.ID, "err", err)
		return nil
	}
	return c
}

// appendLogs writes a batch at its place in the run's log, once.
//
// With Logs.Offset the place is the agent's: AppendLog at that offset is
// exactly-once and ordered on its own, on any replica (a batch arriving
// before its predecessor fails with ErrLogGap and comes back from the bus).
// Without it, batches are ordered by Seq in this process: a batch waits
// for its predecessor while that is being handled here (LogWait at most),
// briefly otherwise (the predecessor may be about to arrive), then is
// appended at the log's end: after a restart, or when another replica
// wrote the predecessor.
func (d *Dispatcher) appendLogs(ctx context.Context, r runs.Run, l *runproto.Logs) error {
	key := artifacts.RunKey{Tenant: r.Tenant, Workspace: r.Workspace, Run: r.ID}
	data := artifacts.Lines(l.Lines)
	c := d.cursor(r.ID, l.ClaimToken)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.written[l.Seq] {
		return nil // delivered before
	}
	if !c.done.IsZero() && l.Seq > c.last {
		// A batch the bus held back may follow the result; one the
		// result says was never sent may not.
		return refuse("log batch %d of run %s claim %s came after its result, which named batch %d the last", l.Seq, r.ID, l.ClaimToken, c.last)
	}
	if l.Offset != nil {
		c.mu.Unlock() // appends at a fixed offset need no ordering here
		end, err := d.cfg.Logs.AppendLog(ctx, key, *l.Offset, data)
		c.mu.Lock()
		if err != nil {
			return fmt.Errorf("cannot append log batch %d of run %s: %w", l.Seq, r.ID, err)
		}
		c.record(l.Seq, end)
		return nil
	}
	c.inflight[l.Seq]++
	defer func() { c.inflight[l.Seq]-- }()
	start := time.Now()
	for !c.written[l.Seq] && !(l.Seq == c.next && (c.known || l.Seq == 0)) {
		wait := logGrace
		if c.inflight[l.Seq-1] > 0 {
			wait = d.cfg.LogWait // the predecessor is being written here
		}
		left := wait - time.Since(start)
		if left <= 0 || ctx.Err() != nil {
			break
		}
		c.wait(left)
	}
	if c.written[l.Seq] {
		return nil
	}
	at := int64(-1) // the end, wherever it is
	if c.known && l.Seq == c.next {
		at = c.at
	}
	end, err := d.cfg.Logs.AppendLog(ctx, key, at, data)
	if err != nil && at >= 0 {
		// Another replica appended meanwhile: append at the end.
		end, err = d.cfg.Logs.AppendLog(ctx, key, -1, data)
	}
	if err != nil {
		return fmt.Errorf("cannot append log batch %d of run %s: %w", l.Seq, r.ID, err)
	}
	c.record(l.Seq, end)
	return nil
}

// logGrace is how long a batch waits for a predecessor that is not being
// handled in this process.
const logGrace = 300 * time.Millisecond

// waitLogs waits until the batches up to last are written (or LogWait),
// so followers that stop at the result have seen every line.
func (d *Dispatcher) waitLogs(ctx context.Context, runID, token string, last int64) {
	c := d.cursor(runID, token)
	c.mu.Lock()
	defer c.mu.Unlock()
	wait := d.cfg.LogWait
	if !c.known {
		wait = min(wait, time.Second) // the batches may be on another replica
	}
	deadline := time.Now().Add(wait)
	for c.next <= last && time.Now().Before(deadline) && ctx.Err() == nil {
		c.wait(time.Until(deadline))
	}
}

// promoteState makes the state this apply claim uploaded the workspace's
// current state, before the result is recorded: the workspace lock is
// still held, so the next plan starts from it. A state that does not
// match what the agent reported, or that lost a race with another claim's
// promotion, is not promoted; the run then fails saying so. Only errors
// worth retrying (storage unreachable) are returned.
func (d *Dispatcher) promoteState(ctx context.Context, r runs.Run, res *runproto.Result, rep *runs.Report) error {
	v, err := d.cfg.States.PromoteState(ctx, artifacts.Promotion{Tenant: r.Tenant, Workspace: r.Workspace, Run: r.ID, Claim: res.ClaimToken,
		Size: res.StateSize, SHA256: res.StateSHA256})
	switch {
	case err == nil:
		d.log.InfoContext(ctx, "workspace state promoted", "tenant", r.Tenant, "workspace", r.Workspace, "run", r.ID, "version", v.Version, "bytes", v.Size)
		return nil
	case errors.Is(err, artifacts.ErrCorrupt), errors.Is(err, artifacts.ErrNotFound), errors.Is(err, artifacts.ErrConflict),
		errors.Is(err, artifacts.ErrExists), errors.Is(err, runs.ErrInvalid):
		d.log.WarnContext(ctx, "workspace state not promoted", "tenant", r.Tenant, "workspace", r.Workspace, "run", r.ID, "err", err)
		if rep.State != runs.Cancelled {
			rep.State = runs.Failed
		}
		rep.Reason = strings.TrimPrefix(rep.Reason+"; ", "; ") + "the workspace state was not changed: " + err.Error()
		return nil
	}
	return fmt.Errorf("cannot promote the state of run %s: %w", r.ID, err)
}
