package rules

import (
	"fmt"
	"slices"
	"strings"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// eventOption is the config key that turns an optional event kind on in
// the tracker that produces it. Kinds not listed are always on.
var eventOption = map[event.Kind]string{
	event.KindFilesOpen: "open",
	event.KindTCPAccept: "accept",
	event.KindTCPClose:  "close",
	event.KindIPC:       "ipc",
	event.KindSignal:    "signals",
	event.KindTCPFlow:   "count", // count mode: a tracker of its own (it replaces tcp.connect)
}

// TrackerPlan is a tracker to start for a rule set, with the config
// options that make it produce the event kinds the rules need.
type TrackerPlan struct {
	Tracker string
	Options map[string]string // config key -> value
	Kinds   []event.Kind      // the kinds it is started for
}

// Apply sets the plan's options in cfg (a config of the plan's tracker)
// and validates it.
func (p TrackerPlan) Apply(cfg tracker.Config) error {
	for key, value := range p.Options {
		if err := tracker.SetOption(cfg, key, value); err != nil {
			return fmt.Errorf("%s: %w", p.Tracker, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: %w", p.Tracker, err)
	}
	return nil
}

// PlanTrackers picks, for the event kinds the enabled rules of set name,
// the trackers of reg that produce them, with the options that turn the
// optional kinds needed on and the others off. A kind no tracker produces
// is an error naming the rules that need it.
func PlanTrackers(reg *tracker.Registry, set *Set) ([]TrackerPlan, error) {
	byTracker := map[string]*TrackerPlan{}
	var plan []*TrackerPlan
	for _, k := range set.Kinds() {
		var kind *tracker.Kind
		for _, tk := range reg.Kinds() {
			if slices.Contains(tk.Events, k) {
				kind = &tk
				break
			}
		}
		if kind == nil {
			var need []string
			for _, r := range set.ForKind(k) {
				need = append(need, r.Name)
			}
			return nil, fmt.Errorf("rules %s need %s events, which no tracker produces (trackers: %s)",
				strings.Join(need, ", "), k, strings.Join(reg.Names(), ", "))
		}
		key := kind.Name
		if k == event.KindTCPFlow {
			key += "/count"
		}
		p := byTracker[key]
		if p == nil {
			p = &TrackerPlan{Tracker: kind.Name, Options: map[string]string{}}
			cfg := kind.NewConfig()
			// Optional kinds of this tracker start off; the needed ones
			// are turned on below.
			for _, ek := range kind.Events {
				if opt, ok := eventOption[ek]; ok && tracker.HasOption(cfg, opt) {
					p.Options[opt] = "false"
				}
			}
			byTracker[key] = p
			plan = append(plan, p)
		}
		p.Kinds = append(p.Kinds, k)
		if opt, ok := eventOption[k]; ok {
			if !tracker.HasOption(kind.NewConfig(), opt) {
				return nil, fmt.Errorf("tracker %s has no option %q to turn on %s events", kind.Name, opt, k)
			}
			p.Options[opt] = "true"
		}
	}
	out := make([]TrackerPlan, len(plan))
	for i, p := range plan {
		out[i] = *p
	}
	return out, nil
}
