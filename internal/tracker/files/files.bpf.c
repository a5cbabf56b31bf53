// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * files: reads and writes per process and file, counted in a kernel map that
 * user space reads and clears every interval; optionally file opens.
 *
 * One program on sys_enter and one on sys_exit, filtered by syscall number:
 * the fd is resolved to its file at entry (the task's fd table), the byte
 * count is the return value at exit. Syscall numbers are x86_64's (the only
 * architecture bpf/vmlinux.h describes).
 */
#include "eunomia.h"

char LICENSE[] SEC("license") = "GPL";

#define NR_READ 0
#define NR_WRITE 1
#define NR_OPEN 2
#define NR_PREAD64 17
#define NR_PWRITE64 18
#define NR_READV 19
#define NR_WRITEV 20
#define NR_CREAT 85
#define NR_OPENAT 257
#define NR_PREADV 295
#define NR_PWRITEV 296
#define NR_PREADV2 327
#define NR_PWRITEV2 328
#define NR_OPENAT2 437

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFREG 0100000
#define S_IFIFO 0010000

#define O_WRONLY 01
#define O_CREAT 0100
#define O_TRUNC 01000
#define AT_FDCWD -100
#define EEXIST 17

enum file_type {
	FILE_OTHER = 0,
	FILE_REGULAR = 1,
	FILE_SOCKET = 2,
	FILE_PIPE = 3,
};

#define LEAF_LEN 256  /* bytes kept of the file's own name, with its NUL */
#define WALK_STEPS 20 /* steps up the tree: a directory each, or a mount crossing */
#define DIR_LEN 64    /* bytes kept of each directory name, with its NUL */

/* How the walk up the dentry tree ended (file_stats.path_flags). */
enum path_flags {
	PATH_ABSOLUTE = 1, /* reached the task's root directory */
	PATH_PSEUDO = 2,   /* a file of an internal mount (pipe, socket...) */
};

#define OPEN_PATH_LEN 256

struct file_key {
	__u32 pid;
	__u32 dev; /* kernel dev_t of the inode's superblock */
	__u64 inode;
};

struct file_stats {
	struct eu_proc proc; /* the first task seen on the file this interval */
	__u64 reads;
	__u64 writes;
	__u64 read_bytes;
	__u64 write_bytes;
	__u32 type;
	__u16 steps; /* dirs[] used */
	__u16 path_flags;
	char leaf[LEAF_LEN];
	char dirs[WALK_STEPS][DIR_LEN]; /* innermost first; "" where a step crossed a mount */
};

struct open_event {
	struct eu_proc proc;
	__s64 result; /* the new fd, or -errno */
	__u64 flags;
	__u64 inode; /* of the opened file, when result >= 0 */
	__u32 dev;
	__u32 mode;
	__u32 type;
	__s32 dfd;
	char path[OPEN_PATH_LEN];
};

/* A read or write between sys_enter and sys_exit. */
struct io_arg {
	struct file_key key;
	__u64 file; /* struct file *: the file is pinned until the syscall returns */
	__u32 type;
	__u8 write;
	__u8 active; /* set at sys_enter, cleared at sys_exit */
	__u16 _pad;
};

/* An open between sys_enter and sys_exit. */
struct open_arg {
	__u64 path; /* user pointer */
	__u64 flags;
	__u32 mode;
	__s32 dfd;
};

const volatile bool cfg_regular_only = 1;
const volatile bool cfg_open = 0;

/* Make the record types visible in BTF for bpf2go's -type. */
const struct open_event *unused_open __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory as used, not 18 MB up front */
	__type(key, struct file_key);
	__type(value, struct file_stats);
} io_stats SEC(".maps");

/*
 * The value a new io_stats entry starts from: all zero, never written. (A
 * per-CPU scratch value would be shared by tasks that preempt each other.)
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct file_stats);
} zero_stats SEC(".maps");

/*
 * Per thread (one syscall at a time each): task storage is found through
 * the task itself, cheaper than a hash lookup, and freed with the task.
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct io_arg);
} io_args SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct open_arg);
} open_args SEC(".maps");

static __always_inline bool is_io(long nr, __u32 *write)
{
	switch (nr) {
	case NR_READ:
	case NR_PREAD64:
	case NR_READV:
	case NR_PREADV:
	case NR_PREADV2:
		*write = 0;
		return true;
	case NR_WRITE:
	case NR_PWRITE64:
	case NR_WRITEV:
	case NR_PWRITEV:
	case NR_PWRITEV2:
		*write = 1;
		return true;
	}
	return false;
}

static __always_inline bool is_open(long nr)
{
	return nr == NR_OPEN || nr == NR_CREAT || nr == NR_OPENAT || nr == NR_OPENAT2;
}

static __always_inline __u32 file_type(umode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return FILE_REGULAR;
	case S_IFSOCK:
		return FILE_SOCKET;
	case S_IFIFO:
		return FILE_PIPE;
	}
	return FILE_OTHER;
}

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/*
 * The file behind fd in the task's fd table (task->files->fdt->fd[fd]).
 * Fields are read with direct loads where the verifier allows them (cheaper
 * than a helper call each); the array element needs bpf_probe_read_kernel.
 */
