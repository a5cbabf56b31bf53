package container

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

const (
	id1 = "3c8a03c7d3c65cad5c184e28dd4d638b2c15247747514c6c9115ca86b280ec86"
	id2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	uid = "2f1c6a0e-7d3b-4c52-9a51-0c2b8e6f1d44"
)

func TestParsePath(t *testing.T) {
	uidU := "2f1c6a0e_7d3b_4c52_9a51_0c2b8e6f1d44"
	cases := []struct {
		name, path string
		want       Ref
	}{
		{"docker cgroupfs", "/docker/" + id1, Ref{ID: id1, Runtime: "docker"}},
		{"docker systemd", "/system.slice/docker-" + id1 + ".scope", Ref{ID: id1, Runtime: "docker"}},
		{"docker in docker: outermost wins", "/docker/" + id1 + "/docker/" + id2, Ref{ID: id1, Runtime: "docker"}},
		{"podman cgroupfs", "/libpod_parent/libpod-" + id1, Ref{ID: id1, Runtime: "podman"}},
		{"podman systemd", "/machine.slice/libpod-" + id1 + ".scope", Ref{ID: id1, Runtime: "podman"}},
		{"podman systemd container subgroup", "/machine.slice/libpod-" + id1 + ".scope/container", Ref{ID: id1, Runtime: "podman"}},
		{"podman conmon is no container", "/machine.slice/libpod-conmon-" + id1 + ".scope", Ref{}},
		{"cri-o conmon is no container", "/kubepods.slice/crio-conmon-" + id1 + ".scope", Ref{}},
		{"kubepods cgroupfs besteffort", "/kubepods/besteffort/pod" + uid + "/" + id1, Ref{ID: id1, Runtime: "cri", PodUID: uid}},
		{"kubepods cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + id1, Ref{ID: id1, Runtime: "cri", PodUID: uid}},
		{"kubepods systemd containerd",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope",
			Ref{ID: id1, Runtime: "containerd", PodUID: uid}},
		{"kubepods systemd cri-o",
			"/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-" + id1 + ".scope",
			Ref{ID: id1, Runtime: "cri-o", PodUID: uid}},
		{"kubepods systemd docker",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/docker-" + id1 + ".scope",
			Ref{ID: id1, Runtime: "docker", PodUID: uid}},
		{"kubepods pod level has no container", "/kubepods/besteffort/pod" + uid, Ref{}},
		{"containerd namespace", "/default/" + id1, Ref{ID: id1}},
		{"nerdctl systemd", "/system.slice/nerdctl-" + id1 + ".scope", Ref{ID: id1, Runtime: "containerd"}},
		{"root", "/", Ref{}},
		{"empty", "", Ref{}},
		{"user session", "/user.slice/user-1000.slice/session-2.scope", Ref{}},
		{"short hex is no id", "/docker/3c8a03c7d3c6", Ref{}},
		{"upper-case hex is no id", "/docker/3C8A03C7D3C65CAD5C184E28DD4D638B2C15247747514C6C9115CA86B280EC86", Ref{}},
		{"65 digits is no id", "/docker/" + id1 + "0", Ref{}},
		{"docker dir itself", "/docker", Ref{}},
		{"bad pod uid", "/kubepods/podxyz/" + id1, Ref{ID: id1}},
	}
	for _, c := range cases {
		if got := ParsePath(c.path); got != c.want {
			t.Errorf("%s: ParsePath(%q) = %+v, want %+v", c.name, c.path, got, c.want)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	hybridContainer := "9:name=systemd:/docker/" + id1 + "\n" +
		"4:memory:/docker/" + id1 + "\n" +
		"1:cpu:/docker/" + id1 + "\n" +
		"0::/docker/" + id1 + "\n"
	hybridHost := "9:name=systemd:/\n4:memory:/process_api/520a50fe\n0::/\n"
	// A container whose runtime left the cgroup2 hierarchy alone: only v1
	// paths name it, so its cgroup id cannot tell it from the host.
	v1Only := "9:name=systemd:/docker/" + id1 + "\n4:memory:/docker/" + id1 + "\n0::/\n"
	v1NoV2 := "4:memory:/docker/" + id1 + "\n1:cpu:/docker/" + id1 + "\n"
	v2Only := "0::/system.slice/docker-" + id1 + ".scope\n"
	v2Host := "0::/user.slice/user-0.slice/session-1.scope"
	cases := []struct {
		name, data string
		want       ProcCgroup
	}{
		{"hybrid container", hybridContainer, ProcCgroup{V2Path: "/docker/" + id1, Ref: Ref{ID: id1, Runtime: "docker"}, ByV2: true}},
		{"hybrid host", hybridHost, ProcCgroup{V2Path: "/", ByV2: true}},
		{"v1 paths only name it", v1Only, ProcCgroup{V2Path: "/", Ref: Ref{ID: id1, Runtime: "docker"}}},
		{"no cgroup2", v1NoV2, ProcCgroup{Ref: Ref{ID: id1, Runtime: "docker"}}},
		{"pure cgroup2 container", v2Only, ProcCgroup{V2Path: "/system.slice/docker-" + id1 + ".scope", Ref: Ref{ID: id1, Runtime: "docker"}, ByV2: true}},
		{"pure cgroup2 host, no final newline", v2Host, ProcCgroup{V2Path: "/user.slice/user-0.slice/session-1.scope", ByV2: true}},
		{"garbage lines ignored", "junk\n::\n0::/docker/" + id1 + "\n", ProcCgroup{V2Path: "/docker/" + id1, Ref: Ref{ID: id1, Runtime: "docker"}, ByV2: true}},
		{"empty", "", ProcCgroup{}},
	}
	for _, c := range cases {
		if got := ParseProcCgroup([]byte(c.data)); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestCgroup2Mount(t *testing.T) {
	cases := map[string]string{
		"35 25 0:30 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate": "/sys/fs/cgroup/unified",
		"35 25 0:30 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw":                                                 "/sys/fs/cgroup",
		"35 25 0:30 / /mnt/my\\040cgroup rw - cgroup2 none rw":                                                         "/mnt/my cgroup",
		"36 25 0:31 / /sys/fs/cgroup/cpu rw shared:10 - cgroup cgroup rw,cpu":                                          "",
		"37 25 0:30 /docker /mnt/sub rw - cgroup2 cgroup2 rw":                                                          "", // a bind of a subtree
		"garbage": "",
	}
	for line, want := range cases {
		if got := cgroup2Mount(line); got != want {
			t.Errorf("cgroup2Mount(%q) = %q, want %q", line, got, want)
		}
	}
}

func TestCgroupIDsWalksSubdirectories(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "docker", id1)
	for _, d := range []string{dir, filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ids, err := cgroupIDs(root, "/docker/"+id1)
	if err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for _, d := range []string{dir, filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")} {
		ino, err := inode(d)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ino)
	}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("cgroupIDs = %v, want %v (directories only)", ids, want)
	}
	if _, err := cgroupIDs(root, "/docker/missing"); err == nil {
		t.Error("cgroupIDs of a missing directory: no error")
	}
	if _, err := cgroupIDs("", "/docker/"+id1); err == nil {
		t.Error("cgroupIDs without a cgroup2 root: no error")
	}
	paths := cgroupPaths(root)
	if paths[want[0]] != "/docker/"+id1 || paths[want[2]] != "/docker/"+id1+"/a/b" {
		t.Errorf("cgroupPaths = %v", paths)
	}
}

func TestKubernetesLabels(t *testing.T) {
	labels := map[string]string{
		LabelPodName:       "web-7d9c",
		LabelPodNamespace:  "shop",
		LabelPodUID:        uid,
		LabelContainerName: "nginx",
		"other":            "x",
	}
	pod, ns, u, c := KubernetesLabels(labels)
	if pod != "web-7d9c" || ns != "shop" || u != uid || c != "nginx" {
		t.Errorf("KubernetesLabels = %q %q %q %q", pod, ns, u, c)
	}
	if pod, ns, u, c := KubernetesLabels(nil); pod+ns+u+c != "" {
		t.Errorf("no labels gave %q %q %q %q", pod, ns, u, c)
	}

	// Docker names a kubelet container itself; containerd gives no name,
	// so the pod's container name stands in.
	in := newInfo("docker", id1, "/k8s_nginx_web-7d9c_shop_"+uid+"_0", "nginx:1.25", labels, 42)
	want := Info{ID: id1, Name: "k8s_nginx_web-7d9c_shop_" + uid + "_0", Image: "nginx:1.25", Pod: "web-7d9c", Namespace: "shop", PodUID: uid}
	if in.Name != want.Name || in.Pod != want.Pod || in.Namespace != want.Namespace || in.PodUID != want.PodUID || in.Pid != 42 {
		t.Errorf("docker info = %+v", in)
	}
	tag := in.Tag()
	if tag.ID != id1 || tag.Name != want.Name || tag.Image != "nginx:1.25" || tag.Pod != "web-7d9c" || tag.Namespace != "shop" {
		t.Errorf("docker tag = %+v", tag)
	}
	in = newInfo("containerd", id2, "", "docker.io/library/nginx:1.25", labels, 0)
	if in.Name != "nginx" || in.Tag().Name != "nginx" || in.Tag().Pod != "web-7d9c" {
		t.Errorf("containerd info = %+v", in)
	}
	in = newInfo("docker", id2, "/plain", "busybox", map[string]string{"a": "b"}, 0)
	if in.Pod != "" || in.Namespace != "" || in.Tag().Pod != "" {
		t.Errorf("plain container got pod fields: %+v", in)
	}
}

// BenchmarkReadProcCgroup is the cost of a cache miss: reading and parsing
// /proc/<pid>/cgroup.
func BenchmarkReadProcCgroup(b *testing.B) {
	pid := uint32(os.Getpid())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadProcCgroup(pid); err != nil {
			b.Fatal(err)
		}
	}
}
