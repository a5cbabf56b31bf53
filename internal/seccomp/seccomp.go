// Package seccomp builds OCI/Docker seccomp profiles from the system calls
// the syscall tracker saw: everything observed is allowed, anything else
// fails with EPERM.
package seccomp

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// Profile is a seccomp profile in the format of Docker's
// --security-opt seccomp=FILE and of the OCI runtime spec's linux.seccomp.
type Profile struct {
	DefaultAction   string    `json:"defaultAction"`
	DefaultErrnoRet *uint     `json:"defaultErrnoRet,omitempty"`
	Architectures   []string  `json:"architectures"`
	Syscalls        []Syscall `json:"syscalls"`
}

// Syscall is one rule of a profile: an action for a set of system calls.
type Syscall struct {
	Names  []string `json:"names"`
	Action string   `json:"action"`
}

// Call is one system call as the tracker names it.
type Call struct {
	ABI  string // "x86_64" or "i386"
	Name string
}

// abiArch maps the syscall tracker's ABI names to libseccomp's
// architectures.
var abiArch = map[string]string{
	"x86_64": "SCMP_ARCH_X86_64",
	"i386":   "SCMP_ARCH_X86",
}

const eperm = 1

// NewProfile makes a profile that allows calls and denies everything else
// with EPERM. Its architectures are the ABIs the calls were made through
// (x86_64 always): a process that switches to another ABI is refused by
// the kernel filter as a whole. Calls the tracker could not name
// ("unknown_N") cannot be written in a profile by name; they are returned
// so that the caller can warn about them.
func NewProfile(calls []Call) (p *Profile, unnamed []Call) {
	names := map[string]bool{}
	arches := map[string]bool{}
	for _, c := range calls {
		if strings.HasPrefix(c.Name, "unknown_") || c.Name == "" {
			unnamed = append(unnamed, c)
			continue
		}
		names[c.Name] = true
		if a, ok := abiArch[c.ABI]; ok {
			arches[a] = true
		}
	}
	errno := uint(eperm)
	p = &Profile{DefaultAction: "SCMP_ACT_ERRNO", DefaultErrnoRet: &errno}
	// x86_64, the native one, first.
	p.Architectures = []string{"SCMP_ARCH_X86_64"}
	delete(arches, "SCMP_ARCH_X86_64")
	for a := range arches {
		p.Architectures = append(p.Architectures, a)
	}
	sort.Strings(p.Architectures[1:])
	allow := Syscall{Action: "SCMP_ACT_ALLOW", Names: []string{}}
	for n := range names {
		allow.Names = append(allow.Names, n)
	}
	sort.Strings(allow.Names)
	p.Syscalls = []Syscall{allow}
	return p, unnamed
}

// Allowed lists the names the profile allows.
func (p *Profile) Allowed() []string {
	var out []string
	for _, s := range p.Syscalls {
		if s.Action == "SCMP_ACT_ALLOW" {
			out = append(out, s.Names...)
		}
	}
	return out
}

// JSON returns the profile, indented, with a final newline.
func (p *Profile) JSON() []byte {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("seccomp profile: %v", err)) // plain structs: cannot fail
	}
	return append(b, '\n')
}

// Recorder is a handler that records the system calls of syscall events,
// per cgroup. Safe for concurrent use.
type Recorder struct {
	mu       sync.Mutex
	byCgroup map[uint64]map[Call]struct{}
	events   uint64
}

// NewRecorder makes an empty recorder.
func NewRecorder() *Recorder { return &Recorder{byCgroup: map[uint64]map[Call]struct{}{}} }

// Handle implements handler.Handler.
func (r *Recorder) Handle(ev *event.Event) error {
	if ev.Kind != event.KindSyscall || ev.Payload == nil {
		return nil
	}
	var g grab
	ev.Payload.WriteFields(&g)
	if g.name == "" {
		return nil
	}
	c := Call{ABI: g.abi, Name: g.name}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events++
	set := r.byCgroup[ev.Process.CgroupID]
	if set == nil {
		set = map[Call]struct{}{}
		r.byCgroup[ev.Process.CgroupID] = set
	}
	set[c] = struct{}{}
	return nil
}

// Events is the number of syscall events recorded.
func (r *Recorder) Events() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events
}

// Calls returns the calls seen in the given cgroups, or in all when none
// is given, sorted.
func (r *Recorder) Calls(cgroups ...uint64) []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	union := map[Call]struct{}{}
	add := func(set map[Call]struct{}) {
		for c := range set {
			union[c] = struct{}{}
		}
	}
	if len(cgroups) == 0 {
		for _, set := range r.byCgroup {
			add(set)
		}
	}
	for _, cg := range cgroups {
		add(r.byCgroup[cg])
	}
	out := make([]Call, 0, len(union))
	for c := range union {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ABI < out[j].ABI
	})
	return out
}

// grab reads the two fields of a syscall payload the recorder needs.
type grab struct{ name, abi string }

func (g *grab) String(k, v string) {
	switch k {
	case "syscall":
		g.name = v
	case "abi":
		g.abi = v
	}
}
func (*grab) Int(string, int64)          {}
func (*grab) Uint(string, uint64)        {}
func (*grab) Bool(string, bool)          {}
func (*grab) Strings(string, []string)   {}
func (*grab) Event(string, *event.Event) {}
