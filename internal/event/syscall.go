package event

// Syscall is the payload of a syscall event: how often a process has made
// one system call. In report mode Count is the running count since the
// tracker first saw the process make that call; in summary mode it is the
// number of calls in the last IntervalNs.
type Syscall struct {
	Name  string // e.g. "getppid"; "unknown_N" for a number the table lacks
	Nr    uint32 // the syscall number in its ABI's table
	ABI   string // "x86_64", or "i386" for calls through the 32-bit entry
	Count uint64
	// Reason says why this report was sent: first, calls, time, exit, stop
	// (report mode) or summary.
	Reason     string
	IntervalNs uint64 // summary mode: the span Count covers
}

// WriteFields implements Payload.
func (p *Syscall) WriteFields(w FieldWriter) {
	w.String("syscall", p.Name)
	w.Uint("nr", uint64(p.Nr))
	w.String("abi", p.ABI)
	w.Uint("count", p.Count)
	w.String("reason", p.Reason)
	if p.IntervalNs != 0 {
		w.Uint("interval_ns", p.IntervalNs)
	}
}
