package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/eunomia-agent/eunomia/internal/container"
	"github.com/eunomia-agent/eunomia/internal/seccomp"
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/all"
)

type seccompOptions struct {
	pid              uint32
	container        string
	duration         time.Duration
	output           string
	dockerSocket     string
	containerdSocket string
	queueSize        int
}

func newSeccompCmd() *cobra.Command {
	reg := all.Registry()
	o := &seccompOptions{}
	cmd := &cobra.Command{
		Use:   "seccomp (--pid N | --container X) --duration D [-o profile.json]",
		Short: "Write a seccomp profile that allows exactly the system calls a process or container made",
		Long: "Watch a process or a container with the syscall tracker and write an OCI/Docker\n" +
			"seccomp profile (defaultAction SCMP_ACT_ERRNO) that allows the system calls it made.\n\n" +
			"With --container, start eunomia seccomp before the container: it waits for the\n" +
			"container to start, so that the calls of the runtime's last steps and of the\n" +
			"program's startup are in the profile (a profile without them keeps the container\n" +
			"from starting). A container already running is watched from now on only. The\n" +
			"watch ends after --duration, or earlier when the process or container exits.\n" +
			"With --pid, the calls of that process (all its threads) are recorded, not its\n" +
			"children's.",
		Example: "  eunomia seccomp --container web --duration 2m -o web.json &\n" +
			"  docker run --name web ...   # exercise it; then:\n" +
			"  docker run --security-opt seccomp=web.json ...",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.run(ctx, reg, cmd.OutOrStdout(), cmd.ErrOrStderr(), nil)
		},
	}
	f := cmd.Flags()
	f.Uint32Var(&o.pid, "pid", 0, "the process to watch")
	f.StringVar(&o.container, "container", "", "the container to watch (name or id); it may start later")
	f.DurationVar(&o.duration, "duration", 0, "how long to watch (required)")
	f.StringVarP(&o.output, "output", "o", "-", "write the profile to this file (- is stdout)")
	f.StringVar(&o.dockerSocket, "docker-socket", container.DockerSocketFromEnv(), "Docker Engine API socket, to find --container")
	f.StringVar(&o.containerdSocket, "containerd-socket", container.DefaultContainerdSocket, "containerd socket, used when it exists")
	f.IntVar(&o.queueSize, "queue-size", tracker.DefaultQueueSize, "events buffered between kernel and recorder; more are dropped and counted")
	return cmd
}

// seccompPoll is how often the watched process or container is looked at.
const seccompPoll = 100 * time.Millisecond

// run watches, then writes the profile. ready, when not nil, is called once
// the tracker is attached (tests start their workload then).
func (o *seccompOptions) run(ctx context.Context, reg *tracker.Registry, stdout, stderr io.Writer, ready func()) error {
	switch {
	case o.pid == 0 && o.container == "":
		return errors.New("give the process (--pid) or the container (--container) to watch")
	case o.pid != 0 && o.container != "":
		return errors.New("--pid and --container exclude each other")
	case o.duration <= 0:
		return fmt.Errorf("--duration: %s; give how long to watch, e.g. --duration 30s", o.duration)
	case o.queueSize < 1:
		return fmt.Errorf("--queue-size: %d, want at least 1", o.queueSize)
	case o.output == "":
		return errors.New("--output: empty path (use - for stdout)")
	}
	kind, err := reg.Lookup("syscall")
	if err != nil {
		return fmt.Errorf("seccomp needs the syscall tracker: %w", err)
	}
	cfg := kind.NewConfig()
	// Only first calls matter: no periodic repeats.
	for _, key := range []string{"every", "every_calls"} {
		if tracker.HasOption(cfg, key) {
			if err := tracker.SetOption(cfg, key, "0"); err != nil {
				return err
			}
		}
	}
	if o.pid != 0 {
		if _, err := os.Stat("/proc/" + strconv.FormatUint(uint64(o.pid), 10)); err != nil {
			return fmt.Errorf("--pid %d: no such process", o.pid)
		}
		if err := tracker.SetOption(cfg, "pid", strconv.FormatUint(uint64(o.pid), 10)); err != nil {
			return err
		}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("syscall: %w", err)
	}
	if err := requireRoot("eunomia seccomp"); err != nil {
		return err
	}

	var w *containerWatch
	env := tracker.Env{}
	if o.container != "" {
		if w, err = o.watchContainer(ctx); err != nil {
			return err
		}
		defer w.close()
		if w.running {
			slog.Warn("the container already runs: the calls of its start were made before this watch and are not in the profile; start eunomia seccomp before the container to include them", "container", o.container)
			env.CgroupIDs = w.ids()
		} else {
			slog.Info("waiting for the container to start", "container", o.container)
		}
	}

	rec := seccomp.NewRecorder()
	m := tracker.NewManager(reg, tracker.WithQueueSize(o.queueSize))
	if _, err := m.Start("syscall", cfg, env, rec); err != nil {
		m.Close()
		return err
	}
	if ready != nil {
		ready()
	}
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	t := time.NewTicker(seccompPoll)
	defer t.Stop()
	ended := false
	for !ended {
		select {
		case <-ctx.Done():
			ended = true
		case <-t.C:
			if w != nil {
				ended = w.poll(ctx)
			} else {
				ended = processGone(o.pid)
			}
		}
	}
	infos, err := m.Close() // delivers every call seen
	if err != nil {
		return err
	}

	var calls []seccomp.Call
	what := fmt.Sprintf("process %d", o.pid)
	if w != nil {
		what = "container " + o.container
		if len(w.known) == 0 {
			return fmt.Errorf("container %s was not seen running within %s (last lookup: %v)", o.container, o.duration, w.lastErr)
		}
		calls = rec.Calls(w.ids()...)
	} else {
		calls = rec.Calls()
	}
	if len(calls) == 0 {
		return fmt.Errorf("no system call of %s was seen in %s", what, o.duration)
	}
	for _, in := range infos {
		if in.LostKernel+in.LostQueue > 0 {
			slog.Warn("events were lost: the profile may lack calls", "lost_in_kernel", in.LostKernel, "lost_in_queue", in.LostQueue)
		}
	}
	p, unnamed := seccomp.NewProfile(calls)
	for _, c := range unnamed {
		slog.Warn("a system call without a name cannot be allowed in a profile", "call", c.Name, "abi", c.ABI)
	}
	if err := writeOutput(o.output, stdout, p.JSON()); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "eunomia: seccomp: %d system calls of %s allowed (architectures %v), written to %s\n",
		len(p.Allowed()), what, p.Architectures, o.output)
	return nil
}

