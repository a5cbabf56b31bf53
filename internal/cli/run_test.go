package cli

import (
	"bytes"
	"strings"
	"testing"
)

// Bad flags are refused with a message naming the flag, before anything is
// loaded (so these tests need no root).
func TestRunRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "requires at least 1 arg"},
		{[]string{"run", "nope"}, `unknown tracker "nope"`},
		{[]string{"run", "process", "--fmt", "xml"}, `--fmt: unknown output format "xml"`},
		{[]string{"run", "process", "--pid", "abc"}, `--pid: invalid number "abc"`},
		{[]string{"run", "process", "--pid", "-3"}, `--pid: invalid number "-3"`},
		{[]string{"run", "process", "--min-duration", "5"}, `--min-duration: invalid duration "5"`},
		{[]string{"run", "process", "--follow-children=maybe"}, `--follow-children: invalid boolean "maybe"`},
		{[]string{"run", "process", "--comm", "a-very-long-command-name"}, "comm: "},
		{[]string{"run", "process", "--queue-size", "0"}, "--queue-size: 0"},
		{[]string{"run", "process", "--duration", "-1s"}, "--duration: -1s is negative"},
		{[]string{"run", "process", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"--log-level", "loud", "run", "process"}, "--log-level"},
	} {
		root := NewRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(tc.args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}

// Every command builds (a tracker config key that collides with a command
// flag panics here rather than being silently unsettable).
func TestCommandsBuild(t *testing.T) {
	root := NewRoot()
	for _, c := range root.Commands() {
		if c.Name() == "" {
			t.Error("command without a name")
		}
	}
}
