// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* Ritma's capture programs: process lifecycle (sched tracepoints) and security-relevant
 * syscalls (syscall tracepoints, args stashed from enter to exit), written as records to
 * one ring buffer. Wire format: ritma_event.h and README.md. CO-RE against vmlinux.h. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "ritma_event.h"

/* The kernel lets only GPL-compatible programs call the tracing helpers (hence dual-licensed). */
char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AT_FDCWD -100
#define AF_UNSPEC 0
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define EAGAIN 11
#define PF_KTHREAD 0x00200000
#define SIGNAL_GROUP_EXIT 0x00000004
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFIFO 0010000
#define S_IFREG 0100000
#define S_IFCHR 0020000
#define F_DUPFD 0
#define F_DUPFD_CLOEXEC 1030
#define BPF_PROG_LOAD_CMD 5
/* union bpf_attr (UAPI, stable): prog_type at 0, prog_name[16] at 48. */
#define BPF_ATTR_PROG_NAME_OFF 48
#define LINUX_CAPABILITY_VERSION_1 0x19980330
#define NR_INIT_MODULE 175 /* x86_64 */
#define NR_FINIT_MODULE 313

#define ID_UNCHANGED 0xffffffffu
#define PATH_MASK (RITMA_PATH_MAX - 1)
/* Deepest directory walk: path components, plus mount crossings in WALK_STEPS. */
#define WALK_COMPONENTS 32
#define WALK_STEPS 48
#define STASH_ENTRIES 16384

/* Set by the loader before load: the sensor's own process, whose events are dropped. */
const volatile __u32 ritma_self_tgid = 0;
/* Bytes waiting in the ring buffer before a record wakes the reader (set by the loader). */
const volatile __u64 ritma_wakeup_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} ritma_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RITMA_DROP_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} ritma_drops SEC(".maps");

/* How much of ritma_drops the WAL accounts for (events written, losses written): written by
 * user space after each frame, read by no program. Pinned with ritma_drops, it outlives a
 * killed sensor, so the next run counts what the kill left in flight. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ritma_accounted SEC(".maps");

/* Heartbeats: every program counts the calls of the sensor's own process it skips, in
 * its slot (a syscall's enter program 2*SC, its exit 2*SC+1, fork and exit below), so the
 * loader can make each hook fire on purpose and see that it still runs. */
#define BEAT_FORK 0
#define BEAT_EXIT 1
#define RITMA_BEATS 64

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RITMA_BEATS);
	__type(key, __u32);
	__type(value, __u64);
} ritma_beats SEC(".maps");

/* Call counts per hooked syscall SC, in slots 3*SC + CALL_*: enters that stashed, exits
 * that found their enter's stash, exits that found none. While one program of a pair is
 * silent the other still counts, so the loader can tell how many calls the gap cost. */
#define CALL_STASHED 0
#define CALL_CONSUMED 1
#define CALL_ORPHAN 2
#define RITMA_CALL_SLOTS 96

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RITMA_CALL_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} ritma_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ritma_prefix_key);
	__type(value, __u8);
} ritma_ignore SEC(".maps");

/* Which syscall a stash entry belongs to (several share one event kind). */
enum sc {
	SC_OPENAT = 1,
	SC_OPENAT2,
	SC_UNLINKAT,
	SC_UNLINK,
	SC_RENAMEAT2,
	SC_RENAMEAT,
	SC_RENAME,
	SC_CONNECT,
	SC_ACCEPT4,
	SC_ACCEPT,
	SC_BIND,
	SC_LISTEN,
	SC_PTRACE,
	SC_SETUID,
	SC_SETGID,
	SC_SETREUID,
	SC_SETREGID,
	SC_SETRESUID,
	SC_SETRESGID,
	SC_SETFSUID,
	SC_SETFSGID,
	SC_CAPSET,
	SC_MEMFD_CREATE,
	SC_INIT_MODULE,
	SC_FINIT_MODULE,
	SC_BPF,
	SC_DUP,
	SC_DUP2,
	SC_DUP3,
	SC_FCNTL,
};

/* What a syscall's enter leaves for its exit, keyed by pid_tgid. */
struct stash {
	__u64 args[6];
	__u32 sc;
	__u32 sa_len; /* bytes of sa read at enter; 0 if not read */
	__u8 sa[128];
	__u64 extra[3];
	char name[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STASH_ENTRIES);
	__type(key, __u64);
	__type(value, struct stash);
} ritma_stash SEC(".maps");

/* A record is built here, then copied into the ring buffer at its exact size. */
struct record_buf {
	__u8 b[RITMA_REC_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct record_buf);
} ritma_record SEC(".maps");

/* Scratch for directory walks and prefix lookups. */
struct walk_buf {
	/* room for a walked directory, '/', and a given relative path */
	__u8 path[2 * RITMA_PATH_MAX + 512];
	const unsigned char *names[WALK_COMPONENTS];
	__u32 lens[WALK_COMPONENTS];
	__u32 n;   /* components collected */
	__u32 off; /* bytes written to path */
	struct ritma_prefix_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk_buf);
} ritma_walk SEC(".maps");

#define HDR_LEN sizeof(struct ritma_hdr)

/* v & mask, done in asm: clang drops a mask it can prove redundant from an earlier
 * compare, but the verifier needs the bound on the very register a helper receives. */
#define BOUND(v, mask)                                                  \
	({                                                              \
		__u64 __v = (v);                                        \
		asm volatile("%[x] &= %[m]" : [x] "+r"(__v) : [m] "i"(mask)); \
		__v;                                                    \
	})

static __always_inline void count_drop(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&ritma_drops, &reason);
	if (c)
		*c += 1;
}

static __always_inline void beat(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&ritma_beats, &slot);

	if (n)
		*n += 1;
}

static __always_inline void count_call(__u32 sc, __u32 what)
{
	__u32 slot = sc * 3 + what;
	__u64 *n = bpf_map_lookup_elem(&ritma_calls, &slot);

	if (n)
		*n += 1;
}

static __always_inline bool is_self(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == ritma_self_tgid;
}

static __always_inline __u8 *record_buf(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&ritma_record, &zero);
}

static __always_inline struct walk_buf *walk_buf(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&ritma_walk, &zero);
}

static __always_inline __u64 pid_ns_inum(struct task_struct *t)
{
	struct pid *p = BPF_CORE_READ(t, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	struct upid u = {};
	bpf_core_read(&u, sizeof(u), &p->numbers[level]);
	return BPF_CORE_READ(u.ns, ns.inum);
}

/* Fills the header fields any task gives, the current one or an iterated one. */
static __always_inline void fill_task(struct ritma_hdr *h, struct task_struct *t, __u16 kind)
{
	struct task_struct *parent = BPF_CORE_READ(t, real_parent);
	const struct cred *cred = BPF_CORE_READ(t, real_cred);

	h->kind = kind;
	h->version = RITMA_WIRE_VERSION;
	h->len = 0;
	h->mono_ns = bpf_ktime_get_ns();
	/* The process's start: a thread's own start_time would differ from its leader's. */
	h->start_ns = BPF_CORE_READ(t, group_leader, start_time);
	h->parent_start_ns = BPF_CORE_READ(parent, group_leader, start_time);
	h->mnt_ns = BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum);
	h->pid_ns = pid_ns_inum(t);
	h->net_ns = BPF_CORE_READ(t, nsproxy, net_ns, ns.inum);
	h->ppid = BPF_CORE_READ(parent, tgid);
	h->uid = BPF_CORE_READ(cred, uid.val);
	h->gid = BPF_CORE_READ(cred, gid.val);
	h->euid = BPF_CORE_READ(cred, euid.val);
	h->egid = BPF_CORE_READ(cred, egid.val);
	h->pad = 0;
}

