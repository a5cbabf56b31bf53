package handler

import (
	"strconv"
	"strings"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// CSV formats events as RFC 4180 records (CRLF line ends, fields quoted when
// they hold a comma, quote or line break), one header record first. The
// payload's fields go into the last column as key=value pairs, since one
// stream may mix event kinds with different fields. A CSV value keeps
// scratch state: use one per goroutine (a Printer serialises its calls).
type CSV struct{ w kvFields }

const csvHeader = "time,kind,pid,ppid,uid,gid,comm,cgroup_id,container,details\r\n"

// Header implements Format.
func (*CSV) Header(b []byte) []byte { return append(b, csvHeader...) }

// Append implements Format.
func (c *CSV) Append(b []byte, ev *event.Event) []byte {
	b = ev.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, ',')
	b = appendCSVField(b, string(ev.Kind))
	for _, v := range [...]uint64{uint64(ev.Process.Pid), uint64(ev.Process.Ppid), uint64(ev.Process.Uid), uint64(ev.Process.Gid)} {
		b = append(b, ',')
		b = strconv.AppendUint(b, v, 10)
	}
	b = append(b, ',')
	b = appendCSVField(b, ev.Process.Comm)
	b = append(b, ',')
	b = strconv.AppendUint(b, ev.Process.CgroupID, 10)
	b = append(b, ',')
	b = appendCSVField(b, ev.Container.Label())
	b = append(b, ',')
	if ev.Payload != nil {
		// Format the details after the record, then move them into place
		// as one field, quoted if they need it.
		start := len(b)
		b = c.w.appendPayload(b, ev.Payload)
		if strings.ContainsAny(string(b[start:]), ",\"\r\n") {
			details := string(b[start:])
			b = appendCSVField(b[:start], details)
		}
	}
	return append(b, '\r', '\n')
}

func appendCSVField(b []byte, s string) []byte {
	if !strings.ContainsAny(s, ",\"\r\n") {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}
