package rules

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
)

// kv is a test payload that writes the fields it is given, so that rules
// can be tested on every event kind without its tracker.
type kv []struct {
	k string
	v any
}

func (p kv) WriteFields(w event.FieldWriter) {
	for _, f := range p {
		switch v := f.v.(type) {
		case string:
			w.String(f.k, v)
		case int:
			w.Int(f.k, int64(v))
		case uint64:
			w.Uint(f.k, v)
		case bool:
			w.Bool(f.k, v)
		case []string:
			w.Strings(f.k, v)
		default:
			panic("kv: unsupported value")
		}
	}
}

func fields(pairs ...any) kv {
	var p kv
	for i := 0; i < len(pairs); i += 2 {
		p = append(p, struct {
			k string
			v any
		}{pairs[i].(string), pairs[i+1]})
	}
	return p
}

func ev(kind event.Kind, comm string, p event.Payload) *event.Event {
	return &event.Event{
		Time:      time.Unix(1700000000, 0),
		Kind:      kind,
		Tracker:   "test#1",
		Process:   event.Process{Pid: 4242, Tid: 4242, Ppid: 1, Uid: 1000, Gid: 1000, Comm: comm, CgroupID: 77},
		Container: event.Container{Name: event.HostContainerName},
		Payload:   p,
	}
}

func inContainer(e *event.Event) *event.Event {
	e.Container = event.Container{ID: strings.Repeat("ab", 32), Name: "web", Image: "busybox:local"}
	return e
}