/* Fills the header's task identity from the current task. */
static __always_inline void fill_header(__u8 *rec, __u16 kind)
{
	struct ritma_hdr *h = (void *)rec;
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	fill_task(h, (void *)bpf_get_current_task(), kind);
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* Fills the header from task t, as fill_header would if t were current. */
static __always_inline void fill_header_of(__u8 *rec, __u16 kind, struct task_struct *t)
{
	struct ritma_hdr *h = (void *)rec;

	fill_task(h, t, kind);
	/* What bpf_get_current_cgroup_id returns: the v2 cgroup's kernfs node id. */
	h->cgroup_id = BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
	h->pid = BPF_CORE_READ(t, tgid);
	h->tid = BPF_CORE_READ(t, pid);
	/* comm is NUL-padded in the task (strscpy_pad), as bpf_get_current_comm gives it. */
	bpf_core_read(h->comm, sizeof(h->comm), &t->comm);
}

static __always_inline void submit(__u8 *rec, __u32 len)
{
	if (len < HDR_LEN || len >= RITMA_REC_MAX)
		return;
	/* Records stay below RITMA_REC_MAX, so the mask changes nothing but the verifier's view. */
	len = BOUND(len, RITMA_REC_MAX - 1);
	((struct ritma_hdr *)rec)->len = len;
	/* A wakeup per record is an interrupt per event (a VM exit on a guest): wake the reader
	 * only once ritma_wakeup_bytes are waiting; it also polls with a timeout of its own. */
	__u64 flags = bpf_ringbuf_query(&ritma_events, BPF_RB_AVAIL_DATA) >= ritma_wakeup_bytes
			      ? BPF_RB_FORCE_WAKEUP
			      : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&ritma_events, rec, len, flags))
		count_drop(RITMA_DROP_RINGBUF_FULL);
	else
		count_drop(RITMA_SUBMITTED);
}

/* ---------- paths ---------- */

static __always_inline struct file *fd_file(struct task_struct *t, long fd)
{
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	struct file **arr = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;

	if (fd < 0 || fd >= max)
		return NULL;
	bpf_core_read(&f, sizeof(f), &arr[fd]);
	return f;
}

static __always_inline struct sock *fd_sock(struct task_struct *t, long fd)
{
	struct file *f = fd_file(t, fd);
	struct socket *so;

	if (!f || (BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	so = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(so, sk);
}

/* Bit i set when fd i (0, 1, 2) is an IPv4 or IPv6 socket: a program started with its stdio
 * on the network (a reverse shell), however the fds got there (dup2, dup3, fcntl F_DUPFD, a
 * socket made on a closed fd, or inherited). */
static __always_inline __u8 stdio_net(struct task_struct *t)
{
	__u8 m = 0;
	int i;

	for (i = 0; i < 3; i++) {
		struct sock *sk = fd_sock(t, i);
		__u16 family;

		if (!sk)
			continue;
		family = BPF_CORE_READ(sk, __sk_common.skc_family);
		if (family == AF_INET || family == AF_INET6)
			m |= 1 << i;
	}
	return m;
}

/* True when one of fds lo..2 of the current task is free (a dup may land there). */
static __always_inline bool stdio_free(__u64 lo)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	int i;

	for (i = 0; i < 3; i++)
		if (i >= lo && !fd_file(t, i))
			return true;
	return false;
}

/* Writes the path of (d, vm) as seen from the task's root into w->path; returns its
 * length, or -1 when it is deeper than the walk bound or longer than a path.
 * The component count and write offset live in the map value, not in registers, so the
 * verifier sees every iteration alike and prunes instead of exploring each count. */
static __always_inline long walk_path(struct walk_buf *w, struct task_struct *t,
				      struct dentry *d, struct vfsmount *vm)
{
	struct dentry *root_d = BPF_CORE_READ(t, fs, root.dentry);
	struct vfsmount *root_m = BPF_CORE_READ(t, fs, root.mnt);
	struct mount *mnt = container_of(vm, struct mount, mnt);
	struct dentry *mnt_root;
	int i;

	if (!d || !vm)
		return -1;
	/* Read once per mount, not per component: each read is a helper call. */
	mnt_root = BPF_CORE_READ(vm, mnt_root);
	w->n = 0;
	for (i = 0; i < WALK_STEPS; i++) {
		/* d_parent and d_name, adjacent in struct dentry: one read per component. */
		struct {
			struct dentry *parent;
			struct qstr name;
		} st;
		__u32 n;

		if (d == root_d && vm == root_m)
			break;
		if (bpf_core_field_offset(struct dentry, d_name) ==
		    bpf_core_field_offset(struct dentry, d_parent) + sizeof(void *)) {
			bpf_core_read(&st, sizeof(st), &d->d_parent);
		} else {
			st.parent = BPF_CORE_READ(d, d_parent);
			bpf_core_read(&st.name, sizeof(st.name), &d->d_name);
		}
		if (d == mnt_root || d == st.parent) {
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
			/* A dentry that is its own parent without being its mount's root is a
			 * pseudo file (memfd, pipe, socket): its name is all the path it has. */
			if (d != mnt_root) {
				n = w->n;
				if (n >= WALK_COMPONENTS)
					return -1;
				w->names[n & (WALK_COMPONENTS - 1)] = st.name.name;
				w->lens[n & (WALK_COMPONENTS - 1)] = st.name.len;
				w->n = n + 1;
				break;
			}
			/* A mount that is its own parent is the namespace's (or an internal) root. */
			if (up == mnt || !up)
				break;
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			vm = &up->mnt;
			mnt_root = BPF_CORE_READ(vm, mnt_root);
			continue;
		}
		n = w->n;
		if (n >= WALK_COMPONENTS)
			return -1;
		w->names[n & (WALK_COMPONENTS - 1)] = st.name.name;
		w->lens[n & (WALK_COMPONENTS - 1)] = st.name.len;
		w->n = n + 1;
		d = st.parent;
	}
	if (i == WALK_STEPS)
		return -1;
	if (w->n == 0) {
		w->path[0] = '/';
		return 1;
	}

	w->off = 0;
	for (i = 0; i < WALK_COMPONENTS; i++) {
		__u32 n = w->n, off = w->off, j, len;

		if (i >= n)
			break;
		j = (n - 1 - i) & (WALK_COMPONENTS - 1);
		len = w->lens[j];
		if (len > 255 || off + 1 + len > RITMA_PATH_MAX - 1)
			return -1;
		w->path[off & PATH_MASK] = '/';
		off++;
		bpf_probe_read_kernel(&w->path[BOUND(off, PATH_MASK)], BOUND(len, 255), w->names[j]);
		w->off = off + len;
	}
	return w->off;
}

/* Writes the path argument as the process gave it at dst; returns its length (0 when it
 * could not be read). */
static __always_inline __u32 put_given(__u8 *dst, const char *upath)
{
	long n = bpf_probe_read_user_str(dst, RITMA_PATH_MAX, upath);

	return n > 0 ? (n - 1) & PATH_MASK : 0;
}

/* Writes at dst what makes a given path canonical (see README "Paths") and returns its
 * length, its kind in *kind: the walked path of f, the file the kernel used, when f is set
 * and walks; else, for a relative given path, the walked directory it is relative to (dfd,
 * or the cwd for AT_FDCWD); else nothing. */
static __always_inline __u32 put_res(__u8 *dst, struct task_struct *t, struct file *f, long dfd,
				     bool relative, __u16 *kind)
{
	struct walk_buf *w = walk_buf();
	struct dentry *d;
	struct vfsmount *m;
	long l = -1;

	*kind = RITMA_RES_NONE;
	if (!w)
		return 0;
	if (f) {
		l = walk_path(w, t, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt));
		if (l > 0 && l < RITMA_PATH_MAX) {
			*kind = RITMA_RES_FILE;
			goto copy;
		}
	}
	if (!relative)
		return 0;
	if ((int)dfd == AT_FDCWD) {
		d = BPF_CORE_READ(t, fs, pwd.dentry);
		m = BPF_CORE_READ(t, fs, pwd.mnt);
	} else {
		struct file *df = fd_file(t, (int)dfd);
		if (!df)
			return 0;
		d = BPF_CORE_READ(df, f_path.dentry);
		m = BPF_CORE_READ(df, f_path.mnt);
	}
	l = walk_path(w, t, d, m);
	if (l <= 0 || l >= RITMA_PATH_MAX)
		return 0;
	*kind = RITMA_RES_DIR;
copy:
	bpf_probe_read_kernel(dst, BOUND(l, PATH_MASK), w->path);
	return l & PATH_MASK;
}

