// Package strict decodes YAML and JSON documents into tagged Go structs
// strictly: an unknown key, a duplicate key, a value of the wrong type or
// out of range is an error that names the line and the key path
// (e.g. "line 12: trackers[0].config.pid: ..."). Both formats go through
// one decoder: JSON is turned into the same node tree the YAML parser
// makes, so API requests and config files get the same checks and messages.
//
// Keys are the fields' `json` tag names (the keys tracker configs document),
// or their `yaml` tag names when they have no json tag. An anonymous struct
// field without a key, or with `yaml:",inline"`, is flattened into its parent.
package strict

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is a decoding error at one place of a document.
type Error struct {
	Line int    // 1-based; 0 when unknown
	Key  string // key path, e.g. "trackers[0].config.pid"; "" for the document
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errorf makes an Error at node n (which may be nil).
func Errorf(n *yaml.Node, key, format string, args ...any) *Error {
	e := &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line = n.Line
	}
	return e
}

// maxNodes bounds the nodes one Decode visits: YAML aliases can make a
// small document expand exponentially ("billion laughs").
const maxNodes = 100000

// Decoder decodes nodes into values. The zero value is ready to use; one
// Decoder counts the nodes it visits across calls, so use one per document.
type Decoder struct {
	visited int
}

// Decode decodes n into v, which must be a non-nil pointer. key is the key
// path of n, used in errors.
func Decode(n *yaml.Node, v any, key string) error {
	var d Decoder
	return d.Decode(n, v, key)
}

// Decode decodes n into v, which must be a non-nil pointer.
func (d *Decoder) Decode(n *yaml.Node, v any, key string) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("strict: Decode needs a non-nil pointer, got %T", v)
	}
	return d.decode(n, rv.Elem(), key)
}

// Resolve follows document and alias nodes to the node that holds a value.
// A nil node stays nil.
func Resolve(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch {
		case n.Kind == yaml.DocumentNode && len(n.Content) == 1:
			n = n.Content[0]
		case n.Kind == yaml.DocumentNode:
			return nil // an empty document
		case n.Kind == yaml.AliasNode:
			n = n.Alias
		default:
			return n
		}
	}
	return nil
}

// IsNull reports whether n holds no value (missing, empty or null).
func IsNull(n *yaml.Node) bool {
	n = Resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// Unmarshaler is implemented by types that decode themselves from a node
// (e.g. one whose keys depend on the value of another key).
type Unmarshaler interface {
	UnmarshalStrict(d *Decoder, n *yaml.Node, key string) error
}

var (
	unmarshalerType     = reflect.TypeOf((*Unmarshaler)(nil)).Elem()
	textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
	nodeType            = reflect.TypeOf(yaml.Node{})
)

func (d *Decoder) decode(n *yaml.Node, v reflect.Value, key string) error {
	n = Resolve(n)
	d.visited++
	if d.visited > maxNodes {
		return Errorf(n, key, "document too large (more than %d values after expanding aliases)", maxNodes)
	}
	if v.Type() == nodeType {
		if n != nil {
			v.Set(reflect.ValueOf(*n))
		}
		return nil
	}
	if n != nil && reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		return v.Addr().Interface().(Unmarshaler).UnmarshalStrict(d, n, key)
	}
	if IsNull(n) {
		// A missing or null value keeps the default, except that a null
		// pointer or list is cleared.
		if n != nil && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Slice || v.Kind() == reflect.Map) {
			v.SetZero()
		}
		return nil
	}
	if reflect.PointerTo(v.Type()).Implements(textUnmarshalerType) {
		if n.Kind != yaml.ScalarNode {
			return Errorf(n, key, "want %s, got %s", describeType(v.Type()), describeNode(n))
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			return Errorf(n, key, "%s", err.Error())
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := d.decode(n, p.Elem(), key); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		return d.decodeStruct(n, v, key)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return Errorf(n, key, "want a list, got %s", describeNode(n))
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := d.decode(item, s.Index(i), key+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("strict: map key type %s is not supported", v.Type().Key())
		}
		pairs, err := d.Mapping(n, key)
		if err != nil {
			return err
		}
		m := reflect.MakeMapWithSize(v.Type(), len(pairs))
		for _, p := range pairs {
			ev := reflect.New(v.Type().Elem()).Elem()
			if err := d.decode(p.Value, ev, Join(key, p.Key)); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(p.Key).Convert(v.Type().Key()), ev)
		}
		v.Set(m)
		return nil
	}
	return decodeScalar(n, v, key)
}

