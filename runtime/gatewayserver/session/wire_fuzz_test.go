package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// refFrame is a frame as a plain reading of RFC 6455 5.2 sees it: where
// it starts in the stream and where it ends (past the stream's end for a
// frame cut short), and whether it is a data frame ending its message.
type refFrame struct {
	start, end uint64
	data, fin  bool
}

// refFrames splits a client's byte stream into frames. A last frame
// whose header is cut short ends at the end of the stream.
func refFrames(b []byte) []refFrame {
	var frames []refFrame
	for pos := uint64(0); pos < uint64(len(b)); {
		h := b[pos:]
		f := refFrame{start: pos, end: uint64(len(b)), data: h[0]&0x0f < 8, fin: h[0]&0x80 != 0}
		if len(h) >= 2 {
			n, size := uint64(2), uint64(h[1]&0x7f)
			switch size {
			case 126:
				n += 2
				if len(h) >= 4 {
					size = uint64(binary.BigEndian.Uint16(h[2:]))
				}
			case 127:
				n += 8
				if len(h) >= 10 {
					size = binary.BigEndian.Uint64(h[2:])
				}
			}
			if h[1]&0x80 != 0 {
				n += 4
			}
			if uint64(len(h)) >= n {
				f.end = pos + n + min(size, 1<<62) // a length past 2^62 never ends within a test
			}
		}
		frames = append(frames, f)
		pos = f.end
	}
	return frames
}

// pipeConn is the read end of a pipe as a connection: it blocks in Read
// like a socket, and its descriptor reads without waiting as a socket's
// does for the wire.
type pipeConn struct {
	net.Conn
	r *os.File
}

func (p pipeConn) Read(b []byte) (int, error) { return p.r.Read(b) }
func (p pipeConn) Close() error               { return p.r.Close() }

// FuzzWireFrames feeds a wire a client's byte stream in the pieces cuts
// gives, read in sizes cuts gives too, and checks it against refFrames:
// it never panics, hands over every byte in order, never hands over bytes
// of two frames in one read (the WebSocket library's buffer must not hold
// a frame it has not started), and, when parkable, hands the synthetic
// frame only where a message has ended.
func FuzzWireFrames(f *testing.F) {
	for _, seed := range [][]byte{
		frame(opText, true, []byte(`{"type":"send"}`)),
		append(frame(opText, true, bytes.Repeat([]byte("x"), 126)), frame(opPing, true, []byte("p"))...),
		append(frame(opBinary, true, bytes.Repeat([]byte("x"), 1<<16)), frame(opPing, true, []byte("p"))...),
		append(frame(opText, false, []byte("ab")), append(frame(opPing, true, nil), frame(opContinuation, true, []byte("c"))...)...),
		rawFrame(0x81, 8, 1<<63|5, true, []byte("abcde")),
		rawFrame(0x82, 8, 3, false, []byte("abc")),
		synthFrame[:],
		{0x81, 0xfe, 0x01},
	} {
		f.Add(seed, []byte{1, 2, 3, 7}, false)
		f.Add(seed, []byte{5}, true)
	}
	f.Fuzz(func(t *testing.T, stream, cuts []byte, parkable bool) {
		if len(cuts) == 0 {
			cuts = []byte{0}
		}
		if parkable && runtime.GOOS != "linux" {
			t.Skip("the wire reads without waiting on Linux only")
		}
		pr, pw, err := os.Pipe()
		require.NoError(t, err)
		defer pr.Close()
		w := &wire{Conn: pipeConn{r: pr}}
		if parkable {
			w.raw, err = pr.SyscallConn()
			require.NoError(t, err)
			w.allowParking()
		}
		go func() { // the connector, in pieces
			defer pw.Close()
			for i, rest := 0, stream; len(rest) > 0; i++ {
				n := min(len(rest), 1+int(cuts[i%len(cuts)]))
				if _, err := pw.Write(rest[:n]); err != nil {
					return
				}
				rest = rest[n:]
			}
		}()

		frames := refFrames(stream)
		starts := map[uint64]bool{}
		inMessage := map[uint64]bool{} // at each frame start: a message is open
		open := false
		for _, fr := range frames {
			starts[fr.start], inMessage[fr.start] = true, open
			if fr.data {
				open = !fr.fin
			}
		}
		starts[uint64(len(stream))], inMessage[uint64(len(stream))] = true, open

		var got []byte
		for i := 0; ; i++ {
			p := make([]byte, 1+int(cuts[(i+1)%len(cuts)])%24)
			synthBefore := w.synthLeft > 0 || w.synthetic.Load()
			n, err := w.Read(p)
			if w.synthetic.Load() { // this read handed (part of) the synthetic frame
				if !synthBefore {
					pos := uint64(len(got))
					require.True(t, starts[pos], "synthetic frame at %d, not a frame's start", pos)
					require.False(t, inMessage[pos], "synthetic frame at %d, within a message", pos)
				}
				if w.synthLeft == 0 {
					require.True(t, w.takeSynthetic())
				}
				continue
			}
			if n > 0 {
				a, b := uint64(len(got)), uint64(len(got)+n)
				for _, fr := range frames {
					require.False(t, fr.start > a && fr.start < b, "read [%d,%d) crosses the frame start at %d", a, b, fr.start)
				}
				got = append(got, p[:n]...)
			}
			if err != nil {
				require.True(t, errors.Is(err, io.EOF), "err %v", err)
				break
			}
		}
		require.Equal(t, string(stream), string(got))
	})
}
