// Package bpfrt is the BPF runtime every tracker shares: loading a
// collection with the common filters of bpf/eunomia.h applied, attaching
// its programs, reading its ring buffer on a goroutine, counting kernel-side
// losses, and closing it all in the right order.
package bpfrt

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// DefaultRingSize is the ring buffer size of a tracker unless it asks for
// another: room for about a thousand of the largest (exec) events.
const DefaultRingSize = 2 << 20

// PollInterval is how long an event may wait in the ring buffer before the
// reader looks, when wakeups are batched: the kernel wakes the reader only
// once a sixteenth of the ring is full (see eu_submit in bpf/eunomia.h), the
// reader polls on this timer for the rest.
const PollInterval = 20 * time.Millisecond

// btfCache keeps the decoded kernel BTF for every load: decoding it takes
// about 20 ms, more than loading a tracker's programs.
var btfCache = btf.NewCache()

// Probe is one loaded BPF collection with its links and ring buffer reader.
type Probe struct {
	Coll *ebpf.Collection

	links  []link.Link
	reader *ringbuf.Reader
	lost   *ebpf.Map

	stop      chan struct{}
	closed    atomic.Bool
	finalLost atomic.Uint64  // KernelLost at Close, kept after the map is gone
	wg        sync.WaitGroup // Every goroutines
	readerWG  sync.WaitGroup // the ReadRing goroutine
	closeOnce sync.Once
	closeErr  error
}

// LoadOptions says how to load a tracker's collection.
type LoadOptions struct {
	Filter tracker.Filter
	Env    tracker.Env
	// Consts sets further `const volatile` globals of the program by name.
	Consts map[string]any
	// RingSize is the ring buffer size in bytes (a power of two); 0 means
	// DefaultRingSize.
	RingSize uint32
	// WakeEveryEvent wakes the reader for every event instead of batching
	// (lower latency, much higher cost per event).
	WakeEveryEvent bool
}

// Load applies the filters and constants to spec and loads it into the
// kernel. Nothing is attached yet.
func Load(spec *ebpf.CollectionSpec, opts LoadOptions) (*Probe, error) {
	if err := CheckSystem(); err != nil {
		return nil, err
	}
	f := opts.Filter
	size := opts.RingSize
	if size == 0 {
		size = DefaultRingSize
	}
	wakeup := size / 16
	if opts.WakeEveryEvent {
		wakeup = 0
	}
	consts := map[string]any{
		"cfg_wakeup_bytes":  wakeup,
		"cfg_self_pid":      opts.Env.SelfPid,
		"cfg_filter_pid":    f.Pid != 0,
		"cfg_filter_uid":    f.Uid != nil,
		"cfg_filter_cgroup": len(f.Cgroup) > 0 || len(opts.Env.CgroupIDs) > 0,
		"cfg_filter_comm":   f.Comm != "",
	}
	if f.Uid != nil {
		consts["cfg_uid"] = *f.Uid
	}
	if f.Comm != "" {
		var comm [16]byte
		copy(comm[:15], f.Comm)
		consts["cfg_comm"] = comm
	}
	for k, v := range opts.Consts {
		consts[k] = v
	}
	for name, v := range consts {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("BPF program has no variable %q", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	if m, ok := spec.Maps["events"]; ok {
		m.MaxEntries = size
	}

	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Cache: btfCache})
	if err != nil {
		return nil, explainLoadError(err)
	}
	p := &Probe{Coll: coll, lost: coll.Maps["lost"], stop: make(chan struct{})}
	if err := p.fillFilters(f, opts.Env); err != nil {
		coll.Close()
		return nil, err
	}
	return p, nil
}

func (p *Probe) fillFilters(f tracker.Filter, env tracker.Env) error {
	one := uint8(1)
	if f.Pid != 0 {
		if err := p.Coll.Maps["pid_filter"].Put(f.Pid, one); err != nil {
			return fmt.Errorf("pid filter: %w", err)
		}
	}
	for _, ids := range [][]uint64{f.Cgroup, env.CgroupIDs} {
		for _, id := range ids {
			if err := p.Coll.Maps["cgroup_filter"].Put(id, one); err != nil {
				return fmt.Errorf("cgroup filter: %w", err)
			}
		}
	}
	return nil
}

