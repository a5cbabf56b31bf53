package metrics

import (
	"strconv"
	"sync"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// maxFields bounds the payload fields one event kind's metrics read.
const maxFields = 8

// grabber is a FieldWriter that keeps the values of a few wanted fields,
// read in one pass over the payload without boxing them.
type grabber struct {
	fields []string
	vals   [maxFields]fieldVal
}

type fieldType uint8

const (
	typeString fieldType = iota
	typeInt
	typeUint
	typeBool
)

type fieldVal struct {
	set bool
	typ fieldType
	s   string
	n   uint64 // ints, uints and bools; an int's bits
}

func (g *grabber) reset(fields []string) {
	g.fields = fields
	for i := range fields {
		g.vals[i] = fieldVal{}
	}
}

func (g *grabber) slot(k string) *fieldVal {
	for i, f := range g.fields {
		if f == k {
			if g.vals[i].set { // the first of a repeated key wins
				return nil
			}
			return &g.vals[i]
		}
	}
	return nil
}

func (g *grabber) String(k, v string) {
	if s := g.slot(k); s != nil {
		*s = fieldVal{set: true, typ: typeString, s: v}
	}
}

func (g *grabber) Int(k string, v int64) {
	if s := g.slot(k); s != nil {
		*s = fieldVal{set: true, typ: typeInt, n: uint64(v)}
	}
}

func (g *grabber) Uint(k string, v uint64) {
	if s := g.slot(k); s != nil {
		*s = fieldVal{set: true, typ: typeUint, n: v}
	}
}

func (g *grabber) Bool(k string, v bool) {
	if s := g.slot(k); s != nil {
		n := uint64(0)
		if v {
			n = 1
		}
		*s = fieldVal{set: true, typ: typeBool, n: n}
	}
}

func (g *grabber) Strings(string, []string)   {}
func (g *grabber) Event(string, *event.Event) {}

// num is the value as a counter increment: negative numbers and
// strings that are not numbers count as 0.
func (v *fieldVal) num() uint64 {
	switch v.typ {
	case typeInt:
		if int64(v.n) < 0 {
			return 0
		}
		return v.n
	case typeString:
		n, err := strconv.ParseUint(v.s, 10, 64)
		if err != nil {
			return 0
		}
		return n
	default:
		return v.n
	}
}

// label is the value as a label value; "" when the field is missing.
func (v *fieldVal) label() string {
	if !v.set {
		return ""
	}
	switch v.typ {
	case typeString:
		return v.s
	case typeInt:
		return strconv.FormatInt(int64(v.n), 10)
	case typeBool:
		return strconv.FormatBool(v.n != 0)
	default:
		return smallUint(v.n)
	}
}

// smallNums holds the decimal strings of small numbers (signals, enum
// values), so that labelling them allocates nothing.
var smallNums = func() []string {
	s := make([]string, 1024)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func smallUint(n uint64) string {
	if n < uint64(len(smallNums)) {
		return smallNums[n]
	}
	return strconv.FormatUint(n, 10)
}

// deltaGeneration is how many (tracker, pid, key) running totals a
// generation holds; totals not updated for two generations are forgotten.
const deltaGeneration = 1 << 16

// deltas turns running totals (a syscall count per process and syscall)
// into increases. It remembers the last total per (tracker, pid, key) in
// two generations: when the current one is full it becomes the previous
// one and the older is dropped, so the memory is bounded and only
// processes silent for that long are forgotten (their next report is then
// counted whole).
type deltas struct {
	mu        sync.Mutex
	max       int
	cur, prev map[deltaKey]uint64
}

type deltaKey struct {
	tracker string
	pid     uint32
	n       uint64
	s       string
}

func newDeltas(max int) *deltas {
	return &deltas{max: max, cur: map[deltaKey]uint64{}, prev: map[deltaKey]uint64{}}
}

// increase records total for k and returns how much it
// grew. The first total seen, or one smaller than the last (a reused pid,
// a restarted tracker), counts whole.
func (d *deltas) increase(k deltaKey, total uint64) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	last, ok := d.cur[k]
	if !ok {
		last, ok = d.prev[k]
		if len(d.cur) >= d.max {
			d.prev, d.cur = d.cur, make(map[deltaKey]uint64, d.max)
		}
	}
	d.cur[k] = total
	if !ok || total < last {
		return total
	}
	return total - last
}
