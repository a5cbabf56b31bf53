package cli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// trackerFlags turns the config keys of every tracker kind into CLI flags.
// A flag shared by several kinds (--pid) is defined once and applies to
// each selected kind that has the key.
type trackerFlags struct {
	fs    *pflag.FlagSet
	keys  map[string]string // flag name -> config key
	order []string
}

func bindTrackerFlags(fs *pflag.FlagSet, reg *tracker.Registry) *trackerFlags {
	tf := &trackerFlags{fs: fs, keys: map[string]string{}}
	for _, k := range reg.Kinds() {
		for _, o := range tracker.Options(k.NewConfig()) {
			if _, shared := tf.keys[o.Flag]; shared {
				continue // the same key of another kind: one flag serves both
			}
			if fs.Lookup(o.Flag) != nil {
				// A command flag of the same name would hide the config key.
				panic(fmt.Sprintf("tracker %s: config key %q collides with the command's flag --%s", k.Name, o.Key, o.Flag))
			}
			help := o.Help
			if o.Type == "list" {
				help += " (comma-separated)"
			}
			fs.String(o.Flag, o.Default, help)
			if o.Type == "bool" {
				fs.Lookup(o.Flag).NoOptDefVal = "true"
			}
			tf.keys[o.Flag] = o.Key
			tf.order = append(tf.order, o.Flag)
		}
	}
	return tf
}

// configs builds one config per named kind from the defaults and the flags
// the user set. A flag that applies to none of the named kinds is an error.
func (tf *trackerFlags) configs(reg *tracker.Registry, kinds []string) ([]tracker.Config, error) {
	cfgs := make([]tracker.Config, len(kinds))
	for i, name := range kinds {
		k, err := reg.Lookup(name)
		if err != nil {
			return nil, err
		}
		cfgs[i] = k.NewConfig()
	}
	changed := []string{}
	tf.fs.Visit(func(f *pflag.Flag) {
		if _, ok := tf.keys[f.Name]; ok {
			changed = append(changed, f.Name)
		}
	})
	sort.Strings(changed)
	for _, flag := range changed {
		key := tf.keys[flag]
		value := tf.fs.Lookup(flag).Value.String()
		used := false
		for _, cfg := range cfgs {
			if !tracker.HasOption(cfg, key) {
				continue
			}
			used = true
			if err := tracker.SetOption(cfg, key, value); err != nil {
				return nil, fmt.Errorf("--%s: %s", flag, strings.TrimPrefix(err.Error(), key+": "))
			}
		}
		if !used {
			return nil, fmt.Errorf("--%s does not apply to tracker %s", flag, strings.Join(kinds, ", "))
		}
	}
	for i, cfg := range cfgs {
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", kinds[i], err)
		}
	}
	return cfgs, nil
}
