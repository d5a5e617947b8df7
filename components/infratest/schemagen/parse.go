package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// jsDefaults collects name -> literal default from the generated JS.
func jsDefaults(js, pattern string) map[string]any {
	out := map[string]any{}
	for _, m := range regexp.MustCompile(pattern).FindAllStringSubmatch(js, -1) {
		var v any
		if err := json.Unmarshal([]byte(strings.TrimSpace(m[2])), &v); err == nil {
			out[m[1]] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

var (
	interfaceStart = regexp.MustCompile(`^\s*(?:export )?interface (\w+) \{$`)
	namespaceStart = regexp.MustCompile(`^(\s*)(?:export declare )?namespace (\w+) \{$`)
	comment        = regexp.MustCompile(`(?s)/\*.*?\*/`)
)

// parseInterface finds "interface <name> {" in a resource's .d.ts.
func parseInterface(src, name, module string) (*Object, error) {
	src = comment.ReplaceAllString(src, "")
	i := strings.Index(src, "interface "+name+" {")
	if i < 0 {
		return nil, fmt.Errorf("interface %s not found", name)
	}
	body := src[i+len("interface "+name+" {"):]
	end := matchingBrace(body)
	return parseBody(body[:end], module)
}

// matchingBrace returns the index of the brace closing an already opened one.
func matchingBrace(s string) int {
	depth := 1
	for i, c := range s {
		switch c {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return len(s)
}

// parseBody parses "name?: type;" members.
func parseBody(body, module string) (*Object, error) {
	obj := &Object{Properties: map[string]*Type{}}
	depth, start := 0, 0
	var members []string
	for i, c := range body {
		switch c {
		case '{', '<', '(':
			depth++
		case '}', '>', ')':
			depth--
		case ';':
			if depth == 0 {
				members = append(members, strings.TrimSpace(body[start:i]))
				start = i + 1
			}
		}
	}
	for _, m := range members {
		if m == "" {
			continue
		}
		colon := strings.Index(m, ":")
		if colon < 0 {
			return nil, fmt.Errorf("cannot parse member %q", m)
		}
		name, optional := strings.CutSuffix(strings.TrimSpace(m[:colon]), "?")
		t, err := parseType(strings.Join(strings.Fields(m[colon+1:]), " "), module)
		if err != nil {
			return nil, fmt.Errorf("member %s: %w", name, err)
		}
		obj.Properties[name] = t
		if !optional {
			obj.Required = append(obj.Required, name)
		}
	}
	sort.Strings(obj.Required)
	return obj, nil
}

var mapType = regexp.MustCompile(`^\{ \[key: string\]: (.*); \}$`)

// parseType parses the SDK's TypeScript type of an input.
func parseType(s, module string) (*Type, error) {
	s = strings.TrimSpace(s)
	if inner, ok := strings.CutPrefix(s, "pulumi.Input<"); ok && strings.HasSuffix(s, ">") && matchingAngle(inner) == len(inner)-1 {
		return parseType(inner[:len(inner)-1], module)
	}
	if inner, ok := strings.CutSuffix(s, "[]"); ok {
		items, err := parseType(inner, module)
		if err != nil {
			return nil, err
		}
		return &Type{Type: "array", Items: items}, nil
	}
	if m := mapType.FindStringSubmatch(s); m != nil {
		v, err := parseType(m[1], module)
		if err != nil {
			return nil, err
		}
		return &Type{Type: "object", AdditionalProperties: v}, nil
	}
	switch s {
	case "string", "boolean", "any":
		return &Type{Type: s}, nil
	case "number":
		return &Type{Type: "number"}, nil
	case "pulumi.asset.Asset | pulumi.asset.Archive":
		return &Type{Type: "asset"}, nil
	}
	if c, err := strconv.Unquote(s); err == nil {
		return &Type{Type: "string", Enum: []string{c}, StrictEnum: true}, nil // a discriminator
	}
	if e, ok := strings.CutPrefix(s, "string | enums."); ok {
		return &Type{Type: "string", Ref: "enum:" + tsRef(e)}, nil
	}
	if e, ok := strings.CutPrefix(s, "enums."); ok {
		return &Type{Type: "string", Ref: "enum:" + tsRef(e), StrictEnum: true}, nil
	}
	if r, ok := strings.CutPrefix(s, "inputs."); ok {
		return &Type{Type: "object", Ref: tsRef(r)}, nil
	}
	return nil, fmt.Errorf("unknown type %q", s)
}

// matchingAngle returns the index of the '>' closing an opened '<'.
func matchingAngle(s string) int {
	depth := 1
	for i, c := range s {
		switch c {
		case '<':
			depth++
		case '>':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// tsRef turns "app.v20240301.ConfigurationArgs" into "app/v20240301:ConfigurationArgs".
func tsRef(s string) string {
	i := strings.LastIndex(s, ".")
	return strings.ReplaceAll(s[:i], ".", "/") + ":" + s[i+1:]
}
