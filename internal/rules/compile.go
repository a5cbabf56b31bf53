// Package rules is the security rule engine: rules written in YAML with a
// CEL condition over an event's fields, compiled once, indexed by event
// kind, and a handler that evaluates them on every event and raises alert
// events (see docs/rules.md).
package rules

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// Rule is one compiled rule.
type Rule struct {
	Name        string
	Description string
	Severity    string
	Kinds       []event.Kind
	Condition   string
	Output      string
	Tags        []string
	Enabled     bool
	// Where it was defined: file name and line.
	File string
	Line int

	index int // in Set.rules: the slot of its counters
	prg   cel.Program
	out   []outPart
	// zeros are what the rule's payload fields read as on an event of one
	// of its kinds that lacks them entirely (see activation.payload).
	zeros map[string]ref.Val
}

// outPart is a piece of an output template: literal text or an expression.
type outPart struct {
	text string
	prg  cel.Program
}

// Set is a compiled set of rules, indexed by event kind. It is immutable
// and safe for concurrent use.
type Set struct {
	rules  []*Rule
	byKind map[event.Kind][]*Rule // enabled rules only
}

// Rules returns every rule, enabled or not, in the order of the files.
func (s *Set) Rules() []*Rule { return s.rules }

// Kinds lists the event kinds the enabled rules apply to, sorted.
func (s *Set) Kinds() []event.Kind {
	out := make([]event.Kind, 0, len(s.byKind))
	for k := range s.byKind {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ForKind returns the enabled rules for events of kind k.
func (s *Set) ForKind(k event.Kind) []*Rule { return s.byKind[k] }

// LoadFiles reads and compiles rule files ("builtin": the built-in pack).
func LoadFiles(paths ...string) (*Set, error) {
	srcs, err := ReadSources(paths)
	if err != nil {
		return nil, err
	}
	return Compile(srcs...)
}

// Compile parses and compiles rule sources. Every problem is an error that
// names the file and line, the rule, and for CEL, the line:column in the
// condition or output.
func Compile(srcs ...Source) (*Set, error) {
	if len(srcs) == 0 {
		return nil, errors.New("rules: no rule files")
	}
	p, err := parseSources(srcs)
	if err != nil {
		return nil, err
	}
	c, err := newCompiler(p.lists)
	if err != nil {
		return nil, err
	}
	s := &Set{byKind: map[event.Kind][]*Rule{}}
	for _, spec := range p.rules {
		r, err := c.compile(spec)
		if err != nil {
			return nil, err
		}
		r.index = len(s.rules)
		s.rules = append(s.rules, r)
		if !r.Enabled {
			continue
		}
		for _, k := range r.Kinds {
			s.byKind[k] = append(s.byKind[k], r)
		}
	}
	if len(s.rules) == 0 {
		return nil, fmt.Errorf("rules: %s define no rules", sourceNames(srcs))
	}
	return s, nil
}

func sourceNames(srcs []Source) string {
	names := make([]string, len(srcs))
	for i, s := range srcs {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// compiler holds the CEL environments: one base environment (header
// variables, lists, extension libraries) and, derived from it, one per
// distinct set of event kinds, declaring those kinds' payload fields.
type compiler struct {
	base *cel.Env
	envs map[string]*cel.Env
}

func newCompiler(lists map[string]*listSpec) (*compiler, error) {
	opts := []cel.EnvOption{
		ext.Strings(), ext.Math(), ext.Sets(), ext.Lists(), functions(),
		cel.Variable("time", cel.TimestampType),
	}
	for _, f := range headerFields {
		opts = append(opts, cel.Variable(f.name, f.typ.cel()))
	}
	names := make([]string, 0, len(lists))
	for n := range lists {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := lists[n]
		if l.isInts {
			opts = append(opts, cel.Constant(n, cel.ListType(cel.IntType), types.NewDynamicList(types.DefaultTypeAdapter, l.ints)))
		} else {
			opts = append(opts, cel.Constant(n, cel.ListType(cel.StringType), types.NewStringList(types.DefaultTypeAdapter, l.strs)))
		}
	}
	base, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("rules: CEL environment: %w", err)
	}
	return &compiler{base: base, envs: map[string]*cel.Env{}}, nil
}

func (c *compiler) env(kinds []event.Kind) (*cel.Env, []field, error) {
	decls := payloadDecls(kinds)
	keys := make([]string, len(kinds))
	for i, k := range kinds {
		keys[i] = string(k)
	}
	sort.Strings(keys)
	key := strings.Join(keys, ",")
	if e, ok := c.envs[key]; ok {
		return e, decls, nil
	}
	opts := make([]cel.EnvOption, len(decls))
	for i, f := range decls {
		opts[i] = cel.Variable(f.name, f.typ.cel())
	}
	e, err := c.base.Extend(opts...)
	if err != nil {
		return nil, nil, err
	}
	c.envs[key] = e
	return e, decls, nil
}

func (c *compiler) compile(spec *ruleSpec) (*Rule, error) {
	r := &Rule{
		Name: spec.Name, Description: spec.Description, Severity: spec.Severity,
		Condition: spec.Condition, Output: spec.Output, Tags: spec.Tags,
		Enabled: spec.Enabled, File: spec.file, Line: spec.line,
		zeros: map[string]ref.Val{},
	}
	for _, k := range spec.Kinds {
		r.Kinds = append(r.Kinds, event.Kind(k))
	}
	if r.Tags == nil {
		r.Tags = []string{}
	}
	env, decls, err := c.env(r.Kinds)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: rule %q: %w", spec.file, spec.line, r.Name, err)
	}
	for _, f := range decls {
		r.zeros[f.name] = f.typ.zero()
	}

	where := func(n int) string { return fmt.Sprintf("%s:%d: rule %q", spec.file, n, r.Name) }
	ast, iss := env.Compile(spec.Condition)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%s: condition %s", where(spec.condNode.Line), celErrors(iss, 1, 1))
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("%s: condition is of type %s, want bool", where(spec.condNode.Line), t)
	}
	if r.prg, err = env.Program(ast, cel.EvalOptions(cel.OptOptimize)); err != nil {
		return nil, fmt.Errorf("%s: condition: %w", where(spec.condNode.Line), err)
	}
	if r.out, err = compileOutput(env, spec.Output); err != nil {
		return nil, fmt.Errorf("%s: output %w", where(spec.outNode.Line), err)
	}
	return r, nil
}

// celErrors formats CEL issues as "line:column: message" (1-based), the
// position shifted by where the expression starts in its text.
func celErrors(iss *cel.Issues, line, col int) error {
	var msgs []string
	for _, e := range iss.Errors() {
		l, c := e.Location.Line(), e.Location.Column()+1
		if l == 1 {
			c += col - 1
		}
		l += line - 1
		msg := strings.TrimSuffix(e.Message, " (in container '')")
		msgs = append(msgs, fmt.Sprintf("%d:%d: %s", l, c, msg))
	}
	return errors.New(strings.Join(msgs, "; "))
}

// compileOutput splits an output template into literal text and {{ CEL }}
// expressions, compiled with the rule's environment.
func compileOutput(env *cel.Env, tmpl string) ([]outPart, error) {
	var parts []outPart
	rest, off := tmpl, 0
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				parts = append(parts, outPart{text: rest})
			}
			return parts, nil
		}
		if i > 0 {
			parts = append(parts, outPart{text: rest[:i]})
		}
		j := strings.Index(rest[i+2:], "}}")
		line, col := position(tmpl, off+i)
		if j < 0 {
			return nil, fmt.Errorf("%d:%d: {{ is not closed by }}", line, col)
		}
		expr := rest[i+2 : i+2+j]
		if strings.TrimSpace(expr) == "" {
			return nil, fmt.Errorf("%d:%d: empty {{ }}", line, col)
		}
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			return nil, celErrors(iss, line, col+2)
		}
		prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			return nil, fmt.Errorf("%d:%d: %w", line, col, err)
		}
		parts = append(parts, outPart{prg: prg})
		off += i + 2 + j + 2
		rest = rest[i+2+j+2:]
	}
}

