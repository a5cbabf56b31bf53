package tracker

import "fmt"

// Filter is the part of every tracker's config that selects tasks. It is
// enforced in the kernel (see bpf/eunomia.h). Zero values mean "any".
type Filter struct {
	Pid    uint32   `json:"pid,omitempty" yaml:"pid,omitempty" help:"trace only this process (thread group id)"`
	Uid    *uint32  `json:"uid,omitempty" yaml:"uid,omitempty" help:"trace only tasks of this user id"`
	Comm   string   `json:"comm,omitempty" yaml:"comm,omitempty" help:"trace only tasks with this command name (exact, at most 15 bytes)"`
	Cgroup []uint64 `json:"cgroup,omitempty" yaml:"cgroup,omitempty" help:"trace only tasks in these cgroup ids (inode numbers of cgroup2 directories)"`
}

// maxCgroupFilter matches cgroup_filter's size in bpf/eunomia.h.
const maxCgroupFilter = 1024

// Validate implements Config for the filter part.
func (f *Filter) Validate() error {
	if len(f.Comm) > 15 {
		return fmt.Errorf("comm: %q is longer than the kernel's 15-byte command name", f.Comm)
	}
	if len(f.Cgroup) > maxCgroupFilter {
		return fmt.Errorf("cgroup: %d ids, at most %d", len(f.Cgroup), maxCgroupFilter)
	}
	return nil
}
