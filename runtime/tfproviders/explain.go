package tfproviders

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/botehq/platform/runtime/tfdiag"
)

// installFailures are the summaries of init's provider installation
// errors (Terraform's internal/command/init.go).
var installFailures = []string{
	"Failed to query available provider packages",
	"Failed to install provider",
	"Failed to install provider from shared cache",
	"Failed to resolve provider packages",
	"Required plugins are not installed",
}

// providerIn finds the provider address in such an error's detail
// ("... versions for provider example.com/ns/name: ...", "Error while
// installing hashicorp/azurerm v4.1.0: ...").
var providerIn = regexp.MustCompile(`(?:for provider|installing|provider) ((?:[a-zA-Z0-9.-]+/)?[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+)`)

// Explain finds init's provider installation errors among diags and
// returns one error diagnostic naming the providers that could not be
// installed and the sources that were tried; ok is false when there is
// none.
func Explain(diags []tfdiag.Diagnostic, s Sources) (d tfdiag.Diagnostic, ok bool) {
	var providers, said []string
	mismatch := false
	for _, g := range diags {
		if g.Severity != "error" || !slices.Contains(installFailures, g.Summary) {
			continue
		}
		if m := providerIn.FindStringSubmatch(g.Detail); m != nil && !slices.Contains(providers, m[1]) {
			providers = append(providers, m[1])
			said = append(said, firstLine(g.Detail))
			mismatch = mismatch || strings.Contains(g.Detail, "checksums previously recorded in the dependency lock file")
		}
	}
	if len(providers) == 0 {
		return d, false
	}
	what := "Provider " + providers[0] + " is"
	if len(providers) > 1 {
		what = "Providers " + strings.Join(providers, ", ") + " are"
	}
	detail := fmt.Sprintf("terraform init could not install it from this agent's provider sources: %s.", s.Tried())
	if e := said1(said, unreachableErrors); e != "" {
		// The source may have it: it did not answer.
		return tfdiag.Diagnostic{Severity: "error", Summary: fmt.Sprintf("%s not installed: a provider source could not be reached (%s)", what, e),
			Detail: detail + " Check that the agent reaches the mirror (its address, the network, a certificate the agent trusts: SSL_CERT_FILE), then run the plan again.\nTerraform said: " + strings.Join(said, "\n")}, true
	}
	if local := said1(said, localErrors); local != "" {
		// The source had it; the agent could not write it.
		return tfdiag.Diagnostic{Severity: "error", Summary: fmt.Sprintf("%s not installed: the agent could not write it (%s)", what, local),
			Detail: "terraform init fetched the provider but could not write it into the agent's plugin cache or the run's working directory. Free space on the agent's work directory (a smaller --plugin-cache-max-size bounds the cache) or make it writable, then run the plan again.\nTerraform said: " + strings.Join(said, "\n")}, true
	}
	if mismatch {
		// The source has the version, but not a build the lock file records.
		return tfdiag.Diagnostic{Severity: "error", Summary: fmt.Sprintf("%s not installed: the agent's provider sources have a build the configuration's lock file does not record", what),
			Detail: detail + " Rebuild the mirror from the configuration's lock file (make provider-mirror), or, if the mirror is right, record its checksums in the lock file (terraform providers lock).\nTerraform said: " + strings.Join(said, "\n")}, true
	}
	if s.NoDirect {
		detail += " Put the provider into a mirror the agent uses (docs/agent.md, \"Providers without internet\"), or give the workspace a mirror that has it."
	}
	detail += "\nTerraform said: " + strings.Join(said, "\n")
	return tfdiag.Diagnostic{Severity: "error", Summary: fmt.Sprintf("%s not available from the agent's provider sources", what), Detail: detail}, true
}

// localErrors are the errors of writing a provider on the agent, as the
// operating system says them.
var localErrors = []string{"no space left on device", "disk quota exceeded", "read-only file system", "text file busy"}

// unreachableErrors are the errors of a source that did not answer.
var unreachableErrors = []string{"connection refused", "no such host", "i/o timeout", "network is unreachable", "no route to host", "certificate", "the request failed after"}

// said1 returns the first of errs that one of said says.
func said1(said, errs []string) string {
	for _, s := range said {
		for _, e := range errs {
			if strings.Contains(s, e) {
				return e
			}
		}
	}
	return ""
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
