package main

import (
	"fmt"
	"io"
	"unicode/utf8"
)

// termSafe writes a run's log for a terminal: control characters other
// than newline and tab are shown (ESC as ^[, U+009B as \u009b) rather than
// sent. A log holds what a configuration's commands and providers print;
// an escape sequence there must not move the operator's cursor, set the
// clipboard (OSC 52), retitle the window or hide lines.
type termSafe struct{ w io.Writer }

func (t termSafe) Write(p []byte) (int, error) {
	clean := true
	for _, c := range p {
		if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f || c == 0xc2 {
			clean = false
			break
		}
	}
	if clean {
		return t.w.Write(p)
	}
	out := make([]byte, 0, len(p)+16)
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		switch {
		case r == '\n' || r == '\t':
			out = append(out, byte(r))
		case r < 0x20:
			out = append(out, '^', byte(r)+'@')
		case r == 0x7f:
			out = append(out, '^', '?')
		case r >= 0x80 && r <= 0x9f: // C1 controls: U+009B is a CSI to some terminals
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, p[i:i+size]...)
		}
		i += size
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