// processGone reports whether pid has exited (a zombie has: it makes no
// more system calls).
func processGone(pid uint32) bool {
	stat, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	state := stat[i+2]
	return state == 'Z' || state == 'X'
}

func writeOutput(path string, stdout io.Writer, data []byte) error {
	if path == "-" {
		_, err := stdout.Write(data)
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	return nil
}

// containerWatch follows the container being profiled: its cgroup ids while
// it runs (a container started during the watch is found by polling its
// runtime), and whether it has stopped.
type containerWatch struct {
	ref     string
	rts     []container.Runtime
	root    string
	known   map[uint64]bool
	running bool // when the watch started
	seen    bool // has been running
	lastErr error
}

func (o *seccompOptions) watchContainer(ctx context.Context) (*containerWatch, error) {
	w := &containerWatch{ref: o.container, root: container.Cgroup2Root(), known: map[uint64]bool{}}
	if w.root == "" {
		return nil, errors.New("--container: no cgroup2 hierarchy is mounted")
	}
	if o.dockerSocket != "" {
		rt, err := container.NewDocker(o.dockerSocket)
		if err != nil {
			return nil, fmt.Errorf("--docker-socket: %w", err)
		}
		w.rts = append(w.rts, rt)
	}
	if o.containerdSocket != "" {
		if _, err := os.Stat(o.containerdSocket); err == nil {
			rt, err := container.NewContainerd(o.containerdSocket)
			if err != nil {
				w.close()
				return nil, fmt.Errorf("--containerd-socket: %w", err)
			}
			w.rts = append(w.rts, rt)
		}
	}
	var errs []error
	up := 0
	for _, rt := range w.rts {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := rt.Ping(pctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s at %s: %w", rt.Name(), rt.Endpoint(), err))
			continue
		}
		up++
	}
	if up == 0 {
		w.close()
		return nil, fmt.Errorf("--container %s: no container runtime answers: %w", o.container, errors.Join(errs...))
	}
	w.poll(ctx)
	w.running = w.seen
	return w, nil
}

// poll looks the container up once and notes its cgroup ids while it
// runs. It reports true when the container ran and has stopped (or is
// gone); a lookup that fails otherwise keeps the watch going.
func (w *containerWatch) poll(ctx context.Context) (stopped bool) {
	for _, rt := range w.rts {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		in, err := rt.Inspect(ictx, w.ref)
		cancel()
		if errors.Is(err, container.ErrNotFound) {
			continue
		}
		if err != nil {
			w.lastErr = err
			return false
		}
		if in.Pid == 0 {
			w.lastErr = fmt.Errorf("container %s is not running", w.ref)
			return w.seen
		}
		ids, err := container.ContainerCgroupIDs(w.root, in)
		if err != nil {
			w.lastErr = err
			return false
		}
		for _, id := range ids {
			w.known[id] = true
		}
		w.seen = true
		return false
	}
	w.lastErr = fmt.Errorf("no runtime knows container %q", w.ref)
	return w.seen
}

func (w *containerWatch) ids() []uint64 {
	out := make([]uint64, 0, len(w.known))
	for id := range w.known {
		out = append(out, id)
	}
	return out
}

func (w *containerWatch) close() {
	for _, rt := range w.rts {
		rt.Close()
	}
}
