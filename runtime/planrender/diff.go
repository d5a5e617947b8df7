package planrender

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// action is what happens to one value.
type action int

const (
	noop action = iota
	create
	update
	remove
)

func (a action) symbol() string {
	switch a {
	case create:
		return "+"
	case update:
		return "~"
	case remove:
		return "-"
	}
	return " "
}

// node is a rendered value: a one-line text, a heredoc, or a collection of
// items between open and close. suffix follows the value (" -> null").
type node struct {
	act         action
	text        string
	heredoc     []heredocLine
	open, close string
	items       []item
	hidden      int    // unchanged children left out of an object
	hiddenWhat  string // "attribute" or "element"
	pad         int    // width of an object's keys, hidden ones included
	prefix      string // before the value ("null -> ")
	suffix      string
}

// item is one child of a collection: a keyed entry of an object, an
// element of a list, or a run of hidden list elements (n == nil).
type item struct {
	key    string
	n      *node
	hidden int
}

type heredocLine struct {
	act  action
	text string
	// hidden, when > 0, stands for that many unchanged lines.
	hidden int
}

const (
	unknownText   = "(known after apply)"
	sensitiveText = "(sensitive value)"
)

// diff computes the node for before → after. unknown is the after_unknown
// structure under this value.
func diff(before, after any, bsens, asens, unknown any) *node {
	if isTrue(bsens) || isTrue(asens) {
		return sensitiveNode(before, after, unknown)
	}
	if isTrue(unknown) {
		if before == nil {
			return &node{act: create, text: unknownText}
		}
		n := whole(before, remove, bsens)
		n.act = update
		n.suffix = " -> " + unknownText
		if n.open == "" && n.heredoc == nil {
			n.text += n.suffix
			n.suffix = ""
		}
		return n
	}
	switch {
	case before == nil && after == nil:
		return &node{act: noop, text: "null"}
	case before == nil:
		return wholeUnknown(after, create, asens, unknown)
	case after == nil:
		return whole(before, remove, bsens)
	}
	bo, bok := before.(map[string]any)
	ao, aok := after.(map[string]any)
	if bok && aok {
		return diffObject(bo, ao, bsens, asens, unknown)
	}
	bl, blok := before.([]any)
	al, alok := after.([]any)
	if blok && alok {
		return diffList(bl, al, bsens, asens, unknown)
	}
	bs, bsok := before.(string)
	as, asok := after.(string)
	if bsok && asok && (strings.Contains(bs, "\n") || strings.Contains(as, "\n")) && bs != as {
		return diffText(bs, as)
	}
	if reflect.DeepEqual(before, after) {
		return whole(after, noop, nil)
	}
	if isScalar(before) && isScalar(after) {
		return &node{act: update, text: scalar(before) + " -> " + scalar(after)}
	}
	// A change of type: the old value goes, the new one comes.
	n := whole(before, remove, nil)
	n.act = update
	n.suffix = " -> " + oneLine(after)
	return n
}

func sensitiveNode(before, after, unknown any) *node {
	switch {
	case before == nil && after == nil:
		return &node{act: noop, text: "null"}
	case before == nil:
		return &node{act: create, text: sensitiveText}
	case after == nil && !isTrue(unknown):
		return &node{act: remove, text: sensitiveText}
	case reflect.DeepEqual(before, after):
		return &node{act: noop, text: sensitiveText}
	}
	return &node{act: update, text: sensitiveText}
}

// whole renders v entirely with one action (created, removed or shown
// unchanged), marking sensitive and unknown parts.
func whole(v any, act action, sens any) *node { return wholeUnknown(v, act, sens, nil) }

func wholeUnknown(v any, act action, sens, unknown any) *node {
	switch {
	case isTrue(unknown):
		return &node{act: act, text: unknownText}
	case isTrue(sens):
		return &node{act: act, text: sensitiveText}
	}
	switch v := v.(type) {
	case map[string]any:
		n := &node{act: act, open: "{", close: "}"}
		for _, k := range keysOf(unknown, v) {
			n.items = append(n.items, item{key: k, n: wholeUnknown(v[k], act, index(sens, k), index(unknown, k))})
		}
		return n
	case []any:
		n := &node{act: act, open: "[", close: "]"}
		for i, e := range v {
			n.items = append(n.items, item{n: wholeUnknown(e, act, index(sens, i), index(unknown, i))})
		}
		return n
	case string:
		if strings.Contains(v, "\n") {
			n := &node{act: act}
			for _, l := range splitLines(v) {
				n.heredoc = append(n.heredoc, heredocLine{act: noop, text: l})
			}
			return n
		}
	}
	return &node{act: act, text: scalar(v)}
}

