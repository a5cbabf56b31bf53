package files

import (
	"fmt"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/bpfrt"
	"github.com/eunomia-agent/eunomia/internal/event"
)

// Kernel file types (enum file_type in files.bpf.c).
const (
	typeOther   = 0
	typeRegular = 1
	typeSocket  = 2
	typePipe    = 3
)

// Path walk results (enum path_flags in files.bpf.c).
const (
	pathAbsolute = 1
	pathPseudo   = 2
)

func fileType(t uint32) string {
	switch t {
	case typeRegular:
		return event.FileRegular
	case typeSocket:
		return event.FileSocket
	case typePipe:
		return event.FilePipe
	}
	return event.FileOther
}

// userDev turns a kernel dev_t (12-bit major, 20-bit minor) into the
// encoding stat(2) returns.
func userDev(dev uint32) uint64 {
	return unix.Mkdev(dev>>20, dev&(1<<20-1))
}

// entry is one (pid, file) counter read from the kernel.
type entry struct {
	key   filesFileKey
	stats filesFileStats
}

type lessFunc func(a, b *filesFileStats) int

func sortBy(f func(s *filesFileStats) uint64) lessFunc {
	return func(a, b *filesFileStats) int {
		x, y := f(a), f(b)
		switch {
		case x > y:
			return -1
		case x < y:
			return 1
		}
		return 0
	}
}

// sortKeys are the orders of the top list, by the sort option's values.
var sortKeys = map[string]lessFunc{
	"bytes":       sortBy(func(s *filesFileStats) uint64 { return s.ReadBytes + s.WriteBytes }),
	"read_bytes":  sortBy(func(s *filesFileStats) uint64 { return s.ReadBytes }),
	"write_bytes": sortBy(func(s *filesFileStats) uint64 { return s.WriteBytes }),
	"ops":         sortBy(func(s *filesFileStats) uint64 { return s.Reads + s.Writes }),
	"reads":       sortBy(func(s *filesFileStats) uint64 { return s.Reads }),
	"writes":      sortBy(func(s *filesFileStats) uint64 { return s.Writes }),
}

// topEvents sorts entries by less (ties by pid, then device and inode, so
// the order is stable) and turns the first top of them (all when top is 0)
// into files.io events stamped with now.
func topEvents(entries []entry, less lessFunc, top int, now time.Time) []*event.Event {
	slices.SortFunc(entries, func(a, b entry) int {
		if c := less(&a.stats, &b.stats); c != 0 {
			return c
		}
		switch {
		case a.key.Pid != b.key.Pid:
			return cmpU64(uint64(a.key.Pid), uint64(b.key.Pid))
		case a.key.Dev != b.key.Dev:
			return cmpU64(uint64(a.key.Dev), uint64(b.key.Dev))
		}
		return cmpU64(a.key.Inode, b.key.Inode)
	})
	if top > 0 && len(entries) > top {
		entries = entries[:top]
	}
	out := make([]*event.Event, len(entries))
	recs := make([]ioRecord, len(entries)) // one allocation for the whole list
	for i := range entries {
		out[i] = recs[i].fill(&entries[i], now)
	}
	return out
}

func cmpU64(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}

type ioRecord struct {
	ev event.Event
	io event.FilesIO
}

func (r *ioRecord) fill(e *entry, now time.Time) *event.Event {
	s := &e.stats
	r.ev.Kind = event.KindFilesIO
	bpfrt.Process(&r.ev.Process, unsafe.Pointer(&s.Proc))
	r.ev.Time = now // the end of the interval the counts cover
	r.io = event.FilesIO{
		File:       filePath(s, e.key.Inode),
		Inode:      e.key.Inode,
		Dev:        userDev(e.key.Dev),
		FileType:   fileType(s.Type),
		Reads:      s.Reads,
		Writes:     s.Writes,
		ReadBytes:  s.ReadBytes,
		WriteBytes: s.WriteBytes,
	}
	r.ev.Payload = &r.io
	return &r.ev
}

