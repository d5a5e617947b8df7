package opsmcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsclient"
)

// JSON-RPC error codes of this server, in the range JSON-RPC leaves to
// implementations (-32000 to -32099) and clear of the ones MCP defines.
const (
	// CodeAPIError: the ops API refused the request; the error's data is
	// an APIErrorData with the API's code and message.
	CodeAPIError = -32050
	// CodeUnreachable: the ops server could not be reached (relay,
	// network, no listener, timeout).
	CodeUnreachable = -32051
)

// APIErrorData is the data of a CodeAPIError error: the ops API's error
// body (opsapitypes.ErrorDetail) with its HTTP status.
type APIErrorData struct {
	Status    int    `json:"status"`
	Code      string `json:"code,omitempty"`
	Message   string `json:"message,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Reason, MissingRole and Tenant explain a 403: missing_role (the
	// principal lacks MissingRole in Tenant), admin_required or four_eyes.
	Reason      string `json:"reason,omitempty"`
	MissingRole string `json:"missing_role,omitempty"`
	Tenant      string `json:"tenant,omitempty"`
}

// apiErr turns an ops API or transport failure into a protocol error
// carrying the API's code and message; other errors (bad arguments, a
// directory that cannot be packed) stay tool errors the assistant can
// correct.
func (s *Server) apiErr(err error) error {
	if err == nil {
		return nil
	}
	var ae *opsclient.APIError
	if errors.As(err, &ae) {
		d := APIErrorData{Status: ae.StatusCode, Code: ae.Code, Message: ae.Message, RequestID: ae.RequestID,
			Reason: ae.Reason, MissingRole: ae.MissingRole, Tenant: ae.Tenant}
		data, _ := json.Marshal(d)
		return &jsonrpc.Error{Code: CodeAPIError, Message: explain(err, ae), Data: data}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	msg := "cannot reach the ops server: " + err.Error()
	if s.cfg.Unreachable != nil {
		msg = s.cfg.Unreachable(err)
	}
	return &jsonrpc.Error{Code: CodeUnreachable, Message: msg}
}

// explain says what a refusal means for the operator: which role is
// missing where, rather than a bare 403.
func explain(err error, ae *opsclient.APIError) string {
	msg := err.Error()
	switch {
	case ae.StatusCode == 401:
		return msg + "; the ops server refused the operator credential (check api_key or the Entra login of this opsbot profile)"
	case ae.Reason == "missing_role" && ae.MissingRole != "":
		return fmt.Sprintf("%s; the credential lacks the %s role in tenant %s: a platform administrator grants it (opsbot keys create --role %s=%s), or someone who holds it does this", msg, ae.MissingRole, ae.Tenant, ae.Tenant, ae.MissingRole)
	case ae.Reason == "admin_required":
		return msg + "; only a platform administrator may do this"
	case ae.Reason == "four_eyes":
		return msg + "; the workspace requires four eyes: someone other than whoever queued the run must approve it"
	case ae.Code == opsapitypes.CodeNotFound:
		return msg + "; check the tenant, workspace or run id (list_workspaces, list_runs)"
	}
	return msg
}
