// Package container is the container manager: it maps the processes behind
// events to the containers (and Kubernetes pods) they run in, learning from
// cgroups and from the container runtimes' APIs (Docker, or podman through
// its Docker-compatible socket, and containerd), and enriches events with
// what it knows.
package container

import (
	"strings"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// Info describes one container.
type Info struct {
	ID      string
	Name    string
	Image   string
	Labels  map[string]string
	Runtime string // "docker", "containerd", ...
	// Kubernetes, from the io.kubernetes.* labels; empty outside a pod.
	Pod       string
	Namespace string
	PodUID    string
	// Pid is the container's init process when it was last inspected; 0
	// when not running.
	Pid uint32

	tag   event.Container // what events get, built once
	known bool            // a runtime described it (not just a cgroup path)
}

// Kubernetes labels set by the kubelet (through dockershim, containerd's
// CRI plugin or CRI-O) on every container of a pod.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
)

// KubernetesLabels reads the pod name, namespace and uid from a container's
// labels, and the container's name within its pod.
func KubernetesLabels(labels map[string]string) (pod, namespace, uid, container string) {
	return labels[LabelPodName], labels[LabelPodNamespace], labels[LabelPodUID], labels[LabelContainerName]
}

// newInfo completes an Info from what a runtime reported: the Kubernetes
// fields from the labels, a name without Docker's leading slash (or the
// pod's container name when the runtime gives none), and the event tag.
func newInfo(runtime, id, name, image string, labels map[string]string, pid uint32) *Info {
	in := &Info{ID: id, Name: strings.TrimPrefix(name, "/"), Image: image, Labels: labels, Runtime: runtime, Pid: pid, known: true}
	var cname string
	in.Pod, in.Namespace, in.PodUID, cname = KubernetesLabels(labels)
	if in.Name == "" {
		in.Name = cname
	}
	in.tag = event.Container{ID: in.ID, Name: in.Name, Image: in.Image, Pod: in.Pod, Namespace: in.Namespace}
	return in
}

// Tag is what events of this container carry.
func (in *Info) Tag() event.Container { return in.tag }

// hostInfo is the info of processes outside any container.
var hostInfo = &Info{Name: event.HostContainerName, tag: event.Container{Name: event.HostContainerName}, known: true}

// idOnly is the info of a container the cgroup names but no runtime knows
// (yet): events go out with its id.
func idOnly(ref Ref) *Info {
	return &Info{ID: ref.ID, Runtime: ref.Runtime, PodUID: ref.PodUID, tag: event.Container{ID: ref.ID}}
}
