package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/sessionproto"
)

// rawFrame encodes a client frame with every header bit chosen by the
// caller: b0 is the first byte (FIN, RSV, opcode), lenBytes 0 (7-bit), 2
// or 8 the extended length, declared the length written (it may differ
// from len(payload)), masked whether a mask key follows.
func rawFrame(b0 byte, lenBytes int, declared uint64, masked bool, payload []byte) []byte {
	out := []byte{b0, 0}
	if masked {
		out[1] = 0x80
	}
	switch lenBytes {
	case 0:
		out[1] |= byte(declared)
	case 2:
		out[1] |= 126
		out = binary.BigEndian.AppendUint16(out, uint16(declared))
	case 8:
		out[1] |= 127
		out = binary.BigEndian.AppendUint64(out, declared)
	}
	if !masked {
		return append(out, payload...)
	}
	key := []byte{0xa1, 0xb2, 0xc3, 0xd4}
	out = append(out, key...)
	for i, b := range payload {
		out = append(out, b^key[i%4])
	}
	return out
}

// sendOfSize is a send request whose JSON is exactly n bytes (n >= 60).
func sendOfSize(id string, n int) []byte {
	b := []byte(`{"type":"send","id":"` + id + `","message":{"id":"m-` + id + `"}}`)
	return append(b, bytes.Repeat([]byte(" "), n-len(b))...)
}

func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// probe is a send request the scenarios end with when the session is to
// go on: its ack says the gateway read everything before it.
var probe = sendFrame("probe")

// transcript reads the gateway's frames until the ack of the probe or the
// end of the connection, and describes each: "pong:<payload>",
// "close:<code>", "ack:<id>", "error:<code>", "EOF".
func (c *rawClient) transcript() string {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(20*time.Second)))
	var out []string
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || isReset(err) {
				return strings.Join(append(out, "EOF"), " ")
			}
			require.NoError(c.t, err)
		}
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			var ext [2]byte
			_, err := io.ReadFull(c.br, ext[:])
			require.NoError(c.t, err)
			n = uint64(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			_, err := io.ReadFull(c.br, ext[:])
			require.NoError(c.t, err)
			n = binary.BigEndian.Uint64(ext[:])
		}
		payload := make([]byte, n)
		_, err := io.ReadFull(c.br, payload)
		require.NoError(c.t, err)
		switch op := hdr[0] & 0x0f; op {
		case opPing: // the gateway's keepalive: not part of the transcript
		case opPong:
			out = append(out, "pong:"+string(payload))
		case opClose:
			code := ""
			if len(payload) >= 2 {
				code = fmt.Sprint(binary.BigEndian.Uint16(payload))
			}
			out = append(out, "close:"+code)
		case opText:
			f, err := sessionproto.Decode(payload)
			require.NoError(c.t, err, "payload %q", payload)
			switch f.Type {
			case sessionproto.TypeAck:
				out = append(out, "ack:"+f.ID)
				if f.ID == "probe" {
					return strings.Join(out, " ")
				}
			case sessionproto.TypeError:
				out = append(out, "error:"+f.Error.Code)
			default:
				out = append(out, "text:"+f.Type)
			}
		default:
			c.t.Fatalf("unexpected opcode %x from the gateway", op)
		}
	}
}

// inOrder sorts a transcript but for its last entry: error frames are
// written by the session's reader as it reads, acks once each request is
// done, so they interleave in any order; what ends it comes last.
func inOrder(transcript string) string {
	all := strings.Fields(transcript)
	slices.Sort(all[:len(all)-1])
	return strings.Join(all, " ")
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset by peer")
}

