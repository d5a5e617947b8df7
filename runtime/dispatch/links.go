package dispatch

import (
	"context"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfresult"
)

// Upload links are fenced to their claim three ways:
//
//   - each claim writes only blobs of its own, named after it (the plan's
//     working directory, the apply's state), never what another claim or
//     the workspace reads;
//   - what a claim uploaded counts only when the server accepts that
//     claim's result, which it does only while the claim is open, after
//     checking size and SHA-256 (the apply's state is then promoted, see
//     artifacts.PromoteState; the saved plan is verified again by the
//     agent that applies it);
//   - the links are valid for UploadTTL only, and renewed (run.renew)
//     only while the claim is open, so a link stops working at most
//     UploadTTL after its claim ended, whatever the phase's timeout.

// uploadBlob is where the agent uploads the working directory of one
// claim: derived from the claim, so a restarted server finds it.
func uploadBlob(r runs.Run, token string) string {
	return string(r.Tenant) + "/" + string(r.Workspace) + "/" + r.ID + "/workdir-c" + token + ".tar.gz"
}

// uploadLinks signs the upload links of r's claim token: the working
// directory for a plan, the state for an apply.
func (d *Dispatcher) uploadLinks(ctx context.Context, r runs.Run, token string) (*runproto.Links, error) {
	l := &runproto.Links{RunID: r.ID, ClaimToken: token}
	blob, link := uploadBlob(r, token), &l.UploadURL
	if r.TerraformOp() == tfresult.Apply {
		blob, link = artifacts.StagedState(r.Tenant, r.Workspace, r.ID, token), &l.StateUploadURL
	}
	var err error
	*link, l.ExpiresAt, err = d.cfg.Signer.UploadURL(ctx, blob, d.cfg.UploadTTL)
	return l, err
}

// renew answers an agent's run.renew with fresh upload links, only for
// its open claim.
func (d *Dispatcher) renew(ctx context.Context, tenant ids.TenantID, agent string, m *runproto.Renew) error {
	r, err := d.checkClaim(ctx, tenant, agent, m.RunID, m.ClaimToken, false)
	if err != nil {
		return err
	}
	l, err := d.uploadLinks(ctx, r, m.ClaimToken)
	if err != nil {
		return err
	}
	d.log.InfoContext(ctx, "upload links renewed", "tenant", tenant, "run", r.ID, "agent", agent, "claim", m.ClaimToken, "until", l.ExpiresAt)
	return d.sendNow(ctx, tenant, agent, l)
}
