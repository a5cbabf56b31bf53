package syscall

import (
	"strings"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/tracker"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		set  map[string]string
		want string // in the error; "" for valid
	}{
		{map[string]string{"every_calls": "100"}, ""},
		{map[string]string{"every": "0s", "every_calls": "0"}, ""},
		{map[string]string{"summary": "5s", "summary_top": "3"}, ""},
		{map[string]string{"summary": "5s", "summary_top": "1024"}, ""},
		{map[string]string{"summary": "5s", "every": "1s"}, ""},
		{map[string]string{"every": "-1s"}, "every: -1s is negative"},
		{map[string]string{"summary": "-5s"}, "summary: -5s is negative"},
		{map[string]string{"summary": "10ms"}, "summary: 10ms is shorter than the minimum interval 100ms"},
		{map[string]string{"summary": "5s", "every_calls": "100"}, "every_calls: 100 has no effect in summary mode"},
		{map[string]string{"summary_top": "0"}, "summary_top: 0, want 1 to 1024"},
		{map[string]string{"summary_top": "1025"}, "summary_top: 1025, want 1 to 1024"},
		{map[string]string{"comm": "a-name-longer-than-15"}, "comm:"},
	} {
		cfg := DefaultConfig()
		for k, v := range tc.set {
			if err := tracker.SetOption(cfg, k, v); err != nil {
				t.Fatalf("%v: %v", tc.set, err)
			}
		}
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.set, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one containing %q", tc.set, err, tc.want)
		}
	}
}

func TestConfigOptions(t *testing.T) {
	flags := map[string]string{}
	for _, o := range tracker.Options(DefaultConfig()) {
		flags[o.Flag] = o.Default
	}
	for flag, def := range map[string]string{"every-calls": "0", "every": "5s", "summary": "0s", "summary-top": "10", "pid": "0"} {
		if got, ok := flags[flag]; !ok || got != def {
			t.Errorf("flag --%s: default %q (present %v), want %q", flag, got, ok, def)
		}
	}
	if err := tracker.SetOption(DefaultConfig(), "every_calls", "many"); err == nil || !strings.Contains(err.Error(), "every_calls") {
		t.Errorf("every_calls=many: %v", err)
	}
	cfg := DefaultConfig()
	if err := tracker.SetOption(cfg, "summary", "2s"); err != nil || time.Duration(cfg.Summary) != 2*time.Second {
		t.Errorf("summary=2s: %v %s", err, cfg.Summary)
	}
}
