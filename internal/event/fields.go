package event

// Map returns the event as a map keyed by its JSON field names: the header
// (time, kind, tracker, process, container) and the payload's fields at top
// level, nested events as maps. Meant for rule engines and tests, not the
// hot path of printers.
func (ev *Event) Map() map[string]any {
	m := map[string]any{
		"time":    ev.Time,
		"kind":    string(ev.Kind),
		"tracker": ev.Tracker,
		"process": map[string]any{
			"pid":       uint64(ev.Process.Pid),
			"tid":       uint64(ev.Process.Tid),
			"ppid":      uint64(ev.Process.Ppid),
			"uid":       uint64(ev.Process.Uid),
			"gid":       uint64(ev.Process.Gid),
			"comm":      ev.Process.Comm,
			"cgroup_id": ev.Process.CgroupID,
			"pid_ns":    uint64(ev.Process.PidNS),
			"mnt_ns":    uint64(ev.Process.MntNS),
			"user_ns":   uint64(ev.Process.UserNS),
		},
		"container": map[string]any{
			"id":        ev.Container.ID,
			"name":      ev.Container.Name,
			"image":     ev.Container.Image,
			"pod":       ev.Container.Pod,
			"namespace": ev.Container.Namespace,
		},
	}
	if ev.Payload != nil {
		ev.Payload.WriteFields(mapWriter(m))
	}
	return m
}

type mapWriter map[string]any

func (m mapWriter) String(k, v string)           { m[k] = v }
func (m mapWriter) Int(k string, v int64)        { m[k] = v }
func (m mapWriter) Uint(k string, v uint64)      { m[k] = v }
func (m mapWriter) Bool(k string, v bool)        { m[k] = v }
func (m mapWriter) Strings(k string, v []string) { m[k] = append([]string{}, v...) }
func (m mapWriter) Event(k string, ev *Event) {
	if ev != nil {
		m[k] = ev.Map()
	}
}

// Field returns the value of one payload field by its JSON name, or false
// when the payload has no such field.
func (ev *Event) Field(key string) (any, bool) {
	if ev.Payload == nil {
		return nil, false
	}
	f := fieldFinder{key: key}
	ev.Payload.WriteFields(&f)
	return f.val, f.ok
}

type fieldFinder struct {
	key string
	val any
	ok  bool
}

func (f *fieldFinder) set(k string, v any) {
	if !f.ok && k == f.key {
		f.val, f.ok = v, true
	}
}
func (f *fieldFinder) String(k, v string)           { f.set(k, v) }
func (f *fieldFinder) Int(k string, v int64)        { f.set(k, v) }
func (f *fieldFinder) Uint(k string, v uint64)      { f.set(k, v) }
func (f *fieldFinder) Bool(k string, v bool)        { f.set(k, v) }
func (f *fieldFinder) Strings(k string, v []string) { f.set(k, v) }
func (f *fieldFinder) Event(k string, ev *Event)    { f.set(k, ev) }
