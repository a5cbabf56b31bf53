package container

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Ref is what a cgroup path tells about the container a process runs in.
type Ref struct {
	// ID is the container's full id (64 hex digits); empty outside
	// containers.
	ID string
	// Runtime is the runtime that named the cgroup ("docker", "podman",
	// "containerd", "cri-o"), or "" when the path does not say (a bare id
	// under a containerd namespace or a cgroupfs kubepods tree).
	Runtime string
	// PodUID is the Kubernetes pod uid of a kubepods cgroup.
	PodUID string
}

// scopePrefixes maps the prefix of a systemd scope unit (or a cgroupfs
// directory) holding one container to its runtime. The conmon scopes of
// podman and CRI-O ("libpod-conmon-<id>", "crio-conmon-<id>") hold the
// monitor, not the container; their rest is no bare id, so they never match.
var scopePrefixes = []struct{ prefix, runtime string }{
	{"docker-", "docker"},
	{"libpod-", "podman"},
	{"cri-containerd-", "containerd"},
	{"crio-", "cri-o"},
	{"nerdctl-", "containerd"},
}

// ParsePath reads a container reference from one cgroup path, such as
//
//	/docker/<id>                                   Docker, cgroupfs driver
//	/system.slice/docker-<id>.scope                Docker, systemd driver
//	/libpod_parent/libpod-<id>                     podman, cgroupfs
//	/machine.slice/libpod-<id>.scope               podman, systemd
//	/kubepods/besteffort/pod<uid>/<id>             CRI, cgroupfs
//	/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope
//	/default/<id>                                  containerd (ctr, nerdctl)
//
// The outermost container wins (the runtime a host agent talks to made it).
// A path that names no container gives a zero Ref.
func ParsePath(path string) Ref {
	var r Ref
	prev := ""
	for len(path) > 0 {
		var elem string
		if i := strings.IndexByte(path, '/'); i >= 0 {
			elem, path = path[:i], path[i+1:]
		} else {
			elem, path = path, ""
		}
		if elem == "" {
			continue
		}
		if uid := podUID(elem); uid != "" {
			r.PodUID = uid
		} else if id, rt, ok := containerElem(elem, prev); ok {
			r.ID, r.Runtime = id, rt
			if r.Runtime == "" && r.PodUID != "" {
				r.Runtime = "cri"
			}
			return r
		}
		prev = elem
	}
	return Ref{}
}

// containerElem reads a container id from one path element; prev is the
// element before it.
func containerElem(elem, prev string) (id, runtime string, ok bool) {
	if isID(elem) {
		if prev == "docker" {
			return elem, "docker", true
		}
		return elem, "", true
	}
	name := strings.TrimSuffix(elem, ".scope")
	for _, p := range scopePrefixes {
		if rest, found := strings.CutPrefix(name, p.prefix); found && isID(rest) {
			return rest, p.runtime, true
		}
	}
	return "", "", false
}

// podUID reads the pod uid of a kubepods element: "pod<uid>" (cgroupfs) or
// "kubepods-<qos>-pod<uid_with_underscores>.slice" (systemd).
func podUID(elem string) string {
	if rest, ok := strings.CutPrefix(elem, "pod"); ok && isUID(rest) {
		return rest
	}
	if !strings.HasPrefix(elem, "kubepods-") || !strings.HasSuffix(elem, ".slice") {
		return ""
	}
	s := strings.TrimSuffix(elem, ".slice")
	i := strings.LastIndex(s, "-pod")
	if i < 0 {
		return ""
	}
	uid := strings.ReplaceAll(s[i+4:], "_", "-")
	if !isUID(uid) {
		return ""
	}
	return uid
}

// isID reports whether s is a 64-digit lower-case hex container id.
func isID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isUID reports whether s looks like a Kubernetes uid (8-4-4-4-12 hex).
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// ProcCgroup is what /proc/<pid>/cgroup says about a process.
type ProcCgroup struct {
	// V2Path is the process's cgroup2 path (the "0::" line); "" when the
	// machine has no cgroup2 hierarchy.
	V2Path string
	// Ref is the container, read from the cgroup2 path if it names one,
	// else from the first cgroup v1 path that does.
	Ref Ref
	// ByV2 is set when the cgroup2 path itself names the container (or
	// names none and no v1 path does either), so that the cgroup id of
	// the process identifies its container.
	ByV2 bool
}