/* True when the given path (at given) is relative. */
static __always_inline bool is_relative(const __u8 *given, __u32 len)
{
	return len > 0 && given[0] != '/';
}

/* True when a configured ignored prefix starts the path (LPM trie, first 256 bytes). */
static __always_inline bool ignored_path(const __u8 *path, __u32 len)
{
	struct walk_buf *w = walk_buf();
	__u32 n = len > RITMA_PREFIX_MAX ? RITMA_PREFIX_MAX : len;

	if (!w)
		return false;
	w->key.prefixlen = n * 8;
	bpf_probe_read_kernel(w->key.data, RITMA_PREFIX_MAX, path);
	return bpf_map_lookup_elem(&ritma_ignore, &w->key) != NULL;
}

/* True when the path an event names is under an ignored prefix: judged on the file the
 * kernel used when there is one, else on the absolute given path, else on the directory a
 * relative path is relative to (with a '/' after it, written past its end). A relative
 * path with no directory is never ignored. */
static __always_inline bool ignored_event_path(const __u8 *given, __u32 len, __u8 *res,
					       __u32 res_len, __u16 kind)
{
	if (kind == RITMA_RES_FILE)
		return ignored_path(res, res_len);
	if (len > 0 && given[0] == '/')
		return ignored_path(given, len);
	if (kind == RITMA_RES_DIR && res_len < RITMA_PATH_MAX - 1) {
		res[res_len & PATH_MASK] = '/';
		return ignored_path(res, res_len + 1);
	}
	return false;
}

/* ---------- sched: exec, fork, exit ---------- */

static __always_inline __u64 user_dev(__u32 kdev)
{
	/* The kernel's dev_t (major << 20 | minor) as stat(2) reports st_dev. */
	__u32 major = kdev >> 20, minor = kdev & 0xfffff;
	return (minor & 0xff) | (major << 8) | ((__u64)(minor & ~0xffu) << 12);
}

/* BTF tracepoint: the linux_binprm tells a script (its interpreter runs) from a binary. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(ritma_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	__u8 *rec = record_buf();
	struct ritma_exec *b;
	struct mm_struct *mm;
	struct file *exe;
	const char *fname, *interp;
	__u64 arg_start, arg_end, total;
	__u32 fname_len, res_len, argv_len = 0, off, at;
	__u16 kind;
	long n;

	if (!rec || is_self())
		return 0;
	fill_header(rec, RITMA_EXEC);
	b = (void *)(rec + HDR_LEN);
	off = HDR_LEN + sizeof(*b);

	/* bprm->filename: the path as given ("/dev/fd/N" for an execveat of an fd). */
	fname = BPF_CORE_READ(bprm, filename);
	interp = BPF_CORE_READ(bprm, interp);
	n = bpf_probe_read_kernel_str(rec + off, RITMA_PATH_MAX, fname);
	fname_len = n > 0 ? (n - 1) & PATH_MASK : 0;

	mm = BPF_CORE_READ(t, mm);
	exe = BPF_CORE_READ(mm, exe_file);
	b->exe_dev = user_dev(BPF_CORE_READ(exe, f_inode, i_sb, s_dev));
	b->exe_ino = BPF_CORE_READ(exe, f_inode, i_ino);

	/* The running file is the one named only when no interpreter took over (a script's
	 * interp is its #! program): then its walk is the canonical path, else the given
	 * path is resolved against the cwd when relative. */
	at = BOUND(off + fname_len, 2 * RITMA_PATH_MAX - 1);
	res_len = put_res(rec + at, t, interp == fname ? exe : NULL, AT_FDCWD,
			  is_relative(rec + off, fname_len), &kind);

	arg_start = BPF_CORE_READ(mm, arg_start);
	arg_end = BPF_CORE_READ(mm, arg_end);
	total = arg_end > arg_start ? arg_end - arg_start : 0;
	if (total > 0xffffffff)
		total = 0xffffffff;
	b->argv_total = total;
	at = off + fname_len + res_len;
	if (total > 0) {
		__u32 want = total > RITMA_ARGV_BYTES ? RITMA_ARGV_BYTES : total;
		if (want <= RITMA_ARGV_BYTES &&
		    bpf_probe_read_user(rec + BOUND(at, 4 * RITMA_PATH_MAX - 1),
					BOUND(want, 2 * RITMA_ARGV_BYTES - 1), (void *)arg_start) == 0)
			argv_len = want;
	}
	b->filename_len = fname_len;
	b->argv_len = argv_len;
	b->res_len = res_len;
	b->res_kind = kind;
	b->stdio_net = stdio_net(t);
	b->pad8 = 0;
	b->pad16 = 0;
	submit(rec, at + argv_len);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(ritma_fork, struct task_struct *parent, struct task_struct *child)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	__u8 *rec;
	struct ritma_fork *b;

	if (is_self()) {
		beat(BEAT_FORK);
		return 0;
	}
	/* Threads are not new processes. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	if (BPF_CORE_READ(t, flags) & PF_KTHREAD)
		return 0;
	rec = record_buf();
	if (!rec)
		return 0;
	fill_header(rec, RITMA_FORK);
	b = (void *)(rec + HDR_LEN);
	b->child_pid = BPF_CORE_READ(child, tgid);
	b->pad = 0;
	b->child_start_ns = BPF_CORE_READ(child, start_time);
	submit(rec, HDR_LEN + sizeof(*b));
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int ritma_exit(struct trace_event_raw_sched_process_exit *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct signal_struct *sig;
	struct ritma_exit *b;
	bool group_dead;
	__u8 *rec;

	if ((pid_tgid >> 32) == ritma_self_tgid) {
		beat(BEAT_EXIT);
		return 0;
	}
	/* A thread killed inside a hooked syscall never reaches its sys_exit. */
	bpf_map_delete_elem(&ritma_stash, &pid_tgid);

	sig = BPF_CORE_READ(t, signal);
	/* The process exits once: when its last thread does. */
	if (bpf_core_field_exists(ctx->group_dead))
		group_dead = BPF_CORE_READ(ctx, group_dead);
	else
		group_dead = BPF_CORE_READ(sig, live.counter) == 0;
	if (!group_dead || (BPF_CORE_READ(t, flags) & PF_KTHREAD))
		return 0;
	rec = record_buf();
	if (!rec)
		return 0;
	fill_header(rec, RITMA_EXIT);
	b = (void *)(rec + HDR_LEN);
	/* The wait(2) status: a group exit's code, else the thread's own. */
	if (BPF_CORE_READ(sig, flags) & SIGNAL_GROUP_EXIT)
		b->code = BPF_CORE_READ(sig, group_exit_code);
	else
		b->code = BPF_CORE_READ(t, exit_code);
	b->pad = 0;
	submit(rec, HDR_LEN + sizeof(*b));
	return 0;
}