func diffObject(before, after map[string]any, bsens, asens, unknown any) *node {
	n := &node{act: noop, open: "{", close: "}", hiddenWhat: "attribute"}
	for _, k := range keysOf(unknown, before, after) {
		n.pad = max(n.pad, len(k))
		b, bok := before[k]
		a, aok := after[k]
		var c *node
		switch {
		case !bok && !isTrue(index(unknown, k)):
			c = wholeUnknown(a, create, index(asens, k), index(unknown, k))
		case !aok && !isTrue(index(unknown, k)):
			c = whole(b, remove, index(bsens, k))
		default:
			c = diffInside(b, a, index(bsens, k), index(asens, k), index(unknown, k))
		}
		if c.act == noop {
			n.hidden++
			continue
		}
		n.act = update
		n.items = append(n.items, item{key: k, n: c})
	}
	return n
}

// contextElements is how many unchanged list elements (or text lines) are
// shown on each side of a change.
const contextElements = 1

func diffList(before, after []any, bsens, asens, unknown any) *node {
	var elems []*node
	if len(before) == len(after) {
		for i := range before {
			if n, ok := nullChange(before[i], after[i], index(bsens, i), index(asens, i), index(unknown, i)); ok {
				elems = append(elems, n)
				continue
			}
			elems = append(elems, diffElement(before[i], after[i], index(bsens, i), index(asens, i), index(unknown, i)))
		}
	} else {
		bi, ai := 0, 0
		for _, m := range lcs(len(before), len(after), func(i, j int) bool {
			return reflect.DeepEqual(before[i], after[j]) && !isTrue(index(unknown, j))
		}) {
			for ; bi < m[0] && ai < m[1] && isObject(before[bi]) && isObject(after[ai]); bi, ai = bi+1, ai+1 {
				elems = append(elems, diff(before[bi], after[ai], index(bsens, bi), index(asens, ai), index(unknown, ai)))
			}
			for ; bi < m[0]; bi++ {
				elems = append(elems, whole(before[bi], remove, index(bsens, bi)))
			}
			for ; ai < m[1]; ai++ {
				elems = append(elems, diffElement(nil, after[ai], nil, index(asens, ai), index(unknown, ai)))
			}
			if m[0] < len(before) {
				elems = append(elems, whole(after[m[1]], noop, index(asens, m[1])))
				bi, ai = m[0]+1, m[1]+1
			}
		}
	}
	n := &node{act: noop, open: "[", close: "]"}
	changed := make([]bool, len(elems))
	for i, e := range elems {
		changed[i] = e.act != noop
		if changed[i] {
			n.act = update
		}
	}
	if n.act == noop {
		n.items = nil
		for _, e := range elems {
			n.items = append(n.items, item{n: e})
		}
		return n
	}
	elide(changed,
		func(i int) { n.items = append(n.items, item{n: elems[i]}) },
		func(k int) { n.items = append(n.items, item{hidden: k}) })
	return n
}

// diffInside is diff for a value inside another one (an object's
// attribute present on both sides).
func diffInside(before, after, bsens, asens, unknown any) *node {
	if n, ok := nullChange(before, after, bsens, asens, unknown); ok {
		return n
	}
	return diff(before, after, bsens, asens, unknown)
}

// nullChange is the change of a value inside another one that is null on
// one side only: Terraform shows it as an update from or to null
// (`~ a = null -> "x"`), where a resource's attribute is created or removed.
func nullChange(before, after, bsens, asens, unknown any) (*node, bool) {
	if (before == nil) == (after == nil) || isTrue(bsens) || isTrue(asens) || isTrue(unknown) {
		return nil, false
	}
	var n *node
	if before == nil {
		n = wholeUnknown(after, create, asens, unknown)
		n.prefix = "null -> "
	} else {
		n = whole(before, remove, bsens)
		n.suffix = " -> null"
	}
	n.act = update
	return n, true
}

// diffElement is diff for a list element or a resource's attribute, which
// are shown whole when unchanged.
func diffElement(before, after, bsens, asens, unknown any) *node {
	switch {
	case before == nil && !isTrue(unknown):
		return wholeUnknown(after, create, asens, unknown)
	case !hasTrue(unknown):
		if reflect.DeepEqual(before, after) && hasTrue(bsens) == hasTrue(asens) {
			return whole(after, noop, asens)
		}
	}
	return diff(before, after, bsens, asens, unknown)
}

