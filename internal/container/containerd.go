package container

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apievents "github.com/containerd/containerd/api/events"
	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	namespacesapi "github.com/containerd/containerd/api/services/namespaces/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	versionapi "github.com/containerd/containerd/api/services/version/v1"
	"github.com/containerd/containerd/api/types/task"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// DefaultContainerdSocket is where containerd listens unless told otherwise.
const DefaultContainerdSocket = "/run/containerd/containerd.sock"

// dockerNamespace is where dockerd keeps its containers in containerd:
// the Docker runtime describes those (with their names), so containerd
// leaves them out.
const dockerNamespace = "moby"

// Containerd is containerd's gRPC API over its unix socket, through the
// bindings containerd publishes (github.com/containerd/containerd/api).
// It sees the containers of every containerd namespace: "k8s.io" (the CRI
// plugin, i.e. Kubernetes), "default" (ctr, nerdctl), and others.
type Containerd struct {
	socket     string
	conn       *grpc.ClientConn
	containers containersapi.ContainersClient
	tasks      tasksapi.TasksClient
	namespaces namespacesapi.NamespacesClient
	events     eventsapi.EventsClient
	version    versionapi.VersionClient
}

// NewContainerd makes a client for the containerd listening on socket. It
// does not connect yet.
func NewContainerd(socket string) (*Containerd, error) {
	if socket == "" {
		return nil, errors.New("containerd socket: empty path")
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("containerd client for %s: %w", socket, err)
	}
	return &Containerd{
		socket:     socket,
		conn:       conn,
		containers: containersapi.NewContainersClient(conn),
		tasks:      tasksapi.NewTasksClient(conn),
		namespaces: namespacesapi.NewNamespacesClient(conn),
		events:     eventsapi.NewEventsClient(conn),
		version:    versionapi.NewVersionClient(conn),
	}, nil
}

// Name implements Runtime.
func (c *Containerd) Name() string { return "containerd" }

// Endpoint implements Runtime.
func (c *Containerd) Endpoint() string { return c.socket }

// withNamespace is how containerd's API is told the namespace of a call.
func withNamespace(ctx context.Context, ns string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "containerd-namespace", ns)
}

// Ping implements Runtime.
func (c *Containerd) Ping(ctx context.Context) error {
	_, err := c.version.Version(ctx, &emptypb.Empty{}, grpc.WaitForReady(false))
	return err
}

// nsList lists the namespaces other than Docker's.
func (c *Containerd) nsList(ctx context.Context) ([]string, error) {
	resp, err := c.namespaces.List(ctx, &namespacesapi.ListNamespacesRequest{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ns := range resp.Namespaces {
		if ns.Name != dockerNamespace {
			out = append(out, ns.Name)
		}
	}
	return out, nil
}

// List implements Runtime: the containers with a running task.
func (c *Containerd) List(ctx context.Context) ([]*Info, error) {
	nss, err := c.nsList(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Info
	for _, ns := range nss {
		nctx := withNamespace(ctx, ns)
		tasks, err := c.tasks.List(nctx, &tasksapi.ListTasksRequest{})
		if err != nil {
			return nil, err
		}
		for _, t := range tasks.Tasks {
			if t.Status != task.Status_RUNNING {
				continue
			}
			resp, err := c.containers.Get(nctx, &containersapi.GetContainerRequest{ID: t.ID})
			if status.Code(err) == codes.NotFound {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, containerdInfo(resp.Container, t.Pid))
		}
	}
	return out, nil
}

// containerdInfo describes a containerd container. containerd has no
// names: the Kubernetes container name or nerdctl's name label stands in.
func containerdInfo(c *containersapi.Container, pid uint32) *Info {
	return newInfo("containerd", c.ID, c.Labels["nerdctl/name"], c.Image, c.Labels, pid)
}

// Inspect implements Runtime. ref is an id, an id prefix, or a name (the
// Kubernetes container name or nerdctl's name label).
func (c *Containerd) Inspect(ctx context.Context, ref string) (*Info, error) {
	nss, err := c.nsList(ctx)
	if err != nil {
		return nil, err
	}
	for _, ns := range nss {
		nctx := withNamespace(ctx, ns)
		resp, err := c.containers.Get(nctx, &containersapi.GetContainerRequest{ID: ref})
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		return containerdInfo(resp.Container, c.runningPid(nctx, ref)), nil
	}
	// Not an id: look for an id prefix or a name.
	for _, ns := range nss {
		nctx := withNamespace(ctx, ns)
		resp, err := c.containers.List(nctx, &containersapi.ListContainersRequest{})
		if err != nil {
			return nil, err
		}
		for _, ct := range resp.Containers {
			in := containerdInfo(ct, 0)
			if in.Name == ref || (len(ref) >= 6 && strings.HasPrefix(ct.ID, ref)) {
				in = containerdInfo(ct, c.runningPid(nctx, ct.ID))
				return in, nil
			}
		}
	}
	return nil, fmt.Errorf("containerd: %q: %w", ref, ErrNotFound)
}

// runningPid is the pid of a container's task, 0 when it does not run.
func (c *Containerd) runningPid(ctx context.Context, id string) uint32 {
	resp, err := c.tasks.Get(ctx, &tasksapi.GetRequest{ContainerID: id})
	if err != nil || resp.Process == nil || resp.Process.Status != task.Status_RUNNING {
		return 0
	}
	return resp.Process.Pid
}

// Watch implements Runtime: task starts, and exits of a container's init
// task, in every namespace but Docker's.
func (c *Containerd) Watch(ctx context.Context, ready func(), fn func(RuntimeEvent)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.events.Subscribe(ctx, &eventsapi.SubscribeRequest{
		Filters: []string{`topic=="/tasks/start"`, `topic=="/tasks/exit"`},
	})
	if err != nil {
		return err
	}
	// The server registers the subscription before it sends anything;
	// wait for the response headers to know it is in place.
	if _, err := stream.Header(); err != nil {
		return err
	}
	ready()
	for {
		env, err := stream.Recv()
		if err != nil {
			return err
		}
		if env.Namespace == dockerNamespace || env.Event == nil {
			continue
		}
		switch env.Topic {
		case "/tasks/start":
			var ev apievents.TaskStart
			if env.Event.UnmarshalTo(&ev) == nil {
				fn(RuntimeEvent{Type: ContainerStart, ID: ev.ContainerID})
			}
		case "/tasks/exit":
			var ev apievents.TaskExit
			if env.Event.UnmarshalTo(&ev) == nil && ev.ID == ev.ContainerID {
				fn(RuntimeEvent{Type: ContainerDie, ID: ev.ContainerID})
			}
		}
	}
}

// Close implements Runtime.
func (c *Containerd) Close() error { return c.conn.Close() }