func mustCompile(t testing.TB, srcs ...Source) *Set {
	t.Helper()
	s, err := Compile(srcs...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func src(yaml string) Source { return Source{Name: "test.yaml", Data: []byte(yaml)} }

// collect is a downstream handler keeping alerts.
type collect struct {
	mu  sync.Mutex
	evs []*event.Event
	err error
}

func (c *collect) Handle(e *event.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evs = append(c.evs, e)
	return c.err
}

func (c *collect) alerts() []*event.Alert {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*event.Alert
	for _, e := range c.evs {
		out = append(out, e.Payload.(*event.Alert))
	}
	return out
}

func TestBuiltinPackCompiles(t *testing.T) {
	s := mustCompile(t, Builtin())
	var names []string
	for _, r := range s.Rules() {
		names = append(names, r.Name)
		if !r.Enabled || r.Description == "" || len(r.Tags) == 0 {
			t.Errorf("rule %s: enabled %v, description %q, tags %v", r.Name, r.Enabled, r.Description, r.Tags)
		}
	}
	want := "bpf_syscall ptrace_attach shell_in_container write_below_etc unexpected_port exec_from_tmp setuid_setgid kernel_module_load"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("rules %q, want %q", got, want)
	}
	if got := fmtKinds(s.Kinds()); got != "files.open process.exec syscall tcp.connect" {
		t.Errorf("kinds %q", got)
	}
}

func fmtKinds(ks []event.Kind) string {
	var s []string
	for _, k := range ks {
		s = append(s, string(k))
	}
	return strings.Join(s, " ")
}

// Each built-in rule on an event it must match and on near misses.
func TestBuiltinRules(t *testing.T) {
	s := mustCompile(t, Builtin())
	sys := func(comm, name, reason string) *event.Event {
		return ev(event.KindSyscall, comm, fields("syscall", name, "nr", uint64(1), "abi", "x86_64", "count", uint64(1), "reason", reason))
	}
	exec := func(comm, filename string, args ...string) *event.Event {
		return ev(event.KindProcessExec, comm, &event.ProcessExec{Filename: filename, Args: append([]string{filename}, args...)})
	}
	open := func(path string, flags uint64, text string) *event.Event {
		return ev(event.KindFilesOpen, "evil", fields("path", path, "dfd", -100, "flags", flags, "flags_text", text, "mode", uint64(0o644), "result", 3))
	}
	conn := func(dport uint64) *event.Event {
		return ev(event.KindTCPConnect, "nc", fields("saddr", "127.0.0.1", "daddr", "127.0.0.1", "sport", uint64(40000), "dport", dport, "family", "ipv4", "result", "refused", "latency_ns", uint64(10)))
	}
	cases := []struct {
		name string
		ev   *event.Event
		want string // rule, or "" for none
		msg  string
	}{
		{"bpf", sys("loader", "bpf", "first"), "bpf_syscall", "bpf() called by loader (pid 4242, uid 1000, container host)"},
		{"bpf again", sys("loader", "bpf", "calls"), "", ""},
		{"bpf by bpftool", sys("bpftool", "bpf", "first"), "", ""},
		{"ptrace", sys("inject", "ptrace", "first"), "ptrace_attach", "ptrace() called by inject (pid 4242, uid 1000, container host)"},
		{"ptrace by gdb", sys("gdb", "ptrace", "first"), "", ""},
		{"getpid", sys("x", "getpid", "first"), "", ""},
		{"shell in container", inContainer(exec("sh", "/bin/sh", "-c", "id")), "shell_in_container", "shell /bin/sh started in container web (busybox:local): /bin/sh -c id"},
		{"shell on host", exec("sh", "/bin/sh"), "", ""},
		{"ls in container", inContainer(exec("ls", "/bin/ls")), "", ""},
		{"write /etc", open("/etc/passwd", 1|0o1000, "O_WRONLY|O_TRUNC"), "write_below_etc", "/etc/passwd opened for writing (O_WRONLY|O_TRUNC) by evil (pid 4242, result 3)"},
		{"create /etc", open("/etc/x", 0o100, "O_RDONLY|O_CREAT"), "write_below_etc", "/etc/x opened for writing (O_RDONLY|O_CREAT) by evil (pid 4242, result 3)"},
		{"read /etc", open("/etc/passwd", 0o2000000, "O_RDONLY|O_CLOEXEC"), "", ""},
		{"write /etcetera", open("/etcetera/x", 1, "O_WRONLY"), "", ""},
		{"port 4444", conn(4444), "unexpected_port", "nc (pid 4242) connected to 127.0.0.1 port 4444: refused"},
		{"port 443", conn(443), "", ""},
		{"exec /tmp", exec("x", "/tmp/x", "-v"), "exec_from_tmp", "/tmp/x run by uid 1000 (pid 4242, parent 1, container host): /tmp/x -v"},
		{"exec /dev/shm", exec("x", "/dev/shm/x"), "exec_from_tmp", "/dev/shm/x run by uid 1000 (pid 4242, parent 1, container host): /dev/shm/x"},
		{"exec /tmpfoo", exec("x", "/tmpfoo/x"), "", ""},
		{"setuid", sys("su", "setuid", "first"), "setuid_setgid", "setuid() called by su (pid 4242, uid 1000, container host)"},
		{"setresgid", sys("su", "setresgid", "first"), "setuid_setgid", "setresgid() called by su (pid 4242, uid 1000, container host)"},
		{"getuid", sys("su", "getuid", "first"), "", ""},
		{"setgid by runc", sys("runc:[2:INIT]", "setgid", "first"), "", ""},
		{"finit_module", sys("modprobe", "finit_module", "first"), "kernel_module_load", "finit_module() called by modprobe (pid 4242, uid 1000, container host)"},
		{"init_module", sys("insmod", "init_module", "first"), "kernel_module_load", "init_module() called by insmod (pid 4242, uid 1000, container host)"},
		{"delete_module", sys("rmmod", "delete_module", "first"), "", ""},
		{"exit", ev(event.KindProcessExit, "x", &event.ProcessExit{}), "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := &collect{}
			h := NewHandler(s, out)
			if err := h.Handle(c.ev); err != nil {
				t.Fatal(err)
			}
			got := out.alerts()
			if c.want == "" {
				if len(got) != 0 {
					t.Fatalf("alerts %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d alerts %+v, want one of %s", len(got), got, c.want)
			}
			if got[0].Rule != c.want || got[0].Message != c.msg {
				t.Errorf("alert %s %q, want %s %q", got[0].Rule, got[0].Message, c.want, c.msg)
			}
			for _, st := range h.Stats() {
				if st.Errors != 0 {
					t.Errorf("rule %s: %d evaluation errors", st.Rule, st.Errors)
				}
			}
		})
	}
}

func TestAlertEvent(t *testing.T) {
	s := mustCompile(t, Builtin())
	out := &collect{}
	h := NewHandler(s, out)
	trigger := inContainer(ev(event.KindProcessExec, "sh", &event.ProcessExec{Filename: "/bin/sh", Args: []string{"sh"}}))
	if err := h.Handle(trigger); err != nil {
		t.Fatal(err)
	}
	if len(out.evs) != 1 {
		t.Fatalf("%d alerts", len(out.evs))
	}
	a := out.evs[0]
	if a.Kind != event.KindAlert || a.Process != trigger.Process || a.Container != trigger.Container || !a.Time.Equal(trigger.Time) || a.Tracker != "test#1" {
		t.Errorf("alert header %+v", a)
	}
	m := a.Map()
	if m["rule"] != "shell_in_container" || m["severity"] != "medium" || m["message"] != "shell /bin/sh started in container web (busybox:local): sh" {
		t.Errorf("alert fields %v", m)
	}
	if tags, _ := m["tags"].([]string); strings.Join(tags, ",") != "T1059.004,T1609" {
		t.Errorf("tags %v", m["tags"])
	}
	nested, _ := m["event"].(map[string]any)
	if nested["kind"] != "process.exec" || nested["filename"] != "/bin/sh" {
		t.Errorf("nested event %v", nested)
	}
	// The JSON printer writes the nested event as an object.
	js := string(handler.AppendEventJSON(nil, a))
	for _, want := range []string{`"kind":"alert"`, `"rule":"shell_in_container"`, `"tags":["T1059.004","T1609"]`, `"event":{"time":`, `"filename":"/bin/sh"`} {
		if !strings.Contains(js, want) {
			t.Errorf("JSON %s lacks %s", js, want)
		}
	}
	st := h.Stats()
	for _, r := range st {
		want := uint64(0)
		if r.Rule == "shell_in_container" {
			want = 1
		}
		if r.Alerts != want {
			t.Errorf("rule %s: %d alerts, want %d", r.Rule, r.Alerts, want)
		}
	}
}

func TestDownstreamErrorIsReturnedAndCounted(t *testing.T) {
	s := mustCompile(t, Builtin())
	out := &collect{err: errors.New("disk full")}
	h := NewHandler(s, out)
	err := h.Handle(ev(event.KindProcessExec, "x", &event.ProcessExec{Filename: "/tmp/x"}))
	if err == nil || !strings.Contains(err.Error(), "exec_from_tmp") || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err %v", err)
	}
	if h.AlertsFailed() != 1 {
		t.Errorf("failed %d", h.AlertsFailed())
	}
}

