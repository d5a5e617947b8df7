package payload

import (
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkEncode and BenchmarkDecode measure the cost of compression and
// encryption per message size on a JSON-like body (compresses about 10:1):
// `go test ./payload -run '^$' -bench . -benchtime 200x`. Recorded in
// docs/benchmarks.md.
func BenchmarkEncode(b *testing.B) {
	for _, c := range benchCases(b) {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			var out int
			for range b.N {
				e, err := Encode(c.body, c.opts)
				if err != nil {
					b.Fatal(err)
				}
				out = len(e.Body)
			}
			b.ReportMetric(float64(out)/float64(len(c.body)), "out/in")
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	k := benchKey
	for _, c := range benchCases(b) {
		e, err := Encode(c.body, c.opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			for range b.N {
				if _, err := Decode(e, k, "m1", "contoso/agent-1", 1<<30); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type benchCase struct {
	name string
	body []byte
	opts Options
}

var benchKey = func() *ecdh.PrivateKey {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}()

func benchCases(*testing.B) []benchCase {
	var cases []benchCase
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10, 4 << 20} {
		body := jsonLike(size)
		for _, m := range []struct {
			name string
			opts Options
		}{
			{"gzip", Options{CompressAbove: 1}},
			{"hpke", Options{To: benchKey.PublicKey(), MessageID: "m1", Recipient: "contoso/agent-1"}},
			{"gzip+hpke", Options{CompressAbove: 1, To: benchKey.PublicKey(), MessageID: "m1", Recipient: "contoso/agent-1"}},
		} {
			cases = append(cases, benchCase{fmt.Sprintf("%dKiB/%s", size>>10, m.name), body, m.opts})
		}
	}
	return cases
}

// jsonLike is size bytes of repetitive JSON with varying numbers.
func jsonLike(size int) []byte {
	var sb strings.Builder
	for i := 0; sb.Len() < size; i++ {
		fmt.Fprintf(&sb, `{"id":%d,"resource":"azurerm_storage_account.logs[%d]","action":"update","attrs":{"tier":"Standard","replication":"LRS","n":%d}},`, i, i%97, i*7919%100003)
	}
	return []byte(sb.String()[:size])
}
