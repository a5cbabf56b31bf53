package event

// ProcessExec is the payload of a process.exec event.
type ProcessExec struct {
	Filename string
	Args     []string
	// ArgsTruncated is set when the argument list was longer than the
	// kernel copies (see the process tracker) and Args holds its start only.
	ArgsTruncated bool
}

// WriteFields implements Payload.
func (p *ProcessExec) WriteFields(w FieldWriter) {
	w.String("filename", p.Filename)
	w.Strings("args", p.Args)
	if p.ArgsTruncated {
		w.Bool("args_truncated", true)
	}
}

// ProcessExit is the payload of a process.exit event.
type ProcessExit struct {
	ExitCode   int32  // the status passed to exit(), 0 when killed
	Signal     uint32 // the signal that killed the process, 0 when it exited
	DurationNs uint64 // lifetime of the process
}

// WriteFields implements Payload.
func (p *ProcessExit) WriteFields(w FieldWriter) {
	w.Int("exit_code", int64(p.ExitCode))
	w.Uint("signal", uint64(p.Signal))
	w.Uint("duration_ns", p.DurationNs)
}
