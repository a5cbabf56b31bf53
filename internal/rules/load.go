package rules

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Severities, from least to most severe.
var Severities = []string{"info", "low", "medium", "high", "critical"}

// Source is one rule file: its name (for error messages) and its YAML.
type Source struct {
	Name string
	Data []byte
}

// BuiltinName is the name under which ReadSources loads the built-in pack.
const BuiltinName = "builtin"

// ReadSources reads rule files; the name "builtin" stands for the built-in
// pack.
func ReadSources(paths []string) ([]Source, error) {
	out := make([]Source, 0, len(paths))
	for _, p := range paths {
		if p == BuiltinName {
			out = append(out, Builtin())
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		out = append(out, Source{Name: p, Data: data})
	}
	return out, nil
}

// ruleSpec is a rule as written in a file, with where each part was.
type ruleSpec struct {
	file        string
	line        int
	Name        string
	Description string
	Severity    string
	Kinds       []string
	Condition   string
	condNode    *yaml.Node
	Output      string
	outNode     *yaml.Node
	Tags        []string
	Enabled     bool
}

// listSpec is a named list of constants (ports, shells...) that conditions
// and outputs can use by name.
type listSpec struct {
	file   string
	line   int
	name   string
	ints   []int64
	strs   []string
	isInts bool
}

// parsed is the content of every source, in order.
type parsed struct {
	rules []*ruleSpec
	lists map[string]*listSpec
}

var (
	fileKeys = []string{"lists", "rules"}
	ruleKeys = []string{"name", "description", "severity", "kinds", "condition", "output", "tags", "enabled"}
	// Rule names go into metric labels and alert fields: keep them plain.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
	// List names become CEL identifiers.
	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// errAt formats an error at a position of a file.
func errAt(file string, n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("%s:%d:%d: %s", file, n.Line, n.Column, fmt.Sprintf(format, args...))
}

func parseSources(srcs []Source) (*parsed, error) {
	p := &parsed{lists: map[string]*listSpec{}}
	names := map[string]*ruleSpec{}
	for _, src := range srcs {
		if err := p.parseFile(src, names); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *parsed) parseFile(src Source, names map[string]*ruleSpec) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(src.Data, &doc); err != nil {
		return fmt.Errorf("%s: %s", src.Name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return fmt.Errorf("%s: empty rule file", src.Name)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return errAt(src.Name, root, "a rule file is a mapping with the keys %s", strings.Join(fileKeys, ", "))
	}
	var lists, rules *yaml.Node
	for i := 0; i < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "lists":
			lists = v
		case "rules":
			rules = v
		default:
			return errAt(src.Name, k, "unknown key %q (known: %s)", k.Value, strings.Join(fileKeys, ", "))
		}
	}
	if lists != nil {
		if err := p.parseLists(src.Name, lists); err != nil {
			return err
		}
	}
	if rules == nil {
		return nil
	}
	if rules.Kind != yaml.SequenceNode {
		return errAt(src.Name, rules, "rules: want a list of rules")
	}
	for _, n := range rules.Content {
		r, err := parseRule(src.Name, n)
		if err != nil {
			return err
		}
		if prev, dup := names[r.Name]; dup {
			return fmt.Errorf("%s:%d: rule %q is already defined at %s:%d", r.file, r.line, r.Name, prev.file, prev.line)
		}
		names[r.Name] = r
		p.rules = append(p.rules, r)
	}
	return nil
}

// parseLists reads named lists. A list defined again by a later file
// replaces the earlier one: that is how a user changes, say, the allowed
// ports of the built-in pack without copying its rules.
func (p *parsed) parseLists(file string, n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return errAt(file, n, "lists: want a mapping of list names to lists")
	}
	seen := map[string]bool{}
	for i := 0; i < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		if !identRE.MatchString(name) {
			return errAt(file, k, "list name %q: want letters, digits and _, not starting with a digit", name)
		}
		if seen[name] {
			return errAt(file, k, "list %q is defined twice in this file", name)
		}
		seen[name] = true
		if reservedName(name) {
			return errAt(file, k, "list name %q is an event field or a CEL name; pick another", name)
		}
		if v.Kind != yaml.SequenceNode {
			return errAt(file, v, "list %q: want a sequence of values", name)
		}
		l := &listSpec{file: file, line: k.Line, name: name}
		for j, e := range v.Content {
			if e.Kind != yaml.ScalarNode {
				return errAt(file, e, "list %q: element %d is not a plain value", name, j+1)
			}
			isInt := e.Tag == "!!int"
			if j == 0 {
				l.isInts = isInt
			} else if isInt != l.isInts {
				return errAt(file, e, "list %q: mixes numbers and strings; quote the numbers to make them strings", name)
			}
			if isInt {
				var x int64
				if err := e.Decode(&x); err != nil {
					return errAt(file, e, "list %q: %v", name, err)
				}
				l.ints = append(l.ints, x)
			} else {
				l.strs = append(l.strs, e.Value)
			}
		}
		p.lists[name] = l
	}
	return nil
}

