// Package payload compresses and encrypts message bodies end to end, so
// that the gateway (worker, bus, Storage Queues, Blob storage) carries and
// stores only ciphertext.
//
// Encode runs on the sender, before the body leaves the client library;
// Decode on the receiver, after a claim-checked body was fetched. What was
// done is said by two protocol headers (package envelope):
// HeaderContentEncoding "gzip" when the body was compressed, and
// HeaderEncryption SuiteHPKE when it was sealed. Compression comes first
// (ciphertext does not compress).
//
// Encryption is HPKE (RFC 9180, Go's crypto/hpke) in base mode with
// DHKEM(P-256, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM, to the
// recipient's P-256 public key: a connector's registered key (the one its
// tokens are signed with) or a cloud service's key. The HPKE info binds
// the ciphertext to the message id and the recipient, so a body cannot be
// moved to another message or read as addressed to someone else. The
// encrypted body is the encapsulated key (65 bytes) followed by the
// AES-GCM ciphertext (16 bytes of tag).
package payload

import (
	"bytes"
	"compress/gzip"
	"crypto/ecdh"
	"crypto/hpke"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/botehq/platform/runtime/envelope"
)

// SuiteHPKE names the one encryption suite (the HeaderEncryption value).
const SuiteHPKE = envelope.EncryptionHPKE

// EncodingGzip is the one compression (the HeaderContentEncoding value).
const EncodingGzip = envelope.EncodingGzip

// Options say what Encode does.
type Options struct {
	// CompressAbove compresses bodies longer than this many bytes (0: never).
	// Compression is kept only when it makes the body smaller.
	CompressAbove int
	// To encrypts the body to this public key (nil: not encrypted).
	To *ecdh.PublicKey
	// MessageID and Recipient bind the ciphertext (required with To).
	MessageID, Recipient string
}

// Encoded is a body as it travels and the protocol headers that say how
// to read it back (empty values: not applied).
type Encoded struct {
	Body                        []byte
	ContentEncoding, Encryption string
}

// Encode compresses and encrypts body as opts say.
func Encode(body []byte, opts Options) (Encoded, error) {
	out := Encoded{Body: body}
	if opts.CompressAbove > 0 && len(body) > opts.CompressAbove {
		z, err := compress(body)
		if err != nil {
			return Encoded{}, err
		}
		if len(z) < len(body) {
			out.Body, out.ContentEncoding = z, EncodingGzip
		}
	}
	if opts.To == nil {
		return out, nil
	}
	pk, err := hpke.NewDHKEMPublicKey(opts.To)
	if err != nil {
		return Encoded{}, fmt.Errorf("cannot encrypt: %w", err)
	}
	sealed, err := hpke.Seal(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), info(opts.MessageID, opts.Recipient), out.Body)
	if err != nil {
		return Encoded{}, fmt.Errorf("cannot encrypt: %w", err)
	}
	out.Body, out.Encryption = sealed, SuiteHPKE
	return out, nil
}

// ErrNoKey reports an encrypted body and no key to open it.
var ErrNoKey = errors.New("body is encrypted and no decryption key is configured")

// Decode reverses Encode: it opens an encrypted body with key (the
// recipient's) and decompresses a compressed one, refusing to inflate past
// maxBytes. Any failure is final: the same bytes fail the same way.
func Decode(e Encoded, key *ecdh.PrivateKey, messageID, recipient string, maxBytes int64) ([]byte, error) {
	body := e.Body
	switch e.Encryption {
	case "":
	case SuiteHPKE:
		if key == nil {
			return nil, ErrNoKey
		}
		sk, err := hpke.NewDHKEMPrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("cannot decrypt: %w", err)
		}
		if body, err = hpke.Open(sk, hpke.HKDFSHA256(), hpke.AES256GCM(), info(messageID, recipient), body); err != nil {
			return nil, fmt.Errorf("cannot decrypt (not sealed to this key, or altered, or moved from another message): %w", err)
		}
	default:
		return nil, fmt.Errorf("cannot decrypt: unknown suite %q", e.Encryption)
	}
	switch e.ContentEncoding {
	case "":
		return body, nil
	case EncodingGzip:
		return decompress(body, maxBytes)
	}
	return nil, fmt.Errorf("cannot decode: unknown content encoding %q", e.ContentEncoding)
}

func info(messageID, recipient string) []byte {
	return []byte("bote payload v1\x00" + messageID + "\x00" + recipient)
}

// gzipWriters are reused: a gzip.Writer holds some 800 KB of state,
// whose allocation otherwise dominates compressing a small body.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

func compress(body []byte) ([]byte, error) {
	var b bytes.Buffer
	w := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(w)
	w.Reset(&b)
	if _, err := w.Write(body); err != nil {
		return nil, fmt.Errorf("cannot compress: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("cannot compress: %w", err)
	}
	return b.Bytes(), nil
}

// decompress inflates body, refusing more than maxBytes (a bomb).
func decompress(body []byte, maxBytes int64) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot decompress: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot decompress: %w", err)
	}
	if int64(len(out)) > maxBytes {
		return nil, fmt.Errorf("cannot decompress: the body inflates past %d bytes", maxBytes)
	}
	return out, nil
}

// CloudRecipient is the recipient a body sealed to a cloud service is
// bound to: connectors send to the one cloud queue, not to a service by
// name.
const CloudRecipient = "cloud"

// DecodeEnvelope is Decode of env's body as its protocol headers say,
// for the recipient "tenant/connector" or CloudRecipient.
func DecodeEnvelope(env *envelope.Envelope, key *ecdh.PrivateKey, recipient string, maxBytes int64) ([]byte, error) {
	return Decode(Encoded{Body: env.Body, ContentEncoding: env.Headers[envelope.HeaderContentEncoding], Encryption: env.Headers[envelope.HeaderEncryption]},
		key, env.ID, recipient, maxBytes)
}