// ParseProcCgroup parses the contents of /proc/<pid>/cgroup: lines of
// "hierarchy-id:controllers:path".
func ParseProcCgroup(data []byte) ProcCgroup {
	var pc ProcCgroup
	var v1 Ref
	hasV2 := false
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		a := bytes.IndexByte(line, ':')
		if a < 0 {
			continue
		}
		b := bytes.IndexByte(line[a+1:], ':')
		if b < 0 {
			continue
		}
		hier, ctrls, path := line[:a], line[a+1:a+1+b], string(line[a+b+2:])
		if string(hier) == "0" && len(ctrls) == 0 {
			hasV2 = true
			pc.V2Path = path
			pc.Ref = ParsePath(path)
			continue
		}
		if v1.ID == "" {
			v1 = ParsePath(path)
		}
	}
	switch {
	case pc.Ref.ID != "":
		pc.ByV2 = true
	case v1.ID != "":
		pc.Ref = v1
	default:
		pc.ByV2 = hasV2
	}
	return pc
}

// ReadProcCgroup reads and parses /proc/<pid>/cgroup.
func ReadProcCgroup(pid uint32) (ProcCgroup, error) {
	data, err := os.ReadFile(procPath(pid, "cgroup"))
	if err != nil {
		return ProcCgroup{}, err
	}
	return ParseProcCgroup(data), nil
}

// Cgroup2Root finds where the cgroup2 hierarchy is mounted: /sys/fs/cgroup
// on a pure cgroup2 machine, /sys/fs/cgroup/unified on a hybrid one. It
// returns "" when there is none.
func Cgroup2Root() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if root := cgroup2Mount(sc.Text()); root != "" {
			return root
		}
	}
	return ""
}

// cgroup2Mount returns the mount point of a mountinfo line of a cgroup2
// file system mounted at its root, or "".
func cgroup2Mount(line string) string {
	// id parent major:minor root mountpoint options [optional...] - fstype source superopts
	sep := strings.Index(line, " - ")
	if sep < 0 {
		return ""
	}
	post := strings.Fields(line[sep+3:])
	pre := strings.Fields(line[:sep])
	if len(post) < 1 || post[0] != "cgroup2" || len(pre) < 5 || pre[3] != "/" {
		return ""
	}
	return unescapeMount(pre[4])
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// maxCgroupIDs bounds how many cgroup ids one container contributes (its
// directory and the ones below it); the kernel's cgroup_filter map holds
// 1024 in all.
const maxCgroupIDs = 256

// cgroupIDs returns the cgroup ids (cgroup2 directory inodes, what
// bpf_get_current_cgroup_id() reports) of the directory at path below the
// cgroup2 root and of every directory below it.
func cgroupIDs(root, path string) ([]uint64, error) {
	if root == "" {
		return nil, errors.New("no cgroup2 file system is mounted")
	}
	dir := filepath.Join(root, path)
	var ids []uint64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // a sub-cgroup removed while we walk
		}
		if !d.IsDir() {
			return nil
		}
		ino, err := inode(p)
		if err != nil {
			if p == dir {
				return err
			}
			return nil
		}
		ids = append(ids, ino)
		if len(ids) >= maxCgroupIDs {
			return fs.SkipAll
		}
		return nil
	})
	return ids, err
}

// inode returns the inode number of path, which for a cgroup2 directory is
// its cgroup id.
func inode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// cgroupPaths maps the cgroup id of every cgroup2 directory to its path
// below root (walking the whole hierarchy: done only on a cache miss for a
// cgroup whose process is already gone).
func cgroupPaths(root string) map[uint64]string {
	out := map[uint64]string{}
	if root == "" {
		return out
	}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if ino, err := inode(p); err == nil {
			rel := strings.TrimPrefix(p, root)
			if rel == "" {
				rel = "/"
			}
			out[ino] = rel
		}
		return nil
	})
	return out
}

func procPath(pid uint32, file string) string {
	return "/proc/" + strconv.FormatUint(uint64(pid), 10) + "/" + file
}
