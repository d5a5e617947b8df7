package runproto

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/tfresult"
)

func TestRoundTrip(t *testing.T) {
	msgs := []Message{
		&Assign{RunID: "run-1", Tenant: "contoso", Workspace: "prod", Op: tfresult.Plan, ClaimToken: "2",
			BundleURL: "https://b/x?sig", BundleSHA256: strings.Repeat("a", 64), BundleSize: 10, UploadURL: "https://b/y?sig", Secrets: "jwe", Timeout: Duration(time.Hour)},
		&Assign{RunID: "run-1", Tenant: "contoso", Workspace: "prod", Op: tfresult.Apply, ClaimToken: "5", WorkdirURL: "https://b/w?sig",
			StateUploadURL: "https://b/s?sig", UploadExpiresAt: time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)},
		&Cancel{RunID: "run-1", ClaimToken: "2", Reason: "cancelled by bob"},
		&Heartbeat{Capacity: 2, Running: []string{"run-1"}, Labels: map[string]string{"env": "prod"}, Version: "1.0"},
		&Started{RunID: "run-1", ClaimToken: "2", Phase: PhasePlan},
		&Logs{RunID: "run-1", ClaimToken: "2", Seq: 3, Lines: []string{"a", "b"}},
		&Logs{RunID: "run-1", ClaimToken: "2", Seq: 4, Lines: []string{"c"}, Offset: ptr(int64(4))},
		&Result{RunID: "run-1", ClaimToken: "2", Phase: PhasePlan, Outcome: Succeeded, Result: &tfresult.Result{HasChanges: true},
			WorkdirUploaded: true, WorkdirSHA256: strings.Repeat("b", 64), WorkdirSize: 42, LastSeq: 3},
		&Result{RunID: "run-1", ClaimToken: "5", Phase: PhaseApply, Outcome: Failed,
			StateUploaded: true, StateSHA256: strings.Repeat("c", 64), StateSize: 7, LastSeq: -1},
		&Renew{RunID: "run-1", ClaimToken: "5"},
		&Links{RunID: "run-1", ClaimToken: "5", StateUploadURL: "https://b/s?sig2", ExpiresAt: time.Date(2026, 12, 6, 7, 5, 0, 0, time.UTC)},
		&Result{RunID: "run-1", ClaimToken: "2", Phase: PhaseApply, Outcome: Refused, Reason: "shutting down", Draining: true, LastSeq: -1},
		&Heartbeat{Capacity: 1, Running: []string{}, Draining: true},
		&Proceed{RunID: "run-1", ClaimToken: "2"},
	}
	for _, m := range msgs {
		t.Run(string(TypeOf(m)), func(t *testing.T) {
			b, err := Encode(m)
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(string(b), `{"type":"`+string(TypeOf(m))+`",`), string(b))
			got, err := Decode(b)
			require.NoError(t, err)
			assert.Equal(t, m, got)
		})
	}
}

func TestResultWithoutLogsDefaultsLastSeq(t *testing.T) {
	m, err := Decode([]byte(`{"type":"run.result","runId":"r","claimToken":"2","phase":"apply","outcome":"failed"}`))
	require.NoError(t, err)
	assert.Equal(t, int64(-1), m.(*Result).LastSeq)
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, body string
		want       error
		field      string
	}{
		{"not json", `nope`, ErrMalformed, ""},
		{"no type", `{"runId":"r"}`, ErrMalformed, "type"},
		{"unknown type", `{"type":"run.explode"}`, ErrUnknownType, ""},
		{"wrong field type", `{"type":"run.logs","runId":"r","claimToken":"1","seq":"x"}`, ErrMalformed, ""},
		{"assign without token", `{"type":"run.assign","runId":"r","tenant":"t","workspace":"w","op":"plan","bundleURL":"u","uploadURL":"u"}`, ErrMalformed, "claimToken"},
		{"assign plan without bundle", `{"type":"run.assign","runId":"r","tenant":"t","workspace":"w","op":"plan","claimToken":"1","uploadURL":"u"}`, ErrMalformed, "bundleURL"},
		{"assign plan without upload", `{"type":"run.assign","runId":"r","tenant":"t","workspace":"w","op":"destroy","claimToken":"1","bundleURL":"u"}`, ErrMalformed, "uploadURL"},
		{"assign apply without workdir", `{"type":"run.assign","runId":"r","tenant":"t","workspace":"w","op":"apply","claimToken":"1"}`, ErrMalformed, "workdirURL"},
		{"assign bad op", `{"type":"run.assign","runId":"r","tenant":"t","workspace":"w","op":"import","claimToken":"1"}`, ErrMalformed, "op"},
		{"assign bad timeout", `{"type":"run.assign","runId":"r","tenant":"t","workspace":"w","op":"apply","claimToken":"1","workdirURL":"u","timeout":"soon"}`, ErrMalformed, ""},
		{"cancel without run", `{"type":"run.cancel"}`, ErrMalformed, "runId"},
		{"heartbeat without capacity", `{"type":"agent.heartbeat","running":[]}`, ErrMalformed, "capacity"},
		{"started bad phase", `{"type":"run.started","runId":"r","claimToken":"1","phase":"init"}`, ErrMalformed, "phase"},
		{"logs negative seq", `{"type":"run.logs","runId":"r","claimToken":"1","seq":-1}`, ErrMalformed, "seq"},
		{"logs negative offset", `{"type":"run.logs","runId":"r","claimToken":"1","seq":0,"offset":-4}`, ErrMalformed, "offset"},
		{"logs without token", `{"type":"run.logs","runId":"r","seq":0}`, ErrMalformed, "claimToken"},
		{"result bad outcome", `{"type":"run.result","runId":"r","claimToken":"1","phase":"plan","outcome":"meh"}`, ErrMalformed, "outcome"},
		{"result upload without hash", `{"type":"run.result","runId":"r","claimToken":"1","phase":"plan","outcome":"succeeded","workdirUploaded":true}`, ErrMalformed, "workdirSha256"},
		{"state upload without hash", `{"type":"run.result","runId":"r","claimToken":"1","phase":"apply","outcome":"failed","stateUploaded":true}`, ErrMalformed, "stateSha256"},
		{"plan uploading state", `{"type":"run.result","runId":"r","claimToken":"1","phase":"plan","outcome":"failed","stateUploaded":true,"stateSize":1,"stateSha256":"` + strings.Repeat("c", 64) + `"}`, ErrMalformed, "stateUploaded"},
		{"renew without token", `{"type":"run.renew","runId":"r"}`, ErrMalformed, "claimToken"},
		{"links without links", `{"type":"run.links","runId":"r","claimToken":"1","expiresAt":"2026-12-06T07:00:00Z"}`, ErrMalformed, "uploadURL"},
		{"links without expiry", `{"type":"run.links","runId":"r","claimToken":"1","uploadURL":"u"}`, ErrMalformed, "expiresAt"},
		{"proceed without token", `{"type":"run.proceed","runId":"r"}`, ErrMalformed, "claimToken"},
		{"draining without refusal", `{"type":"run.result","runId":"r","claimToken":"1","phase":"plan","outcome":"failed","draining":true}`, ErrMalformed, "draining"},
		{"too large", `{"type":"run.logs","x":"` + strings.Repeat("x", MaxMessageBytes) + `"}`, ErrTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.body))
			require.ErrorIs(t, err, tt.want)
			var de *DecodeError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, tt.field, de.Field, err.Error())
		})
	}
}

