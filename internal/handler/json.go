package handler

import (
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// JSON formats events as JSON lines: the header fields, then the payload's
// fields at top level. It appends to a caller's buffer and allocates
// nothing. A JSON value keeps scratch state: use one per goroutine (a
// Printer serialises its calls).
type JSON struct{ w jsonFields }

// Header implements Format: JSON lines have none.
func (*JSON) Header(b []byte) []byte { return b }

// Append implements Format.
func (j *JSON) Append(b []byte, ev *event.Event) []byte {
	j.w.b = b
	j.w.object(ev)
	b = append(j.w.b, '\n')
	j.w.b = nil
	return b
}

var jsonPool = sync.Pool{New: func() any { return new(jsonFields) }}

// AppendEventJSON appends ev as one JSON object (no newline). It is safe
// for concurrent use.
func AppendEventJSON(b []byte, ev *event.Event) []byte {
	w := jsonPool.Get().(*jsonFields)
	w.b = b
	w.object(ev)
	b = w.b
	w.b = nil
	jsonPool.Put(w)
	return b
}

// object appends ev as one JSON object.
func (w *jsonFields) object(ev *event.Event) {
	b := w.b
	b = append(b, `{"time":"`...)
	b = ev.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","kind":`...)
	b = appendJSONString(b, string(ev.Kind))
	if ev.Tracker != "" {
		b = append(b, `,"tracker":`...)
		b = appendJSONString(b, ev.Tracker)
	}
	p := &ev.Process
	b = append(b, `,"process":{"pid":`...)
	b = strconv.AppendUint(b, uint64(p.Pid), 10)
	if p.Tid != 0 && p.Tid != p.Pid {
		b = append(b, `,"tid":`...)
		b = strconv.AppendUint(b, uint64(p.Tid), 10)
	}
	b = append(b, `,"ppid":`...)
	b = strconv.AppendUint(b, uint64(p.Ppid), 10)
	b = append(b, `,"uid":`...)
	b = strconv.AppendUint(b, uint64(p.Uid), 10)
	b = append(b, `,"gid":`...)
	b = strconv.AppendUint(b, uint64(p.Gid), 10)
	b = append(b, `,"comm":`...)
	b = appendJSONString(b, p.Comm)
	b = append(b, `,"cgroup_id":`...)
	b = strconv.AppendUint(b, p.CgroupID, 10)
	if p.PidNS != 0 {
		b = append(b, `,"pid_ns":`...)
		b = strconv.AppendUint(b, uint64(p.PidNS), 10)
		b = append(b, `,"mnt_ns":`...)
		b = strconv.AppendUint(b, uint64(p.MntNS), 10)
		b = append(b, `,"user_ns":`...)
		b = strconv.AppendUint(b, uint64(p.UserNS), 10)
	}
	c := &ev.Container
	b = append(b, `},"container":{"id":`...)
	b = appendJSONString(b, c.ID)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, c.Name)
	b = append(b, `,"image":`...)
	b = appendJSONString(b, c.Image)
	b = append(b, `,"pod":`...)
	b = appendJSONString(b, c.Pod)
	b = append(b, `,"namespace":`...)
	b = appendJSONString(b, c.Namespace)
	w.b = append(b, '}')
	if ev.Payload != nil {
		ev.Payload.WriteFields(w)
	}
	w.b = append(w.b, '}')
}

// jsonFields writes payload fields as `,"key":value`.
type jsonFields struct{ b []byte }

func (w *jsonFields) key(k string) {
	w.b = append(w.b, ',')
	w.b = appendJSONString(w.b, k)
	w.b = append(w.b, ':')
}

func (w *jsonFields) String(k, v string) {
	w.key(k)
	w.b = appendJSONString(w.b, v)
}

func (w *jsonFields) Int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *jsonFields) Uint(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

func (w *jsonFields) Bool(k string, v bool) {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
}

func (w *jsonFields) Strings(k string, v []string) {
	w.key(k)
	w.b = append(w.b, '[')
	for i, s := range v {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = appendJSONString(w.b, s)
	}
	w.b = append(w.b, ']')
}

func (w *jsonFields) Event(k string, ev *event.Event) {
	w.key(k)
	if ev == nil {
		w.b = append(w.b, "null"...)
		return
	}
	w.object(ev)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does, so the output is always valid JSON.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
