package tcp

import (
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/bpfrt"
	"github.com/eunomia-agent/eunomia/internal/event"
)

// Kernel record types and connect results (enums in tcp.bpf.c).
const (
	typeConnect = 1
	typeAccept  = 2
	typeClose   = 3

	resultEstablished = 0
	resultRefused     = 1
	resultFailed      = 2
)

// Address families as the kernel numbers them.
const (
	afInet  = 2
	afInet6 = 10
)

// addrText holds two addresses in text form: the longest IPv6 text is 45
// bytes (with an embedded IPv4 part).
type addrText [2 * 46]byte

// The records own their strings' bytes, so decoding one event costs a
// single allocation.
type connectRecord struct {
	ev   event.Event
	p    event.TCPConnect
	text addrText
}

type acceptRecord struct {
	ev   event.Event
	p    event.TCPAccept
	text addrText
}

type closeRecord struct {
	ev   event.Event
	p    event.TCPClose
	text addrText
}

var recordSize = int(unsafe.Sizeof(tcpConnEvent{}))

// decode turns one ring buffer record into an event. The record's bytes are
// reused by the reader afterwards, so everything is copied out.
func decode(raw []byte) (*event.Event, error) {
	if len(raw) < recordSize {
		return nil, fmt.Errorf("tcp: short record (%d bytes, want %d)", len(raw), recordSize)
	}
	r := (*tcpConnEvent)(unsafe.Pointer(&raw[0]))
	if f := r.Conn.Family; f != afInet && f != afInet6 {
		return nil, fmt.Errorf("tcp: unknown address family %d", f)
	}
	switch r.Type {
	case typeConnect:
		rec := new(connectRecord)
		rec.ev.Kind = event.KindTCPConnect
		rec.ev.Time = bpfrt.Process(&rec.ev.Process, unsafe.Pointer(&r.Proc))
		fillConn(&rec.p.TCPConn, r, &rec.text)
		switch r.Result {
		case resultEstablished:
			rec.p.Result = event.TCPEstablished
		case resultRefused:
			rec.p.Result = event.TCPRefused
		case resultFailed:
			rec.p.Result = event.TCPFailed
		default:
			return nil, fmt.Errorf("tcp: unknown connect result %d", r.Result)
		}
		if r.Error > 0 {
			rec.p.Error = errnoName(r.Error)
		}
		rec.p.LatencyNs = r.LatencyNs
		rec.ev.Payload = &rec.p
		return &rec.ev, nil
	case typeAccept:
		rec := new(acceptRecord)
		rec.ev.Kind = event.KindTCPAccept
		rec.ev.Time = bpfrt.Process(&rec.ev.Process, unsafe.Pointer(&r.Proc))
		fillConn(&rec.p.TCPConn, r, &rec.text)
		rec.ev.Payload = &rec.p
		return &rec.ev, nil
	case typeClose:
		rec := new(closeRecord)
		rec.ev.Kind = event.KindTCPClose
		rec.ev.Time = bpfrt.Process(&rec.ev.Process, unsafe.Pointer(&r.Proc))
		fillConn(&rec.p.TCPConn, r, &rec.text)
		rec.p.Direction = event.TCPOutbound
		if r.Passive != 0 {
			rec.p.Direction = event.TCPInbound
		}
		rec.p.DurationNs = r.DurationNs
		rec.p.TxBytes = r.TxBytes
		rec.p.RxBytes = r.RxBytes
		rec.ev.Payload = &rec.p
		return &rec.ev, nil
	default:
		return nil, fmt.Errorf("tcp: unknown record type %d", r.Type)
	}
}

func fillConn(c *event.TCPConn, r *tcpConnEvent, text *addrText) {
	t := &r.Conn
	c.Saddr, c.Daddr = addrStrings(t.Family, &t.Saddr, &t.Daddr, text)
	c.Sport = t.Sport
	c.Dport = t.Dport
	c.Family = familyName(t.Family)
}

// addrStrings formats two kernel addresses into text and returns strings
// pointing there (text must not change afterwards).
func addrStrings(family uint16, s, d *[16]uint8, text *addrText) (string, string) {
	b := addr(family, s).AppendTo(text[:0])
	n := len(b)
	b = addr(family, d).AppendTo(b)
	return unsafe.String(&b[0], n), unsafe.String(&b[n], len(b)-n)
}

func addr(family uint16, a *[16]uint8) netip.Addr {
	if family == afInet {
		return netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.AddrFrom16(*a)
}

func familyName(family uint16) string {
	if family == afInet {
		return event.FamilyIPv4
	}
	return event.FamilyIPv6
}

// errnoName names an errno as C does ("ECONNREFUSED"), or by number.
func errnoName(n int32) string {
	if name := unix.ErrnoName(unix.Errno(n)); name != "" {
		return name
	}
	return fmt.Sprintf("errno %d", n)
}
