package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
)

// docPage is the operator's page whose commands TestDocCommands runs.
const docPage = "docs/opsbot.md"

// docCommand is one opsbot command line of a fenced block of the page.
type docCommand struct {
	line     string   // as written
	args     []string // without "opsbot", optional parts, comment and redirection
	optional []string // the flags of its [...] parts
	exits    []int    // the exit codes its "# exit N [or M]" comment allows (default 0)
}

var (
	fence    = regexp.MustCompile("^```\\s*(\\S*)")
	exitNote = regexp.MustCompile(`exit (\d+)(?: or (\d+))?`)
	optional = regexp.MustCompile(`\[[^\]]*\]`)
	flagName = regexp.MustCompile(`(?:^|[\s\[|])(--?[A-Za-z][\w-]*)`)
)

// docCommands extracts every opsbot command from the fenced blocks of a
// markdown page (blocks marked text, json or yaml are output or files,
// not commands).
func docCommands(t *testing.T, markdown string) []docCommand {
	t.Helper()
	var out []docCommand
	in, skip := false, false
	for _, raw := range strings.Split(markdown, "\n") {
		line := strings.TrimSpace(raw)
		if m := fence.FindStringSubmatch(line); m != nil {
			if !in {
				skip = slices.Contains([]string{"text", "json", "yaml"}, m[1])
			}
			in = !in
			continue
		}
		if !in || skip || !strings.HasPrefix(line, "opsbot ") {
			continue
		}
		c := docCommand{line: line, exits: []int{0}}
		if i := strings.Index(line, "#"); i >= 0 {
			if m := exitNote.FindStringSubmatch(line[i:]); m != nil {
				c.exits = nil
				for _, n := range m[1:] {
					if n != "" {
						code, _ := strconv.Atoi(n)
						c.exits = append(c.exits, code)
					}
				}
			}
			line = line[:i]
		}
		if i := strings.Index(line, " > "); i >= 0 {
			line = line[:i] // the output goes to the test
		}
		for _, part := range optional.FindAllString(line, -1) {
			for _, m := range flagName.FindAllStringSubmatch(part, -1) {
				c.optional = append(c.optional, m[1])
			}
		}
		words, err := shellWords(optional.ReplaceAllString(line, ""))
		require.NoError(t, err, line)
		c.args = words[1:]
		out = append(out, c)
	}
	return out
}

// shellWords splits a command line as a shell would, for the quoting the
// page uses ("..." and '...').
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// TestDocCommands runs every opsbot command shown in docs/opsbot.md, in
// the page's order, against the platform, so the page cannot drift from
// the CLI: each must exit as its comment says (0 unless "# exit N"), and
// every flag of its optional [...] parts must exist. Placeholders: RUN is
// the workspace's latest run, V a kept state version other than the
// current one, FILE a scratch file, ./infra and examples the sample
// configuration.
func TestDocCommands(t *testing.T) {
	t.Parallel()
	root, err := procs.RepoRoot()
	require.NoError(t, err)
	page, err := os.ReadFile(filepath.Join(root, docPage))
	require.NoError(t, err)
	cmds := docCommands(t, string(page))
	require.Greater(t, len(cmds), 20, "the page's commands")

	infra := t.TempDir()
	require.NoError(t, os.CopyFS(infra, os.DirFS(filepath.Join(root, "examples"))))
	dirs := map[string]string{"./infra": infra, "examples": filepath.Join(root, "examples")}
	scratch := t.TempDir()

	workspace := ""
	for i, c := range cmds {
		args := slices.Clone(c.args)
		for j, a := range args {
			if (a == "--workspace" || a == "-w") && j+1 < len(args) {
				workspace = args[j+1]
			}
			if (a == "create") && j == 1 && args[0] == "workspaces" {
				workspace = args[j+1]
			}
		}
		for j, a := range args {
			switch {
			case dirs[a] != "":
				args[j] = dirs[a]
			case a == "RUN":
				args[j] = latestRun(t, workspace)
			case a == "V":
				args[j] = oldStateVersion(t, workspace)
			case a == "FILE":
				args[j] = filepath.Join(scratch, fmt.Sprintf("file-%d", i))
			}
		}
		if len(c.optional) > 0 {
			help := opsbot(t, contoso, append(commandPath(c.args), "--help")...)
			require.Equal(t, 0, help.Code, "%s --help: %s", c.line, help)
			for _, f := range c.optional {
				assert.Regexp(t, `(^|[\s,])`+regexp.QuoteMeta(f)+`\b`, help.Stdout, "%s: the page shows %s, which the command does not have", c.line, f)
			}
		}
		r := opsbot(t, contoso, args...)
		require.Contains(t, c.exits, r.Code, "%s (run as opsbot %s): %s", c.line, strings.Join(args, " "), r)
	}
}

// commandPath is the command a line names: the words before the first
// argument that is a flag or not a command (a name, a placeholder).
func commandPath(args []string) []string {
	n := 0
	for n < len(args) && !strings.HasPrefix(args[n], "-") && n < 2 {
		n++
	}
	return args[:n]
}

// latestRun is the workspace's newest run (opsbot runs list).
func latestRun(t *testing.T, workspace string) string {
	t.Helper()
	r := expect(t, exitcode.OK, contoso, "runs", "list", "--workspace", workspace, "--limit", "1", "-o", "json")
	var list opsapi.RunList
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &list))
	require.Len(t, list.Runs, 1, "workspace %s has a run", workspace)
	return list.Runs[0].ID
}

// oldStateVersion is a kept state of the workspace that is not the
// current one.
func oldStateVersion(t *testing.T, workspace string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		r := expect(t, exitcode.OK, contoso, "state", "versions", "--workspace", workspace, "-o", "json")
		var list opsapi.StateVersionList
		require.NoError(t, json.Unmarshal([]byte(r.Stdout), &list))
		for _, v := range list.Versions {
			if !v.Current {
				return v.Version
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("workspace %s keeps no state but the current one: %s", workspace, r.Stdout)
		case <-time.After(time.Second):
		}
	}
}

func TestDocCommandsParsing(t *testing.T) {
	page := "text\n```\nopsbot plan --workspace prod --dir ./infra -m \"first rollout\" [--detach]   # exit 10: changes\n" +
		"cd runtime && go test\nopsbot keys create a --role c=operator [--role f=reader] [--description ...] > a.key\n```\n" +
		"```text\nopsbot not a command\n```\n```sh\nopsbot runs list -o json > x.json   # exit 0 or 10\n```\n"
	got := docCommands(t, page)
	require.Len(t, got, 3)
	assert.Equal(t, []string{"plan", "--workspace", "prod", "--dir", "./infra", "-m", "first rollout"}, got[0].args)
	assert.Equal(t, []string{"--detach"}, got[0].optional)
	assert.Equal(t, []int{10}, got[0].exits)
	assert.Equal(t, []string{"keys", "create", "a", "--role", "c=operator"}, got[1].args)
	assert.Equal(t, []string{"--role", "--description"}, got[1].optional)
	assert.Equal(t, []int{0}, got[1].exits)
	assert.Equal(t, []string{"runs", "list", "-o", "json"}, got[2].args)
	assert.Equal(t, []int{0, 10}, got[2].exits)
	assert.Equal(t, []string{"workspaces", "create"}, commandPath([]string{"workspaces", "create", "prod", "--label", "x"}))
	assert.Equal(t, []string{"plan"}, commandPath([]string{"plan", "--workspace", "prod"}))
}
