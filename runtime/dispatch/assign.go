package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfresult"
)

// claimGeneration is the claim token of an executing run: the length of
// its history right after the claim, the last transition into an
// executing state.
func claimGeneration(r runs.Run) int { return r.Claim() }

// assign sends an executing run to its agent. A run that cannot be sent
// (unregistered agent, unreadable secrets, the gateway refusing) fails,
// releasing its workspace, rather than holding it until a timeout.
func (d *Dispatcher) assign(ctx context.Context, r runs.Run) {
	a, err := d.assignment(ctx, r)
	if err == nil {
		err = d.sendNow(ctx, r.Tenant, r.Agent, a)
	}
	if err == nil {
		d.log.Info("run assigned", "tenant", r.Tenant, "workspace", r.Workspace, "run", r.ID, "agent", r.Agent, "op", a.Op, "claim", a.ClaimToken)
		return
	}
	d.log.Error("cannot assign run; failing it", "tenant", r.Tenant, "run", r.ID, "agent", r.Agent, "err", err)
	if _, rerr := d.m.Report(ctx, runs.Report{Tenant: r.Tenant, Run: r.ID, Agent: r.Agent, State: runs.Failed,
		Reason: "the server could not assign the run to agent " + r.Agent + ": " + err.Error()}); rerr != nil {
		d.log.Error("cannot fail unassignable run", "tenant", r.Tenant, "run", r.ID, "err", rerr)
	}
}

func (d *Dispatcher) assignment(ctx context.Context, r runs.Run) (*runproto.Assign, error) {
	// Secrets are sealed only to an agent of the run's tenant.
	reg, err := agentRegistration(d.cfg.Keys, string(r.Tenant), r.Agent)
	if err != nil {
		return nil, err
	}
	a := &runproto.Assign{
		RunID: r.ID, Tenant: string(r.Tenant), Workspace: string(r.Workspace), Op: r.TerraformOp(),
		ClaimToken: runproto.ClaimToken(claimGeneration(r)),
	}
	if !r.Deadline.IsZero() {
		a.Timeout = runproto.Duration(max(r.Deadline.Sub(d.cfg.Now()), time.Second).Round(time.Second))
	}
	// Appending nothing at the end returns the log's length.
	if a.LogOffset, err = d.cfg.Logs.AppendLog(ctx, artifacts.RunKey{Tenant: r.Tenant, Workspace: r.Workspace, Run: r.ID}, -1, nil); err != nil {
		return nil, fmt.Errorf("cannot read the length of the run's log: %w", err)
	}
	secrets, err := d.cfg.Secrets.Get(ctx, r.Tenant, r.Workspace)
	if err != nil {
		return nil, fmt.Errorf("cannot read deployment secrets: %w", err)
	}
	if a.Secrets, err = runproto.SealSecrets(reg.PublicKey(), secrets); err != nil {
		return nil, err
	}
	l, err := d.uploadLinks(ctx, r, a.ClaimToken)
	if err != nil {
		return nil, err
	}
	a.UploadURL, a.StateUploadURL, a.UploadExpiresAt = l.UploadURL, l.StateUploadURL, l.ExpiresAt
	if a.Op == tfresult.Apply {
		if r.Plan == nil {
			return nil, errors.New("the run has no saved plan")
		}
		c, err := d.sign(ctx, r.Plan)
		if err != nil {
			return nil, err
		}
		a.WorkdirURL, a.WorkdirSHA256, a.WorkdirSize = c.URL, c.SHA256, c.Size
		return a, nil
	}
	if r.Bundle == nil {
		return nil, errors.New("the run has no configuration bundle")
	}
	c, err := d.sign(ctx, r.Bundle)
	if err != nil {
		return nil, err
	}
	a.Plan = r.PlanOptions
	w, err := d.m.GetWorkspace(ctx, r.Tenant, r.Workspace)
	if err != nil {
		return nil, fmt.Errorf("cannot read the workspace's variables: %w", err)
	}
	a.Vars, a.Providers = w.Vars, w.Providers
	a.BundleURL, a.BundleSHA256, a.BundleSize = c.URL, c.SHA256, c.Size
	// The state as it is now, for good: the link never reads a state
	// promoted after this claim.
	snapshot, err := d.cfg.States.StateSnapshot(ctx, r.Tenant, r.Workspace)
	if err != nil {
		return nil, err
	}
	if a.StateURL, _, err = d.cfg.Signer.ReadURL(ctx, snapshot, d.cfg.URLTTL); err != nil {
		return nil, err
	}
	return a, nil
}

// sendNow encodes and sends m to an agent, retrying briefly.
func (d *Dispatcher) sendNow(ctx context.Context, tenant ids.TenantID, agent string, m runproto.Message) error {
	body, err := runproto.Encode(m)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		_, err = d.cfg.Sender.SendToConnector(ctx, string(tenant), agent, botecloud.OutMessage{ContentType: runproto.ContentType, Body: body})
		if err == nil || attempt == sendAttempts || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("cannot send %s to %s/%s: %w", runproto.TypeOf(m), tenant, agent, err)
	}
	return nil
}

func (d *Dispatcher) send(ctx context.Context, tenant ids.TenantID, agent string, m runproto.Message) {
	if err := d.sendNow(ctx, tenant, agent, m); err != nil && ctx.Err() == nil {
		d.log.Warn("cannot tell agent; it learns from its next heartbeat", "err", err)
	}
}

// sign links the run's artifact a for an agent to read, for URLTTL: the
// claim-check reference (envelope.Claim) run.assign carries.
func (d *Dispatcher) sign(ctx context.Context, a *runs.Artifact) (envelope.Claim, error) {
	c := envelope.Claim{Container: a.Container, Blob: a.Blob, Size: a.Size, SHA256: a.SHA256}
	err := d.cfg.Signer.Sign(ctx, &c, d.cfg.URLTTL)
	return c, err
}