// near reports whether element i changed or is within contextElements of
// a change.
func near(changed []bool, i int) bool {
	for j := max(i-contextElements, 0); j <= min(i+contextElements, len(changed)-1); j++ {
		if changed[j] {
			return true
		}
	}
	return false
}

func diffText(before, after string) *node {
	b, a := splitLines(before), splitLines(after)
	var lines []heredocLine
	bi, ai := 0, 0
	for _, m := range lcs(len(b), len(a), func(i, j int) bool { return b[i] == a[j] }) {
		for ; bi < m[0]; bi++ {
			lines = append(lines, heredocLine{act: remove, text: b[bi]})
		}
		for ; ai < m[1]; ai++ {
			lines = append(lines, heredocLine{act: create, text: a[ai]})
		}
		if m[0] < len(b) {
			lines = append(lines, heredocLine{act: noop, text: a[m[1]]})
			bi, ai = m[0]+1, m[1]+1
		}
	}
	changed := make([]bool, len(lines))
	for i, l := range lines {
		changed[i] = l.act != noop
	}
	n := &node{act: update}
	elide(changed,
		func(i int) { n.heredoc = append(n.heredoc, lines[i]) },
		func(k int) { n.heredoc = append(n.heredoc, heredocLine{hidden: k}) })
	return n
}

// elide shows the entries within contextElements of a change and stands
// for each run of the others with its length.
func elide(changed []bool, show func(i int), hidden func(n int)) {
	run := 0
	for i := range changed {
		if !near(changed, i) {
			run++
			continue
		}
		if run > 0 {
			hidden(run)
			run = 0
		}
		show(i)
	}
	if run > 0 {
		hidden(run)
	}
}

// lcs returns the index pairs of a longest common subsequence of two
// sequences of lengths n and m, in order, followed by the pair {n, m}.
func lcs(n, m int, eq func(i, j int) bool) [][2]int {
	t := make([][]int, n+1)
	for i := range t {
		t[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if eq(i, j) {
				t[i][j] = t[i+1][j+1] + 1
			} else {
				t[i][j] = max(t[i+1][j], t[i][j+1])
			}
		}
	}
	var out [][2]int
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case eq(i, j):
			out = append(out, [2]int{i, j})
			i, j = i+1, j+1
		case t[i+1][j] >= t[i][j+1]:
			i++
		default:
			j++
		}
	}
	return append(out, [2]int{n, m})
}

func splitLines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func isTrue(v any) bool {
	b, ok := v.(bool)
	return ok && b
}

// hasTrue reports whether a mark structure marks anything.
func hasTrue(marks any) bool {
	switch m := marks.(type) {
	case bool:
		return m
	case map[string]any:
		for _, v := range m {
			if hasTrue(v) {
				return true
			}
		}
	case []any:
		for _, v := range m {
			if hasTrue(v) {
				return true
			}
		}
	}
	return false
}

func isObject(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

func isScalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

// index is the part of a mark structure (sensitive, unknown) under key.
func index(marks any, key any) any {
	switch m := marks.(type) {
	case bool:
		return m
	case map[string]any:
		if k, ok := key.(string); ok {
			return m[k]
		}
	case []any:
		if i, ok := key.(int); ok && i < len(m) {
			return m[i]
		}
	}
	return nil
}

// keysOf are the keys of objects and those the unknown marks say will
// exist after apply, sorted.
func keysOf(unknown any, objects ...map[string]any) []string {
	keys := map[string]bool{}
	for _, o := range objects {
		for k := range o {
			keys[k] = true
		}
	}
	if u, ok := unknown.(map[string]any); ok {
		for k, v := range u {
			if isTrue(v) {
				keys[k] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(keys))
}

// scalar writes a primitive the way Terraform does.
func scalar(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if strings.HasPrefix(v, MaskPrefix) {
			return sensitiveText
		}
		return strconv.Quote(v)
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		return v.String()
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	data, _ := json.Marshal(v)
	return string(data)
}

// oneLine writes any value on one line (after a change of type).
func oneLine(v any) string {
	if isScalar(v) {
		return scalar(v)
	}
	data, _ := json.Marshal(v)
	return string(data)
}