func decodeScalar(n *yaml.Node, v reflect.Value, key string) error {
	want := describeType(v.Type())
	if n.Kind != yaml.ScalarNode {
		return Errorf(n, key, "want %s, got %s", want, describeNode(n))
	}
	tag := n.ShortTag()
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
		return nil
	case reflect.Bool:
		if tag == "!!bool" {
			b, err := strconv.ParseBool(strings.ToLower(n.Value))
			if err == nil {
				v.SetBool(b)
				return nil
			}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if tag == "!!int" {
			i, err := strconv.ParseInt(n.Value, 0, v.Type().Bits())
			if err == nil {
				v.SetInt(i)
				return nil
			}
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if tag == "!!int" {
			u, err := strconv.ParseUint(strings.TrimPrefix(n.Value, "+"), 0, v.Type().Bits())
			if err == nil {
				v.SetUint(u)
				return nil
			}
		}
	case reflect.Float32, reflect.Float64:
		if tag == "!!int" || tag == "!!float" {
			f, err := strconv.ParseFloat(n.Value, v.Type().Bits())
			if err == nil {
				v.SetFloat(f)
				return nil
			}
		}
	default:
		return fmt.Errorf("strict: %s: type %s is not supported", key, v.Type())
	}
	return Errorf(n, key, "want %s, got %s", want, describeNode(n))
}

// Pair is one key and its value in a mapping.
type Pair struct {
	Key     string
	KeyNode *yaml.Node
	Value   *yaml.Node
}

// Mapping returns the pairs of mapping node n in document order. A null n
// is an empty mapping. Keys must be strings and appear once.
func (d *Decoder) Mapping(n *yaml.Node, key string) ([]Pair, error) {
	n = Resolve(n)
	if IsNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, Errorf(n, key, "want a mapping of keys to values, got %s", describeNode(n))
	}
	pairs := make([]Pair, 0, len(n.Content)/2)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := Resolve(n.Content[i])
		d.visited++
		if k == nil || k.Kind != yaml.ScalarNode {
			return nil, Errorf(n.Content[i], key, "keys must be plain strings, got %s", describeNode(k))
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			return nil, Errorf(k, key, "merge keys (<<) are not supported: write the keys out")
		}
		if line, dup := seen[k.Value]; dup {
			return nil, Errorf(k, Join(key, k.Value), "key given twice (first on line %d)", line)
		}
		seen[k.Value] = k.Line
		pairs = append(pairs, Pair{Key: k.Value, KeyNode: k, Value: n.Content[i+1]})
	}
	return pairs, nil
}

// Mapping is Decoder.Mapping with a fresh decoder.
func Mapping(n *yaml.Node, key string) ([]Pair, error) {
	var d Decoder
	return d.Mapping(n, key)
}

// field is one settable key of a struct, embedded structs flattened.
type field struct {
	key   string
	index []int
}

// Keys lists the keys of struct type t, in declaration order.
func Keys(t reflect.Type) []string {
	fs := fields(t)
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.key
	}
	return out
}

func fields(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		jsonKey, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		yamlKey, yamlOpts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.Anonymous && f.Type.Kind() == reflect.Struct &&
			(jsonKey == "" && (yamlKey == "" || strings.Contains(yamlOpts, "inline"))) {
			for _, sub := range fields(f.Type) {
				sub.index = append([]int{i}, sub.index...)
				out = append(out, sub)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		key := jsonKey
		if key == "" {
			key = yamlKey
		}
		if key == "" || key == "-" {
			continue
		}
		out = append(out, field{key: key, index: []int{i}})
	}
	return out
}

func (d *Decoder) decodeStruct(n *yaml.Node, v reflect.Value, key string) error {
	pairs, err := d.Mapping(n, key)
	if err != nil {
		return err
	}
	fs := fields(v.Type())
	for _, p := range pairs {
		var f *field
		for i := range fs {
			if fs[i].key == p.Key {
				f = &fs[i]
				break
			}
		}
		if f == nil {
			return UnknownKey(p.KeyNode, key, p.Key, Keys(v.Type()))
		}
		if err := d.decode(p.Value, v.FieldByIndex(f.index), Join(key, p.Key)); err != nil {
			return err
		}
	}
	return nil
}

// UnknownKey is the error for key k, not one of known, in the mapping at path.
func UnknownKey(n *yaml.Node, path, k string, known []string) *Error {
	known = append([]string(nil), known...)
	sort.Strings(known)
	if len(known) == 0 {
		return Errorf(n, Join(path, k), "unknown key (this mapping takes no keys)")
	}
	return Errorf(n, Join(path, k), "unknown key (known: %s)", strings.Join(known, ", "))
}

// Join appends key k to path.
func Join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// describeType says in words what a value of type t looks like.
func describeType(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Name() == "Duration" {
		return "a duration (e.g. 500ms, 5s, 1m)"
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return "a single value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("a whole number that fits %d bits", t.Bits())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a non-negative whole number that fits %d bits", t.Bits())
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping"
	}
	return "a " + t.String()
}

// describeNode says in words what n holds.
func describeNode(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 64 {
			v = v[:64] + "..."
		}
		switch n.ShortTag() {
		case "!!str":
			return strconv.Quote(v)
		case "!!null":
			return "null"
		}
		return v
	}
	return "an unexpected value"
}
