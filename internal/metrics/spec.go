package metrics

import "github.com/eunomia-agent/eunomia/internal/event"

// spec describes one counter fed by events of one kind. Payloads are read
// generically by field name (the JSON names, a contract of each event
// kind), so the exporter needs no tracker's Go types.
type spec struct {
	name string
	help string
	kind event.Kind
	// value is the payload field added to the counter; "" adds 1 per event.
	value string
	// running marks value as a running total per (tracker, pid, runKeys
	// fields): the counter gets the increase since the previous report.
	// When the event has a non-zero perInterval field, value is instead
	// the count of that interval and is added whole.
	running     bool
	runKeys     []string
	perInterval string
	// common adds the tracker, container and comm labels.
	common bool
	// fixed are payload fields of few values (enums) that always become
	// labels of the same name.
	fixed []string
	// optional labels are on only when configured (high cardinality).
	optional []optLabel
}

// optLabel is an optional label and the payload field it comes from;
// field "" means the process header's pid.
type optLabel struct {
	label string
	field string
}

// The optional labels users can turn on.
const (
	LabelPid     = "pid"
	LabelFile    = "file"
	LabelDaddr   = "daddr"
	LabelDport   = "dport"
	LabelSyscall = "syscall"
	LabelSignal  = "signal"
)

// OptionalLabels lists the label names Options.Labels accepts.
var OptionalLabels = []string{LabelPid, LabelFile, LabelDaddr, LabelDport, LabelSyscall, LabelSignal}

var (
	pid     = optLabel{LabelPid, ""}
	daddr   = optLabel{LabelDaddr, "daddr"}
	dport   = optLabel{LabelDport, "dport"}
	file    = optLabel{LabelFile, "file"}
	path    = optLabel{LabelFile, "path"}
	sysName = optLabel{LabelSyscall, "syscall"}
	signo   = optLabel{LabelSignal, "signal_name"}
)

// specs is every counter the exporter keeps, for every event kind that
// exists. Field names are those of the payloads in internal/event.
var specs = []spec{
	{name: "eunomia_process_exec_total", help: "Programs executed (exec), by the command name after the exec.",
		kind: event.KindProcessExec, common: true, optional: []optLabel{pid}},
	{name: "eunomia_process_exit_total", help: "Processes that exited.",
		kind: event.KindProcessExit, common: true, optional: []optLabel{pid}},

	{name: "eunomia_syscall_calls_total", help: "System calls made, from the syscall tracker's reports (running counts per process and syscall, or per-interval counts in summary mode).",
		kind: event.KindSyscall, value: "count", running: true, runKeys: []string{"nr", "abi"}, perInterval: "interval_ns", common: true, optional: []optLabel{pid, sysName}},

	{name: "eunomia_tcp_connects_total", help: "Outgoing TCP connection attempts, by address family and result.",
		kind: event.KindTCPConnect, common: true, fixed: []string{"family", "result"}, optional: []optLabel{pid, daddr, dport}},
	{name: "eunomia_tcp_accepts_total", help: "TCP connections accepted.",
		kind: event.KindTCPAccept, common: true, fixed: []string{"family"}, optional: []optLabel{pid, daddr, dport}},
	{name: "eunomia_tcp_closes_total", help: "TCP connections closed, by direction (out: opened by a connect, in: accepted).",
		kind: event.KindTCPClose, common: true, fixed: []string{"family", "direction"}, optional: []optLabel{pid, daddr, dport}},
	{name: "eunomia_tcp_sent_bytes_total", help: "Bytes sent on TCP connections, counted when they close.",
		kind: event.KindTCPClose, value: "tx_bytes", common: true, fixed: []string{"family", "direction"}, optional: []optLabel{pid, daddr, dport}},
	{name: "eunomia_tcp_received_bytes_total", help: "Bytes received on TCP connections, counted when they close.",
		kind: event.KindTCPClose, value: "rx_bytes", common: true, fixed: []string{"family", "direction"}, optional: []optLabel{pid, daddr, dport}},
	{name: "eunomia_tcp_flow_attempts_total", help: "TCP connection attempts counted in the kernel by the tcp tracker's count mode, from its per-interval flow reports.",
		kind: event.KindTCPFlow, value: "interval_count", common: true, fixed: []string{"family"}, optional: []optLabel{daddr, dport}},

	{name: "eunomia_files_read_bytes_total", help: "Bytes read from files, from the files tracker's per-interval reports.",
		kind: event.KindFilesIO, value: "read_bytes", common: true, optional: []optLabel{pid, file}},
	{name: "eunomia_files_write_bytes_total", help: "Bytes written to files, from the files tracker's per-interval reports.",
		kind: event.KindFilesIO, value: "write_bytes", common: true, optional: []optLabel{pid, file}},
	{name: "eunomia_files_reads_total", help: "Read calls on files, from the files tracker's per-interval reports.",
		kind: event.KindFilesIO, value: "reads", common: true, optional: []optLabel{pid, file}},
	{name: "eunomia_files_writes_total", help: "Write calls on files, from the files tracker's per-interval reports.",
		kind: event.KindFilesIO, value: "writes", common: true, optional: []optLabel{pid, file}},
	{name: "eunomia_files_opens_total", help: "Files opened.",
		kind: event.KindFilesOpen, common: true, optional: []optLabel{pid, path}},

	{name: "eunomia_ipc_operations_total", help: "System V and POSIX IPC operations, by operation.",
		kind: event.KindIPC, common: true, fixed: []string{"op"}, optional: []optLabel{pid}},
	{name: "eunomia_signals_total", help: "Signals sent, counted at the sender.",
		kind: event.KindSignal, common: true, optional: []optLabel{pid, signo}},

	{name: "eunomia_alerts_total", help: "Alerts raised by security rules, by rule and severity.",
		kind: event.KindAlert, fixed: []string{"rule", "severity"}},
}
