// Package pipeline describes tracker instances as data (a Spec: the tracker
// kind, its typed config and its handler chain) and builds handler chains
// from such descriptions at run time. Config files and API requests are
// decoded into Specs; the server builds and starts them.
package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/eunomia-agent/eunomia/internal/strict"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// Spec describes one tracker instance.
type Spec struct {
	// Name is the user's name for the instance. In a config file it
	// identifies the tracker across reloads; elsewhere it is a label.
	Name string
	// Kind is the tracker kind, e.g. "process".
	Kind string
	// Container, when set, restricts the tracker in the kernel to this
	// container (a name or id), resolved to its cgroups when it starts.
	Container string
	// Config is the kind's typed config: its defaults, overridden by the
	// keys given. It has been validated.
	Config tracker.Config
	// Handlers is the handler chain, in order.
	Handlers []HandlerSpec
}

// HandlerSpec describes one handler of a chain: either a handler of a type
// with its options, or a reference to a shared output by name.
type HandlerSpec struct {
	Type    string // a handler type (see Types), or "" for an output reference
	Output  string // the name of a shared output, when Type is ""
	Options any    // pointer to the type's options struct; nil for a reference
}

var specKeys = []string{"name", "kind", "container", "config", "handlers"}

// DecodeSpec decodes a tracker spec from n (a mapping with the keys name,
// kind, config and handlers), strictly: see package strict. path is n's key
// path, used in errors. The config is validated; a validation error names
// the line of the key it is about.
func DecodeSpec(reg *tracker.Registry, d *strict.Decoder, n *yaml.Node, path string) (Spec, error) {
	var s Spec
	pairs, err := d.Mapping(n, path)
	if err != nil {
		return s, err
	}
	var kindNode, cfgNode *yaml.Node
	var handlersNode *yaml.Node
	for _, p := range pairs {
		switch p.Key {
		case "name":
			if err := d.Decode(p.Value, &s.Name, strict.Join(path, p.Key)); err != nil {
				return s, err
			}
		case "kind":
			kindNode = p.Value
			if err := d.Decode(p.Value, &s.Kind, strict.Join(path, p.Key)); err != nil {
				return s, err
			}
		case "container":
			if err := d.Decode(p.Value, &s.Container, strict.Join(path, p.Key)); err != nil {
				return s, err
			}
		case "config":
			cfgNode = p.Value
		case "handlers":
			handlersNode = p.Value
		default:
			return s, strict.UnknownKey(p.KeyNode, path, p.Key, specKeys)
		}
	}
	if s.Kind == "" {
		return s, strict.Errorf(orNode(kindNode, n), strict.Join(path, "kind"), "missing: name a tracker kind (one of %s)", strings.Join(reg.Names(), ", "))
	}
	k, err := reg.Lookup(s.Kind)
	if err != nil {
		return s, strict.Errorf(kindNode, strict.Join(path, "kind"), "%s", err.Error())
	}
	s.Config = k.NewConfig()
	cfgPath := strict.Join(path, "config")
	if err := d.Decode(cfgNode, s.Config, cfgPath); err != nil {
		return s, err
	}
	if err := s.Config.Validate(); err != nil {
		return s, validationError(d, cfgNode, n, cfgPath, err)
	}
	if !strict.IsNull(handlersNode) {
		hn := strict.Resolve(handlersNode)
		hpath := strict.Join(path, "handlers")
		if hn.Kind != yaml.SequenceNode {
			return s, strict.Errorf(hn, hpath, "want a list of handlers")
		}
		for i, item := range hn.Content {
			h, err := DecodeHandler(d, item, fmt.Sprintf("%s[%d]", hpath, i), true)
			if err != nil {
				return s, err
			}
			s.Handlers = append(s.Handlers, h)
		}
	}
	return s, nil
}

// DecodeSpecJSON decodes a tracker spec from a JSON object.
func DecodeSpecJSON(reg *tracker.Registry, data []byte) (Spec, error) {
	n, err := strict.ParseJSON(data)
	if err != nil {
		return Spec{}, err
	}
	var d strict.Decoder
	return DecodeSpec(reg, &d, n, "")
}

