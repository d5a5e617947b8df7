// Package console_test drives the operators' web console (runtime/console)
// in a real Chromium against the real local platform: opsserver, agent,
// gateway and relay as processes on Azurite, and `opsbot ui` forwarding the
// browser's API calls through the relay with each operator's credential.
package console_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/platform"
	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/tfarchive"
)

func TestMain(m *testing.M) { platform.Main(m) }

const tenant = "contoso"

// config plans one resource whose apply writes a line every 400 ms for
// about 6 s (the log to watch live), a plain output and a sensitive one.
const config = `
resource "terraform_data" "web" {
  input = { name = "web-1", size = "small" }
  provisioner "local-exec" {
    command = "i=1; while [ $i -le 16 ]; do echo applying step $i; sleep 0.4; i=$((i+1)); done"
  }
}
output "name" { value = terraform_data.web.output.name }
output "password" {
  value     = "hunter2-not-shown"
  sensitive = true
}
`

var consoleURL = regexp.MustCompile(`The console is at (http://\S+)`)

// startUI runs `opsbot ui` with env and returns the URL it prints.
func startUI(t *testing.T, p *platform.Platform, label string, env []string) string {
	t.Helper()
	bin, err := procs.BuildBinary("opsbot")
	require.NoError(t, err)
	proc, err := procs.Launch(procs.Spec{Name: label, Path: bin, Args: []string{"ui"}, Env: env, Dir: p.Dir, StopGrace: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = proc.Stop() })
	line, err := proc.WaitOutput("The console is at ", 30*time.Second)
	require.NoError(t, err)
	m := consoleURL.FindStringSubmatch(line)
	require.NotNil(t, m, line)
	return m[1]
}

// bundle packs config as `opsbot plan` does and returns the file.
func bundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(config), 0o644))
	var buf bytes.Buffer
	_, err := tfarchive.Pack(dir, &buf, tfarchive.PackOptions{Limits: tfarchive.BundleLimits})
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "bundle.tar.gz")
	require.NoError(t, os.WriteFile(file, buf.Bytes(), 0o644))
	return file
}

