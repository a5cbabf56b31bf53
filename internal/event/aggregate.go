package event

// Aggregate is the payload of an aggregate event: one entry of the top list
// an aggregation handler emits at the end of each window. A window's top N
// entries arrive as N events sharing WindowStart.
type Aggregate struct {
	Key   string // what events were grouped by: comm, container, dport, file, syscall
	Value string // this group's value of the key, e.g. a command name
	Rank  int    // 1 for the largest group of the window
	// Count is the number of events in this group during the window.
	Count uint64
	// SumField names the payload field summed into Sum (e.g. write_bytes);
	// empty when the handler only counts events. Groups are ranked by Sum
	// when it is set, by Count otherwise.
	SumField string
	Sum      uint64
	// WindowNs is the window's length (the last one, flushed at shutdown,
	// may be shorter than configured).
	WindowNs uint64
	// Total is the number of events counted in the window, all groups.
	Total uint64
	// Groups is the number of distinct values of the key in the window.
	Groups uint64
	// Folded is the number of events counted under the value "other"
	// because the window already held the maximum number of groups.
	Folded uint64
}

// WriteFields implements Payload.
func (a *Aggregate) WriteFields(w FieldWriter) {
	w.String("key", a.Key)
	w.String("value", a.Value)
	w.Int("rank", int64(a.Rank))
	w.Uint("count", a.Count)
	if a.SumField != "" {
		w.String("sum_field", a.SumField)
		w.Uint("sum", a.Sum)
	}
	w.Uint("window_ns", a.WindowNs)
	w.Uint("total", a.Total)
	w.Uint("groups", a.Groups)
	if a.Folded != 0 {
		w.Uint("folded", a.Folded)
	}
}