// position is the 1-based line and column of byte offset off in s.
func position(s string, off int) (line, col int) {
	line = 1 + strings.Count(s[:off], "\n")
	col = off + 1
	if k := strings.LastIndexByte(s[:off], '\n'); k >= 0 {
		col = off - k
	}
	return line, col
}

// appendValue formats a CEL value for a message: strings as they are,
// lists space-separated (an exec's args read as a command line).
func appendValue(b []byte, v ref.Val) []byte {
	switch x := v.(type) {
	case types.String:
		return append(b, x...)
	case types.Int:
		return strconv.AppendInt(b, int64(x), 10)
	case types.Uint:
		return strconv.AppendUint(b, uint64(x), 10)
	case types.Bool:
		return strconv.AppendBool(b, bool(x))
	case types.Double:
		return strconv.AppendFloat(b, float64(x), 'g', -1, 64)
	case types.Null:
		return append(b, "null"...)
	case traits.Lister:
		it := x.Iterator()
		for first := true; it.HasNext() == types.True; first = false {
			if !first {
				b = append(b, ' ')
			}
			b = appendValue(b, it.Next())
		}
		return b
	}
	if s, ok := v.ConvertToType(types.StringType).(types.String); ok {
		return append(b, s...)
	}
	return fmt.Appendf(b, "%v", v.Value())
}
