package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/pflag"

	"github.com/eunomia-agent/eunomia/internal/container"
	"github.com/eunomia-agent/eunomia/internal/handler"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// containerOptions are the container flags of commands that run trackers.
type containerOptions struct {
	container        string
	dockerSocket     string
	containerdSocket string
	info             bool
}

func bindContainerFlags(f *pflag.FlagSet) *containerOptions {
	o := &containerOptions{}
	f.StringVar(&o.container, "container", "", "trace only this container (name or id), filtered in the kernel by its cgroup")
	f.StringVar(&o.dockerSocket, "docker-socket", container.DockerSocketFromEnv(), "Docker Engine API socket (podman's Docker-compatible socket works too)")
	f.StringVar(&o.containerdSocket, "containerd-socket", container.DefaultContainerdSocket, "containerd socket, used when it exists")
	f.BoolVar(&o.info, "container-info", true, "tag events with their container (id, name, image, pod) when a runtime socket answers")
	return o
}

// containerSetup is what the container flags give a run: an enrichment
// handler (nil when off) and the cgroup ids of --container.
type containerSetup struct {
	mgr       *container.Manager
	enrich    bool
	cgroupIDs []uint64
	stderr    io.Writer
}

// setup connects to the container runtimes. When none answers, container
// info is off (one warning) and the trackers run anyway; --container then
// is an error, since it cannot be resolved.
func (o *containerOptions) setup(ctx context.Context, stderr io.Writer) (*containerSetup, error) {
	cs := &containerSetup{stderr: stderr}
	if !o.info && o.container == "" {
		return cs, nil
	}
	var rts []container.Runtime
	if o.dockerSocket != "" {
		rt, err := container.NewDocker(o.dockerSocket)
		if err != nil {
			return nil, fmt.Errorf("--docker-socket: %w", err)
		}
		rts = append(rts, rt)
	}
	if o.containerdSocket != "" {
		if _, err := os.Stat(o.containerdSocket); err == nil {
			rt, err := container.NewContainerd(o.containerdSocket)
			if err != nil {
				return nil, fmt.Errorf("--containerd-socket: %w", err)
			}
			rts = append(rts, rt)
		}
	}
	m := container.NewManager(container.Options{Runtimes: rts})
	if err := m.Start(ctx); err != nil {
		m.Close()
		if o.container != "" {
			return nil, fmt.Errorf("--container %s: no container runtime answers: %w", o.container, err)
		}
		slog.Warn("no container runtime answers; events carry no container info", "err", err)
		return cs, nil
	}
	cs.mgr, cs.enrich = m, o.info
	if o.container != "" {
		ids, in, err := m.CgroupIDs(ctx, o.container)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("--container: %w", err)
		}
		if len(ids) > 1024 { // the size of bpf/eunomia.h's cgroup_filter
			m.Close()
			return nil, fmt.Errorf("--container %s: %d cgroups, at most 1024", o.container, len(ids))
		}
		cs.cgroupIDs = ids
		slog.Debug("container filter", "container", in.Name, "id", in.ID, "cgroup_ids", ids)
	}
	if !cs.enrich {
		m.Close()
		cs.mgr = nil
	}
	return cs, nil
}

// chain puts the enrichment handler in front of the printer (wrapped, so
// that the chain's Close does not close the manager).
func (cs *containerSetup) chain(rest ...handler.Handler) handler.Chain {
	if cs.mgr == nil {
		return rest
	}
	return append(handler.Chain{handler.Func(cs.mgr.Handle)}, rest...)
}

// env is the tracker env with the --container filter.
func (cs *containerSetup) env() tracker.Env {
	return tracker.Env{CgroupIDs: cs.cgroupIDs}
}

// Close disconnects from the runtimes and reports the lookup counters.
func (cs *containerSetup) Close() {
	if cs.mgr == nil {
		return
	}
	st := cs.mgr.Stats()
	cs.mgr.Close()
	cs.mgr = nil
	fmt.Fprintf(cs.stderr, "eunomia: containers: %d known, %d lookups, %d events with the container id only (%d waited the full bound), %d unknown\n",
		st.Containers, st.Lookups, st.IDOnly, st.TimedOut, st.Unknown)
}
