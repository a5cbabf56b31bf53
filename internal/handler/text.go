package handler

import (
	"strconv"
	"strings"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// Text formats events as aligned columns with a header line, the payload's
// fields as key=value pairs in the last column. A Text value keeps scratch
// state: use one per goroutine (a Printer serialises its calls).
type Text struct{ w kvFields }

var textColumns = []struct {
	name  string
	width int
}{
	{"TIME", 15}, {"KIND", 12}, {"PID", 7}, {"PPID", 7}, {"UID", 6},
	{"COMM", 16}, {"CONTAINER", 12}, {"DETAILS", 0},
}

// Header implements Format.
func (*Text) Header(b []byte) []byte {
	for _, c := range textColumns {
		b = appendPadded(b, c.name, c.width)
	}
	return append(b, '\n')
}

// Append implements Format.
func (t *Text) Append(b []byte, ev *event.Event) []byte {
	s := len(b)
	b = pad(ev.Time.AppendFormat(b, "15:04:05.000000"), s, 15)
	b = appendPadded(b, string(ev.Kind), 12)
	s = len(b)
	b = pad(strconv.AppendUint(b, uint64(ev.Process.Pid), 10), s, 7)
	s = len(b)
	b = pad(strconv.AppendUint(b, uint64(ev.Process.Ppid), 10), s, 7)
	s = len(b)
	b = pad(strconv.AppendUint(b, uint64(ev.Process.Uid), 10), s, 6)
	b = appendPadded(b, ev.Process.Comm, 16)
	b = appendPadded(b, ev.Container.Label(), 12)
	b = t.w.appendPayload(b, ev.Payload)
	return append(b, '\n')
}

// appendPadded appends s and pads it to width with spaces, always leaving
// at least one space after it (except in the last, unpadded column).
func appendPadded(b []byte, s string, width int) []byte {
	start := len(b)
	b = append(b, s...)
	if width == 0 {
		return b
	}
	return pad(b, start, width)
}

// pad pads what was appended to b since start to width, plus one space.
func pad(b []byte, start, width int) []byte {
	for n := len(b) - start; n < width; n++ {
		b = append(b, ' ')
	}
	return append(b, ' ')
}

// kvFields writes payload fields as space-separated key=value pairs.
// Values with spaces, quotes or control characters are Go-quoted.
type kvFields struct {
	b []byte
	n int
}

// appendPayload appends p's fields to b.
func (w *kvFields) appendPayload(b []byte, p event.Payload) []byte {
	if p == nil {
		return b
	}
	w.b, w.n = b, 0
	p.WriteFields(w)
	b = w.b
	w.b = nil
	return b
}

func (w *kvFields) key(k string) {
	if w.n > 0 {
		w.b = append(w.b, ' ')
	}
	w.n++
	w.b = append(w.b, k...)
	w.b = append(w.b, '=')
}

func (w *kvFields) str(v string) {
	if v == "" || strings.ContainsAny(v, " \"\\=\t\n\r") || !strconv.CanBackquote(v) {
		w.b = strconv.AppendQuote(w.b, v)
		return
	}
	w.b = append(w.b, v...)
}

func (w *kvFields) String(k, v string) {
	w.key(k)
	w.str(v)
}

func (w *kvFields) Int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *kvFields) Uint(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

func (w *kvFields) Bool(k string, v bool) {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
}

func (w *kvFields) Strings(k string, v []string) {
	w.key(k)
	w.b = append(w.b, '[')
	for i, s := range v {
		if i > 0 {
			w.b = append(w.b, ' ')
		}
		w.str(s)
	}
	w.b = append(w.b, ']')
}

func (w *kvFields) Event(k string, ev *event.Event) {
	w.key(k)
	if ev == nil {
		w.b = append(w.b, "none"...)
		return
	}
	w.b = append(w.b, '{')
	w.b = append(w.b, ev.Kind...)
	w.b = append(w.b, " pid="...)
	w.b = strconv.AppendUint(w.b, uint64(ev.Process.Pid), 10)
	w.b = append(w.b, " comm="...)
	w.str(ev.Process.Comm)
	if ev.Payload != nil {
		var inner kvFields // nested events are rare: alerts only
		w.b = inner.appendPayload(append(w.b, ' '), ev.Payload)
	}
	w.b = append(w.b, '}')
}