/* ---------- snapshot: the processes present when capture starts ---------- */

/* The snapshot's own scratch: the iterator may sleep (faulting in another task's argv)
 * with its buffers half built, and a tracepoint program on the same CPU must not
 * overwrite them meanwhile. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct record_buf);
} ritma_snap_record SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk_buf);
} ritma_snap_walk SEC(".maps");

/* Whether t stands for its process in the snapshot: a live user process other than the
 * sensor, seen from its leader thread, or, when the leader has exited while other
 * threads run, from each of those (user space keeps the lowest tid). */
static __always_inline bool snapshot_visible(struct task_struct *t)
{
	if ((BPF_CORE_READ(t, flags) & PF_KTHREAD) || BPF_CORE_READ(t, tgid) == ritma_self_tgid)
		return false;
	/* No live thread left: the process is exiting (its exit event, if any, is live). */
	if (BPF_CORE_READ(t, signal, live.counter) == 0 || !BPF_CORE_READ(t, mm))
		return false;
	return BPF_CORE_READ(t, group_leader) == t || !BPF_CORE_READ(t, group_leader, mm);
}

/* Builds t's present record in rec up to its argv: header, then exec's body with the
 * executable's dev, inode and path (walked from the task's root), argv_total set and
 * argv_len 0. Returns the record's length so far (where argv goes). */
static __always_inline __u32 present_record(__u8 *rec, struct walk_buf *w, struct task_struct *t)
{
	struct mm_struct *mm = BPF_CORE_READ(t, mm);
	struct file *exe = BPF_CORE_READ(mm, exe_file);
	struct ritma_exec *b = (void *)(rec + HDR_LEN);
	__u32 off = HDR_LEN + sizeof(*b), fname_len = 0;
	__u64 arg_start, arg_end, total;
	long l;

	fill_header_of(rec, RITMA_PRESENT, t);
	b->exe_dev = user_dev(BPF_CORE_READ(exe, f_inode, i_sb, s_dev));
	b->exe_ino = BPF_CORE_READ(exe, f_inode, i_ino);
	l = walk_path(w, t, BPF_CORE_READ(exe, f_path.dentry), BPF_CORE_READ(exe, f_path.mnt));
	if (l > 0 && l < RITMA_PATH_MAX) {
		bpf_probe_read_kernel(rec + off, BOUND(l, PATH_MASK), w->path);
		fname_len = l & PATH_MASK;
	}
	arg_start = BPF_CORE_READ(mm, arg_start);
	arg_end = BPF_CORE_READ(mm, arg_end);
	total = arg_end > arg_start ? arg_end - arg_start : 0;
	b->argv_total = total > 0xffffffff ? 0xffffffff : total;
	b->filename_len = fname_len;
	b->argv_len = 0;
	b->res_len = 0;
	b->res_kind = RITMA_RES_NONE;
	b->stdio_net = 0;
	b->pad8 = 0;
	b->pad16 = 0;
	return off + fname_len;
}

/* Writes a finished record to the iterator's output. */
static __always_inline void seq_put(struct seq_file *seq, __u8 *rec, __u32 len)
{
	if (len < HDR_LEN || len >= RITMA_REC_MAX)
		return;
	len = BOUND(len, RITMA_REC_MAX - 1);
	((struct ritma_hdr *)rec)->len = len;
	/* A record that does not fit the read's buffer is written again on the next read. */
	bpf_seq_write(seq, rec, len);
}

/* Visits every task once (user space reads the iterator's fd) and writes a present
 * record per process (snapshot_visible), argv copied from the task's memory, which is
 * why the program is sleepable. Some kernels' task iteration never yields the pid
 * namespace's init (this VM's hides pid 1 even from a tid-filtered iterator): the
 * first visit also writes the reader's namespace's child reaper, from pointers read
 * out of the kernel, which the argv copy cannot take (its argv_len stays 0, so it
 * decodes as truncated). User space drops it when the iteration yielded it too. */
SEC("iter.s/task")
int ritma_snapshot(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *t = ctx->task;
	struct ritma_exec *b;
	struct walk_buf *w;
	__u32 zero = 0, len;
	__u8 *rec;

	if (!t)
		return 0;
	rec = bpf_map_lookup_elem(&ritma_snap_record, &zero);
	w = bpf_map_lookup_elem(&ritma_snap_walk, &zero);
	if (!rec || !w)
		return 0;
	if (ctx->meta->seq_num == 0) {
		struct task_struct *me = (void *)bpf_get_current_task();
		struct pid *p = BPF_CORE_READ(me, thread_pid);
		unsigned int level = BPF_CORE_READ(p, level);
		struct upid u = {};
		struct task_struct *reaper;

		bpf_core_read(&u, sizeof(u), &p->numbers[level]);
		reaper = BPF_CORE_READ(u.ns, child_reaper);
		if (reaper && reaper != t && snapshot_visible(reaper))
			seq_put(seq, rec, present_record(rec, w, reaper));
	}
	if (!snapshot_visible(t))
		return 0;
	len = present_record(rec, w, t);
	b = (void *)(rec + HDR_LEN);
	if (b->argv_total > 0) {
		__u32 want = b->argv_total > RITMA_ARGV_BYTES ? RITMA_ARGV_BYTES : b->argv_total;
		__u64 arg_start = BPF_CORE_READ(t, mm, arg_start);
		/* 1 to RITMA_ARGV_BYTES, in a form the verifier bounds (the clamp above may be
		 * a select it cannot follow). */
		__u32 size = BOUND(want - 1, RITMA_ARGV_BYTES - 1) + 1;

		if (bpf_copy_from_user_task(rec + BOUND(len, 2 * RITMA_PATH_MAX - 1), size,
					    (void *)arg_start, t, 0) == 0) {
			b->argv_len = size;
			len += size;
		}
	}
	seq_put(seq, rec, len);
	return 0;
}

/* ---------- syscalls: enter stashes, exit emits ---------- */

static __always_inline bool skipped_ptrace_request(__u64 req)
{
	/* Read-only and resume requests: a debugger issues them by the thousand. */
	switch (req) {
	case 1: case 2: case 3:   /* PEEKTEXT, PEEKDATA, PEEKUSR */
	case 7: case 9:           /* CONT, SINGLESTEP */
	case 12: case 14:         /* GETREGS, GETFPREGS */
	case 24: case 25: case 30: case 31: case 32: /* SYSCALL, GET_THREAD_AREA, ARCH_PRCTL, SYSEMU* */
	case 0x4201: case 0x4202: case 0x4204: /* GETEVENTMSG, GETSIGINFO, GETREGSET */
	case 0x4207: case 0x4208: case 0x4209: case 0x420a: /* INTERRUPT, LISTEN, PEEKSIGINFO, GETSIGMASK */
	case 0x420e: case 0x420f: case 0x4211: /* GET_SYSCALL_INFO, GET_RSEQ_CONFIGURATION, GET_SYSCALL_USER_DISPATCH_CONFIG */
		return true;
	}
	return false;
}

