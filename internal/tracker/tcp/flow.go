package tcp

import (
	"time"

	"github.com/cilium/ebpf"

	"github.com/eunomia-agent/eunomia/internal/bpfrt"
	"github.com/eunomia-agent/eunomia/internal/event"
)

// flowReporter reads count mode's per-flow counters from the kernel map and
// emits a tcp.flow event for each flow that changed since its last report.
// The kernel only ever adds, so user space remembers what it reported last
// instead of resetting counters it might race with.
type flowReporter struct {
	flows *ebpf.Map
	emit  func(*event.Event)
	last  map[tcpFlowKey]uint64
}

type flowRecord struct {
	ev   event.Event
	p    event.TCPFlow
	text addrText
}

func newFlowReporter(p *bpfrt.Probe, emit func(*event.Event)) *flowReporter {
	return &flowReporter{flows: p.Coll.Maps["flows"], emit: emit, last: map[tcpFlowKey]uint64{}}
}

func (f *flowReporter) report() {
	now := time.Now()
	var key tcpFlowKey
	var count uint64
	it := f.flows.Iterate()
	for it.Next(&key, &count) {
		prev := f.last[key]
		if count == prev {
			continue
		}
		f.last[key] = count
		if ev := flowEvent(&key, count, count-prev, now); ev != nil {
			f.emit(ev)
		}
	}
	// An iteration error (the map being changed under it) only delays a
	// report to the next interval: counts are cumulative.
}

// flowEvent converts one kernel flow counter into a tcp.flow event, or nil
// for a key the kernel never writes.
func flowEvent(key *tcpFlowKey, count, delta uint64, now time.Time) *event.Event {
	if key.Family != afInet && key.Family != afInet6 {
		return nil
	}
	rec := new(flowRecord)
	rec.ev.Kind = event.KindTCPFlow
	rec.ev.Time = now
	rec.p.Saddr, rec.p.Daddr = addrStrings(key.Family, &key.Saddr, &key.Daddr, &rec.text)
	rec.p.Dport = key.Dport
	rec.p.Family = familyName(key.Family)
	rec.p.Count = count
	rec.p.IntervalCount = delta
	rec.ev.Payload = &rec.p
	return &rec.ev
}