// AddPids adds pids to the pid filter (for trackers that follow children).
func (p *Probe) AddPids(pids []uint32) error {
	one := uint8(1)
	for _, pid := range pids {
		if err := p.Coll.Maps["pid_filter"].Put(pid, one); err != nil {
			return fmt.Errorf("pid filter: %w", err)
		}
	}
	return nil
}

// Tracepoint attaches the program prog to the classic tracepoint group/name.
func (p *Probe) Tracepoint(group, name, prog string) error {
	l, err := link.Tracepoint(group, name, p.Coll.Programs[prog], nil)
	if err != nil {
		return fmt.Errorf("attach %s to tracepoint %s/%s: %w", prog, group, name, err)
	}
	p.links = append(p.links, l)
	return nil
}

// RawTracepoint attaches prog to the raw tracepoint name.
func (p *Probe) RawTracepoint(name, prog string) error {
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: name, Program: p.Coll.Programs[prog]})
	if err != nil {
		return fmt.Errorf("attach %s to raw tracepoint %s: %w", prog, name, err)
	}
	p.links = append(p.links, l)
	return nil
}

// BTFTracepoint attaches a tp_btf program (its target is in its section).
func (p *Probe) BTFTracepoint(prog string) error {
	l, err := link.AttachTracing(link.TracingOptions{Program: p.Coll.Programs[prog]})
	if err != nil {
		return fmt.Errorf("attach %s: %w", prog, err)
	}
	p.links = append(p.links, l)
	return nil
}

// Decoder turns one ring buffer record into an event. It returns nil (and
// no error) for records it deliberately ignores.
type Decoder func(raw []byte) (*event.Event, error)

// ReadRing starts the goroutine that reads the ring buffer, decodes each
// record and passes the event to emit. Records that fail to decode are
// counted by onBad (which may be nil).
func (p *Probe) ReadRing(decode Decoder, emit func(*event.Event), onBad func(error)) error {
	rd, err := ringbuf.NewReader(p.Coll.Maps["events"])
	if err != nil {
		return fmt.Errorf("ring buffer reader: %w", err)
	}
	p.reader = rd
	p.readerWG.Add(1)
	go func() {
		defer p.readerWG.Done()
		var rec ringbuf.Record
		rd.SetDeadline(time.Now().Add(PollInterval))
		for {
			if err := rd.ReadInto(&rec); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					// Everything pending was read: poll again later.
					rd.SetDeadline(time.Now().Add(PollInterval))
					continue
				}
				// Closed, or flushed at Close after the last record.
				return
			}
			ev, err := decode(rec.RawSample)
			if err != nil {
				if onBad != nil {
					onBad(err)
				}
				continue
			}
			if ev != nil {
				emit(ev)
			}
		}
	}()
	return nil
}

// Every runs fn every interval on a goroutine until Close, and once more at
// Close (after the programs are detached and the ring buffer is drained),
// so that counts kept in kernel maps are reported up to the end, after
// every event the kernel sent. An interval of 0 runs fn at Close only.
func (p *Probe) Every(interval time.Duration, fn func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		var tick <-chan time.Time
		if interval > 0 {
			t := time.NewTicker(interval)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-tick:
				fn()
			case <-p.stop:
				fn()
				return
			}
		}
	}()
}

// KernelLost sums the per-CPU counter of failed ring buffer reservations.
func (p *Probe) KernelLost() uint64 {
	if p.closed.Load() {
		return p.finalLost.Load()
	}
	return p.readLost()
}