static __always_inline void read_sockaddr(struct stash *s, const void *uaddr, __u64 ulen)
{
	__u32 len = ulen > sizeof(s->sa) ? sizeof(s->sa) : ulen;

	if (len < 2 || !uaddr)
		return;
	if (bpf_probe_read_user(s->sa, BOUND(len, 0xff), uaddr) == 0)
		s->sa_len = len;
}

static __always_inline int on_enter(__u32 sc, __u64 a0, __u64 a1, __u64 a2, __u64 a3,
				    __u64 a4, __u64 a5)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct stash s = {};

	if ((pid_tgid >> 32) == ritma_self_tgid) {
		beat(sc * 2);
		return 0;
	}
	if (sc == SC_PTRACE && skipped_ptrace_request(a0))
		return 0;
	if (sc == SC_BPF && a0 != BPF_PROG_LOAD_CMD)
		return 0;
	/* Only a dup that can land on fd 0-2: dup2 and dup3 onto one of them; dup and
	 * fcntl(F_DUPFD*), which take the lowest free fd, only while one of 0-2 at or above the
	 * lowest asked for is free. So the exits of all others need no stash lookup. */
	if ((sc == SC_DUP2 && (a1 > 2 || a0 == a1)) || (sc == SC_DUP3 && a1 > 2) ||
	    (sc == SC_FCNTL && ((a1 != F_DUPFD && a1 != F_DUPFD_CLOEXEC) || a2 > 2)))
		return 0;
	if ((sc == SC_DUP || sc == SC_FCNTL) && !stdio_free(sc == SC_DUP ? 0 : a2))
		return 0;
	s.sc = sc;
	s.args[0] = a0;
	s.args[1] = a1;
	s.args[2] = a2;
	s.args[3] = a3;
	s.args[4] = a4;
	s.args[5] = a5;
	if (sc == SC_CONNECT || sc == SC_BIND) {
		read_sockaddr(&s, (void *)a1, a2);
	} else if (sc == SC_OPENAT2) {
		/* struct open_how: flags, mode, resolve (u64 each) */
		bpf_probe_read_user(s.extra, 16, (void *)a2);
	} else if (sc == SC_CAPSET) {
		__u32 version = 0;
		__u32 data[6] = {};
		bpf_probe_read_user(&version, sizeof(version), (void *)a0);
		if (version == LINUX_CAPABILITY_VERSION_1)
			bpf_probe_read_user(data, 12, (void *)a1);
		else
			bpf_probe_read_user(data, 24, (void *)a1);
		/* __user_cap_data_struct: effective, permitted, inheritable; [1] holds bits 32-63 */
		s.extra[0] = data[0] | ((__u64)data[3] << 32);
		s.extra[1] = data[1] | ((__u64)data[4] << 32);
		s.extra[2] = data[2] | ((__u64)data[5] << 32);
	} else if (sc == SC_BPF) {
		__u32 prog_type = 0;
		bpf_probe_read_user(&prog_type, sizeof(prog_type), (void *)a1);
		s.extra[0] = prog_type;
		if (a2 >= BPF_ATTR_PROG_NAME_OFF + sizeof(s.name))
			bpf_probe_read_user(s.name, sizeof(s.name),
					    (void *)(a1 + BPF_ATTR_PROG_NAME_OFF));
	}
	if (bpf_map_update_elem(&ritma_stash, &pid_tgid, &s, BPF_ANY))
		count_drop(RITMA_DROP_STASH_FULL);
	else
		count_call(sc, CALL_STASHED);
	return 0;
}

static __always_inline void emit_open(struct stash *s, long ret)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	__u8 *rec = record_buf();
	struct ritma_open *b;
	__u32 off, len, at, res_len;
	__u16 kind;

	if (!rec)
		return;
	fill_header(rec, RITMA_OPEN);
	b = (void *)(rec + HDR_LEN);
	off = HDR_LEN + sizeof(*b);
	len = put_given(rec + off, (void *)s->args[1]);
	at = BOUND(off + len, 2 * RITMA_PATH_MAX - 1);
	/* An open that succeeded resolves to the file it opened, whatever the path said. */
	res_len = put_res(rec + at, t, ret >= 0 ? fd_file(t, ret) : NULL, (long)(int)s->args[0],
			  is_relative(rec + off, len), &kind);
	if (ignored_event_path(rec + off, len, rec + at, res_len, kind))
		return;
	b->result = ret;
	if (s->sc == SC_OPENAT2) {
		b->flags = s->extra[0];
		b->mode = s->extra[1];
	} else {
		b->flags = s->args[2];
		b->mode = s->args[3];
	}
	b->path_len = len;
	b->res_len = res_len;
	b->res_kind = kind;
	b->pad16 = 0;
	submit(rec, off + len + res_len);
}

static __always_inline void emit_unlink(struct stash *s, long ret)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	__u8 *rec = record_buf();
	struct ritma_unlink *b;
	__u32 off, len, at, res_len;
	long dfd = AT_FDCWD;
	const char *p = (void *)s->args[0];
	__u32 flags = 0;
	__u16 kind;

	if (!rec)
		return;
	if (s->sc == SC_UNLINKAT) {
		dfd = (int)s->args[0];
		p = (void *)s->args[1];
		flags = s->args[2];
	}
	fill_header(rec, RITMA_UNLINK);
	b = (void *)(rec + HDR_LEN);
	off = HDR_LEN + sizeof(*b);
	len = put_given(rec + off, p);
	at = BOUND(off + len, 2 * RITMA_PATH_MAX - 1);
	/* The file is gone: only a relative path's directory can be walked. */
	res_len = put_res(rec + at, t, NULL, dfd, is_relative(rec + off, len), &kind);
	if (ignored_event_path(rec + off, len, rec + at, res_len, kind))
		return;
	b->result = ret;
	b->flags = flags;
	b->path_len = len;
	b->res_len = res_len;
	b->res_kind = kind;
	b->pad16 = 0;
	b->pad = 0;
	submit(rec, off + len + res_len);
}

static __always_inline void emit_rename(struct stash *s, long ret)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	__u8 *rec = record_buf();
	struct ritma_rename *b;
	long old_dfd = AT_FDCWD, new_dfd = AT_FDCWD;
	const char *old_p = (void *)s->args[0], *new_p = (void *)s->args[1];
	__u32 off, old_len, new_len, old_at, new_at, old_res, new_res, flags = 0;
	__u16 old_kind, new_kind;

	if (!rec)
		return;
	if (s->sc != SC_RENAME) {
		old_dfd = (int)s->args[0];
		old_p = (void *)s->args[1];
		new_dfd = (int)s->args[2];
		new_p = (void *)s->args[3];
		if (s->sc == SC_RENAMEAT2)
			flags = s->args[4];
	}
	fill_header(rec, RITMA_RENAME);
	b = (void *)(rec + HDR_LEN);
	off = HDR_LEN + sizeof(*b);
	old_len = put_given(rec + off, old_p);
	new_len = put_given(rec + BOUND(off + old_len, 2 * RITMA_PATH_MAX - 1), new_p);
	old_at = BOUND(off + old_len + new_len, 4 * RITMA_PATH_MAX - 1);
	old_res = put_res(rec + old_at, t, NULL, old_dfd, is_relative(rec + off, old_len),
			  &old_kind);
	new_at = BOUND(old_at + old_res, 4 * RITMA_PATH_MAX - 1);
	new_res = put_res(rec + new_at, t, NULL, new_dfd,
			  is_relative(rec + BOUND(off + old_len, 2 * RITMA_PATH_MAX - 1), new_len),
			  &new_kind);
	/* The '/' ignored_event_path may write after the old directory lands on the new
	 * resolution's first byte, which is a '/' already (walked paths are absolute). */
	if (ignored_event_path(rec + BOUND(off + old_len, 2 * RITMA_PATH_MAX - 1), new_len,
			       rec + new_at, new_res, new_kind) &&
	    ignored_event_path(rec + off, old_len, rec + old_at, old_res, old_kind))
		return;
	b->result = ret;
	b->flags = flags;
	b->old_len = old_len;
	b->new_len = new_len;
	b->old_res_len = old_res;
	b->new_res_len = new_res;
	b->old_res_kind = old_kind;
	b->new_res_kind = new_kind;
	submit(rec, new_at + new_res);
}

