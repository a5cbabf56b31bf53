package container

import (
	"context"
	"errors"
)

// Runtime is a container runtime's API as the manager uses it.
type Runtime interface {
	// Name is the runtime's name ("docker", "containerd").
	Name() string
	// Endpoint says where the runtime is reached (for messages).
	Endpoint() string
	// Ping checks that the runtime answers.
	Ping(ctx context.Context) error
	// List returns the running containers.
	List(ctx context.Context) ([]*Info, error)
	// Inspect returns one container by id (or by name or id prefix where
	// the runtime allows it). A container the runtime does not know gives
	// an error that wraps ErrNotFound.
	Inspect(ctx context.Context, ref string) (*Info, error)
	// Watch calls fn for every container start and death until the stream
	// breaks (the error says why) or ctx ends. ready is called once the
	// subscription is in place.
	Watch(ctx context.Context, ready func(), fn func(RuntimeEvent)) error
	// Close releases the client.
	Close() error
}

// RuntimeEvent is a container starting or dying.
type RuntimeEvent struct {
	Type RuntimeEventType
	ID   string
}

// RuntimeEventType says what happened to a container.
type RuntimeEventType int

// Container lifecycle events the manager follows.
const (
	ContainerStart RuntimeEventType = iota + 1
	ContainerDie
)

// ErrNotFound is wrapped by Runtime.Inspect when there is no such container.
var ErrNotFound = errors.New("no such container")
