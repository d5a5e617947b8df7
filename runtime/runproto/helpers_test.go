package runproto

import (
	"crypto/ecdsa"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

func newEncrypterFor(t *testing.T, k *ecdsa.PrivateKey) (string, error) {
	t.Helper()
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.ECDH_ES, Key: &k.PublicKey}, nil)
	if err != nil {
		return "", err
	}
	obj, err := enc.Encrypt([]byte(`{}`))
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}