/* Fills family, port and address bytes from a user sockaddr copy; false if too short to name
 * a family (then family 0, no bytes). */
static __always_inline bool sock_from_sa(__u8 *rec, struct ritma_sock *b, __u32 off,
					 const __u8 *sa, __u32 sa_len)
{
	__u16 family = sa_len >= 2 ? *(__u16 *)sa : AF_UNSPEC;

	b->family = family;
	b->port = 0;
	b->addr_len = 0;
	b->pad = 0;
	/* Too short to name a family (unreadable); AF_UNSPEC itself is a connect that dissolves
	 * the association, recorded with no address. */
	if (sa_len < 2)
		return false;
	if (family == AF_INET) {
		b->port = __builtin_bswap16(*(__u16 *)(sa + 2));
		__builtin_memcpy(rec + off, sa + 4, 4);
		b->addr_len = 4;
	} else if (family == AF_INET6) {
		b->port = __builtin_bswap16(*(__u16 *)(sa + 2));
		__builtin_memcpy(rec + off, sa + 8, 16);
		b->addr_len = 16;
	} else if (family == AF_UNIX) {
		__u32 n = sa_len - 2;
		if (n > RITMA_UNIX_PATH_MAX)
			n = RITMA_UNIX_PATH_MAX;
		bpf_probe_read_kernel(rec + off, BOUND(n, 0x7f), sa + 2);
		b->addr_len = n;
	}
	return true;
}

static __always_inline void emit_connect_bind(struct stash *s, long ret, __u16 kind)
{
	__u8 *rec = record_buf();
	struct ritma_sock *b;
	__u32 off;

	if (!rec)
		return;
	/* A sockaddr whose page was not resident at enter is resident after the kernel copied it. */
	if (s->sa_len == 0)
		read_sockaddr(s, (void *)s->args[1], s->args[2]);
	fill_header(rec, kind);
	b = (void *)(rec + HDR_LEN);
	off = HDR_LEN + sizeof(*b);
	/* An address too short to name a family (unreadable: the call fails with EFAULT, as
	 * the sensor's own canary calls do) is sent as family 0 without bytes: the call is an
	 * event, not a loss. */
	sock_from_sa(rec, b, off, s->sa, s->sa_len);
	b->result = ret;
	submit(rec, off + b->addr_len);
}

/* Writes at dst the peer address of sk (of the given family: IPv4, IPv6 or Unix, whose
 * peer's bound path it is) and its port in *port; returns the address's length. */
static __always_inline __u16 put_peer(__u8 *dst, struct sock *sk, __u16 family, __u16 *port)
{
	*port = 0;
	if (family == AF_INET) {
		__u32 a = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(dst, &a, 4);
		*port = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
		return 4;
	}
	if (family == AF_INET6) {
		/* All 16 bytes: BPF_CORE_READ_INTO would copy sizeof(*dst), one byte here. */
		bpf_core_read(dst, 16, &sk->__sk_common.skc_v6_daddr);
		*port = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
		return 16;
	}
	if (family == AF_UNIX) {
		struct sock *peer = BPF_CORE_READ((struct unix_sock *)sk, peer);
		struct unix_address *ua = BPF_CORE_READ((struct unix_sock *)peer, addr);
		int alen = BPF_CORE_READ(ua, len);
		__u32 n = alen > 2 ? alen - 2 : 0;
		if (n > RITMA_UNIX_PATH_MAX)
			n = RITMA_UNIX_PATH_MAX;
		/* name is a flexible array of sockaddr_un; its path follows the 2-byte family.
		 * (aya's CO-RE rejects an access through element 0 of a flexible array.) */
		const void *sun_path = (void *)ua +
				       bpf_core_field_offset(struct unix_address, name) + 2;
		if (n && bpf_probe_read_kernel(dst, BOUND(n, 0x7f), sun_path) != 0)
			n = 0;
		return n;
	}
	return 0;
}

static __always_inline void emit_accept(struct stash *s, long ret)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	__u8 *rec;
	struct ritma_sock *b;
	struct sock *sk;
	__u32 off;
	__u16 family, port = 0;

	/* A non-blocking accept with nothing pending is not a connection. */
	if (ret == -EAGAIN)
		return;
	rec = record_buf();
	if (!rec)
		return;
	fill_header(rec, RITMA_ACCEPT);
	b = (void *)(rec + HDR_LEN);
	off = HDR_LEN + sizeof(*b);
	/* The peer from the new socket; a failed accept names the listener's family only. */
	sk = fd_sock(t, ret >= 0 ? ret : (long)(int)s->args[0]);
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	b->pad = 0;
	/* No socket behind the descriptor (a bad fd: the call failed) reads as family 0: sent
	 * without an address, as an AF_UNSPEC one is. */
	if (!sk)
		family = AF_UNSPEC;
	b->family = family;
	b->addr_len = 0;
	if (ret >= 0) {
		b->addr_len = put_peer(rec + off, sk, family, &port);
	} else if (family == AF_INET || family == AF_INET6) {
		b->addr_len = family == AF_INET ? 4 : 16;
		__builtin_memset(rec + off, 0, 16);
	}
	b->port = port;
	b->result = ret;
	submit(rec, off + b->addr_len);
}

/* Finds the tracee the request addressed among the tracer's tracees (by the tracer's view
 * of its pid); returns it or NULL. */
static __always_inline struct task_struct *find_tracee(struct task_struct *t, __u32 vpid)
{
	unsigned int level = BPF_CORE_READ(t, thread_pid, level);
	struct list_head *head = (void *)t + bpf_core_field_offset(struct task_struct, ptraced);
	struct list_head *pos = BPF_CORE_READ(t, ptraced.next);
	int i;

	for (i = 0; i < 16; i++) {
		struct task_struct *c;
		struct pid *p;
		struct upid u = {};

		if (!pos || pos == head)
			break;
		c = (void *)pos - bpf_core_field_offset(struct task_struct, ptrace_entry);
		p = BPF_CORE_READ(c, thread_pid);
		bpf_core_read(&u, sizeof(u), &p->numbers[level & 7]);
		if (u.nr == vpid)
			return c;
		pos = BPF_CORE_READ(pos, next);
	}
	return NULL;
}

