package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/relay"
)

// runOutcome is returned by commands that followed a run to an end state
// that is not plain success; explain maps it to its exit code.
type runOutcome struct {
	code int
	msg  string
}

func (o runOutcome) Error() string { return o.msg }

// usageError marks errors in flags or configuration.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// commandLineError marks an unknown command or flag, or a bad flag value.
type commandLineError struct{ err error }

func (e commandLineError) Error() string { return e.err.Error() }
func (e commandLineError) Unwrap() error { return e.err }

// target says where the CLI was trying to go, for messages.
type target struct {
	host, hybridConnection string
	local                  bool
}

// explain turns an error into an exit code and a message that says what
// happened and what to check, followed by the underlying error.
func explain(err error, t target) (int, string) {
	var ue usageError
	var ae *opsclient.APIError
	var ro runOutcome
	var cle commandLineError
	switch {
	case errors.As(err, &cle):
		return exitcode.Usage, err.Error()
	case errors.As(err, &ro):
		return ro.code, ro.msg
	case errors.As(err, &ue):
		return exitcode.Usage, fmt.Sprintf("configuration error: %v", err)
	case errors.Is(err, opsclient.ErrNoToken):
		return exitcode.APIAuth, fmt.Sprintf("cannot get an operator token for api_scope with the Entra login: run az login, or check the AZURE_* environment or managed identity\n  cause: %v", err)
	case errors.Is(err, opsclient.ErrUnauthorized):
		return exitcode.APIAuth, fmt.Sprintf("the ops server refused the operator credential: check api_key (OPSBOT_API_KEY); the key may be wrong, disabled, or an expired token\n  cause: %v", err)
	case errors.Is(err, opsclient.ErrForbidden):
		return exitcode.APIAuth, forbiddenMessage(err)
	case errors.Is(err, relay.ErrNoListener):
		return exitcode.NoListener, fmt.Sprintf("no ops server is listening on hybrid connection %q at %s: the ops server is down or not connected to the relay\n  cause: %v", t.hybridConnection, t.host, err)
	case errors.Is(err, relay.ErrUnauthorized):
		return exitcode.RelayAuth, fmt.Sprintf("the relay at %s refused the credentials: check key_name and key (the rule needs the Send right) or, with relay_auth entra, that you have the Azure Relay Sender role\n  cause: %v", t.host, err)
	case errors.Is(err, relay.ErrNotFound):
		return exitcode.NotFound, fmt.Sprintf("hybrid connection %q does not exist in namespace %s: check hybrid_connection and namespace\n  cause: %v", t.hybridConnection, t.host, err)
	case errors.Is(err, relay.ErrUnreachable):
		return exitcode.RelayUnreachable, fmt.Sprintf("cannot reach the relay at %s: check the namespace (and cloud), DNS, and that outbound HTTPS 443 is allowed through any proxy\n  cause: %v", t.host, err)
	case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
		return exitcode.Unknown, fmt.Sprintf("%s: check the name and --tenant (opsbot workspaces list, opsbot runs list)\n  cause: %v", ae.Message, err)
	case errors.Is(err, relay.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return exitcode.Timeout, fmt.Sprintf("the ops server did not answer in time (see --timeout)\n  cause: %v", err)
	case t.local && !errors.As(err, &ae):
		return exitcode.RelayUnreachable, fmt.Sprintf("cannot reach the ops server at %s (local_url): is it running with --local-listen?\n  cause: %v", t.host, err)
	}
	return exitcode.Error, err.Error()
}

// forbiddenMessage explains a 403 by its reason.
func forbiddenMessage(err error) string {
	var ae *opsclient.APIError
	if !errors.As(err, &ae) {
		ae = &opsclient.APIError{}
	}
	var what string
	switch ae.Reason {
	case "missing_role":
		what = fmt.Sprintf("the credential lacks the %s role in tenant %s: a platform administrator grants it (opsbot keys create --tenant %s=%s, or the Entra group or app role mapped to it)", ae.MissingRole, ae.Tenant, ae.Tenant, ae.MissingRole)
	case "admin_required":
		what = "only a platform administrator may do this"
	case "four_eyes":
		what = "the workspace requires four-eyes approval: someone other than whoever queued the run must approve it"
	default:
		what = "the ops server accepted the credential but it lacks the required role"
	}
	return fmt.Sprintf("%s\n  cause: %v", what, err)
}