func TestEncodeValidates(t *testing.T) {
	_, err := Encode(&Started{RunID: "r", Phase: PhasePlan})
	assert.ErrorIs(t, err, ErrMalformed)
	_, err = Encode(&Logs{RunID: "r", ClaimToken: "1", Lines: []string{strings.Repeat("x", MaxMessageBytes)}})
	assert.ErrorIs(t, err, ErrTooLarge)
}

func TestClaimToken(t *testing.T) {
	n, ok := ParseClaimToken(ClaimToken(7))
	assert.True(t, ok)
	assert.Equal(t, 7, n)
	for _, bad := range []string{"", "x", "0", "-3"} {
		_, ok := ParseClaimToken(bad)
		assert.False(t, ok, bad)
	}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func TestSealOpen(t *testing.T) {
	agent, other := newKey(t), newKey(t)
	secrets := Secrets{Env: map[string]string{"ARM_CLIENT_SECRET": "s3cret"}, Vars: map[string]string{"password": "hunter2"}}
	jwe, err := SealSecrets(&agent.PublicKey, secrets)
	require.NoError(t, err)
	assert.NotContains(t, jwe, "s3cret")
	assert.Len(t, strings.Split(jwe, "."), 5, "compact JWE")

	got, err := OpenSecrets(agent, jwe)
	require.NoError(t, err)
	assert.Equal(t, secrets, got)

	_, err = OpenSecrets(other, jwe)
	assert.ErrorIs(t, err, ErrSealed, "another agent's key")

	parts := strings.Split(jwe, ".")
	ct, err := base64.RawURLEncoding.DecodeString(parts[3])
	require.NoError(t, err)
	ct[0] ^= 1
	parts[3] = base64.RawURLEncoding.EncodeToString(ct)
	_, err = OpenSecrets(agent, strings.Join(parts, "."))
	assert.ErrorIs(t, err, ErrSealed, "tampered ciphertext")

	_, err = OpenSecrets(agent, "not.a.jwe")
	assert.ErrorIs(t, err, ErrSealed)
	_, err = Open(nil, jwe)
	assert.ErrorIs(t, err, ErrSealed)
	_, err = Seal(nil, []byte("x"))
	assert.Error(t, err)
}

func TestSealEmpty(t *testing.T) {
	jwe, err := SealSecrets(&newKey(t).PublicKey, Secrets{})
	require.NoError(t, err)
	assert.Empty(t, jwe)
	s, err := OpenSecrets(nil, "")
	require.NoError(t, err)
	assert.True(t, s.Empty())
}

func TestOpenRefusesOtherAlgorithms(t *testing.T) {
	// A JWE made with direct ECDH-ES (no key wrap) is refused.
	k := newKey(t)
	enc, err := newEncrypterFor(t, k)
	require.NoError(t, err)
	_, err = Open(k, enc)
	assert.True(t, errors.Is(err, ErrSealed))
}

func ptr[T any](v T) *T { return &v }

func TestLinesBytesMatchesTheLog(t *testing.T) {
	// artifacts.Lines writes each line with one trailing newline.
	assert.Equal(t, int64(len("a\nbc\n\n")), LinesBytes([]string{"a", "bc\n", ""}))
	assert.Zero(t, LinesBytes(nil))
}

// A plan travels only with a plan phase's result, and only as a JSON object.
func TestResultPlanIsChecked(t *testing.T) {
	_, err := Encode(&Result{RunID: "r", ClaimToken: "1", Phase: PhaseApply, Outcome: Succeeded, Plan: []byte(`{"format_version":"1.2"}`)})
	require.ErrorIs(t, err, ErrMalformed)
	_, err = Encode(&Result{RunID: "r", ClaimToken: "1", Phase: PhasePlan, Outcome: Succeeded, Plan: []byte(`[1]`)})
	require.ErrorIs(t, err, ErrMalformed)
}
