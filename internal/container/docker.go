package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// DefaultDockerSocket is where dockerd listens unless told otherwise.
const DefaultDockerSocket = "/var/run/docker.sock"

// DockerSocketFromEnv returns the socket DOCKER_HOST names when it is a
// unix socket, else DefaultDockerSocket.
func DockerSocketFromEnv() string {
	if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok && h != "" {
		return h
	}
	return DefaultDockerSocket
}

// Docker is the Docker Engine API over a unix socket, through the official
// Docker Go client. podman's Docker-compatible socket works the same way.
type Docker struct {
	socket string
	cli    *client.Client
}

// NewDocker makes a client for the engine listening on socket (a path).
// It does not connect yet.
func NewDocker(socket string) (*Docker, error) {
	if socket == "" {
		return nil, errors.New("docker socket: empty path")
	}
	cli, err := client.NewClientWithOpts(
		client.WithHost("unix://"+socket),
		client.WithAPIVersionNegotiation(),
	)
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", socket, err)
	}
	return &Docker{socket: socket, cli: cli}, nil
}

// Name implements Runtime.
func (d *Docker) Name() string { return "docker" }

// Endpoint implements Runtime.
func (d *Docker) Endpoint() string { return d.socket }

// Ping implements Runtime.
func (d *Docker) Ping(ctx context.Context) error {
	if _, err := d.cli.Ping(ctx); err != nil {
		return err
	}
	// Negotiate now (dockerd 20.10 speaks API 1.41), so that a daemon
	// restarted with another version is negotiated with again.
	d.cli.NegotiateAPIVersion(ctx)
	return nil
}

// List implements Runtime: the running containers, each inspected for its
// init pid.
func (d *Docker) List(ctx context.Context) ([]*Info, error) {
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]*Info, 0, len(cs))
	for _, c := range cs {
		in, err := d.Inspect(ctx, c.ID)
		if errors.Is(err, ErrNotFound) {
			continue // gone since the list
		}
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// Inspect implements Runtime. ref is an id, an id prefix or a name.
func (d *Docker) Inspect(ctx context.Context, ref string) (*Info, error) {
	c, err := d.cli.ContainerInspect(ctx, ref)
	if err != nil {
		if client.IsErrNotFound(err) {
			return nil, fmt.Errorf("docker: %q: %w", ref, ErrNotFound)
		}
		return nil, err
	}
	var name string
	var pid uint32
	if c.ContainerJSONBase != nil {
		name = c.Name
		if c.State != nil && c.State.Running && c.State.Pid > 0 {
			pid = uint32(c.State.Pid)
		}
	}
	var image string
	var labels map[string]string
	if c.Config != nil {
		image, labels = c.Config.Image, c.Config.Labels
	}
	return newInfo("docker", c.ID, name, image, labels, pid), nil
}

// Watch implements Runtime. Events since just before the call are
// replayed by the daemon, so a container started between a List and the
// subscription is not missed.
func (d *Docker) Watch(ctx context.Context, ready func(), fn func(RuntimeEvent)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := d.cli.Events(ctx, events.ListOptions{
		Since: strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10),
		Filters: filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("event", string(events.ActionStart)),
			filters.Arg("event", string(events.ActionDie)),
		),
	})
	ready()
	for {
		select {
		case m := <-msgs:
			switch m.Action {
			case events.ActionStart:
				fn(RuntimeEvent{Type: ContainerStart, ID: m.Actor.ID})
			case events.ActionDie:
				fn(RuntimeEvent{Type: ContainerDie, ID: m.Actor.ID})
			}
		case err := <-errs:
			if err == nil {
				err = errors.New("event stream closed")
			}
			return err
		}
	}
}

// Close implements Runtime.
func (d *Docker) Close() error { return d.cli.Close() }