// reservedName reports whether a list name would shadow a variable or a
// CEL identifier.
func reservedName(name string) bool {
	switch name {
	case "process", "container", "kind", "tracker", "time", "true", "false", "null",
		"in", "as", "break", "const", "continue", "else", "for", "function", "if",
		"import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
		"math", "sets", "strings", "lists", "base64", "dyn", "type", "int", "uint",
		"double", "bool", "string", "bytes", "list", "map", "has", "all", "exists",
		"exists_one", "filter", "size", "matches":
		return true
	}
	for _, fs := range payloadFields {
		for _, f := range fs {
			if f.name == name {
				return true
			}
		}
	}
	return false
}

func parseRule(file string, n *yaml.Node) (*ruleSpec, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errAt(file, n, "a rule is a mapping with the keys %s", strings.Join(ruleKeys, ", "))
	}
	r := &ruleSpec{file: file, line: n.Line, Enabled: true}
	// The name first, so that every later error can say which rule.
	for i := 0; i < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			v := n.Content[i+1]
			if err := scalarString(v, &r.Name); err != nil {
				return nil, errAt(file, v, "rule name: %v", err)
			}
		}
	}
	if r.Name == "" {
		return nil, errAt(file, n, "rule without a name")
	}
	if !nameRE.MatchString(r.Name) {
		return nil, errAt(file, n, "rule %q: name: want letters, digits and _ . : -", r.Name)
	}
	seen := map[string]bool{}
	for i := 0; i < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return nil, errAt(file, k, "rule %q: key %q given twice", r.Name, k.Value)
		}
		seen[k.Value] = true
		at, err := v, error(nil)
		switch k.Value {
		case "name":
		case "description":
			err = scalarString(v, &r.Description)
		case "severity":
			err = scalarString(v, &r.Severity)
			if err == nil && !slices.Contains(Severities, r.Severity) {
				err = fmt.Errorf("%q is not one of %s", r.Severity, strings.Join(Severities, ", "))
			}
		case "kinds":
			err = stringList(v, &r.Kinds)
			if err == nil {
				at, err = checkKinds(v, r.Kinds)
			}
		case "condition":
			err = scalarString(v, &r.Condition)
			r.condNode = v
		case "output":
			err = scalarString(v, &r.Output)
			r.outNode = v
		case "tags":
			err = stringList(v, &r.Tags)
		case "enabled":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				err = fmt.Errorf("want true or false")
			} else {
				err = v.Decode(&r.Enabled)
			}
		default:
			return nil, errAt(file, k, "rule %q: unknown key %q (known: %s)", r.Name, k.Value, strings.Join(ruleKeys, ", "))
		}
		if err != nil {
			return nil, errAt(file, at, "rule %q: %s: %v", r.Name, k.Value, err)
		}
	}
	for _, req := range []struct {
		key string
		ok  bool
	}{
		{"severity", r.Severity != ""},
		{"kinds", len(r.Kinds) > 0},
		{"condition", strings.TrimSpace(r.Condition) != ""},
		{"output", r.Output != ""},
	} {
		if !req.ok {
			return nil, errAt(file, n, "rule %q: %s is missing", r.Name, req.key)
		}
	}
	return r, nil
}

func scalarString(v *yaml.Node, out *string) error {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return fmt.Errorf("want a string")
	}
	*out = v.Value
	return nil
}

func stringList(v *yaml.Node, out *[]string) error {
	if v.Kind != yaml.SequenceNode {
		return fmt.Errorf("want a list of strings")
	}
	for _, e := range v.Content {
		if e.Kind != yaml.ScalarNode || e.Tag == "!!null" {
			return fmt.Errorf("want a list of strings")
		}
		*out = append(*out, e.Value)
	}
	return nil
}

// checkKinds returns the node of the first bad kind and what is wrong.
func checkKinds(v *yaml.Node, kinds []string) (*yaml.Node, error) {
	seen := map[string]bool{}
	for i, k := range kinds {
		at := v.Content[i]
		if seen[k] {
			return at, fmt.Errorf("%q is listed twice", k)
		}
		seen[k] = true
		if k == "alert" {
			return at, fmt.Errorf("rules cannot match alerts (a rule on alerts could feed itself)")
		}
		if !slices.Contains(ruleKinds(), k) {
			return at, fmt.Errorf("unknown event kind %q (known: %s)", k, strings.Join(ruleKinds(), ", "))
		}
	}
	return v, nil
}

func sortStrings(s []string) { sort.Strings(s) }