func TestNilDownstreamCountsOnly(t *testing.T) {
	h := NewHandler(mustCompile(t, Builtin()), nil)
	if err := h.Handle(ev(event.KindProcessExec, "x", &event.ProcessExec{Filename: "/tmp/x"})); err != nil {
		t.Fatal(err)
	}
	for _, st := range h.Stats() {
		if st.Rule == "exec_from_tmp" && st.Alerts != 1 {
			t.Errorf("alerts %d", st.Alerts)
		}
	}
}

func TestHeaderVariables(t *testing.T) {
	s := mustCompile(t, src(`
rules:
  - name: all_header
    severity: info
    kinds: [process.exit]
    condition: >-
      kind == "process.exit" && tracker == "test#1" && process.pid == 4242 &&
      process.tid == 4242 && process.ppid == 1 && process.uid == 1000 && process.gid == 1000 &&
      process.comm == "c" && process.cgroup_id == 77 && process.pid_ns == 0 &&
      process.mnt_ns == 0 && process.user_ns == 0 && container.id == "" &&
      container.name == "host" && container.image == "" && container.pod == "" &&
      container.namespace == "" && time == timestamp("2023-11-14T22:13:20Z") &&
      exit_code == -1 && signal == 9 && duration_ns == 5
    output: "{{process.comm}} {{exit_code}} {{time}} {{[1, 2]}} {{true}} {{1.5}} {{null}}"
`))
	out := &collect{}
	h := NewHandler(s, out)
	if err := h.Handle(ev(event.KindProcessExit, "c", &event.ProcessExit{ExitCode: -1, Signal: 9, DurationNs: 5})); err != nil {
		t.Fatal(err)
	}
	a := out.alerts()
	if len(a) != 1 || a[0].Message != "c -1 2023-11-14T22:13:20Z 1 2 true 1.5 null" {
		t.Fatalf("alerts %+v (stats %+v)", a, h.Stats())
	}
}

