/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Ring-buffer wire format shared by ritma.bpf.c and the Rust decoder (src/wire.rs).
 * Every record is a ritma_hdr, then the fixed body of its kind, then the body's
 * variable-length bytes in the order the body lists their lengths. All integers are
 * little-endian (the host's order on x86_64); README.md gives every offset. */
#ifndef RITMA_EVENT_H
#define RITMA_EVENT_H

#define RITMA_WIRE_VERSION 2

/* Bounds, shared with the decoder. */
#define RITMA_PATH_MAX 4096  /* a path buffer, NUL included: paths are at most 4095 bytes */
#define RITMA_NAME_MAX 256   /* memfd name, BPF program name (NUL included) */
#define RITMA_ARGV_BYTES 8192 /* argv bytes copied from the new mm at exec */
#define RITMA_UNIX_PATH_MAX 108
#define RITMA_REC_MAX 32768  /* largest record, and the scratch buffer's size */

/* Kinds equal the raw model's EventType numbers (FORMAT.md §3). */
enum ritma_kind {
	RITMA_EXEC = 1,
	RITMA_FORK = 2,
	RITMA_EXIT = 3,
	RITMA_OPEN = 4,
	RITMA_UNLINK = 5,
	RITMA_RENAME = 6,
	RITMA_CONNECT = 7,
	RITMA_ACCEPT = 8,
	RITMA_BIND = 9,
	RITMA_LISTEN = 10,
	RITMA_PTRACE = 11,
	RITMA_SETUID = 12,
	RITMA_SETGID = 13,
	RITMA_CAPSET = 14,
	RITMA_MEMFD_CREATE = 15,
	RITMA_MODULE_LOAD = 16,
	RITMA_BPF_PROG_LOAD = 17,
	RITMA_PRESENT = 19, /* 18 is trigger, which the sensor never emits */
	RITMA_FD_DUP = 20,
};

/* Indexes of the per-CPU counters (ritma_drops): the drops by reason, then the records the
 * ring buffer took. Their sum is every event the programs produced: user space accounts for
 * each as an event or a loss in the WAL, so what a kill left unaccounted is known. */
enum ritma_drop_reason {
	RITMA_DROP_RINGBUF_FULL = 0, /* bpf_ringbuf_output failed: no room */
	RITMA_DROP_STASH_FULL = 1,   /* syscall args could not be stashed: its exit is lost */
	RITMA_DROP_UNREPRESENTABLE = 2, /* kept for the layout: no program counts it any more */
	RITMA_SUBMITTED = 3,         /* not a drop: a record bpf_ringbuf_output took */
	RITMA_DROP_REASONS = 4,
};

/* Which set*id call (the raw model's IdCall). */
enum ritma_id_call {
	RITMA_ID_SET = 1,
	RITMA_ID_SETRE = 2,
	RITMA_ID_SETRES = 3,
	RITMA_ID_SETFS = 4,
};

struct ritma_hdr {
	__u16 kind;
	__u16 version;
	__u32 len; /* the whole record, header included */
	__u64 mono_ns;
	__u64 start_ns;
	__u64 parent_start_ns;
	__u64 cgroup_id;
	__u64 mnt_ns;
	__u64 pid_ns;
	__u64 net_ns;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u32 euid;
	__u32 egid;
	char comm[16];
	__u32 pad;
};

/* What a path's res bytes hold (res_kind): how user space makes the path canonical. */
enum ritma_res_kind {
	RITMA_RES_NONE = 0, /* nothing: the given path stands alone (absolute, or no walk) */
	RITMA_RES_FILE = 1, /* the file the kernel used, walked from the task's root */
	RITMA_RES_DIR = 2,  /* the directory a relative given path is relative to (dirfd or cwd) */
};

/* Then filename_len bytes (the filename as given to exec), res_len bytes (its
 * resolution, res_kind), then argv_len bytes (the NUL-separated argv block).
 * A present record (the process snapshot) has the same body, filename being the
 * executable's walked path, res_len 0 and stdio_net 0. */
struct ritma_exec {
	__u64 exe_dev;
	__u64 exe_ino;
	__u32 argv_total;
	__u16 filename_len;
	__u16 argv_len;
	__u16 res_len;
	__u16 res_kind;
	__u8 stdio_net; /* bit i: fd i (0-2) is an IPv4/IPv6 socket (exec; 0 for present) */
	__u8 pad8;
	__u16 pad16;
};

struct ritma_fork {
	__u32 child_pid;
	__u32 pad;
	__u64 child_start_ns;
};

struct ritma_exit {
	__s32 code;
	__u32 pad;
};

/* Then path_len bytes (the path as given), then res_len bytes (its resolution). */
struct ritma_open {
	__s64 result;
	__u32 flags;
	__u32 mode;
	__u16 path_len;
	__u16 res_len;
	__u16 res_kind;
	__u16 pad16;
};

/* Then path_len bytes (as given), then res_len bytes (its resolution). */
struct ritma_unlink {
	__s64 result;
	__u32 flags;
	__u16 path_len;
	__u16 res_len;
	__u16 res_kind;
	__u16 pad16;
	__u32 pad;
};

/* Then old_len, new_len bytes (the paths as given), then old_res_len, new_res_len bytes
 * (their resolutions). */
struct ritma_rename {
	__s64 result;
	__u32 flags;
	__u16 old_len;
	__u16 new_len;
	__u16 old_res_len;
	__u16 new_res_len;
	__u16 old_res_kind;
	__u16 new_res_kind;
};

/* connect, accept, bind. Then addr_len bytes. */
struct ritma_sock {
	__s64 result;
	__u16 family;
	__u16 port; /* host order */
	__u16 addr_len;
	__u16 pad;
};

struct ritma_listen {
	__s64 result;
	__u32 backlog;
	__u32 pad;
};

struct ritma_ptrace {
	__s64 result;
	__u64 request;
	__u64 target_start_ns;
	__u32 target_pid;
	__u32 pad;
};

/* setuid and setgid families. */
struct ritma_setid {
	__s64 result;
	__u32 call;
	__u32 ids[3];
};

struct ritma_capset {
	__s64 result;
	__u64 effective;
	__u64 permitted;
	__u64 inheritable;
};

/* memfd_create (arg: flags), module load (arg: 1 from fd), BPF prog load (arg: prog type).
 * Then name_len bytes. */
struct ritma_named {
	__s64 result;
	__u32 arg;
	__u16 name_len;
	__u16 pad;
};

/* Which call duplicated an fd onto 0-2 (the raw model's DupCall). */
enum ritma_dup_call {
	RITMA_DUP_DUP = 1,
	RITMA_DUP_DUP2 = 2,
	RITMA_DUP_DUP3 = 3,
	RITMA_DUP_FCNTL = 4,         /* F_DUPFD */
	RITMA_DUP_FCNTL_CLOEXEC = 5, /* F_DUPFD_CLOEXEC */
};

/* What the duplicated fd is (the raw model's DupSource), from its inode's type. */
enum ritma_dup_source {
	RITMA_SRC_SOCKET = 1,
	RITMA_SRC_PIPE = 2, /* a pipe or FIFO */
	RITMA_SRC_FILE = 3, /* a regular file */
	RITMA_SRC_CHAR = 4, /* a character device (a terminal, /dev/null) */
	RITMA_SRC_OTHER = 5,
};

/* fd_dup: a successful dup, dup2, dup3 or fcntl F_DUPFD* whose new fd is 0, 1 or 2. Then
 * addr_len bytes (a socket's peer address, as ritma_sock's), then exe_len bytes (the
 * process's executable, walked from its root; 0 when the walk failed). */
struct ritma_dup {
	__u32 oldfd;
	__u32 newfd;
	__u16 call;
	__u16 source;
	__u16 family; /* a socket's family, else 0 */
	__u16 port;   /* host order */
	__u16 addr_len;
	__u16 exe_len;
	__u32 pad;
};

/* Key of the ignored-prefix LPM trie: prefixlen in bits, then the prefix bytes. */
#define RITMA_PREFIX_MAX 256
struct ritma_prefix_key {
	__u32 prefixlen;
	__u8 data[RITMA_PREFIX_MAX];
};

#endif