func (p *Probe) readLost() uint64 {
	if p.lost == nil {
		return 0
	}
	var perCPU []uint64
	if err := p.lost.Lookup(uint32(0), &perCPU); err != nil {
		return 0
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n
}

// Close detaches the programs, lets the reader drain what the ring buffer
// still holds, stops the goroutines, then frees maps and programs.
func (p *Probe) Close() error {
	p.closeOnce.Do(func() {
		var errs []error
		for i := len(p.links) - 1; i >= 0; i-- {
			errs = append(errs, p.links[i].Close())
		}
		if p.reader != nil {
			// The reader returns what is pending, then ErrFlushed.
			errs = append(errs, p.reader.Flush())
		}
		// The last run of the Every functions comes after the last event.
		p.readerWG.Wait()
		close(p.stop)
		p.wg.Wait()
		if p.reader != nil {
			errs = append(errs, p.reader.Close())
		}
		p.finalLost.Store(p.readLost())
		p.closed.Store(true)
		p.Coll.Close()
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// CheckSystem reports, in words a user can act on, why BPF cannot work
// here. It mounts tracefs when nothing has (tracepoint ids are read there).
func CheckSystem() error {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return fmt.Errorf("kernel BTF is missing (/sys/kernel/btf/vmlinux: %v): eunomia needs a kernel built with CONFIG_DEBUG_INFO_BTF=y", err)
	}
	tracefsOnce.Do(func() { tracefsErr = mountTracefs() })
	return tracefsErr
}

var (
	tracefsOnce sync.Once
	tracefsErr  error
)

const tracefsDir = "/sys/kernel/tracing"

func mountTracefs() error {
	for _, dir := range []string{tracefsDir, "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(dir + "/events"); err == nil {
			return nil
		}
	}
	if err := unix.Mount("nodev", tracefsDir, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("tracefs is not mounted and mounting it at %s failed (%v): mount it with 'mount -t tracefs nodev %s'", tracefsDir, err, tracefsDir)
	}
	return nil
}

func explainLoadError(err error) error {
	if errors.Is(err, os.ErrPermission) {
		if os.Geteuid() != 0 {
			return fmt.Errorf("loading BPF programs needs root (or CAP_BPF and CAP_PERFMON): %w", err)
		}
		return fmt.Errorf("the kernel refused the BPF program (permission denied although running as root; lockdown or a seccomp policy?): %w", err)
	}
	return fmt.Errorf("load BPF programs: %w", err)
}

// Process copies a record's header (struct eu_proc in bpf/eunomia.h) into
// the event. hdr must point to a bpf2go-generated mirror of struct eu_proc;
// the layout is the same in every tracker (see header_test.go).
func Process(dst *event.Process, hdr unsafe.Pointer) time.Time {
	h := (*headerEuProc)(hdr)
	*dst = event.Process{
		Pid:      h.Pid,
		Tid:      h.Tid,
		Ppid:     h.Ppid,
		Uid:      h.Uid,
		Gid:      h.Gid,
		CgroupID: h.CgroupId,
		PidNS:    h.PidNs,
		MntNS:    h.MntNs,
		UserNS:   h.UserNs,
		Comm:     Intern(CBytes(h.Comm[:])),
	}
	return BootTime(h.BootNs)
}

// HeaderSize is the size of struct eu_proc.
const HeaderSize = unsafe.Sizeof(headerEuProc{})

// CBytes views a C char array as bytes up to its first NUL.
func CBytes(a []int8) []byte {
	if len(a) == 0 {
		return nil
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&a[0])), len(a))
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// CString copies a C char array into a string.
func CString(a []int8) string { return string(CBytes(a)) }

// Base gives a tracker that holds one Probe its KernelLost and Close
// methods: embed it and set Probe in Start.
type Base struct {
	Probe *Probe
}

// KernelLost implements tracker.Tracker.
func (b *Base) KernelLost() uint64 {
	if b.Probe == nil {
		return 0
	}
	return b.Probe.KernelLost()
}

// Close implements tracker.Tracker: detach, drain, free (see Probe.Close).
func (b *Base) Close() error {
	if b.Probe == nil {
		return nil
	}
	return b.Probe.Close()
}