static __always_inline struct file *fd_file(struct task_struct *task, long fd)
{
	struct files_struct *files = task->files;
	struct fdtable *fdt;
	struct file **fds;
	struct file *file = NULL;

	if (!files)
		return NULL;
	fdt = files->fdt;
	if (!fdt || fd < 0 || fd >= fdt->max_fds)
		return NULL;
	fds = BPF_CORE_READ(fdt, fd); /* a plain value: indexable below */
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	if (!file)
		return NULL;
	return bpf_rdonly_cast(file, bpf_core_type_id_kernel(struct file));
}

/* Fill dev, inode and type of file; false when there is no file. */
static __always_inline bool file_id(struct file *file, __u32 *dev, __u64 *inode, __u32 *type)
{
	struct inode *ino;

	if (!file)
		return false;
	ino = file->f_inode;
	if (!ino)
		return false;
	*inode = ino->i_ino;
	*dev = ino->i_sb->s_dev;
	*type = file_type(ino->i_mode);
	return true;
}

/*
 * Walk from the file's dentry towards the root, crossing mount points, and
 * keep its name and the names of up to WALK_STEPS directories. Like d_path,
 * the walk ends at the task's root directory (a container's or chroot's
 * root), or at the root of a mount tree.
 *
 * Step i writes dirs[i] whatever it does, so that the loop carries no
 * counter besides i: the verifier then prunes the two paths of a step
 * against each other instead of following every mix of them.
 */
static __always_inline void fill_path(struct file_stats *s, struct file *file)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct dentry *root = BPF_CORE_READ(task, fs, root.dentry);
	struct vfsmount *root_mnt = BPF_CORE_READ(task, fs, root.mnt);
	struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
	struct vfsmount *vfsmnt = BPF_CORE_READ(file, f_path.mnt);
	__u64 mnt_off = bpf_core_field_offset(struct mount, mnt);
	struct mount *mnt = (void *)vfsmnt - mnt_off;
	__u16 flags = 0;
	int i;

	s->steps = 0;
	s->leaf[0] = 0;
	if (!dentry || !vfsmnt) {
		s->path_flags = 0;
		return;
	}
	bpf_probe_read_kernel_str(s->leaf, LEAF_LEN, BPF_CORE_READ(dentry, d_name.name));
	if (BPF_CORE_READ(dentry, d_parent) == dentry &&
	    dentry != BPF_CORE_READ(vfsmnt, mnt_root)) {
		s->path_flags = PATH_PSEUDO;
		return;
	}
	for (i = 0; i < WALK_STEPS; i++) {
		if (dentry == root && (void *)mnt + mnt_off == root_mnt) {
			flags = PATH_ABSOLUTE;
			break;
		}
		if (dentry == BPF_CORE_READ(mnt, mnt.mnt_root)) {
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

			if (up == mnt || !up) {
				flags = PATH_ABSOLUTE;
				break;
			}
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
		} else {
			struct dentry *parent = BPF_CORE_READ(dentry, d_parent);

			if (parent == dentry)
				break; /* disconnected from its mount's root */
			dentry = parent;
		}
		/*
		 * A mount's root is named by its mount point, at the next step;
		 * the task's root is "/".
		 */
		if (dentry == BPF_CORE_READ(mnt, mnt.mnt_root) ||
		    (dentry == root && (void *)mnt + mnt_off == root_mnt))
			s->dirs[i][0] = 0;
		else
			bpf_probe_read_kernel_str(s->dirs[i], DIR_LEN,
						  BPF_CORE_READ(dentry, d_name.name));
		s->steps = i + 1;
	}
	s->path_flags = flags;
}

static __always_inline void io_enter(long fd, __u32 write)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct file *file = fd_file(task, fd);
	struct io_arg *a;
	__u32 dev, type;
	__u64 inode;

	if (!file_id(file, &dev, &inode, &type))
		return;
	if (cfg_regular_only && type != FILE_REGULAR)
		return;
	a = bpf_task_storage_get(&io_args, task, NULL, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!a)
		return;
	a->key.pid = bpf_get_current_pid_tgid() >> 32;
	a->key.dev = dev;
	a->key.inode = inode;
	a->file = (__u64)file;
	a->type = type;
	a->write = write;
	a->active = 1;
}

