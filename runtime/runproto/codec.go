package runproto

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/botehq/platform/runtime/tfresult"
)

// Errors Decode and Encode return, wrapped in a *DecodeError.
var (
	ErrUnknownType = errors.New("unknown message type")
	ErrMalformed   = errors.New("malformed message")
	ErrTooLarge    = errors.New("message too large")
)

// DecodeError says why a body is not a valid message.
type DecodeError struct {
	Type  Type   // "" when the type itself could not be read
	Field string // the bad field, if one
	Err   error  // ErrUnknownType, ErrMalformed or ErrTooLarge
	Msg   string
}

func (e *DecodeError) Error() string {
	s := "runproto: "
	if e.Type != "" {
		s += string(e.Type) + ": "
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Msg
}

// Unwrap returns the sentinel.
func (e *DecodeError) Unwrap() error { return e.Err }

func malformed(t Type, field, format string, args ...any) error {
	return &DecodeError{Type: t, Field: field, Err: ErrMalformed, Msg: fmt.Sprintf(format, args...)}
}

// Encode validates m and returns its JSON body with the "type" field.
func Encode(m Message) ([]byte, error) {
	if err := Validate(m); err != nil {
		return nil, err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %s: %w", TypeOf(m), err)
	}
	// Prefix the type so it is the first field: {"type":"...", ...}.
	t, _ := json.Marshal(string(TypeOf(m)))
	out := make([]byte, 0, len(body)+len(t)+9)
	out = append(out, `{"type":`...)
	out = append(out, t...)
	if len(body) > 2 {
		out = append(out, ',')
	}
	out = append(out, body[1:]...)
	if len(out) > MaxMessageBytes {
		return nil, &DecodeError{Type: TypeOf(m), Err: ErrTooLarge, Msg: fmt.Sprintf("%d bytes, the limit is %d", len(out), MaxMessageBytes)}
	}
	return out, nil
}

// Decode parses and validates a body. Unknown fields are ignored so newer
// agents and servers can add fields; an unknown type is an error.
func Decode(body []byte) (Message, error) {
	if len(body) > MaxMessageBytes {
		return nil, &DecodeError{Err: ErrTooLarge, Msg: fmt.Sprintf("%d bytes, the limit is %d", len(body), MaxMessageBytes)}
	}
	var head struct {
		Type Type `json:"type"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return nil, &DecodeError{Err: ErrMalformed, Msg: "not a JSON object: " + err.Error()}
	}
	var m Message
	switch head.Type {
	case TypeAssign:
		m = &Assign{}
	case TypeCancel:
		m = &Cancel{}
	case TypeHeartbeat:
		m = &Heartbeat{}
	case TypeStarted:
		m = &Started{}
	case TypeLogs:
		m = &Logs{}
	case TypeResult:
		m = &Result{LastSeq: -1}
	case TypeRenew:
		m = &Renew{}
	case TypeLinks:
		m = &Links{}
	case TypeProceed:
		m = &Proceed{}
	case "":
		return nil, &DecodeError{Field: "type", Err: ErrMalformed, Msg: "missing"}
	default:
		return nil, &DecodeError{Type: head.Type, Err: ErrUnknownType, Msg: "unknown type"}
	}
	if err := json.Unmarshal(body, m); err != nil {
		return nil, &DecodeError{Type: head.Type, Err: ErrMalformed, Msg: err.Error()}
	}
	if err := Validate(m); err != nil {
		return nil, err
	}
	return m, nil
}

// Validate checks the fields m's type requires.
func Validate(m Message) error {
	// size: one case per message type, each listing that type's required fields.
	t := TypeOf(m)
	req := func(field, v string) error {
		if v == "" {
			return malformed(t, field, "missing")
		}
		return nil
	}
	switch m := m.(type) {
	case *Assign:
		if err := firstErr(req("runId", m.RunID), req("tenant", m.Tenant), req("workspace", m.Workspace), req("claimToken", m.ClaimToken)); err != nil {
			return err
		}
		switch m.Op {
		case tfresult.Plan, tfresult.PlanDestroy:
			if err := firstErr(req("bundleURL", m.BundleURL), req("uploadURL", m.UploadURL)); err != nil {
				return err
			}
		case tfresult.Apply:
			if err := req("workdirURL", m.WorkdirURL); err != nil {
				return err
			}
			if !m.Plan.Empty() || len(m.Vars) > 0 {
				return malformed(t, "plan", "an apply uses its saved plan: no plan options or variables")
			}
		default:
			return malformed(t, "op", "%q is not plan, destroy or apply", m.Op)
		}
		if m.Timeout < 0 {
			return malformed(t, "timeout", "negative")
		}
		if err := m.Plan.Validate(m.Op == tfresult.PlanDestroy); err != nil {
			return malformed(t, "plan", "%v", err)
		}
	case *Cancel:
		return req("runId", m.RunID)
	case *Proceed:
		return firstErr(req("runId", m.RunID), req("claimToken", m.ClaimToken))
	case *Heartbeat:
		if m.Capacity < 1 {
			return malformed(t, "capacity", "%d must be at least 1", m.Capacity)
		}
	case *Started:
		if err := firstErr(req("runId", m.RunID), req("claimToken", m.ClaimToken)); err != nil {
			return err
		}
		return checkPhase(t, m.Phase)
	case *Logs:
		if err := firstErr(req("runId", m.RunID), req("claimToken", m.ClaimToken)); err != nil {
			return err
		}
		if m.Seq < 0 {
			return malformed(t, "seq", "%d is negative", m.Seq)
		}
		if m.Offset != nil && *m.Offset < 0 {
			return malformed(t, "offset", "%d is negative", *m.Offset)
		}
	case *Renew:
		return firstErr(req("runId", m.RunID), req("claimToken", m.ClaimToken))
	case *Links:
		if err := firstErr(req("runId", m.RunID), req("claimToken", m.ClaimToken)); err != nil {
			return err
		}
		if m.UploadURL == "" && m.StateUploadURL == "" {
			return malformed(t, "uploadURL", "missing (and no stateUploadURL)")
		}
		if m.ExpiresAt.IsZero() {
			return malformed(t, "expiresAt", "missing")
		}
	case *Result:
		if err := firstErr(req("runId", m.RunID), req("claimToken", m.ClaimToken)); err != nil {
			return err
		}
		if err := checkPhase(t, m.Phase); err != nil {
			return err
		}
		switch m.Outcome {
		case Succeeded, Failed, Cancelled, Refused:
		default:
			return malformed(t, "outcome", "%q is not succeeded, failed, cancelled or refused", m.Outcome)
		}
		if m.Draining && m.Outcome != Refused {
			return malformed(t, "draining", "only a refusal says the agent is draining")
		}
		if m.WorkdirUploaded && (len(m.WorkdirSHA256) != 64 || m.WorkdirSize <= 0) {
			return malformed(t, "workdirSha256", "an uploaded working directory needs its SHA-256 and size")
		}
		if m.StateUploaded && (len(m.StateSHA256) != 64 || m.StateSize <= 0) {
			return malformed(t, "stateSha256", "an uploaded state needs its SHA-256 and size")
		}
		if m.StateUploaded && m.Phase != PhaseApply {
			return malformed(t, "stateUploaded", "only an apply uploads state")
		}
		if len(m.Plan) > 0 {
			switch {
			case m.Phase != PhasePlan:
				return malformed(t, "plan", "only a plan phase reports a plan")
			case len(m.Plan) > MaxPlanBytes:
				return malformed(t, "plan", "%d bytes, the limit is %d", len(m.Plan), MaxPlanBytes)
			case !json.Valid(m.Plan) || m.Plan[0] != '{':
				return malformed(t, "plan", "not a JSON object")
			}
		}
	}
	return nil
}

func checkPhase(t Type, p Phase) error {
	if p != PhasePlan && p != PhaseApply {
		return malformed(t, "phase", "%q is not plan or apply", p)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