static __always_inline void emit_ptrace(struct stash *s, long ret)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	__u8 *rec = record_buf();
	struct ritma_ptrace *b;
	struct task_struct *tracee;

	if (!rec)
		return;
	fill_header(rec, RITMA_PTRACE);
	b = (void *)(rec + HDR_LEN);
	b->result = ret;
	b->request = s->args[0];
	b->target_pid = s->args[1];
	b->target_start_ns = 0;
	b->pad = 0;
	/* Once attached, the tracee is on our list: name its process by global pid and start. */
	tracee = find_tracee(t, s->args[1]);
	if (tracee) {
		b->target_pid = BPF_CORE_READ(tracee, tgid);
		b->target_start_ns = BPF_CORE_READ(tracee, group_leader, start_time);
	}
	submit(rec, HDR_LEN + sizeof(*b));
}

static __always_inline void emit_setid(struct stash *s, long ret)
{
	__u8 *rec = record_buf();
	struct ritma_setid *b;
	bool gid = s->sc == SC_SETGID || s->sc == SC_SETREGID || s->sc == SC_SETRESGID ||
		   s->sc == SC_SETFSGID;

	if (!rec)
		return;
	fill_header(rec, gid ? RITMA_SETGID : RITMA_SETUID);
	b = (void *)(rec + HDR_LEN);
	b->result = ret;
	b->ids[0] = s->args[0];
	b->ids[1] = ID_UNCHANGED;
	b->ids[2] = ID_UNCHANGED;
	switch (s->sc) {
	case SC_SETUID:
	case SC_SETGID:
		b->call = RITMA_ID_SET;
		break;
	case SC_SETFSUID:
	case SC_SETFSGID:
		b->call = RITMA_ID_SETFS;
		break;
	case SC_SETREUID:
	case SC_SETREGID:
		b->call = RITMA_ID_SETRE;
		b->ids[1] = s->args[1];
		break;
	default:
		b->call = RITMA_ID_SETRES;
		b->ids[1] = s->args[1];
		b->ids[2] = s->args[2];
		break;
	}
	submit(rec, HDR_LEN + sizeof(*b));
}

static __always_inline void emit_capset(struct stash *s, long ret)
{
	__u8 *rec = record_buf();
	struct ritma_capset *b;

	if (!rec)
		return;
	fill_header(rec, RITMA_CAPSET);
	b = (void *)(rec + HDR_LEN);
	b->result = ret;
	b->effective = s->extra[0];
	b->permitted = s->extra[1];
	b->inheritable = s->extra[2];
	submit(rec, HDR_LEN + sizeof(*b));
}

static __always_inline void emit_named(struct stash *s, long ret)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	__u8 *rec = record_buf();
	struct ritma_named *b;
	__u32 off, len = 0;
	__u16 kind;
	long n;

	if (!rec)
		return;
	kind = s->sc == SC_MEMFD_CREATE ? RITMA_MEMFD_CREATE :
	       s->sc == SC_BPF		? RITMA_BPF_PROG_LOAD :
					  RITMA_MODULE_LOAD;
	fill_header(rec, kind);
	b = (void *)(rec + HDR_LEN);
	off = HDR_LEN + sizeof(*b);
	b->result = ret;
	b->pad = 0;
	if (s->sc == SC_MEMFD_CREATE) {
		b->arg = s->args[1];
		n = bpf_probe_read_user_str(rec + off, RITMA_NAME_MAX, (void *)s->args[0]);
		len = n > 0 ? n - 1 : 0;
	} else if (s->sc == SC_BPF) {
		b->arg = s->extra[0];
		n = bpf_probe_read_kernel_str(rec + off, sizeof(s->name), s->name);
		len = n > 0 ? n - 1 : 0;
	} else if (s->sc == SC_FINIT_MODULE) {
		struct file *f = fd_file(t, (int)s->args[0]);
		struct walk_buf *w = walk_buf();
		b->arg = 1;
		if (f && w) {
			long l = walk_path(w, t, BPF_CORE_READ(f, f_path.dentry),
					   BPF_CORE_READ(f, f_path.mnt));
			if (l > 0 && l < RITMA_PATH_MAX) {
				bpf_probe_read_kernel(rec + off, BOUND(l, PATH_MASK), w->path);
				len = l & PATH_MASK;
			}
		}
	} else {
		/* init_module: the name sits inside the ELF image; not parsed in the kernel. */
		b->arg = 0;
	}
	b->name_len = len;
	submit(rec, off + len);
}

/* True for the calls that can put an fd on 0-2 by duplicating another. */
static __always_inline bool is_dup_sc(__u32 sc)
{
	return sc == SC_DUP || sc == SC_DUP2 || sc == SC_DUP3 || sc == SC_FCNTL;
}

/* fd_dup: an fd duplicated onto 0, 1 or 2 (ret, the new fd): what the source is (a
 * socket's peer too) and the process's executable, so a cone can tell a shell's stdio
 * turned into a network connection after it started. */
static __always_inline void emit_dup(struct stash *s, long ret)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	struct walk_buf *w;
	struct ritma_dup *b;
	struct file *f, *exe;
	__u8 *rec;
	__u32 off, mode;
	__u16 port = 0;
	long l;

	if (ret < 0 || ret > 2)
		return;
	rec = record_buf();
	if (!rec)
		return;
	fill_header(rec, RITMA_FD_DUP);
	b = (void *)(rec + HDR_LEN);
	off = HDR_LEN + sizeof(*b);
	b->oldfd = s->args[0];
	b->newfd = ret;
	b->call = s->sc == SC_DUP  ? RITMA_DUP_DUP :
		  s->sc == SC_DUP2 ? RITMA_DUP_DUP2 :
		  s->sc == SC_DUP3 ? RITMA_DUP_DUP3 :
		  s->args[1] == F_DUPFD ? RITMA_DUP_FCNTL :
					  RITMA_DUP_FCNTL_CLOEXEC;
	b->family = 0;
	b->addr_len = 0;
	b->pad = 0;
	/* The new fd is the source's file now: read it there. */
	f = fd_file(t, ret);
	mode = BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT;
	if (f && mode == S_IFSOCK) {
		struct socket *so = BPF_CORE_READ(f, private_data);
		struct sock *sk = BPF_CORE_READ(so, sk);
		__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
		b->source = RITMA_SRC_SOCKET;
		if (sk && (family == AF_INET || family == AF_INET6 || family == AF_UNIX)) {
			b->family = family;
			b->addr_len = put_peer(rec + off, sk, family, &port);
		}
	} else if (f && mode == S_IFIFO) {
		b->source = RITMA_SRC_PIPE;
	} else if (f && mode == S_IFREG) {
		b->source = RITMA_SRC_FILE;
	} else if (f && mode == S_IFCHR) {
		b->source = RITMA_SRC_CHAR;
	} else {
		b->source = RITMA_SRC_OTHER;
	}
	b->port = port;
	off += b->addr_len & 0x7f;
	b->exe_len = 0;
	exe = BPF_CORE_READ(t, mm, exe_file);
	w = walk_buf();
	if (exe && w) {
		l = walk_path(w, t, BPF_CORE_READ(exe, f_path.dentry), BPF_CORE_READ(exe, f_path.mnt));
		if (l > 0 && l < RITMA_PATH_MAX) {
			bpf_probe_read_kernel(rec + BOUND(off, 0xff), BOUND(l, PATH_MASK), w->path);
			b->exe_len = l & PATH_MASK;
		}
	}
	submit(rec, off + b->exe_len);
}