// The gateway reads what connectors send as RFC 6455 asks of a server, the
// same whether a session is parked between messages or read by a goroutine
// of its own, whether the bytes come in one segment or a byte at a time,
// and the same as before sessions were parked (the expected transcripts
// are those of the gateway at 915a37b^, which read straight from the
// connection).
func TestFramesAsRFC6455(t *testing.T) {
	mid := sessionproto.MaxFrameBytes + 1000 // over MaxFrameBytes, under HardFrameLimit
	ascii := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	ok := "ack:probe"
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"length 125", frame(opText, true, sendOfSize("1", 125)), "ack:1 " + ok},
		{"length 126", frame(opText, true, sendOfSize("1", 126)), "ack:1 " + ok},
		{"length 65535", frame(opText, true, sendOfSize("1", 65535)), "ack:1 " + ok},
		{"length 65536", frame(opText, true, sendOfSize("1", 65536)), "ack:1 " + ok},
		{"small length in 64 bits", rawFrame(0x81, 8, 60, true, sendOfSize("1", 60)), "ack:1 " + ok},
		{"small length in 16 bits", rawFrame(0x81, 2, 60, true, sendOfSize("1", 60)), "ack:1 " + ok},
		{"64-bit length with the top bit set", rawFrame(0x81, 8, 1<<63|60, true, sendOfSize("1", 60)), "EOF"},
		{"over MaxFrameBytes", frame(opText, true, sendOfSize("1", mid)), "error:" + sessionproto.CodeFrameTooLarge + " " + ok},
		{"over the read limit", frame(opText, true, sendOfSize("1", sessionproto.HardFrameLimit+1)), "close:1009 EOF"},
		{"over the read limit in fragments", append(frame(opText, false, sendOfSize("1", sessionproto.HardFrameLimit/2)),
			frame(opContinuation, true, ascii(sessionproto.HardFrameLimit/2+1))...), "close:1009 EOF"},
		{"unmasked", rawFrame(0x81, 0, 60, false, sendOfSize("1", 60)), "EOF"},
		{"unmasked ping", rawFrame(0x89, 0, 2, false, []byte("hi")), "EOF"},
		{"RSV1", rawFrame(0xc1, 0, 60, true, sendOfSize("1", 60)), "close:1002 EOF"},
		{"RSV2", rawFrame(0xa1, 0, 60, true, sendOfSize("1", 60)), "close:1002 EOF"},
		{"RSV3", rawFrame(0x91, 0, 60, true, sendOfSize("1", 60)), "close:1002 EOF"},
		{"reserved data opcode", frame(0x3, true, []byte("x")), "close:1002 EOF"},
		{"reserved control opcode", frame(0xb, true, []byte("x")), "close:1002 EOF"},
		{"ping of 125 bytes", append(frame(opPing, true, ascii(125)), probe...), "pong:" + string(ascii(125)) + " " + ok},
		{"ping of 126 bytes", frame(opPing, true, ascii(126)), "close:1002 EOF"},
		{"ping length in 64 bits", append(rawFrame(0x89, 8, 2, true, []byte("hi")), probe...), "pong:hi " + ok},
		{"fragmented ping", frame(opPing, false, []byte("hi")), "close:1002 EOF"},
		{"ping between fragments", bytes.Join([][]byte{
			frame(opText, false, sendOfSize("1", 80)[:30]), frame(opPing, true, []byte("mid")),
			frame(opContinuation, true, sendOfSize("1", 80)[30:]), probe}, nil), "pong:mid ack:1 " + ok},
		{"close between fragments", append(frame(opText, false, sendOfSize("1", 80)[:30]), frame(opClose, true, closePayload(1000, ""))...),
			"close:1000 EOF"},
		{"unsolicited pong", append(frame(opPong, true, []byte("u")), probe...), ok},
		{"continuation without a start", frame(opContinuation, true, []byte("x")), "close:1002 EOF"},
		{"new message between fragments", append(frame(opText, false, []byte("{")), frame(opText, true, []byte("}"))...), "close:1002 EOF"},
		{"close without a code", frame(opClose, true, nil), "close: EOF"},
		{"close 1000", frame(opClose, true, closePayload(1000, "bye")), "close:1000 EOF"},
		{"close 4000", frame(opClose, true, closePayload(4000, "")), "close:4000 EOF"},
		{"close of one byte", frame(opClose, true, []byte{3}), "close:1002 EOF"},
		{"close 1005", frame(opClose, true, closePayload(1005, "")), "close:1002 EOF"},
		{"close 999", frame(opClose, true, closePayload(999, "")), "close:1002 EOF"},
		{"close 5000", frame(opClose, true, closePayload(5000, "")), "close:1002 EOF"},
		// RFC 6455 7.1.6 asks a server to fail the connection on a reason
		// that is not UTF-8; the WebSocket library does not check.
		{"close with a reason not UTF-8", frame(opClose, true, closePayload(1000, "\xff\xfe")), "close:1000 EOF"},
		// The synthetic frame the gateway hands its WebSocket library
		// between messages, sent by the connector itself: an empty binary
		// message, refused like any other; nothing around it is lost.
		{"the synthetic frame", bytes.Join([][]byte{synthFrame[:], sendFrame("1"), synthFrame[:], synthFrame[:], sendFrame("2"), probe}, nil),
			"error:bad_frame ack:1 error:bad_frame error:bad_frame ack:2 " + ok},
		{"the synthetic frame as a fragment", bytes.Join([][]byte{frame(opText, false, sendOfSize("1", 80)[:30]), synthFrame[:],
			frame(opContinuation, true, sendOfSize("1", 80)[30:])}, nil), "close:1002 EOF"},
		{"binary", append(frame(opBinary, true, sendOfSize("1", 60)), probe...), "error:bad_frame " + ok},
		{"empty text", append(frame(opText, true, nil), probe...), "error:bad_frame " + ok},
		{"text not UTF-8", append(frame(opText, true, []byte(`{"type":"send","id":"1","message":{"id":"m-\xff"}}`)), probe...),
			"error:bad_frame " + ok},
	}
	readModes(t, func(t *testing.T, h *harness) {
		// Every case is a session of its own connector, all at once: most
		// of a case's time is the pauses between its bytes.
		var wg sync.WaitGroup
		defer wg.Wait()
		for i, tc := range cases {
			for j, split := range []string{"one write", "byte by byte"} {
				// Done outside the subtest: go test never calls the
				// function of a case its -run pattern leaves out.
				wg.Add(1)
				go func() {
					defer wg.Done()
					t.Run(tc.name+"/"+split, func(t *testing.T) {
						c := h.dialRaw(t, "tok-acme-rfc"+strconv.Itoa(2*i+j))
						in := tc.in
						if tc.want == ok || strings.HasSuffix(tc.want, " "+ok) {
							if !bytes.HasSuffix(in, probe) {
								in = append(append([]byte(nil), in...), probe...)
							}
						}
						// Write errors are not checked: the gateway may close
						// before it has read everything (the transcript says).
						require.NoError(t, c.conn.SetWriteDeadline(time.Now().Add(20*time.Second)))
						if split == "one write" {
							_, _ = c.conn.Write(in)
						} else { // the first 20 bytes one at a time: every header cut
							for i := 0; i < 20 && i < len(in); i++ {
								_, _ = c.conn.Write(in[i : i+1])
								time.Sleep(2 * time.Millisecond)
							}
							if len(in) > 20 {
								_, _ = c.conn.Write(in[20:])
							}
						}
						assert.Equal(t, inOrder(tc.want), inOrder(c.transcript()))
					})
				}()
			}
		}
	}, func(c *Config) { c.MaxInFlight = 1 }) // requests answered in order
}
