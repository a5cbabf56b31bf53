package syscall

import (
	"cmp"
	"log/slog"
	"slices"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/eunomia-agent/eunomia/internal/bpfrt"
	"github.com/eunomia-agent/eunomia/internal/event"
)

// procTable is the kernel's procs map as read by user space: the header of
// every process the tracker counts.
type procTable map[uint32]*syscallScProc

// header fills dst with the process header of pid: pid only when the
// kernel map no longer holds it (evicted).
func (pt procTable) header(pid uint32, dst *event.Process) {
	p, ok := pt[pid]
	if !ok {
		*dst = event.Process{Pid: pid, Tid: pid}
		return
	}
	bpfrt.Process(dst, unsafe.Pointer(&p.Proc))
	dst.Tid = pid // the header came from whichever thread called first
}

// readProcs reads the procs map; it also returns the pids that exited.
func readProcs(m *ebpf.Map) (procTable, []uint32, error) {
	pt := procTable{}
	var exited []uint32
	err := batchRead(m, 1, func(pid uint32, v []syscallScProc) {
		p := v[0]
		pt[pid] = &p
		if p.Exited != 0 {
			exited = append(exited, pid)
		}
	})
	return pt, exited, err
}

// summaryState is what summary mode keeps between intervals.
type summaryState struct {
	counts *ebpf.Map // per-CPU counts by (pid, slot)
	procs  *ebpf.Map
	top    int
	ncpu   int

	prev map[syscallScKey]uint64 // totals at the previous summary
	last time.Time
}

func (s *summaryState) init(counts, procs *ebpf.Map, top int) {
	s.counts, s.procs, s.top = counts, procs, top
	s.ncpu = 1
	if n, err := ebpf.PossibleCPU(); err == nil {
		s.ncpu = n
	}
	s.prev = map[syscallScKey]uint64{}
	s.last = time.Now()
}

type slotCount struct {
	slot  uint32
	count uint64
}

// summarize reports, for every process that made syscalls since the last
// summary, its t.cfg.SummaryTop most called syscalls in that span, most called
// first. Processes that exited are then removed from the kernel maps.
func (t *Tracker) summarize() {
	s := &t.sum
	t.readEvicted()
	// Processes first: one that exits after this read is removed next time,
	// after its last calls are counted.
	procs, exited, err := readProcs(s.procs)
	if err != nil {
		slog.Warn("syscall tracker: read processes", "tracker", t.env.Name, "err", err)
		return
	}
	cur := make(map[syscallScKey]uint64, len(s.prev))
	byPid := map[uint32][]slotCount{}
	err = batchRead(s.counts, s.ncpu, func(k syscallScKey, perCPU []uint64) {
		var total uint64
		for _, v := range perCPU {
			total += v
		}
		cur[k] = total
		delta := total
		if prev, ok := s.prev[k]; ok && prev <= total {
			delta = total - prev
		} // else new, or evicted and started again: all of it is new
		if delta > 0 {
			byPid[k.Pid] = append(byPid[k.Pid], slotCount{k.Slot, delta})
		}
	})
	if err != nil {
		slog.Warn("syscall tracker: read counts", "tracker", t.env.Name, "err", err)
		return
	}
	now := time.Now()
	interval := uint64(now.Sub(s.last))
	s.last = now

	pids := make([]uint32, 0, len(byPid))
	for pid := range byPid {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	for _, pid := range pids {
		calls := byPid[pid]
		slices.SortFunc(calls, func(a, b slotCount) int {
			if c := cmp.Compare(b.count, a.count); c != 0 {
				return c
			}
			return cmp.Compare(a.slot, b.slot)
		})
		if len(calls) > s.top {
			calls = calls[:s.top]
		}
		for _, c := range calls {
			r := newRecord(c.slot, c.count, reasonSummary)
			r.ev.Time = now
			r.sc.IntervalNs = interval
			procs.header(pid, &r.ev.Process)
			t.emit(&r.ev)
		}
	}

	if len(exited) > 0 {
		gone := map[uint32]bool{}
		for _, pid := range exited {
			gone[pid] = true
		}
		for k := range cur {
			if gone[k.Pid] {
				s.counts.Delete(k)
				delete(cur, k)
			}
		}
		for _, pid := range exited {
			s.procs.Delete(pid)
		}
	}
	s.prev = cur
}