static __always_inline void io_exit(long ret)
{
	struct io_arg *p = bpf_task_storage_get(&io_args, bpf_get_current_task_btf(), NULL, 0);
	struct file_stats *s;
	struct io_arg a;

	if (!p || !p->active)
		return;
	a = *p;
	p->active = 0;
	if (ret < 0)
		return; /* failed calls move no bytes */

	s = bpf_map_lookup_elem(&io_stats, &a.key);
	if (!s) {
		__u32 zero = 0;
		struct file_stats *z = bpf_map_lookup_elem(&zero_stats, &zero);
		long err;

		if (!z)
			return;
		err = bpf_map_update_elem(&io_stats, &a.key, z, BPF_NOEXIST);
		if (err && err != -EEXIST) {
			eu_count_lost(); /* the map is full: this I/O goes uncounted */
			return;
		}
		s = bpf_map_lookup_elem(&io_stats, &a.key);
		if (!s)
			return;
		/*
		 * The task that created the entry names it. Others may count
		 * into it meanwhile: the counters are not touched here.
		 */
		if (!err) {
			eu_fill_proc(&s->proc);
			s->type = a.type;
			fill_path(s, (struct file *)a.file);
		}
	}
	if (a.write) {
		__sync_fetch_and_add(&s->writes, 1);
		__sync_fetch_and_add(&s->write_bytes, ret);
	} else {
		__sync_fetch_and_add(&s->reads, 1);
		__sync_fetch_and_add(&s->read_bytes, ret);
	}
}

static __always_inline void open_enter(__u64 id, long nr, struct pt_regs *regs)
{
	struct open_arg a = {};

	/* x86_64 syscall arguments: di, si, dx, r10. */
	switch (nr) {
	case NR_OPEN:
		a.dfd = AT_FDCWD;
		a.path = regs->di;
		a.flags = (__u32)regs->si;
		a.mode = regs->dx;
		break;
	case NR_CREAT:
		a.dfd = AT_FDCWD;
		a.path = regs->di;
		a.flags = O_CREAT | O_WRONLY | O_TRUNC;
		a.mode = regs->si;
		break;
	case NR_OPENAT:
		a.dfd = regs->di;
		a.path = regs->si;
		a.flags = (__u32)regs->dx;
		a.mode = regs->r10;
		break;
	default: { /* openat2: flags and mode are in struct open_how */
		struct open_how how = {};

		a.dfd = regs->di;
		a.path = regs->si;
		bpf_probe_read_user(&how, sizeof(how), (void *)regs->dx);
		a.flags = how.flags;
		a.mode = how.mode;
	}
	}
	bpf_map_update_elem(&open_args, &id, &a, BPF_ANY);
}

static __always_inline void open_exit(__u64 id, long ret)
{
	struct open_arg *a = bpf_map_lookup_elem(&open_args, &id);
	struct open_event *e;

	if (!a)
		return;
	e = eu_reserve(sizeof(*e));
	if (!e) {
		bpf_map_delete_elem(&open_args, &id);
		return;
	}
	eu_fill_proc(&e->proc);
	e->result = ret;
	e->flags = a->flags;
	e->mode = a->mode;
	e->dfd = a->dfd;
	bpf_probe_read_user_str(e->path, sizeof(e->path), (const char *)a->path);
	bpf_map_delete_elem(&open_args, &id);
	e->inode = 0;
	e->dev = 0;
	e->type = FILE_OTHER;
	if (ret >= 0)
		file_id(fd_file(bpf_get_current_task_btf(), ret), &e->dev, &e->inode, &e->type);
	eu_submit(e);
}

/*
 * BTF tracepoints on the raw syscall hooks rather than one classic
 * tracepoint per syscall: those take ~70 ms of RCU each to detach.
 */
SEC("tp_btf/sys_enter")
int BPF_PROG(handle_sys_enter, struct pt_regs *regs, long nr)
{
	__u32 write;

	if (is_io(nr, &write)) {
		if (!eu_wanted())
			return 0;
		io_enter((int)regs->di, write);
	} else if (cfg_open && is_open(nr)) {
		if (!eu_wanted())
			return 0;
		open_enter(bpf_get_current_pid_tgid(), nr, regs);
	}
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(handle_sys_exit, struct pt_regs *regs, long ret)
{
	long nr = regs->orig_ax;
	__u32 write;

	if (is_io(nr, &write))
		io_exit(ret);
	else if (cfg_open && is_open(nr))
		open_exit(bpf_get_current_pid_tgid(), ret);
	return 0;
}
