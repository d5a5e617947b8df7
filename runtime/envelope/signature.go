package envelope

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// MaxSignatureLength bounds Envelope.Signature (an ES256 signature is 86
// characters in base64url).
const MaxSignatureLength = 128

// ErrBadSignature reports a missing or invalid envelope signature.
var ErrBadSignature = errors.New("bad envelope signature")

// signed is what a sender signs: every field that routes the message or
// says who sent it, and the body by its SHA-256, so that a body the bus
// moved to Blob storage (claim check) verifies as the inline body it was.
type signed struct {
	Purpose       string            `json:"purpose"`
	ID            string            `json:"id"`
	CorrelationID string            `json:"correlationId"`
	ReplyTo       string            `json:"replyTo"`
	Kind          Kind              `json:"kind"`
	Tenant        string            `json:"tenant"`
	Connector     string            `json:"connector"`
	Topic         string            `json:"topic"`
	From          *Identity         `json:"from"`
	Headers       map[string]string `json:"headers"`
	ContentType   string            `json:"contentType"`
	BodySHA256    string            `json:"bodySha256"`
	CreatedAt     time.Time         `json:"createdAt"`
}

// signingDigest is the SHA-256 of the canonical JSON of the signed fields.
func (e *Envelope) signingDigest() []byte {
	body := e.Body
	sum := sha256.Sum256(body)
	bodyHash := hex.EncodeToString(sum[:])
	if len(body) == 0 && e.Claim != nil {
		bodyHash = strings.ToLower(e.Claim.SHA256) // a resolved body hashes to lowercase hex
	}
	raw, _ := json.Marshal(signed{ // cannot fail: strings, a map of strings and a time
		Purpose: "bote envelope v1", ID: e.ID, CorrelationID: e.CorrelationID, ReplyTo: e.ReplyTo,
		Kind: e.Kind, Tenant: e.Tenant, Connector: e.Connector, Topic: e.Topic, From: e.From,
		Headers: e.Headers, ContentType: e.ContentType, BodySHA256: bodyHash, CreatedAt: e.CreatedAt.UTC(),
	})
	d := sha256.Sum256(raw)
	return d[:]
}

// Sign sets e.Signature: ES256 (P-256) over the routing and identity fields
// and the body's SHA-256, in base64url (r || s). A cloud service signs what
// it sends when the gateway holds its public key, and the gateway what it
// stamps a connector's identity on when cloud services hold its key, so
// that no other holder of send rights on the bus can send in their name.
func (e *Envelope) Sign(key *ecdsa.PrivateKey) error {
	if key == nil || key.Curve.Params().Name != "P-256" {
		return errors.New("cannot sign envelope: the key must be an EC P-256 private key")
	}
	r, s, err := ecdsa.Sign(rand.Reader, key, e.signingDigest())
	if err != nil {
		return fmt.Errorf("cannot sign envelope %q: %w", e.ID, err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	e.Signature = base64.RawURLEncoding.EncodeToString(sig)
	return nil
}

// VerifySignature checks e.Signature against pub; the error wraps
// ErrBadSignature.
func (e *Envelope) VerifySignature(pub *ecdsa.PublicKey) error {
	if e.Signature == "" {
		return fmt.Errorf("%w: the envelope is not signed", ErrBadSignature)
	}
	sig, err := base64.RawURLEncoding.DecodeString(e.Signature)
	if err != nil || len(sig) != 64 {
		return fmt.Errorf("%w: not a base64url ES256 signature", ErrBadSignature)
	}
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if pub == nil || !ecdsa.Verify(pub, e.signingDigest(), r, s) {
		return fmt.Errorf("%w: it does not verify with the sender's key", ErrBadSignature)
	}
	return nil
}