static __always_inline int on_exit(__u32 sc, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct stash *s;

	if ((pid_tgid >> 32) == ritma_self_tgid) {
		beat(sc * 2 + 1);
		return 0;
	}
	/* A dup that did not land on 0-2 reports nothing, and its enter stashed only if it
	 * could have: no lookup in the common case (a stash a failed or raced call left is
	 * replaced by the thread's next one, or deleted at its exit). */
	if (is_dup_sc(sc) && (ret < 0 || ret > 2))
		return 0;
	s = bpf_map_lookup_elem(&ritma_stash, &pid_tgid);

	/* The dup calls report only an fd landed on 0-2, and their enters stash only calls
	 * that may land there (fcntl only its F_DUPFD commands): an exit without a stash is a
	 * gap only when it did land, and for fcntl it cannot be told from another command. */
	if (is_dup_sc(sc) && (!s || s->sc != sc)) {
		if (sc != SC_FCNTL && ret >= 0 && ret <= 2)
			count_call(sc, CALL_ORPHAN);
		return 0;
	}
	if (!s) {
		count_call(sc, CALL_ORPHAN);
		return 0;
	}
	/* An entry from another syscall means this one's enter was not stashed. */
	if (s->sc != sc) {
		count_call(sc, CALL_ORPHAN);
	} else {
		count_call(sc, CALL_CONSUMED);
		switch (sc) {
		case SC_OPENAT:
		case SC_OPENAT2:
			emit_open(s, ret);
			break;
		case SC_UNLINKAT:
		case SC_UNLINK:
			emit_unlink(s, ret);
			break;
		case SC_RENAMEAT2:
		case SC_RENAMEAT:
		case SC_RENAME:
			emit_rename(s, ret);
			break;
		case SC_CONNECT:
			emit_connect_bind(s, ret, RITMA_CONNECT);
			break;
		case SC_BIND:
			emit_connect_bind(s, ret, RITMA_BIND);
			break;
		case SC_ACCEPT4:
		case SC_ACCEPT:
			emit_accept(s, ret);
			break;
		case SC_LISTEN: {
			__u8 *rec = record_buf();
			if (rec) {
				struct ritma_listen *b = (void *)(rec + HDR_LEN);
				fill_header(rec, RITMA_LISTEN);
				b->result = ret;
				b->backlog = s->args[1];
				b->pad = 0;
				submit(rec, HDR_LEN + sizeof(*b));
			}
			break;
		}
		case SC_PTRACE:
			emit_ptrace(s, ret);
			break;
		case SC_DUP:
		case SC_DUP2:
		case SC_DUP3:
		case SC_FCNTL:
			emit_dup(s, ret);
			break;
		case SC_CAPSET:
			emit_capset(s, ret);
			break;
		case SC_MEMFD_CREATE:
		case SC_INIT_MODULE:
		case SC_FINIT_MODULE:
		case SC_BPF:
			emit_named(s, ret);
			break;
		default:
			emit_setid(s, ret);
			break;
		}
	}
	bpf_map_delete_elem(&ritma_stash, &pid_tgid);
	return 0;
}

/* Reads only the syscall's own args: the kernel refuses to attach a tracepoint program
 * whose context reads reach past the event's fields. */
#define ARG(ctx, i, nargs) ((nargs) > (i) ? (ctx)->args[i] : 0)

#define SYSCALL_PAIR(name, sc, nargs)                                                  \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                    \
	int enter_##name(struct trace_event_raw_sys_enter *ctx)                        \
	{                                                                              \
		return on_enter(sc, ARG(ctx, 0, nargs), ARG(ctx, 1, nargs),            \
				ARG(ctx, 2, nargs), ARG(ctx, 3, nargs),                \
				ARG(ctx, 4, nargs), ARG(ctx, 5, nargs));               \
	}                                                                              \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                     \
	int exit_##name(struct trace_event_raw_sys_exit *ctx)                          \
	{                                                                              \
		return on_exit(sc, ctx->ret);                                          \
	}

SYSCALL_PAIR(openat, SC_OPENAT, 4)
SYSCALL_PAIR(openat2, SC_OPENAT2, 4)
SYSCALL_PAIR(unlinkat, SC_UNLINKAT, 3)
SYSCALL_PAIR(unlink, SC_UNLINK, 1)
SYSCALL_PAIR(renameat2, SC_RENAMEAT2, 5)
SYSCALL_PAIR(renameat, SC_RENAMEAT, 4)
SYSCALL_PAIR(rename, SC_RENAME, 2)
SYSCALL_PAIR(connect, SC_CONNECT, 3)
SYSCALL_PAIR(accept4, SC_ACCEPT4, 4)
SYSCALL_PAIR(accept, SC_ACCEPT, 3)
SYSCALL_PAIR(bind, SC_BIND, 3)
SYSCALL_PAIR(listen, SC_LISTEN, 2)
SYSCALL_PAIR(ptrace, SC_PTRACE, 4)
SYSCALL_PAIR(setuid, SC_SETUID, 1)
SYSCALL_PAIR(setgid, SC_SETGID, 1)
SYSCALL_PAIR(setreuid, SC_SETREUID, 2)
SYSCALL_PAIR(setregid, SC_SETREGID, 2)
SYSCALL_PAIR(setresuid, SC_SETRESUID, 3)
SYSCALL_PAIR(setresgid, SC_SETRESGID, 3)
SYSCALL_PAIR(setfsuid, SC_SETFSUID, 1)
SYSCALL_PAIR(setfsgid, SC_SETFSGID, 1)
SYSCALL_PAIR(capset, SC_CAPSET, 2)
SYSCALL_PAIR(memfd_create, SC_MEMFD_CREATE, 2)
SYSCALL_PAIR(init_module, SC_INIT_MODULE, 3)
SYSCALL_PAIR(finit_module, SC_FINIT_MODULE, 3)
SYSCALL_PAIR(bpf, SC_BPF, 3)
SYSCALL_PAIR(dup, SC_DUP, 1)
SYSCALL_PAIR(dup2, SC_DUP2, 2)
SYSCALL_PAIR(dup3, SC_DUP3, 3)
SYSCALL_PAIR(fcntl, SC_FCNTL, 3)

/* Kernels built without module support have no init_module/finit_module tracepoints:
 * the loader attaches these instead, which see every syscall and keep only those two. */
SEC("raw_tracepoint/sys_enter")
int raw_enter_module(struct bpf_raw_tracepoint_args *ctx)
{
	/* args[] is a flexible array: plain loads, since aya's CO-RE rejects indexing one. */
	const __u64 *args = (const __u64 *)ctx;
	long id = args[1];
	struct pt_regs *regs;

	if (id != NR_INIT_MODULE && id != NR_FINIT_MODULE)
		return 0;
	regs = (struct pt_regs *)args[0];
	return on_enter(id == NR_INIT_MODULE ? SC_INIT_MODULE : SC_FINIT_MODULE,
			BPF_CORE_READ(regs, di), BPF_CORE_READ(regs, si),
			BPF_CORE_READ(regs, dx), 0, 0, 0);
}

SEC("raw_tracepoint/sys_exit")
int raw_exit_module(struct bpf_raw_tracepoint_args *ctx)
{
	const __u64 *args = (const __u64 *)ctx;
	struct pt_regs *regs = (struct pt_regs *)args[0];
	long id = BPF_CORE_READ(regs, orig_ax);

	if (id != NR_INIT_MODULE && id != NR_FINIT_MODULE)
		return 0;
	return on_exit(id == NR_INIT_MODULE ? SC_INIT_MODULE : SC_FINIT_MODULE, (long)args[1]);
}
