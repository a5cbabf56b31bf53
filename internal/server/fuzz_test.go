package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/eunomia-agent/eunomia/internal/pipeline"
	"github.com/eunomia-agent/eunomia/internal/tracker/all"
)

// FuzzDecodeStartRequest feeds arbitrary bodies to the decoder of
// POST /v1/trackers: it must never panic, must reject with a message, and
// what it accepts must be a valid spec that survives a JSON round trip.
func FuzzDecodeStartRequest(f *testing.F) {
	for _, seed := range []string{
		`{"kind":"process"}`,
		`{"name":"x","kind":"process","config":{"pid":1,"uid":0,"comm":"sh","cgroup":[1,2],"follow_children":false,"min_duration":"10ms"},"handlers":[{"type":"json","path":"/tmp/x"},{"output":"o"},{"type":"csv","truncate":true,"path":"/a"}]}`,
		`{"kind":"process","config":{"pid":-1}}`,
		`{"kind":"process","config":{"min_duration":1e3}}`,
		`[[[[[]]]]]`,
		`{"kind":"process","handlers":[{"type":"text"}]}   `,
		"\x00",
	} {
		f.Add([]byte(seed))
	}
	reg := all.Registry()
	f.Fuzz(func(t *testing.T, body []byte) {
		spec, err := DecodeStartRequest(reg, body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if spec.Kind == "" || spec.Config == nil {
			t.Fatalf("accepted a spec without kind or config: %+v", spec)
		}
		if err := spec.Config.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
		for _, h := range spec.Handlers {
			if (h.Type == "") == (h.Output == "") {
				t.Fatalf("handler with both or neither of type and output: %+v", h)
			}
			if o, ok := h.Options.(*pipeline.PrinterOptions); ok && o.Path != "" && !strings.HasPrefix(o.Path, "/") {
				t.Fatalf("accepted a relative path %q", o.Path)
			}
		}
		again, err := json.Marshal(spec)
		if err != nil {
			t.Fatalf("accepted spec does not encode: %v", err)
		}
		spec2, err := DecodeStartRequest(reg, again)
		if err != nil {
			t.Fatalf("re-encoded spec %s is rejected: %v", again, err)
		}
		third, _ := json.Marshal(spec2)
		if string(third) != string(again) {
			t.Fatalf("round trip changed the spec:\n%s\n%s", again, third)
		}
	})
}
