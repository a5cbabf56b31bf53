package event

import "testing"

func TestMapAndField(t *testing.T) {
	inner := &Event{Kind: KindProcessExec, Process: Process{Pid: 7}, Payload: &ProcessExec{Filename: "/bin/sh"}}
	ev := &Event{
		Kind:      KindProcessExit,
		Process:   Process{Pid: 42, Comm: "sh", CgroupID: 9},
		Container: Container{Name: "web"},
		Payload:   &ProcessExit{ExitCode: 3, Signal: 9, DurationNs: 100},
	}
	m := ev.Map()
	if m["kind"] != "process.exit" || m["exit_code"] != int64(3) || m["signal"] != uint64(9) {
		t.Errorf("map = %v", m)
	}
	if p := m["process"].(map[string]any); p["pid"] != uint64(42) || p["comm"] != "sh" || p["cgroup_id"] != uint64(9) {
		t.Errorf("process = %v", p)
	}
	if c := m["container"].(map[string]any); c["name"] != "web" {
		t.Errorf("container = %v", c)
	}
	if v, ok := ev.Field("duration_ns"); !ok || v != uint64(100) {
		t.Errorf("Field(duration_ns) = %v %v", v, ok)
	}
	if _, ok := ev.Field("nope"); ok {
		t.Error("Field of a missing key found something")
	}
	exec := &Event{Kind: KindProcessExec, Payload: &ProcessExec{Args: []string{"a", "b"}, ArgsTruncated: true}}
	if v, _ := exec.Field("args"); len(v.([]string)) != 2 {
		t.Errorf("args = %v", v)
	}
	if v, _ := exec.Field("args_truncated"); v != true {
		t.Errorf("args_truncated = %v", v)
	}
	_ = inner.Map()
}
