package rules

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/all"
	"github.com/eunomia-agent/eunomia/internal/tracker/ipc"
	"github.com/eunomia-agent/eunomia/internal/tracker/process"
	"github.com/eunomia-agent/eunomia/internal/tracker/tcp"
)

func compileRules(t *testing.T, yaml string) *Set {
	t.Helper()
	s, err := Compile(Source{Name: "t.yaml", Data: []byte(yaml)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ruleOn(name string, kinds ...string) string {
	return fmt.Sprintf("  - name: %s\n    severity: low\n    kinds: [%s]\n    condition: \"true\"\n    output: x\n", name, strings.Join(kinds, ", "))
}

// The trackers safe mode starts follow from the kinds the rules name, with
// optional kinds turned on and the others off.
func TestPlanTrackers(t *testing.T) {
	reg := tracker.NewRegistry(process.Kind, tcp.Kind, ipc.Kind)
	set := compileRules(t, "rules:\n"+ruleOn("a", "process.exec")+ruleOn("b", "signal", "tcp.accept")+ruleOn("c", "tcp.flow", "tcp.connect"))
	plan, err := PlanTrackers(reg, set)
	if err != nil {
		t.Fatal(err)
	}
	want := []TrackerPlan{
		{Tracker: "process", Options: map[string]string{}, Kinds: []event.Kind{event.KindProcessExec}},
		{Tracker: "ipc", Options: map[string]string{"ipc": "false", "signals": "true"}, Kinds: []event.Kind{event.KindSignal}},
		{Tracker: "tcp", Options: map[string]string{"accept": "true", "close": "false", "count": "false"}, Kinds: []event.Kind{event.KindTCPAccept, event.KindTCPConnect}},
		{Tracker: "tcp", Options: map[string]string{"accept": "false", "close": "false", "count": "true"}, Kinds: []event.Kind{event.KindTCPFlow}},
	}
	if !reflect.DeepEqual(plan, want) {
		t.Errorf("plan\n%+v\nwant\n%+v", plan, want)
	}
	// Every option the plan sets exists and is valid.
	for _, p := range plan {
		k, _ := reg.Lookup(p.Tracker)
		if err := p.Apply(k.NewConfig()); err != nil {
			t.Error(err)
		}
	}

	_, err = PlanTrackers(tracker.NewRegistry(process.Kind), set)
	if err == nil || !strings.HasPrefix(err.Error(), "rules b need signal events, which no tracker produces (trackers: process)") {
		t.Errorf("missing tracker: %v", err)
	}
}

// Every event kind of the built-in pack has a tracker in the agent.
func TestPlanTrackersBuiltin(t *testing.T) {
	set, err := LoadFiles(BuiltinName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PlanTrackers(all.Registry(), set); err != nil {
		t.Error(err)
	}
}
