package rules

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// recorder notes the fields a payload writes and their rule types.
type recorder map[string]fieldType

func (r recorder) String(k, _ string)           { r[k] = tString }
func (r recorder) Int(k string, _ int64)        { r[k] = tInt }
func (r recorder) Uint(k string, _ uint64)      { r[k] = tInt }
func (r recorder) Bool(k string, _ bool)        { r[k] = tBool }
func (r recorder) Strings(k string, _ []string) { r[k] = tStrings }
func (r recorder) Event(k string, _ *event.Event) {
	panic("rule kinds have no nested events")
}

func describe(m map[string]fieldType) string {
	var s []string
	for k, t := range m {
		s = append(s, fmt.Sprintf("%s:%d", k, t))
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

// The rule schema of each kind is exactly what its payload writes, with
// every optional field set.
func TestSchemaMatchesPayloads(t *testing.T) {
	conn := event.TCPConn{Saddr: "a", Daddr: "b", Sport: 1, Dport: 2, Family: event.FamilyIPv4}
	payloads := map[event.Kind]event.Payload{
		event.KindProcessExec: &event.ProcessExec{Filename: "f", Args: []string{"a"}, ArgsTruncated: true},
		event.KindProcessExit: &event.ProcessExit{},
		event.KindTCPConnect:  &event.TCPConnect{TCPConn: conn, Result: "failed", Error: "ETIMEDOUT"},
		event.KindTCPAccept:   &event.TCPAccept{TCPConn: conn},
		event.KindTCPClose:    &event.TCPClose{TCPConn: conn},
		event.KindTCPFlow:     &event.TCPFlow{},
		event.KindIPC:         &event.IPC{Has: ^event.IPCField(0), Name: "q", Cmd: "IPC_RMID", Flags: "IPC_CREAT", Error: "ENOENT"},
		event.KindSignal:      &event.Signal{},
		event.KindFilesIO:     &event.FilesIO{},
		event.KindFilesOpen:   &event.FilesOpen{},
		event.KindSyscall:     &event.Syscall{IntervalNs: 1},
	}
	for kind, fs := range payloadFields {
		p, ok := payloads[kind]
		if !ok {
			t.Errorf("%s: no payload to check the schema against", kind)
			continue
		}
		got := recorder{}
		p.WriteFields(got)
		want := map[string]fieldType{}
		for _, f := range fs {
			want[f.name] = f.typ
		}
		if describe(got) != describe(want) {
			t.Errorf("%s: payload writes\n%s\nschema says\n%s", kind, describe(got), describe(want))
		}
	}
}
