package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// inputType parses one interface of types/input.d.ts.
func (g *gen) inputType(ref string) (*Object, error) {
	body, ok := g.raw[ref]
	if !ok {
		return nil, fmt.Errorf("input type %s not found", ref)
	}
	module, _, _ := strings.Cut(ref, ":")
	obj, err := parseBody(comment.ReplaceAllString(body, ""), module)
	if err != nil {
		return nil, fmt.Errorf("input type %s: %w", ref, err)
	}
	return obj, nil
}

// loadInputs reads every interface of types/input.d.ts, keyed by
// namespace path and name.
func (g *gen) loadInputs() error {
	f, err := os.Open(filepath.Join(g.pkg, "types", "input.d.ts"))
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var stack []namespace
	var cur *strings.Builder
	var curName string
	curDepth := 0
	for sc.Scan() {
		line := sc.Text()
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "*") || strings.HasPrefix(t, "/*") {
			continue // doc comments may hold unbalanced braces
		}
		if cur != nil {
			cur.WriteString(line)
			cur.WriteByte('\n')
			curDepth += strings.Count(line, "{") - strings.Count(line, "}")
			if curDepth == 0 {
				body := cur.String()
				g.raw[namespacePath(stack)+":"+curName] = body[:strings.LastIndex(body, "}")]
				cur = nil
			}
			continue
		}
		if m := namespaceStart.FindStringSubmatch(line); m != nil {
			for len(stack) > 0 && stack[len(stack)-1].indent >= len(m[1]) {
				stack = stack[:len(stack)-1]
			}
			stack = append(stack, namespace{len(m[1]), m[2]})
			continue
		}
		if m := interfaceStart.FindStringSubmatch(line); m != nil {
			indent := len(line) - len(strings.TrimLeft(line, " "))
			for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
				stack = stack[:len(stack)-1]
			}
			cur, curName, curDepth = &strings.Builder{}, m[1], 1
		}
	}
	return sc.Err()
}

type namespace struct {
	indent int
	name   string
}

func namespacePath(stack []namespace) string {
	parts := make([]string, len(stack))
	for i, n := range stack {
		parts[i] = n.name
	}
	return strings.Join(parts, "/")
}

var enumValue = regexp.MustCompile(`readonly \w+: ("[^"]*"|[0-9.]+|true|false);`)

// fillEnums resolves every "enum:" reference to its values.
func (g *gen) fillEnums(s Schema) error {
	var fill func(t *Type) error
	fill = func(t *Type) error {
		if t == nil {
			return nil
		}
		if e, ok := strings.CutPrefix(t.Ref, "enum:"); ok {
			values, err := g.enum(e)
			if err != nil {
				return err
			}
			t.Enum, t.Ref = values, ""
		}
		if err := fill(t.Items); err != nil {
			return err
		}
		return fill(t.AdditionalProperties)
	}
	for _, objs := range []map[string]*Object{s.Resources, s.Types} {
		for _, o := range objs {
			for _, p := range o.Properties {
				if err := fill(p); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (g *gen) enum(ref string) ([]string, error) {
	if v, ok := g.enums[ref]; ok {
		return v, nil
	}
	module, name, _ := strings.Cut(ref, ":")
	src, err := os.ReadFile(filepath.Join(g.pkg, "types", "enums", filepath.FromSlash(module), "index.d.ts"))
	if err != nil {
		return nil, err
	}
	text := comment.ReplaceAllString(string(src), "")
	i := strings.Index(text, "export declare const "+name+": {")
	if i < 0 {
		return nil, fmt.Errorf("enum %s not found", ref)
	}
	body := text[i:]
	body = body[:strings.Index(body, "};")]
	var values []string
	for _, m := range enumValue.FindAllStringSubmatch(body, -1) {
		v := m[1]
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		}
		values = append(values, v)
	}
	sort.Strings(values)
	g.enums[ref] = values
	return values, nil
}

// nestedDefaults reads the *ProvideDefaults functions of types/input.js for
// the input types in s.
func (g *gen) nestedDefaults(s Schema) error {
	js, err := os.ReadFile(filepath.Join(g.pkg, "types", "input.js"))
	if err != nil {
		return err
	}
	text := string(js)
	// Functions are emitted inside "(function (<module>) {" blocks; find the
	// function by its module's assignment line, e.g.
	// "v20240301.configurationArgsProvideDefaults = configurationArgsProvideDefaults;".
	for ref, obj := range s.Types {
		module, name, _ := strings.Cut(ref, ":")
		fn := strings.ToLower(name[:1]) + name[1:] + "ProvideDefaults"
		parts := strings.Split(module, "/")
		owner := parts[len(parts)-1]
		assign := "    " + owner + "." + fn + " = " + fn + ";"
		end := -1
		for off := 0; ; {
			i := strings.Index(text[off:], assign)
			if i < 0 {
				break
			}
			// The assignment must sit at this module's nesting depth:
			// 4 spaces per namespace level.
			lineStart := strings.LastIndex(text[:off+i+4], "\n") + 1
			if off+i+4-lineStart == 4*len(parts) {
				end = off + i
				break
			}
			off += i + len(assign)
		}
		if end < 0 {
			continue
		}
		start := strings.LastIndex(text[:end], "function "+fn+"(val) {")
		if start < 0 {
			continue
		}
		obj.Defaults = jsDefaults(text[start:end], `(\w+): \(_\w+ = \(val\.\w+\)\) !== null && _\w+ !== void 0 \? _\w+ : ([^,}]+)`)
	}
	return nil
}
