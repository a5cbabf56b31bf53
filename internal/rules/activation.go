package rules

import (
	"math"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// activation is the CEL activation of one event: header variables are read
// from the event when a rule asks for them, payload fields are gathered in
// one WriteFields pass the first time a rule reads one, and shared by every
// rule evaluated on that event. Nothing is converted that no rule reads.
// One activation serves one event on one goroutine; the handler pools them.
type activation struct {
	ev     *event.Event
	schema *kindSchema
	rule   *Rule // the rule being evaluated: its fallback zeros

	loaded bool
	fields []fieldVal
}

type fieldVal struct {
	key string
	typ fieldType
	s   string
	i   int64
	b   bool
	ss  []string
	val ref.Val // converted on first read
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) reset(ev *event.Event, s *kindSchema) {
	a.ev, a.schema, a.rule = ev, s, nil
	a.loaded = false
	for i := range a.fields {
		a.fields[i] = fieldVal{}
	}
	a.fields = a.fields[:0]
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

// ResolveName implements interpreter.Activation. Names are the variables
// the rule environment declares; the checker has resolved `process.comm`
// to one dotted name already.
func (a *activation) ResolveName(name string) (any, bool) {
	ev := a.ev
	switch name {
	case "kind":
		return types.String(ev.Kind), true
	case "tracker":
		return types.String(ev.Tracker), true
	case "time":
		return types.Timestamp{Time: ev.Time}, true
	case "process.pid":
		return types.Int(ev.Process.Pid), true
	case "process.tid":
		return types.Int(ev.Process.Tid), true
	case "process.ppid":
		return types.Int(ev.Process.Ppid), true
	case "process.uid":
		return types.Int(ev.Process.Uid), true
	case "process.gid":
		return types.Int(ev.Process.Gid), true
	case "process.comm":
		return types.String(ev.Process.Comm), true
	case "process.cgroup_id":
		return uintVal(ev.Process.CgroupID), true
	case "process.pid_ns":
		return types.Int(ev.Process.PidNS), true
	case "process.mnt_ns":
		return types.Int(ev.Process.MntNS), true
	case "process.user_ns":
		return types.Int(ev.Process.UserNS), true
	case "container.id":
		return types.String(ev.Container.ID), true
	case "container.name":
		return types.String(ev.Container.Name), true
	case "container.image":
		return types.String(ev.Container.Image), true
	case "container.pod":
		return types.String(ev.Container.Pod), true
	case "container.namespace":
		return types.String(ev.Container.Namespace), true
	}
	return a.payload(name)
}

func (a *activation) payload(name string) (any, bool) {
	if !a.loaded {
		a.loaded = true
		if a.ev.Payload != nil {
			a.ev.Payload.WriteFields(a)
		}
	}
	for i := range a.fields {
		f := &a.fields[i]
		if f.key != name {
			continue
		}
		if f.val == nil {
			f.val = f.convert()
		}
		return f.val, true
	}
	// Not written by this event: the zero of its type in this kind, or,
	// for a field of another kind the rule names, of the rule's type.
	if a.schema != nil {
		if z, ok := a.schema.zeros[name]; ok {
			return z, true
		}
	}
	if a.rule != nil {
		if z, ok := a.rule.zeros[name]; ok {
			return z, true
		}
	}
	return nil, false
}

func (f *fieldVal) convert() ref.Val {
	switch f.typ {
	case tString:
		return types.String(f.s)
	case tInt:
		return types.Int(f.i)
	case tBool:
		return types.Bool(f.b)
	case tStrings:
		return types.NewStringList(types.DefaultTypeAdapter, f.ss)
	}
	return types.NullValue
}

func uintVal(v uint64) types.Int {
	if v > math.MaxInt64 {
		return types.Int(math.MaxInt64)
	}
	return types.Int(v)
}

// The FieldWriter side: payloads write their fields here. A payload that
// writes a key twice keeps the first, as event.Field does.

func (a *activation) String(k, v string) {
	a.fields = append(a.fields, fieldVal{key: k, typ: tString, s: v})
}
func (a *activation) Int(k string, v int64) {
	a.fields = append(a.fields, fieldVal{key: k, typ: tInt, i: v})
}
func (a *activation) Uint(k string, v uint64) {
	a.fields = append(a.fields, fieldVal{key: k, typ: tInt, i: int64(uintVal(v))})
}
func (a *activation) Bool(k string, v bool) {
	a.fields = append(a.fields, fieldVal{key: k, typ: tBool, b: v})
}
func (a *activation) Strings(k string, v []string) {
	a.fields = append(a.fields, fieldVal{key: k, typ: tStrings, ss: v})
}

// Event implements FieldWriter: nested events (only alerts have them) are
// not rule variables.
func (a *activation) Event(string, *event.Event) {}
