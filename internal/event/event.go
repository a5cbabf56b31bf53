// Package event holds the public event model: what every tracker delivers
// and every handler consumes. Tracker packages convert their kernel records
// into these types at once; generated BPF types never leave the tracker.
package event

import "time"

// Kind names what happened. It is the "kind" field of the JSON output.
type Kind string

// The event kinds. Trackers add theirs here so that handlers can name them.
const (
	KindProcessExec Kind = "process.exec"
	KindProcessExit Kind = "process.exit"
	KindSyscall     Kind = "syscall"
	KindTCPConnect  Kind = "tcp.connect"
	KindTCPAccept   Kind = "tcp.accept"
	KindTCPClose    Kind = "tcp.close"
	KindTCPFlow     Kind = "tcp.flow"
	KindFilesIO     Kind = "files.io"
	KindFilesOpen   Kind = "files.open"
	KindIPC         Kind = "ipc"
	KindSignal      Kind = "signal"
	KindAlert       Kind = "alert"
	KindAggregate   Kind = "aggregate"
)

// Process is the task an event belongs to.
type Process struct {
	Pid      uint32 // thread group id
	Tid      uint32
	Ppid     uint32
	Uid      uint32
	Gid      uint32
	Comm     string
	CgroupID uint64 // inode of the task's cgroup2 directory
	PidNS    uint32 // namespace inode numbers; 0 when unknown
	MntNS    uint32
	UserNS   uint32
}

// Container is the container (and Kubernetes pod) a process runs in.
// All fields are empty until the container manager fills them in.
type Container struct {
	ID        string
	Name      string
	Image     string
	Pod       string
	Namespace string
}

// Label is what short displays (text and CSV columns, metric labels) show
// of a container: its name, or a short id when it has none, or nothing
// when unknown.
func (c *Container) Label() string {
	switch {
	case c.Name != "":
		return c.Name
	case len(c.ID) > 12:
		return c.ID[:12]
	default:
		return c.ID
	}
}

// HostContainerName is the name given to processes outside any container.
const HostContainerName = "host"

// Event is one thing a tracker saw.
type Event struct {
	Time      time.Time
	Kind      Kind
	Tracker   string // name of the tracker instance that produced it, e.g. "process#3"
	Process   Process
	Container Container
	Payload   Payload
}

// Payload is the kind-specific part of an event. It lists its fields to a
// FieldWriter, which lets every printer, rule engine and aggregator read any
// payload without knowing its type and without allocating.
type Payload interface {
	WriteFields(w FieldWriter)
}

// FieldWriter receives a payload's fields in a fixed order. Keys are the
// JSON field names (snake_case).
type FieldWriter interface {
	String(key, v string)
	Int(key string, v int64)
	Uint(key string, v uint64)
	Bool(key string, v bool)
	Strings(key string, v []string)
	// Event writes a nested event, e.g. the event an alert was raised for.
	Event(key string, ev *Event)
}