func TestConsole(t *testing.T) {
	// size: one operator's story through the console, page by page, then the reader's.
	t.Parallel()
	p := platform.New(t, platform.Options{
		// Capacity: the setup's plans run at once, and the override's apply
		// does not wait for the end of the live log's.
		Agents:        []platform.Agent{{Tenant: tenant, ID: "agent-01", Start: true, Capacity: 4}},
		OpsServerArgs: []string{"--deployed-agent-version", "9.9.9", "--local-listen", "127.0.0.1:0"},
	})
	shots := artifacts(t)
	started := time.Now()

	// A reader of contoso, and a second workspace with a plan waiting for approval.
	readerKey := strings.TrimSpace(p.Expect(t, 0, "", "keys", "create", "viewer", "--role", tenant+"=reader").Stdout)
	p.Expect(t, 0, tenant, "workspaces", "create", "staging")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(config), 0o644))
	// A four-eyes workspace with a plan the admin queued (and so may not approve).
	p.Expect(t, 0, tenant, "workspaces", "create", "guarded", "--four-eyes")
	// And a plan that fails with a diagnostic.
	p.Expect(t, 0, tenant, "workspaces", "create", "broken")
	brokenDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(brokenDir, "main.tf"), []byte("resource \"terraform_data\" \"x\" {\n  not_an_argument = true\n}\n"), 0o644))
	// Policies: one mandatory, one mandatory-with-override, each failing the
	// plan of its own workspace.
	policyDir := policedWorkspaces(t, p)

	// The plans run meanwhile the consoles and the browser start.
	plans := startPlans(p, []queuedPlan{{"staging", dir, 10}, {"guarded", dir, 10}, {"broken", brokenDir, 11},
		{"strict", policyDir, 10}, {"lenient", policyDir, 10}})
	adminURL := startUI(t, p, "opsbot ui (admin)", p.OpsbotEnv(tenant))
	readerEnv := append(p.OpsbotEnv(tenant), "OPSBOT_API_KEY="+readerKey)
	readerURL := startUI(t, p, "opsbot ui (reader)", readerEnv)
	ctx, newTab := browser(t)
	runIDs := plans(t)
	waiting, guarded, failed := runIDs[0], runIDs[1], runIDs[2]
	policed := policed{strict: runIDs[3], lenient: runIDs[4]}
	// And a drift schedule on staging.
	p.Expect(t, 0, tenant, "drift", "schedule", "staging", "--every", "6h")
	const wait = 60 * time.Second

	// Tenants.
	do(t, ctx, wait, chromedp.Navigate(adminURL), chromedp.WaitVisible(chromedp.CSS(`a[href="#/t/`+tenant+`"]`)))
	waitJS(t, ctx, wait, `document.querySelector('h1').textContent === 'Tenants'`)
	assert.NotContains(t, eval[string](t, ctx, "location.href"), "session=", "the session secret leaves the address bar")
	screenshot(t, ctx, shots, "1-tenants")
	checkAccessibility(t, ctx, "tenants")

	// Tenant: create a workspace, queue a plan with a bundle.
	do(t, ctx, wait, chromedp.Click(chromedp.CSS(`a[href="#/t/`+tenant+`"]`)), chromedp.WaitVisible(chromedp.ID("ws-name")))
	assert.Equal(t, "Tenant "+tenant, eval[string](t, ctx, "document.activeElement.textContent"), "after navigation the heading has the focus")
	do(t, ctx, wait, chromedp.SendKeys(chromedp.ID("ws-name"), "web"), chromedp.SetValue(chromedp.ID("ws-desc"), "the web tier"),
		chromedp.Click(chromedp.ID("ws-submit")))
	waitJS(t, ctx, wait, `[...document.querySelectorAll('td')].some(td => td.textContent === 'web')`)
	row := func(t *testing.T, ctx context.Context, ws string) string {
		return eval[string](t, ctx, `[...document.querySelectorAll('tr')].find(tr => tr.cells[0].textContent === '`+ws+`').textContent`)
	}
	staging := row(t, ctx, "staging")
	assert.Contains(t, staging, waiting+" (planned)", "the lock holder")
	assert.Contains(t, staging, "empty", "the queue")
	driftRow := func(ctx context.Context, ws string) string {
		return eval[string](t, ctx, `[...document.querySelectorAll('#workspace-drift tr')].find(tr => tr.cells[0].textContent === '`+ws+`').textContent`)
	}
	assert.Contains(t, driftRow(ctx, "staging"), "not checked yet")
	assert.Contains(t, driftRow(ctx, "staging"), "every 6h", "the drift schedule")
	assert.Contains(t, driftRow(ctx, "broken"), "no schedule")
	do(t, ctx, wait, chromedp.SetValue(chromedp.ID("plan-ws"), "web"),
		chromedp.SetUploadFiles(chromedp.ID("plan-bundle"), []string{bundle(t)}),
		chromedp.SetValue(chromedp.ID("plan-message"), "first web plan"))
	screenshot(t, ctx, shots, "2-tenant")
	checkAccessibility(t, ctx, "tenant")
	do(t, ctx, wait, chromedp.Click(chromedp.ID("plan-submit")))

	// Run page: the plan's log arrives, then the diff.
	waitJS(t, ctx, wait, `location.hash.includes('/runs/run-')`)
	runID := regexp.MustCompile(`run-[0-9a-v]+`).FindString(eval[string](t, ctx, "location.hash"))
	waitJS(t, ctx, 2*wait, `document.getElementById('run-state')?.dataset.state === 'planned'`)
	waitJS(t, ctx, wait, `document.getElementById('run-log').textContent.includes('Plan: 1 to add')`)
	waitJS(t, ctx, wait, `document.getElementById('plan-text')`)
	planText := eval[string](t, ctx, `document.getElementById('plan-text').textContent`)
	assert.Contains(t, planText, "  # terraform_data.web will be created\n  + resource \"terraform_data\" \"web\" {\n", "the CLI's rendering (planrender)")
	assert.Contains(t, planText, "Plan: 1 to add, 0 to change, 0 to destroy.")
	assert.Contains(t, planText, `+ password = (sensitive value)`)
	assert.NotContains(t, planText, "hunter2")
	assert.True(t, eval[bool](t, ctx, `!!document.querySelector('#plan-text .line-add')`), "added lines are marked")
	screenshot(t, ctx, shots, "3-run-planned")
	checkAccessibility(t, ctx, "run")

	// Approve: the confirmation restates the change; then the apply's log
	// arrives while it runs, through a dropped connection.
	do(t, ctx, wait, chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.ID("confirm-body")))
	confirmText := eval[string](t, ctx, `document.getElementById('confirm').textContent`)
	assert.Contains(t, confirmText, "Plan: 1 to add, 0 to change, 0 to destroy.")
	assert.Contains(t, confirmText, "workspace web in tenant "+tenant)
	screenshot(t, ctx, shots, "4-approve-confirmation")
	do(t, ctx, wait, chromedp.Click(chromedp.ID("confirm-ok")))
	waitJS(t, ctx, wait, `document.getElementById('run-log').textContent.includes('applying step 1')`)
	assert.NotEqual(t, "applied", eval[string](t, ctx, `document.getElementById('run-state').dataset.state`), "the log arrives while the apply runs")
	// From here the live log, the other pages (each in a tab of its own)
	// and Firefox go on at once: most of each is waiting on the platform.
	tabs := map[string]context.Context{}
	for _, name := range []string{"keyboard", "reader", "policies", "policies reader", "fleet", "server port"} {
		tabs[name] = newTab()
	}
	t.Logf("the setup and the first run's plan took %s", time.Since(started).Round(time.Millisecond))
	var wg sync.WaitGroup
	parallel := func(name string, f func(t *testing.T)) {
		wg.Add(1)
		go func() { defer wg.Done(); t.Run(name, f) }()
	}
	liveLog := make(chan string, 1) // the run's whole log once applied; closed if the part failed

	parallel("live log", func(t *testing.T) {
		defer close(liveLog)
		restore := dropLogs(t, ctx)
		waitJS(t, ctx, wait, `document.getElementById('run-log').dataset.reconnects !== '0'`)
		time.Sleep(900 * time.Millisecond) // the apply writes more lines meanwhile (one every 400 ms)
		restore()
		waitJS(t, ctx, 2*wait, `document.getElementById('run-state')?.dataset.state === 'applied'`)
		assert.Equal(t, "Done.", eval[string](t, ctx, "document.activeElement.textContent"), "the focus stays on the outcome of the approval")
		waitJS(t, ctx, wait, `document.getElementById('run-log').dataset.done === 'true'`)
		shown := eval[string](t, ctx, `document.getElementById('run-log').textContent`)
		whole := eval[string](t, ctx, `fetch(location.pathname.replace('/ui/', '/v1/tenants/`+tenant+`/runs/`+runID+`/logs?max=1048576'), {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('bote-ops-credential')}}).then(r => r.json()).then(c => c.text)`)
		liveLog <- whole
		assert.Equal(t, whole, shown, "the page's log is the run's log: no line lost or repeated across the dropped connection")
		for i := 1; i <= 16; i++ {
			assert.Equal(t, 1, strings.Count(shown, "applying step "+strconv.Itoa(i)+"\n"), "step %d once", i)
		}
		waitJS(t, ctx, wait, `document.getElementById('run-outputs').textContent.includes('"web-1"')`)
		outputs := eval[string](t, ctx, `document.getElementById('run-outputs').textContent`)
		assert.Contains(t, outputs, "(sensitive value withheld)")
		assert.NotContains(t, outputs, "hunter2")
		screenshot(t, ctx, shots, "5-run-applied")
	})

	parallel("keyboard, four eyes, reader and cancel", func(t *testing.T) {
		kctx, rctx := tabs["keyboard"], tabs["reader"]
		do(t, kctx, wait, chromedp.Navigate(adminURL), chromedp.WaitVisible(chromedp.CSS(`a[href="#/t/`+tenant+`"]`)))
		// Keyboard: Tab reaches the waiting run's approve button; Escape backs out of the confirmation.
		do(t, kctx, wait, chromedp.Navigate(base(adminURL)+"#/t/"+tenant+"/runs/"+waiting), chromedp.WaitVisible(chromedp.ID("approve")))
		reached := false
		for range 30 {
			do(t, kctx, wait, chromedp.KeyEvent(kb.Tab))
			if eval[string](t, kctx, "document.activeElement.id") == "approve" {
				reached = true
				break
			}
		}
		require.True(t, reached, "Tab reaches the approve button")
		assert.NotEqual(t, "none", eval[string](t, kctx, "getComputedStyle(document.activeElement).outlineStyle"), "focus is visible")
		do(t, kctx, wait, chromedp.KeyEvent(kb.Enter))
		waitJS(t, kctx, wait, `document.getElementById('confirm').open`)
		do(t, kctx, wait, chromedp.KeyEvent(kb.Escape))
		waitJS(t, kctx, wait, `!document.getElementById('confirm').open`)

		// Four eyes: whoever queued the run is not offered approval.
		do(t, kctx, wait, chromedp.Navigate(base(adminURL)+"#/t/"+tenant+"/runs/"+guarded), chromedp.WaitVisible(chromedp.ID("four-eyes")))
		assert.False(t, eval[bool](t, kctx, `!!document.getElementById('approve')`), "no approve for the run's own author in a four-eyes workspace")
		assert.True(t, eval[bool](t, kctx, `!!document.getElementById('cancel')`), "cancelling is still offered")

		// A reader, opening the run's link: no approve, cancel or forms; a forged approve is refused.
		do(t, rctx, wait, chromedp.Navigate(readerURL+"&/t/"+tenant+"/runs/"+waiting))
		assert.Equal(t, "#/t/"+tenant+"/runs/"+waiting, eval[string](t, rctx, "location.hash"), "the link's page, without the secret")
		waitJS(t, rctx, wait, `document.getElementById('run-state')?.dataset.state === 'planned'`)
		waitJS(t, rctx, wait, `document.getElementById('plan-text')`)
		assert.False(t, eval[bool](t, rctx, `!!document.getElementById('approve') || !!document.getElementById('cancel')`), "a reader is offered neither approve nor cancel")
		screenshot(t, rctx, shots, "8-reader-run")
		forged := eval[int](t, rctx, `fetch('/v1/tenants/`+tenant+`/runs/`+waiting+`/approve', {method: 'POST', headers: {Authorization: 'Bearer ' + sessionStorage.getItem('bote-ops-credential')}}).then(r => r.status)`)
		assert.Equal(t, 403, forged, "the server refuses a reader's approval")
		do(t, rctx, wait, chromedp.Navigate(base(readerURL)+"#/t/"+tenant))
		waitJS(t, rctx, wait, `document.querySelector('h1')?.textContent === 'Tenant `+tenant+`'`)
		assert.False(t, eval[bool](t, rctx, `!!document.getElementById('ws-name')`), "a reader is offered no workspace form")
		assert.Contains(t, p.Expect(t, 0, tenant, "runs", "show", waiting).Stdout, "planned", "the forged approval changed nothing")

		// The admin cancels the guarded run with the console; the reader's
		// tenant page shows its workspace free again without a reload.
		assert.Contains(t, row(t, rctx, "guarded"), guarded+" (planned)")
		do(t, kctx, wait, chromedp.Navigate(base(adminURL)+"#/t/"+tenant+"/runs/"+guarded), chromedp.WaitVisible(chromedp.ID("cancel")))
		do(t, kctx, wait, chromedp.Click(chromedp.ID("cancel")), chromedp.WaitVisible(chromedp.ID("confirm-body")))
		assert.Contains(t, eval[string](t, kctx, `document.getElementById('confirm').textContent`), "Nothing has been applied by this run")
		do(t, kctx, wait, chromedp.Click(chromedp.ID("confirm-ok")))
		waitJS(t, kctx, wait, `document.getElementById('run-state')?.dataset.state === 'cancelled'`)
		waitJS(t, rctx, 15*time.Second, `[...document.querySelectorAll('tr')].find(tr => tr.cells[0].textContent === 'guarded').textContent.includes('free')`)
		assert.Contains(t, row(t, rctx, "guarded"), "cancelled")
	})

	parallel("policies and audit", func(t *testing.T) {
		actx, pctx := tabs["policies"], tabs["policies reader"]
		do(t, actx, wait, chromedp.Navigate(adminURL), chromedp.WaitVisible(chromedp.CSS(`a[href="#/t/`+tenant+`"]`)))
		// Policies: a failed mandatory policy is shown and no approval offered;
		// a failed mandatory-with-override one offers the approver an explicit
		// override, whose confirmation restates the failure, and records it.
		do(t, actx, wait, chromedp.Navigate(base(adminURL)+"#/t/"+tenant+"/runs/"+policed.strict), chromedp.WaitVisible(chromedp.ID("policy-blocked")))
		policyText := eval[string](t, actx, `document.getElementById('run-policy').textContent`)
		assert.Contains(t, policyText, "FAILED")
		assert.Contains(t, policyText, "terraform_data.x may not be created here")
		assert.Contains(t, policyText, "it cannot be overridden")
		assert.False(t, eval[bool](t, actx, `!!document.getElementById('approve') || !!document.getElementById('override-approve')`), "no approval past a mandatory policy")
		do(t, actx, wait, chromedp.Navigate(base(adminURL)+"#/t/"+tenant+"/runs/"+policed.lenient), chromedp.WaitVisible(chromedp.ID("override-approve")))
		assert.False(t, eval[bool](t, actx, `!!document.getElementById('approve')`), "no plain approve past a failed policy")
		assert.Contains(t, eval[string](t, actx, `document.getElementById('policy-outcome').textContent`), "an approver may override it")
		screenshot(t, actx, shots, "4b-run-policy-override")
		checkAccessibility(t, actx, "run with policies")
		do(t, pctx, wait, chromedp.Navigate(readerURL+"&/t/"+tenant+"/runs/"+policed.lenient))
		waitJS(t, pctx, wait, `document.getElementById('run-policy')?.textContent.includes('FAILED')`)
		assert.False(t, eval[bool](t, pctx, `!!document.getElementById('override-approve') || !!document.getElementById('approve')`), "a reader is offered no override")
		do(t, actx, wait, chromedp.Click(chromedp.ID("override-approve")), chromedp.WaitVisible(chromedp.ID("confirm-policy")))
		confirmText := eval[string](t, actx, `document.getElementById('confirm').textContent`)
		assert.Contains(t, confirmText, "You override the failed policy lenient")
		assert.Contains(t, confirmText, "terraform_data.x may not be created here")
		do(t, actx, wait, chromedp.Click(chromedp.ID("confirm-ok")))
		waitJS(t, actx, 2*wait, `document.getElementById('run-state')?.dataset.state === 'applied'`)
		assert.Contains(t, eval[string](t, actx, `document.getElementById('policy-outcome').textContent`), "api-key:operator overrode lenient")

		// The audit log.
		do(t, actx, wait, chromedp.Navigate(base(adminURL)+"#/audit?tenant="+tenant))
		waitJS(t, actx, wait, `document.querySelector('h1').textContent === 'Audit log' && document.querySelector('table')?.textContent.includes('run.applied')`)
		title := eval[string](t, actx, `document.querySelector('time').title`)
		assert.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$`, title, "UTC in the title")
		assert.Regexp(t, `CET|CEST|GMT\+1|GMT\+2`, eval[string](t, actx, `document.querySelector('time').textContent`), "local time in the viewer's zone")
		screenshot(t, actx, shots, "7-audit")
		checkAccessibility(t, actx, "audit")
	})

	// The agent fleet.
	parallel("fleet", func(t *testing.T) {
		fctx := tabs["fleet"]
		do(t, fctx, wait, chromedp.Navigate(adminURL), chromedp.WaitVisible(chromedp.CSS(`a[href="#/t/`+tenant+`"]`)))
		do(t, fctx, wait, chromedp.Navigate(base(adminURL)+"#/t/"+tenant+"/agents"))
		waitJS(t, fctx, wait, `document.querySelector('h1').textContent === 'Agent fleet of `+tenant+`' && document.querySelector('table')`)
		fleet := eval[string](t, fctx, `document.querySelector('table').textContent`)
		assert.Contains(t, fleet, "online")
		assert.Contains(t, fleet, "out of date (deployed 9.9.9)")
		assert.Regexp(t, `terraform|1\.\d+`, fleet)
		screenshot(t, fctx, shots, "6-fleet")
		checkAccessibility(t, fctx, "fleet")
	})

	// The ops server's own port: the page asks for a credential, and a
	// failed plan shows its diagnostics.
	parallel("server port", func(t *testing.T) {
		local := regexp.MustCompile(`opsserver listening on (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(p.Outputs())
		require.NotNil(t, local, "opsserver's local port")
		sctx := tabs["server port"]
		do(t, sctx, wait, chromedp.Navigate(local[1]+"/ui/#/t/"+tenant+"/runs/"+failed), chromedp.WaitVisible(chromedp.ID("credential")))
		checkAccessibility(t, sctx, "sign-in")
		do(t, sctx, wait, chromedp.SendKeys(chromedp.ID("credential"), "obk_nobody.nothing"+kb.Enter))
		waitJS(t, sctx, wait, `document.querySelector('.error')?.textContent.includes('refused the credential') && document.getElementById('credential')`)
		do(t, sctx, wait, chromedp.SendKeys(chromedp.ID("credential"), p.APIKey+kb.Enter))
		waitJS(t, sctx, wait, `document.getElementById('run-state')?.dataset.state === 'failed'`)
		waitJS(t, sctx, wait, `document.getElementById('run-diagnostics').textContent.includes('Unsupported argument')`)
		assert.Contains(t, eval[string](t, sctx, `document.getElementById('run-diagnostics').textContent`), "main.tf line 2")
		screenshot(t, sctx, shots, "10-server-port-failed-run")
		do(t, sctx, wait, chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("credential")))
		assert.Empty(t, eval[string](t, sctx, `sessionStorage.getItem('bote-ops-credential') || ''`), "forgotten")
	})

	// Firefox shows the same run the same way, and passes axe-core too.
	parallel("firefox", func(t *testing.T) {
		started := time.Now()
		ff := startFirefox(t)
		ff.navigate(t, adminURL+"&/t/"+tenant+"/runs/"+runID)
		whole, ok := <-liveLog
		require.True(t, ok, "the live log part failed")
		ff.waitJS(t, wait, `document.getElementById('run-log')?.dataset.done === 'true' && document.getElementById('plan-text') && document.getElementById('run-outputs').textContent.includes('web-1')`)
		assert.Equal(t, planText, ffEval[string](t, ff, `document.getElementById('plan-text').textContent`))
		assert.Equal(t, whole, ffEval[string](t, ff, `document.getElementById('run-log').textContent`))
		assert.Contains(t, ffEval[string](t, ff, `document.getElementById('run-outputs').textContent`), "(sensitive value withheld)")
		assert.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$`, ffEval[string](t, ff, `document.querySelector('time').title`))
		ff.screenshot(t, shots, "9-firefox-run-applied")
		ff.navigate(t, base(adminURL)+"#/t/"+tenant+"/runs/"+waiting)
		ff.waitJS(t, wait, `document.getElementById('approve')`)
		require.NoError(t, ff.run(context.Background(), axeSource(t)))
		var vs []axeViolation
		require.NoError(t, ff.eval(context.Background(), axeRun, &vs))
		assert.Empty(t, serious(vs), "axe-core in Firefox")
		t.Logf("Firefox part took %s", time.Since(started).Round(time.Millisecond))
	})
	wg.Wait()
	t.Logf("the setup's plans and the scenario (its parts at once) took %s", time.Since(started).Round(time.Millisecond))
}

// policed are planned runs that failed a policy: strict's mandatory, and
// lenient's mandatory-with-override.
type policed struct{ strict, lenient string }

// policedWorkspaces puts a policy that denies every resource on each of
// two workspaces, strict and lenient, and returns a small configuration
// for their plans.
func policedWorkspaces(t *testing.T, p *platform.Platform) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(`resource "terraform_data" "x" { input = "x" }`+"\n"), 0o644))
	for ws, enforcement := range map[string]string{"strict": "mandatory", "lenient": "mandatory-with-override"} {
		p.Expect(t, 0, tenant, "workspaces", "create", ws)
		rego := filepath.Join(t.TempDir(), ws+".rego")
		require.NoError(t, os.WriteFile(rego, []byte("package "+ws+"\n\ndeny contains msg if {\n\tsome rc in input.plan.resource_changes\n\tmsg := sprintf(\"%s may not be created here\", [rc.address])\n}\n"), 0o644))
		p.Expect(t, 0, tenant, "policies", "put", ws, "-w", ws, "--enforcement", enforcement, "--file", rego)
	}
	return dir
}

// queuedPlan is an `opsbot plan` of dir in a workspace, and the exit code
// it is to end with.
type queuedPlan struct {
	workspace, dir string
	code           int
}

// startPlans runs the plans at once; the returned func waits for them,
// fails the test unless each ended with its code and queued a run, and
// returns the runs in the order of plans.
func startPlans(p *platform.Platform, plans []queuedPlan) func(t *testing.T) []string {
	type outcome struct {
		r   platform.Result
		err error
	}
	done := make([]chan outcome, len(plans))
	for i, pl := range plans {
		done[i] = make(chan outcome, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			r, err := p.Opsbot(ctx, tenant, nil, "plan", "--workspace", pl.workspace, "--dir", pl.dir)
			done[i] <- outcome{r, err}
		}()
	}
	return func(t *testing.T) []string {
		t.Helper()
		runs := make([]string, len(plans))
		for i, pl := range plans {
			o := <-done[i]
			require.NoError(t, o.err)
			require.Equal(t, pl.code, o.r.Code, "opsbot plan --workspace %s: %s", pl.workspace, o.r)
			runs[i] = platform.MustQueuedRun(t, o.r)
		}
		return runs
	}
}

// dropLogs makes the tab's log requests fail as a reset connection would,
// until the returned func is called.
func dropLogs(t *testing.T, ctx context.Context) (restore func()) {
	t.Helper()
	ectx, cancel := context.WithCancel(ctx)
	paused := chromedp.Events(ectx, fetch.RequestPaused)
	_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/logs?*"}}})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonConnectionReset})
		}
	}()
	return func() {
		_, err := chromedp.Call(ctx, fetch.Disable, cdp.Empty{})
		require.NoError(t, err)
		cancel()
		<-done
	}
}

// base is the console's URL without the session fragment.
func base(url string) string { return url[:strings.Index(url, "#")] }
