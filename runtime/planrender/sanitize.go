package planrender

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	tfjson "github.com/hashicorp/terraform-json"
)

// Keep returns the part of a plan a run keeps and shows: the resource
// changes (and drift), the output changes and the plan's metadata, with
// every sensitive value replaced by a Masked marker. It leaves out the
// input variables, the prior state, the planned values and the
// configuration: they repeat the changes, and `terraform show -json` prints
// sensitive values there in clear.
//
// A masked value is an HMAC of the value under a key that exists only for
// this call, so the renderer can still tell a changed sensitive value from
// an unchanged one without anyone learning the value.
func Keep(p *tfjson.Plan) *tfjson.Plan {
	if p == nil {
		return nil
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	m := masker{key: key}
	out := &tfjson.Plan{
		FormatVersion:    p.FormatVersion,
		TerraformVersion: p.TerraformVersion,
		Complete:         p.Complete,
		Timestamp:        p.Timestamp,
		ResourceDrift:    m.resources(p.ResourceDrift),
		ResourceChanges:  m.resources(p.ResourceChanges),
	}
	if len(p.OutputChanges) > 0 {
		out.OutputChanges = make(map[string]*tfjson.Change, len(p.OutputChanges))
		for name, c := range p.OutputChanges {
			out.OutputChanges[name] = m.change(c)
		}
	}
	return out
}

// MaskPrefix starts every masked value.
const MaskPrefix = "(sensitive value "

type masker struct{ key []byte }

func (m masker) resources(rcs []*tfjson.ResourceChange) []*tfjson.ResourceChange {
	out := make([]*tfjson.ResourceChange, 0, len(rcs))
	for _, rc := range rcs {
		if rc == nil {
			continue
		}
		c := *rc
		c.Change = m.change(rc.Change)
		out = append(out, &c)
	}
	return out
}

func (m masker) change(c *tfjson.Change) *tfjson.Change {
	if c == nil {
		return nil
	}
	out := *c
	out.Before = m.mask(c.Before, c.BeforeSensitive)
	out.After = m.mask(c.After, c.AfterSensitive)
	// Generated configuration (import) may hold sensitive values with no
	// marks; identities are not needed to show a change.
	out.GeneratedConfig, out.BeforeIdentity, out.AfterIdentity = "", nil, nil
	return &out
}

// mask replaces the parts of v that sens marks (true, or a structure of
// the same shape as v) with markers.
func (m masker) mask(v, sens any) any {
	switch s := sens.(type) {
	case bool:
		if s && v != nil {
			return m.marker(v)
		}
		return v
	case map[string]any:
		obj, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := make(map[string]any, len(obj))
		for k, e := range obj {
			out[k] = m.mask(e, s[k])
		}
		return out
	case []any:
		list, ok := v.([]any)
		if !ok {
			return v
		}
		out := make([]any, len(list))
		for i, e := range list {
			var es any
			if i < len(s) {
				es = s[i]
			}
			out[i] = m.mask(e, es)
		}
		return out
	}
	return v
}

func (m masker) marker(v any) string {
	data, _ := json.Marshal(v) // decoded JSON always encodes
	h := hmac.New(sha256.New, m.key)
	h.Write(data)
	return MaskPrefix + hex.EncodeToString(h.Sum(nil)[:12]) + ")"
}
