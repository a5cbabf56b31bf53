// Package ipc is the ipc tracker: System V message queues, semaphores and
// shared memory and POSIX message queues (system calls with their arguments
// and results, from the raw sys_enter/sys_exit tracepoints), and signals
// (signal_generate). Filters, the choice of operations and of signals run in
// the kernel.
package ipc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/bpfrt"
	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// Config is the ipc tracker's env.
type Config struct {
	tracker.Filter `yaml:",inline"`
	IPC            bool     `json:"ipc" yaml:"ipc" help:"report System V and POSIX message queue, semaphore and shared memory system calls"`
	Signals        bool     `json:"signals" yaml:"signals" help:"report signals as they are generated (the event's process is the sender)"`
	Ops            []string `json:"ipc_ops,omitempty" yaml:"ipc_ops,omitempty" help:"report only these IPC operations, e.g. msgsnd,msgrcv (default: all)"`
	OnlySignals    []string `json:"only_signals,omitempty" yaml:"only_signals,omitempty" help:"report only these signals, by name or number, e.g. SIGUSR1,9 (default: all)"`
	SignalTarget   uint32   `json:"signal_target,omitempty" yaml:"signal_target,omitempty" help:"report only signals sent to this process (thread group id)"`
}

// Validate implements tracker.Config.
func (c *Config) Validate() error {
	if !c.IPC && !c.Signals {
		return errors.New("ipc and signals are both off: nothing to trace")
	}
	if len(c.Ops) > 0 && !c.IPC {
		return errors.New("ipc_ops: set, but ipc is off")
	}
	if _, err := opMask(c.Ops); err != nil {
		return fmt.Errorf("ipc_ops: %w", err)
	}
	if (len(c.OnlySignals) > 0 || c.SignalTarget != 0) && !c.Signals {
		key := "only_signals"
		if c.SignalTarget != 0 {
			key = "signal_target"
		}
		return fmt.Errorf("%s: set, but signals is off", key)
	}
	if _, err := signalMask(c.OnlySignals); err != nil {
		return fmt.Errorf("only_signals: %w", err)
	}
	return c.Filter.Validate()
}

// opMask turns operation names into the kernel's bit set (all when empty).
func opMask(names []string) (uint32, error) {
	if len(names) == 0 {
		var all uint32
		for _, o := range ops {
			all |= 1 << o.op
		}
		return all, nil
	}
	var mask uint32
	for _, n := range names {
		o, ok := opByName(n)
		if !ok {
			return 0, fmt.Errorf("unknown operation %q (known: %s)", n, strings.Join(opNames(), ", "))
		}
		mask |= 1 << o.op
	}
	return mask, nil
}

// signalMask turns signal names or numbers into a bit set: bit n-1 for
// signal n; 0 means every signal.
func signalMask(sigs []string) (uint64, error) {
	var mask uint64
	for _, s := range sigs {
		n, err := parseSignal(s)
		if err != nil {
			return 0, err
		}
		mask |= 1 << (n - 1)
	}
	return mask, nil
}

func parseSignal(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("signal %d out of range 1-64", n)
		}
		return n, nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if n := unix.SignalNum(name); n != 0 {
		return int(n), nil
	}
	return 0, fmt.Errorf("unknown signal %q (want a name such as SIGUSR1 or USR1, or a number 1-64)", s)
}

// Kind registers the ipc tracker.
var Kind = tracker.Kind{
	Name:      "ipc",
	Help:      "System V and POSIX IPC system calls, and signals",
	Events:    []event.Kind{event.KindIPC, event.KindSignal},
	NewConfig: func() tracker.Config { return &Config{IPC: true, Signals: true} },
	New: tracker.NewFunc(func(c *Config, env tracker.Env) (tracker.Tracker, error) {
		return &Tracker{cfg: *c, env: env}, nil
	}),
}

// Tracker is one ipc tracker instance.
type Tracker struct {
	cfg Config
	env tracker.Env
	bpfrt.Base
}

