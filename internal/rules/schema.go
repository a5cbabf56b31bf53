package rules

import (
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// fieldType is the CEL type of an event field. Unsigned kernel values are
// exposed as int (so that rules compare them with plain literals, `dport
// == 22`), saturated at the largest int.
type fieldType uint8

const (
	tString fieldType = iota
	tInt
	tBool
	tStrings
	tDyn // the same name has different types in the kinds a rule names
)

func (t fieldType) cel() *cel.Type {
	switch t {
	case tString:
		return cel.StringType
	case tInt:
		return cel.IntType
	case tBool:
		return cel.BoolType
	case tStrings:
		return cel.ListType(cel.StringType)
	}
	return cel.DynType
}

// zero is what a declared field reads as on an event that does not carry it.
func (t fieldType) zero() ref.Val {
	switch t {
	case tString:
		return types.String("")
	case tInt:
		return types.IntZero
	case tBool:
		return types.False
	case tStrings:
		return emptyStrings
	}
	return types.NullValue
}

var emptyStrings = types.NewStringList(types.DefaultTypeAdapter, nil)

type field struct {
	name string
	typ  fieldType
}

// Header variables, declared for every rule. Their names are the JSON
// names of the event header; process and container fields are declared as
// dotted names ("process.comm") so that the activation resolves each with
// one switch, without building a map per event.
var headerFields = []field{
	{"kind", tString},
	{"tracker", tString},
	{"process.pid", tInt},
	{"process.tid", tInt},
	{"process.ppid", tInt},
	{"process.uid", tInt},
	{"process.gid", tInt},
	{"process.comm", tString},
	{"process.cgroup_id", tInt},
	{"process.pid_ns", tInt},
	{"process.mnt_ns", tInt},
	{"process.user_ns", tInt},
	{"container.id", tString},
	{"container.name", tString},
	{"container.image", tString},
	{"container.pod", tString},
	{"container.namespace", tString},
}

// payloadFields lists, per event kind, the payload fields rules can read:
// the names and types its payload writes (see internal/event). A field
// that a payload writes only sometimes (files.open's inode when the open
// failed, ipc's key for operations without one) reads as its zero value
// when absent. schema_test.go checks this table against the payloads.
var payloadFields = map[event.Kind][]field{
	event.KindProcessExec: {
		{"filename", tString}, {"args", tStrings}, {"args_truncated", tBool},
	},
	event.KindProcessExit: {
		{"exit_code", tInt}, {"signal", tInt}, {"duration_ns", tInt},
	},
	event.KindSyscall: {
		{"syscall", tString}, {"nr", tInt}, {"abi", tString}, {"count", tInt},
		{"reason", tString}, {"interval_ns", tInt},
	},
	event.KindTCPConnect: {
		{"saddr", tString}, {"daddr", tString}, {"sport", tInt}, {"dport", tInt},
		{"family", tString}, {"result", tString}, {"error", tString}, {"latency_ns", tInt},
	},
	event.KindTCPAccept: {
		{"saddr", tString}, {"daddr", tString}, {"sport", tInt}, {"dport", tInt},
		{"family", tString},
	},
	event.KindTCPClose: {
		{"saddr", tString}, {"daddr", tString}, {"sport", tInt}, {"dport", tInt},
		{"family", tString}, {"direction", tString}, {"duration_ns", tInt},
		{"tx_bytes", tInt}, {"rx_bytes", tInt},
	},
	event.KindTCPFlow: {
		{"saddr", tString}, {"daddr", tString}, {"dport", tInt}, {"family", tString},
		{"count", tInt}, {"interval_count", tInt},
	},
	event.KindFilesIO: {
		{"file", tString}, {"inode", tInt}, {"dev", tInt}, {"file_type", tString},
		{"reads", tInt}, {"writes", tInt}, {"read_bytes", tInt}, {"write_bytes", tInt},
	},
	event.KindFilesOpen: {
		{"path", tString}, {"dfd", tInt}, {"flags", tInt}, {"flags_text", tString},
		{"mode", tInt}, {"result", tInt}, {"inode", tInt}, {"dev", tInt},
		{"file_type", tString},
	},
	event.KindIPC: {
		{"op", tString}, {"key", tInt}, {"ipc_id", tInt}, {"name", tString},
		{"mqd", tInt}, {"cmd", tString}, {"flags", tString}, {"mode", tInt},
		{"size", tInt}, {"msg_type", tInt}, {"prio", tInt}, {"nsems", tInt},
		{"nsops", tInt}, {"sem_num", tInt}, {"sem_op", tInt}, {"value", tInt},
		{"addr", tInt}, {"max_msgs", tInt}, {"msg_size", tInt},
		{"result", tInt}, {"error", tString}, {"duration_ns", tInt},
	},
	event.KindSignal: {
		{"signal", tInt}, {"signal_name", tString}, {"target_pid", tInt},
		{"target_tid", tInt}, {"target_comm", tString}, {"si_code", tInt},
		{"group", tBool}, {"result", tString},
	},
}

// kindSchema is a kind's payload fields by name, with the zero value each
// reads as when an event leaves it out.
type kindSchema struct {
	kind  event.Kind
	types map[string]fieldType
	zeros map[string]ref.Val
}

var schemas = func() map[event.Kind]*kindSchema {
	m := map[event.Kind]*kindSchema{}
	for k, fs := range payloadFields {
		s := &kindSchema{kind: k, types: map[string]fieldType{}, zeros: map[string]ref.Val{}}
		for _, f := range fs {
			s.types[f.name] = f.typ
			s.zeros[f.name] = f.typ.zero()
		}
		m[k] = s
	}
	return m
}()

// ruleKinds lists the event kinds rules may name, sorted.
func ruleKinds() []string {
	var out []string
	for k := range payloadFields {
		out = append(out, string(k))
	}
	sortStrings(out)
	return out
}

// payloadDecls merges the payload fields of kinds: a name with one type
// in all of them keeps it, a name with several becomes dyn.
func payloadDecls(kinds []event.Kind) []field {
	types := map[string]fieldType{}
	var order []string
	for _, k := range kinds {
		for _, f := range payloadFields[k] {
			t, seen := types[f.name]
			switch {
			case !seen:
				types[f.name] = f.typ
				order = append(order, f.name)
			case t != f.typ:
				types[f.name] = tDyn
			}
		}
	}
	out := make([]field, len(order))
	for i, n := range order {
		out[i] = field{n, types[n]}
	}
	return out
}