// Fields a payload leaves out read as the zero of their type; a field of
// another kind of a multi-kind rule too.
func TestAbsentFieldsAreZero(t *testing.T) {
	s := mustCompile(t, src(`
rules:
  - name: ipc_no_key
    severity: low
    kinds: [ipc]
    condition: key == 0 && ipc_id == 0 && name == "" && op == "shmdt"
    output: "{{op}}"
  - name: two_kinds
    severity: low
    kinds: [process.exec, tcp.connect]
    condition: (kind == "tcp.connect" && dport == 4444 && filename == "") || (kind == "process.exec" && dport == 0 && args == [])
    output: "{{kind}} {{result}}"
  - name: conflicting_types
    severity: low
    kinds: [tcp.connect, files.open]
    condition: (kind == "tcp.connect" && result == "refused") || (kind == "files.open" && result == -13)
    output: "{{result}}"
`))
	out := &collect{}
	h := NewHandler(s, out)
	for _, e := range []*event.Event{
		ev(event.KindIPC, "x", fields("op", "shmdt", "addr", uint64(4096), "result", 0)),
		ev(event.KindTCPConnect, "x", fields("dport", uint64(4444), "result", "refused")),
		ev(event.KindProcessExec, "x", &event.ProcessExec{Filename: "/bin/x"}),
		ev(event.KindFilesOpen, "x", fields("path", "/x", "flags", uint64(0), "result", -13)),
	} {
		if err := h.Handle(e); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, a := range out.alerts() {
		got = append(got, a.Rule+":"+a.Message)
	}
	want := "ipc_no_key:shmdt two_kinds:tcp.connect refused conflicting_types:refused two_kinds:process.exec  conflicting_types:-13"
	if strings.Join(got, " ") != want {
		t.Errorf("alerts\n%q\nwant\n%q\nstats %+v", strings.Join(got, " "), want, h.Stats())
	}
}

func TestDisabledRuleIsNotEvaluated(t *testing.T) {
	s := mustCompile(t, src(`
rules:
  - name: off
    severity: low
    kinds: [process.exec]
    condition: "true"
    output: x
    enabled: false
`))
	if len(s.Kinds()) != 0 || len(s.Rules()) != 1 {
		t.Fatalf("kinds %v rules %d", s.Kinds(), len(s.Rules()))
	}
	out := &collect{}
	NewHandler(s, out).Handle(ev(event.KindProcessExec, "x", &event.ProcessExec{}))
	if len(out.evs) != 0 {
		t.Errorf("disabled rule raised %d alerts", len(out.evs))
	}
}

// A later file replaces a list of an earlier one.
func TestListOverride(t *testing.T) {
	s := mustCompile(t, Builtin(), Source{Name: "mine.yaml", Data: []byte("lists:\n  allowed_ports: [4444]\n")})
	out := &collect{}
	h := NewHandler(s, out)
	for _, p := range []uint64{4444, 443} {
		h.Handle(ev(event.KindTCPConnect, "nc", fields("dport", p, "result", "established")))
	}
	a := out.alerts()
	if len(a) != 1 || !strings.Contains(a[0].Message, "port 443") {
		t.Errorf("alerts %+v", a)
	}
}

func TestEvalErrorsAreCounted(t *testing.T) {
	s := mustCompile(t, src(`
rules:
  - name: divides
    severity: low
    kinds: [process.exit]
    condition: 10 / exit_code == 1
    output: "{{10 / exit_code}}"
  - name: not_bool
    severity: low
    kinds: [tcp.connect, files.open]
    condition: result
    output: x
`))
	out := &collect{}
	h := NewHandler(s, out)
	h.Handle(ev(event.KindProcessExit, "x", &event.ProcessExit{ExitCode: 0})) // division by zero
	h.Handle(ev(event.KindProcessExit, "x", &event.ProcessExit{ExitCode: 10}))
	h.Handle(ev(event.KindTCPConnect, "x", fields("result", "refused")))
	st := h.Stats()
	if st[0].Errors != 1 || st[0].Alerts != 1 || st[1].Errors != 1 || st[1].Alerts != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestLoadErrors(t *testing.T) {
	rule := func(body string) string {
		return "rules:\n  - name: r1\n    severity: low\n    kinds: [syscall]\n    output: x\n" + body
	}
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top key", "rule: []\n", `test.yaml:1:1: unknown key "rule" (known: lists, rules)`},
		{"unknown rule key", rule("    condition: \"true\"\n    priority: 3\n"), `test.yaml:7:5: rule "r1": unknown key "priority" (known: name, description, severity, kinds, condition, output, tags, enabled)`},
		{"bad severity", "rules:\n  - name: r1\n    severity: urgent\n", `test.yaml:3:15: rule "r1": severity: "urgent" is not one of info, low, medium, high, critical`},
		{"unknown kind", "rules:\n  - name: r1\n    kinds: [syscall, tcp.conect]\n", `test.yaml:3:22: rule "r1": kinds: unknown event kind "tcp.conect" (known: files.io, files.open, ipc, process.exec, process.exit, signal, syscall, tcp.accept, tcp.close, tcp.connect, tcp.flow)`},
		{"alert kind", "rules:\n  - name: r1\n    kinds: [alert]\n", `test.yaml:3:13: rule "r1": kinds: rules cannot match alerts`},
		{"missing condition", rule(""), `test.yaml:2:5: rule "r1": condition is missing`},
		{"no name", "rules:\n  - severity: low\n", `test.yaml:2:5: rule without a name`},
		{"tags not list", rule("    condition: \"true\"\n    tags: T1\n"), `test.yaml:7:11: rule "r1": tags: want a list of strings`},
		{"enabled not bool", rule("    condition: \"true\"\n    enabled: yes please\n"), `test.yaml:7:14: rule "r1": enabled: want true or false`},
		{"undeclared", rule("    condition: sycall == \"bpf\"\n"), `test.yaml:6: rule "r1": condition 1:1: undeclared reference to 'sycall'`},
		{"field of another kind", rule("    condition: dport == 22\n"), `test.yaml:6: rule "r1": condition 1:1: undeclared reference to 'dport'`},
		{"type error", rule("    condition: syscall == 3\n"), `test.yaml:6: rule "r1": condition 1:9: found no matching overload for '_==_' applied to '(string, int)'`},
		{"second line", rule("    condition: |\n      syscall == \"bpf\" &&\n        count > \"x\"\n"), `test.yaml:6: rule "r1": condition 2:9: found no matching overload for '_>_' applied to '(int, string)'`},
		{"syntax", rule("    condition: syscall == \n"), `test.yaml:6: rule "r1": condition 1:11: Syntax error`},
		{"not bool", rule("    condition: count + 1\n"), `test.yaml:6: rule "r1": condition is of type int, want bool`},
		{"bad output", "rules:\n  - name: r1\n    severity: low\n    kinds: [syscall]\n    condition: \"true\"\n    output: \"pid {{process.pid}} {{proces.comm}}\"\n", `test.yaml:6: rule "r1": output 1:23: undeclared reference to 'proces'`},
		{"unclosed output", "rules:\n  - name: r1\n    severity: low\n    kinds: [syscall]\n    condition: \"true\"\n    output: \"a {{syscall\"\n", `test.yaml:6: rule "r1": output 1:3: {{ is not closed by }}`},
		{"mixed list", "lists:\n  ports: [22, http]\n", `test.yaml:2:15: list "ports": mixes numbers and strings`},
		{"reserved list", "lists:\n  dport: [22]\n", `test.yaml:2:3: list name "dport" is an event field or a CEL name`},
		{"yaml syntax", "rules: [\n", `test.yaml: line 1: did not find expected node content`},
		{"empty", "", `test.yaml: empty rule file`},
		{"no rules", "lists:\n  a: [1]\n", `rules: test.yaml define no rules`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compile(src(c.yaml))
			if err == nil {
				t.Fatalf("no error, want %s", c.want)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error\n%s\nwant prefix\n%s", err, c.want)
			}
		})
	}
}