// DecodeHandler decodes one handler spec from a mapping: {type: T, options
// of T...} or, when refs is true, {output: NAME}.
func DecodeHandler(d *strict.Decoder, n *yaml.Node, path string, refs bool) (HandlerSpec, error) {
	var h HandlerSpec
	pairs, err := d.Mapping(n, path)
	if err != nil {
		return h, err
	}
	var typeNode, outputNode *yaml.Node
	for _, p := range pairs {
		switch p.Key {
		case "type":
			typeNode = p.Value
			if err := d.Decode(p.Value, &h.Type, strict.Join(path, "type")); err != nil {
				return h, err
			}
		case "output":
			outputNode = p.KeyNode
			if !refs {
				return h, strict.Errorf(p.KeyNode, strict.Join(path, "output"), "an output cannot refer to another output")
			}
			if err := d.Decode(p.Value, &h.Output, strict.Join(path, "output")); err != nil {
				return h, err
			}
		}
	}
	if outputNode != nil {
		if typeNode != nil {
			return h, strict.Errorf(outputNode, path, "give either type (a handler of its own) or output (a shared output), not both")
		}
		if h.Output == "" {
			return h, strict.Errorf(outputNode, strict.Join(path, "output"), "empty output name")
		}
		for _, p := range pairs {
			if p.Key != "output" {
				return h, strict.Errorf(p.KeyNode, strict.Join(path, p.Key), "a reference to an output takes no options; set them on the output")
			}
		}
		return h, nil
	}
	want := "type (one of " + strings.Join(TypeNames(), ", ") + ")"
	if refs {
		want += " or output (the name of a shared output)"
	}
	if typeNode == nil {
		return h, strict.Errorf(orNode(nil, n), path, "missing %s", want)
	}
	t, ok := lookupType(h.Type)
	if !ok {
		return h, strict.Errorf(typeNode, strict.Join(path, "type"), "unknown handler type %q (known: %s)", h.Type, strings.Join(TypeNames(), ", "))
	}
	// Decode the options: the mapping less its "type" key.
	opts := t.newOptions()
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: strict.Resolve(n).Line}
	for _, p := range pairs {
		if p.Key != "type" {
			rest.Content = append(rest.Content, p.KeyNode, p.Value)
		}
	}
	known := append([]string{"type"}, strict.Keys(reflect.TypeOf(opts).Elem())...)
	for _, p := range pairs {
		if !slices.Contains(known, p.Key) {
			return h, strict.UnknownKey(p.KeyNode, path, p.Key, known)
		}
	}
	if err := d.Decode(rest, opts, path); err != nil {
		return h, err
	}
	if v, ok := opts.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return h, validationError(d, rest, n, path, err)
		}
	}
	h.Options = opts
	return h, nil
}

// validationError places err, from a Validate method whose messages start
// with the key they are about ("min_duration: ..."), on the line of that key
// in mapping m, or else on the line of m (or of fallback).
func validationError(d *strict.Decoder, m, fallback *yaml.Node, path string, err error) error {
	msg := err.Error()
	at := orNode(m, fallback)
	if key, rest, ok := strings.Cut(msg, ": "); ok && !strings.ContainsAny(key, " \"") {
		if pairs, perr := d.Mapping(m, path); perr == nil {
			for _, p := range pairs {
				if p.Key == key {
					return strict.Errorf(p.Value, strict.Join(path, key), "%s", rest)
				}
			}
		}
		return strict.Errorf(at, strict.Join(path, key), "%s", rest)
	}
	return strict.Errorf(at, path, "%s", msg)
}

func orNode(n, fallback *yaml.Node) *yaml.Node {
	if r := strict.Resolve(n); r != nil {
		return r
	}
	return strict.Resolve(fallback)
}

// MarshalJSON writes the spec in the form DecodeSpecJSON reads.
func (s Spec) MarshalJSON() ([]byte, error) {
	type wire struct {
		Name      string         `json:"name,omitempty"`
		Kind      string         `json:"kind"`
		Container string         `json:"container,omitempty"`
		Config    tracker.Config `json:"config"`
		Handlers  []HandlerSpec  `json:"handlers"`
	}
	hs := s.Handlers
	if hs == nil {
		hs = []HandlerSpec{}
	}
	return json.Marshal(wire{s.Name, s.Kind, s.Container, s.Config, hs})
}

// MarshalJSON writes {"type": T, options...} or {"output": NAME}.
func (h HandlerSpec) MarshalJSON() ([]byte, error) {
	if h.Type == "" {
		return json.Marshal(struct {
			Output string `json:"output"`
		}{h.Output})
	}
	t, err := json.Marshal(h.Type)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"type":`)
	b.Write(t)
	if h.Options != nil {
		opts, err := json.Marshal(h.Options)
		if err != nil {
			return nil, err
		}
		if len(opts) > 2 && opts[0] == '{' {
			b.WriteByte(',')
			b.Write(opts[1:])
			return b.Bytes(), nil
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalStrict implements strict.Unmarshaler, for handler lists inside
// handler options (an aggregate's handlers).
func (h *HandlerSpec) UnmarshalStrict(d *strict.Decoder, n *yaml.Node, key string) error {
	spec, err := DecodeHandler(d, n, key, true)
	if err != nil {
		return err
	}
	*h = spec
	return nil
}

// UnmarshalJSON reads what MarshalJSON writes, strictly.
func (h *HandlerSpec) UnmarshalJSON(data []byte) error {
	n, err := strict.ParseJSON(data)
	if err != nil {
		return err
	}
	var d strict.Decoder
	spec, err := DecodeHandler(&d, n, "", true)
	if err != nil {
		return err
	}
	*h = spec
	return nil
}
