package tfrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/botehq/platform/runtime/tfresult"
)

// The result's types are package tfresult's, which the run model, the run
// protocol and the servers use without linking the executor.
type (
	Result        = tfresult.Result
	ChangeSummary = tfresult.ChangeSummary
	Diagnostic    = tfresult.Diagnostic
	Output        = tfresult.Output
	LockFile      = tfresult.LockFile
)

// setOutputs records outs in r, leaving sensitive values out.
func setOutputs(r *Result, outs map[string]tfexec.OutputMeta) {
	r.Outputs = make(map[string]Output, len(outs))
	for name, o := range outs {
		out := Output{Sensitive: o.Sensitive}
		if !o.Sensitive {
			out.Value = o.Value
		}
		r.Outputs[name] = out
	}
}

// event is the part of Terraform's machine-readable UI we use
// (https://developer.hashicorp.com/terraform/internals/machine-readable-ui).
type event struct {
	Message    string `json:"@message"`
	Type       string `json:"type"`
	Changes    *ChangeSummary
	Diagnostic *struct {
		Severity string `json:"severity"`
		Summary  string `json:"summary"`
		Detail   string `json:"detail"`
		Address  string `json:"address"`
		Range    *struct {
			Filename string `json:"filename"`
			Start    pos    `json:"start"`
			End      pos    `json:"end"`
		} `json:"range"`
		Snippet *struct {
			Context   *string `json:"context"`
			Code      string  `json:"code"`
			StartLine int     `json:"start_line"`
		} `json:"snippet"`
	} `json:"diagnostic"`
}

type pos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

// eventStream is the io.Writer Terraform's -json output goes to: it records
// results and hands redacted log lines to the sink in batches, at most
// flushEvery apart.
type eventStream struct {
	ctx    context.Context
	sink   Sink
	redact *redactor
	result *Result
	batch  int

	mu      sync.Mutex
	partial []byte
	pending []string
	sendErr error

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newEventStream(ctx context.Context, sink Sink, res *Result, r *redactor, every time.Duration, batch int) *eventStream {
	s := &eventStream{
		ctx: context.WithoutCancel(ctx), sink: sink, result: res, redact: r, batch: batch,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go s.loop(every)
	return s
}

func (s *eventStream) loop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.kick:
		case <-s.stop:
			s.flush()
			return
		}
		s.flush()
	}
}

func (s *eventStream) flush() {
	s.mu.Lock()
	lines := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(lines) == 0 || s.sink == nil {
		return
	}
	// Log delivery outlives a cancelled run: the lines explaining the
	// cancellation matter most.
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := s.sink.Logs(ctx, lines); err != nil {
		s.mu.Lock()
		if s.sendErr == nil {
			s.sendErr = err
		}
		s.mu.Unlock()
	}
}

// Write receives Terraform's stdout.
func (s *eventStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.partial = append(s.partial, p...)
	var lines [][]byte
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, append([]byte(nil), s.partial[:i]...))
		s.partial = s.partial[i+1:]
	}
	for _, l := range lines {
		s.handle(l)
	}
	full := len(s.pending) >= s.batch
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// handle records one line; s.mu is held.
func (s *eventStream) handle(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	var ev event
	if err := json.Unmarshal(line, &ev); err != nil || ev.Type == "" && ev.Message == "" {
		s.pending = append(s.pending, s.redact.string(string(line))) // not JSON: pass through
		return
	}
	switch ev.Type {
	case "change_summary":
		if ev.Changes != nil {
			c := *ev.Changes
			s.result.Changes = &c
		}
	case "diagnostic":
		if d := ev.Diagnostic; d != nil {
			diag := Diagnostic{
				Severity: d.Severity, Summary: s.redact.string(d.Summary),
				Detail: s.redact.string(d.Detail), Address: d.Address,
			}
			if r := d.Range; r != nil {
				diag.File, diag.Line, diag.Column, diag.EndLine, diag.EndColumn = r.Filename, r.Start.Line, r.Start.Column, r.End.Line, r.End.Column
			}
			if sn := d.Snippet; sn != nil && sn.StartLine == diag.Line {
				diag.Code = s.redact.string(strings.SplitN(sn.Code, "\n", 2)[0])
				if sn.Context != nil {
					diag.Context = *sn.Context
				}
			}
			s.result.Diagnostics = append(s.result.Diagnostics, diag)
		}
	}
	if ev.Message != "" {
		s.pending = append(s.pending, s.redact.string(ev.Message))
	}
}

// Close delivers what is pending and stops the flusher.
func (s *eventStream) Close() error {
	s.mu.Lock()
	if len(s.partial) > 0 {
		s.handle(s.partial)
		s.partial = nil
	}
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	if s.sendErr != nil {
		s.result.LogError = s.sendErr.Error()
	}
	return s.sendErr
}

// minSecretLen keeps trivially short values ("1", "on") from being treated
// as secrets: redacting them would mangle every log line.
const minSecretLen = 4

// redactor replaces secret values with "***".
type redactor struct {
	r *strings.Replacer
	// j also replaces their forms inside JSON strings.
	j *strings.Replacer
}

func newRedactor(secrets []string) *redactor {
	uniq := map[string]bool{}
	for _, s := range secrets {
		if len(s) >= minSecretLen {
			uniq[s] = true
		}
	}
	list := make([]string, 0, len(uniq))
	for s := range uniq {
		list = append(list, s)
	}
	// Longest first, so a secret containing another is replaced whole.
	sort.Slice(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	pairs := make([]string, 0, 2*len(list))
	var jpairs []string
	for _, s := range list {
		pairs = append(pairs, s, "***")
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s) // a string always encodes
		q := bytes.TrimSpace(b.Bytes())
		if inner := string(q[1 : len(q)-1]); inner != s {
			jpairs = append(jpairs, inner, "***")
		}
	}
	return &redactor{r: strings.NewReplacer(pairs...), j: strings.NewReplacer(append(jpairs, pairs...)...)}
}

func (r *redactor) string(s string) string { return r.r.Replace(s) }

// json redacts JSON text encoded without HTML escaping.
func (r *redactor) json(s string) string { return r.j.Replace(s) }

// errorf redacts an error's text; terraform-exec puts Terraform's stderr in
// its errors.
func (r *redactor) errorf(err error) error {
	msg := r.string(err.Error())
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}