// Start implements tracker.Tracker.
func (t *Tracker) Start(emit func(*event.Event)) error {
	if runtime.GOARCH != "amd64" {
		// The programs read x86_64 syscall registers from pt_regs.
		return fmt.Errorf("ipc: this tracker runs on x86_64 only (this is %s)", runtime.GOARCH)
	}
	opsMask, err := opMask(t.cfg.Ops)
	if err != nil {
		return err
	}
	sigMask, err := signalMask(t.cfg.OnlySignals)
	if err != nil {
		return err
	}
	spec, err := loadIpc()
	if err != nil {
		return err
	}
	p, err := bpfrt.Load(spec, bpfrt.LoadOptions{
		Filter: t.cfg.Filter,
		Env:    t.env,
		Consts: map[string]any{
			"cfg_emit_ops":    opsMask,
			"cfg_signal_mask": sigMask,
			"cfg_target_pid":  t.cfg.SignalTarget,
		},
	})
	if err != nil {
		return err
	}
	t.Probe = p
	if err := t.attach(emit); err != nil {
		p.Close()
		return err
	}
	return nil
}

func (t *Tracker) attach(emit func(*event.Event)) error {
	p := t.Probe
	if t.cfg.IPC {
		table := p.Coll.Maps["syscall_ops"]
		for _, o := range ops {
			if err := table.Put(uint32(o.nr), uint32(o.op)); err != nil {
				return fmt.Errorf("syscall table: %s (%d): %w", o.name, o.nr, err)
			}
		}
		if err := seedKeys(p); err != nil {
			return err
		}
	}
	if err := p.ReadRing(decode, emit, nil); err != nil {
		return err
	}
	if t.cfg.IPC {
		// Exit before enter: a call is reported only when both are seen.
		for _, prog := range []string{"handle_exit", "handle_enter"} {
			if err := p.BTFTracepoint(prog); err != nil {
				return err
			}
		}
	}
	if t.cfg.Signals {
		if err := p.BTFTracepoint("handle_signal"); err != nil {
			return err
		}
	}
	return nil
}

// seedKeys loads the keys of the System V objects that already exist in
// the agent's IPC namespace, so that calls on them made before any *get we
// could see still carry their key. Objects of other IPC namespaces (other
// containers) are learned from their *get calls only.
func seedKeys(p *bpfrt.Probe) error {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/ipc", &st); err != nil {
		return nil // no namespace files: nothing to seed against
	}
	keys := p.Coll.Maps["sysv_keys"]
	for _, f := range []struct {
		file  string
		class ipcSysvClass
	}{
		{"/proc/sysvipc/msg", ipcSysvClassSYSV_MSG},
		{"/proc/sysvipc/sem", ipcSysvClassSYSV_SEM},
		{"/proc/sysvipc/shm", ipcSysvClassSYSV_SHM},
	} {
		objs, err := readSysvipc(f.file)
		if err != nil {
			continue // System V IPC compiled out, or /proc not mounted
		}
		for _, o := range objs {
			k := ipcSysvObj{IpcNs: uint32(st.Ino), Class: uint32(f.class), Id: o.id}
			if err := keys.Put(k, o.key); err != nil {
				return fmt.Errorf("seed System V keys: %w", err)
			}
		}
	}
	return nil
}

type sysvObject struct{ key, id int32 }

// readSysvipc reads the key and id columns of a /proc/sysvipc file.
func readSysvipc(path string) ([]sysvObject, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseSysvipc(bufio.NewScanner(f))
}

func parseSysvipc(sc *bufio.Scanner) ([]sysvObject, error) {
	var out []sysvObject
	first := true
	for sc.Scan() {
		if first { // the column titles
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		key, err1 := strconv.ParseInt(f[0], 10, 32)
		id, err2 := strconv.ParseInt(f[1], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("unexpected line %q", sc.Text())
		}
		out = append(out, sysvObject{key: int32(key), id: int32(id)})
	}
	return out, sc.Err()
}
