package container_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/container"
	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/testutil/dockerd"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

func randomID(t *testing.T) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// TestContainerdRuntime runs containers with containerd alone (ctr, in the
// containerd that the test dockerd runs), one before and one after the
// manager starts, and checks the exec events inside them carry their id,
// name (nerdctl's name label) and image. Docker's own "moby" namespace is
// left to the Docker runtime.
func TestContainerdRuntime(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := dockerd.Start(t)
	const ns = "eunomia-test"
	image := d.ContainerdImage(t, ns)
	d.RunDetached(t, "eu-docker-only", "sleep", "1000")

	before, after := randomID(t), randomID(t)
	d.CtrRun(t, ns, image, before, map[string]string{"nerdctl/name": "eu-ctr-before", container.LabelPodName: "pod-a", container.LabelPodNamespace: "team"}, "sleep", "1000")

	rt, err := container.NewContainerd(d.ContainerdSocket())
	if err != nil {
		t.Fatal(err)
	}
	m := container.NewManager(container.Options{Runtimes: []container.Runtime{rt}})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	for _, in := range m.Containers() {
		if in.Name == "eu-docker-only" || in.ID == "" {
			t.Errorf("containerd runtime listed %+v (Docker's namespace is the Docker runtime's)", in)
		}
	}
	c := startProcessTracker(t, m, tracker.Env{})

	tok := token("ctr-before")
	d.Ctr(t, ns, "tasks", "exec", "--exec-id", "e1", before, "/bin/true", tok)
	ev := c.WaitFor(t, wait, 1, execWithArg(tok))[0]
	want := event.Container{ID: before, Name: "eu-ctr-before", Image: image, Pod: "pod-a", Namespace: "team"}
	if ev.Container != want {
		t.Errorf("exec in the containerd container started before: %+v, want %+v", ev.Container, want)
	}

	d.CtrRun(t, ns, image, after, map[string]string{"nerdctl/name": "eu-ctr-after"}, "sleep", "1000")
	// The task start event reaches the manager through containerd's event
	// stream.
	deadline := time.Now().Add(wait)
	for m.Stats().Containers < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the started container was not added: %+v", m.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	tok = token("ctr-after")
	d.Ctr(t, ns, "tasks", "exec", "--exec-id", "e2", after, "/bin/true", tok)
	ev = c.WaitFor(t, wait, 1, execWithArg(tok))[0]
	want = event.Container{ID: after, Name: "eu-ctr-after", Image: image}
	if ev.Container != want {
		t.Errorf("exec in the containerd container started after: %+v, want %+v", ev.Container, want)
	}

	// --container works by name and by id prefix with containerd too.
	for _, ref := range []string{"eu-ctr-after", after[:12]} {
		ids, in, err := m.CgroupIDs(ctx, ref)
		if err != nil || in.ID != after || len(ids) == 0 {
			t.Errorf("CgroupIDs(%s) = %v, %+v, %v", ref, ids, in, err)
		}
	}
}
