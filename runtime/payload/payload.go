// Package payload compresses and encrypts message bodies end to end, so
// that the gateway (its process, bus, Storage Queues, Blob storage) carries and
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
	// Compression is kept only when it makes the body smaller and the
	// body is within MaxInflated of the result (else a receiver refuses it).
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
		if len(z) < len(body) && int64(len(body)) <= MaxInflated(len(z), int64(len(body))) {
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

// MaxRatio and MinInflated bound decompression (MaxInflated): gzip
// inflates up to ~1030:1 (100 MiB of zeros is ~100 KB), so without a
// ratio a connector could make a service hold 100 MiB per small message.
// Text and JSON compress some 3-20:1; Encode sends a body that compresses
// better than MaxRatio as is, so what it compressed always decodes.
const (
	MaxRatio    = 100
	MinInflated = 64 << 10 // any ratio up to 64 KiB
)

// MaxInflated is how far a compressed body of n bytes may inflate:
// MaxRatio times n plus MinInflated, and never past maxBytes (the largest
// body the sender could have sent uncompressed).
func MaxInflated(n int, maxBytes int64) int64 {
	return min(int64(n)*MaxRatio+MinInflated, maxBytes)
}

// decompress inflates body, streaming it and stopping past MaxInflated (a
// bomb): it never allocates much more than twice that.
func decompress(body []byte, maxBytes int64) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot decompress: %w", err)
	}
	limit := MaxInflated(len(body), maxBytes)
	out, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot decompress: %w", err)
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("cannot decompress: the body inflates past %d bytes (%d compressed bytes, at most %d:1 and %d bytes)", limit, len(body), MaxRatio, maxBytes)
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