// filePath builds the name of a file from the names the kernel collected
// (the file's own, then one per step up the tree, "" where a step crossed a
// mount): an absolute path when the walk reached the root, ".../"-prefixed
// when it stopped after WALK_STEPS steps, "socket:[inode]" or "pipe:[inode]"
// (as /proc/PID/fd shows them) for sockets and anonymous pipes, and the bare
// name for other files of internal mounts ("[eventfd]", "memfd:x").
func filePath(s *filesFileStats, inode uint64) string {
	var buf [len(filesFileStats{}.Leaf) + len(filesFileStats{}.Dirs)*(len(filesFileStats{}.Dirs[0])+1) + 4]byte
	b := buf[:0]
	leaf := bpfrt.CBytes(s.Leaf[:])
	switch {
	case s.Type == typeSocket:
		b = strconv.AppendUint(append(b, "socket:["...), inode, 10)
		return bpfrt.Intern(append(b, ']'))
	case s.PathFlags&pathPseudo != 0 && s.Type == typePipe:
		b = strconv.AppendUint(append(b, "pipe:["...), inode, 10)
		return bpfrt.Intern(append(b, ']'))
	case s.PathFlags&pathPseudo != 0:
		if len(leaf) > 0 {
			return bpfrt.Intern(leaf)
		}
		b = strconv.AppendUint(append(b, '['), inode, 10)
		return bpfrt.Intern(append(b, ']'))
	case s.PathFlags&pathAbsolute == 0:
		b = append(b, "..."...)
	}
	for i := min(int(s.Steps), len(s.Dirs)) - 1; i >= 0; i-- {
		if dir := bpfrt.CBytes(s.Dirs[i][:]); len(dir) > 0 {
			b = append(b, '/')
			b = append(b, dir...)
		}
	}
	// The root of a mount is called "/": its mount point named it already.
	if len(leaf) > 0 && string(leaf) != "/" {
		b = append(b, '/')
		b = append(b, leaf...)
	}
	if len(b) == 0 {
		return "/"
	}
	return bpfrt.Intern(b)
}

var openSize = int(unsafe.Sizeof(filesOpenEvent{}))

type openRecord struct {
	ev   event.Event
	open event.FilesOpen
}

// decodeOpen turns a ring buffer record into a files.open event. The
// record's bytes are reused by the reader afterwards: everything is copied.
func decodeOpen(raw []byte) (*event.Event, error) {
	if len(raw) < openSize {
		return nil, fmt.Errorf("files: short open record (%d bytes, want %d)", len(raw), openSize)
	}
	r := (*filesOpenEvent)(unsafe.Pointer(&raw[0]))
	rec := new(openRecord)
	ev := &rec.ev
	ev.Kind = event.KindFilesOpen
	ev.Time = bpfrt.Process(&ev.Process, unsafe.Pointer(&r.Proc))
	rec.open = event.FilesOpen{
		Path:      bpfrt.CString(r.Path[:]),
		Dfd:       r.Dfd,
		Flags:     r.Flags,
		FlagsText: openFlagsText(r.Flags),
		Mode:      r.Mode,
		Result:    r.Result,
	}
	if r.Result >= 0 {
		rec.open.Inode = r.Inode
		rec.open.Dev = userDev(r.Dev)
		rec.open.FileType = fileType(r.Type)
	}
	ev.Payload = &rec.open
	return ev, nil
}

// openFlagNames are the O_* flags spelled out in flags_text, in the order
// open(2) lists them, except that flags including others come first.
var openFlagNames = []struct {
	bit  uint64
	name string
}{
	{unix.O_TMPFILE, "O_TMPFILE"},
	{unix.O_APPEND, "O_APPEND"},
	{unix.O_ASYNC, "O_ASYNC"},
	{unix.O_CLOEXEC, "O_CLOEXEC"},
	{unix.O_CREAT, "O_CREAT"},
	{unix.O_DIRECT, "O_DIRECT"},
	{unix.O_DIRECTORY, "O_DIRECTORY"},
	{unix.O_SYNC, "O_SYNC"}, // includes O_DSYNC: tested before it
	{unix.O_DSYNC, "O_DSYNC"},
	{unix.O_EXCL, "O_EXCL"},
	{0o100000, "O_LARGEFILE"}, // the kernel's value; Go's unix has 0 on amd64
	{unix.O_NOATIME, "O_NOATIME"},
	{unix.O_NOCTTY, "O_NOCTTY"},
	{unix.O_NOFOLLOW, "O_NOFOLLOW"},
	{unix.O_NONBLOCK, "O_NONBLOCK"},
	{unix.O_PATH, "O_PATH"},
	{unix.O_TRUNC, "O_TRUNC"},
}

// openFlagsText spells out open flags: the access mode, then each flag set,
// then any unknown bits in hex, joined by "|".
func openFlagsText(flags uint64) string {
	var buf [256]byte
	b := buf[:0]
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		b = append(b, "O_RDONLY"...)
	case unix.O_WRONLY:
		b = append(b, "O_WRONLY"...)
	case unix.O_RDWR:
		b = append(b, "O_RDWR"...)
	default:
		b = append(b, "O_ACCMODE"...)
	}
	rest := flags &^ unix.O_ACCMODE
	for _, f := range openFlagNames {
		if rest&f.bit == f.bit {
			b = append(b, '|')
			b = append(b, f.name...)
			rest &^= f.bit
		}
	}
	if rest != 0 {
		b = append(b, "|0x"...)
		b = strconv.AppendUint(b, rest, 16)
	}
	return bpfrt.Intern(b)
}
