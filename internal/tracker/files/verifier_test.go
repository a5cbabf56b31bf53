package files

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/eunomia-agent/eunomia/internal/testutil"
)

// The path walk is a loop the verifier follows step by step. Written
// carelessly it made the verifier process 780,000 instructions (limit 1M,
// 3 s per load); keep it far from that.
func TestVerifierCost(t *testing.T) {
	testutil.RequirePrivileged(t)
	spec, err := loadFiles()
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Variables["cfg_open"].Set(true); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	re := regexp.MustCompile(`processed (\d+) insns`)
	for name, prog := range coll.Programs {
		m := re.FindStringSubmatch(prog.VerifierLog)
		if m == nil {
			t.Fatalf("%s: no instruction count in the verifier log %q", name, prog.VerifierLog)
		}
		n, _ := strconv.Atoi(m[1])
		t.Logf("%s: verifier processed %d instructions", name, n)
		if n > 50000 {
			t.Errorf("%s: verifier processed %d instructions, want < 50000", name, n)
		}
	}
}