func TestDuplicateRuleAcrossFiles(t *testing.T) {
	r := "rules:\n  - name: r1\n    severity: low\n    kinds: [syscall]\n    condition: \"true\"\n    output: x\n"
	_, err := Compile(Source{Name: "a.yaml", Data: []byte(r)}, Source{Name: "b.yaml", Data: []byte(r)})
	if err == nil || err.Error() != `b.yaml:2: rule "r1" is already defined at a.yaml:2` {
		t.Errorf("err %v", err)
	}
}

func TestReadSources(t *testing.T) {
	if _, err := LoadFiles("builtin", "/nonexistent/rules.yaml"); err == nil || !strings.Contains(err.Error(), "/nonexistent/rules.yaml") {
		t.Errorf("err %v", err)
	}
	if _, err := Compile(); err == nil {
		t.Error("no sources: no error")
	}
	s, err := LoadFiles("builtin")
	if err != nil || len(s.Rules()) != 8 {
		t.Errorf("builtin: %v, %d rules", err, len(s.Rules()))
	}
}

// Several trackers feed one handler from their own goroutines.
func TestHandlerConcurrent(t *testing.T) {
	out := &collect{}
	h := NewHandler(mustCompile(t, Builtin()), out)
	const perG = 500
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < perG; i++ {
				var e *event.Event
				if i%2 == 0 {
					e = ev(event.KindProcessExec, "x", &event.ProcessExec{Filename: "/tmp/x", Args: []string{"/tmp/x", strings.Repeat("a", g)}})
				} else {
					e = ev(event.KindProcessExec, "ls", &event.ProcessExec{Filename: "/bin/ls"})
				}
				if err := h.Handle(e); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	got := out.alerts()
	if len(got) != 4*perG/2 {
		t.Fatalf("%d alerts, want %d", len(got), 4*perG/2)
	}
	for _, a := range got {
		args := a.Event.Payload.(*event.ProcessExec).Args
		if want := "/tmp/x run by uid 1000 (pid 4242, parent 1, container host): " + strings.Join(args, " "); a.Message != want {
			t.Fatalf("message %q, want %q", a.Message, want)
		}
	}
}
