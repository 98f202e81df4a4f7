// ritma-overhead-load: the syscall-heavy workload of the live-capture overhead benchmark.
//
// Each of --jobs worker processes runs iterations of
//   --execs    fork + execve("/bin/true") + waitpid
//   --opens    openat + close of one of 16 existing files
//   --renames  openat(O_CREAT) + close, renameat2, unlinkat
//   --connects socket, connect to its own loopback listener, accept4, close both
//   --nulls    getppid (hooked by no sensor's rules: the per-syscall cost of a sensor)
//   --fcntls   fcntl(F_GETFL) (hooked by Ritma, which reports only F_DUPFD onto fds 0-2: the
//              cost of its fcntl hooks to a program that never duplicates onto stdio)
// until --iterations (per worker) or --duration is reached, paced to --rate nominal
// events/s in total (0: as fast as it can). It prints one JSON line on stdout with the
// nominal event count, wall time and the CPU of itself and all its children.
//
// Nominal events are what Ritma reports for these calls: an exec costs 5 (fork, exec,
// exit, and the dynamic loader's 2 opens: /etc/ld.so.cache and libc.so.6, with an empty
// environment), an open 1, a rename round 3, a connect round 2 (connect, accept), a null
// call 0. Per worker once: fork, exit, bind, listen, 16 file creations, 16 unlinks and the
// directory's unlinkat.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FILES 16
#define EXEC_EVENTS 5
#define RENAME_EVENTS 3
#define CONNECT_EVENTS 2
// fork, exit, bind, listen, FILES creations, FILES unlinks, the directory's unlinkat.
#define WORKER_FIXED_EVENTS (4 + 2 * FILES + 1)

struct options {
    uint64_t iterations; // per worker; 0 = until --duration
    double duration;     // seconds; 0 = until --iterations
    double rate;         // nominal events/s over all workers; 0 = flat out
    unsigned jobs;
    unsigned execs, opens, renames, connects, nulls, fcntls;
    const char *dir;
};

// Filled by the workers, read by the parent after they exit.
struct worker_result {
    uint64_t iterations;
    uint64_t nominal_events;
    int failed; // errno of the first failed call, 0 when none
    char failed_call[32];
};

static void die(const char *what) {
    fprintf(stderr, "ritma-overhead-load: %s: %s\n", what, strerror(errno));
    exit(2);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t) {
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static uint64_t iteration_events(const struct options *o) {
    return (uint64_t)o->execs * EXEC_EVENTS + o->opens + (uint64_t)o->renames * RENAME_EVENTS +
           (uint64_t)o->connects * CONNECT_EVENTS;
}

#define CHECK(cond, call)                                                                     \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            res->failed = errno ? errno : -1;                                                 \
            snprintf(res->failed_call, sizeof res->failed_call, "%s", call);                  \
            return;                                                                           \
        }                                                                                     \
    } while (0)

static void worker(const struct options *o, unsigned index, double start,
                   struct worker_result *res) {
    char dir[4096];
    char files[FILES][4200];
    char tmp_a[4200], tmp_b[4200];
    snprintf(dir, sizeof dir, "%s/ritma-load.%d.XXXXXX", o->dir, (int)getpid());
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    for (int i = 0; i < FILES; i++) {
        snprintf(files[i], sizeof files[i], "%s/f%02d", dir, i);
        int fd = open(files[i], O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        CHECK(fd >= 0, "open(create)");
        close(fd);
    }
    snprintf(tmp_a, sizeof tmp_a, "%s/a", dir);
    snprintf(tmp_b, sizeof tmp_b, "%s/b", dir);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(listener >= 0, "socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(listener, (struct sockaddr *)&addr, sizeof addr) == 0, "bind");
    CHECK(listen(listener, 128) == 0, "listen");
    socklen_t addr_len = sizeof addr;
    CHECK(getsockname(listener, (struct sockaddr *)&addr, &addr_len) == 0, "getsockname");

    char *const child_argv[] = {"true", NULL};
    char *const child_envp[] = {NULL};
    // Closing with a zero linger sends RST: no TIME_WAIT, so ports never run out.
    struct linger no_linger = {.l_onoff = 1, .l_linger = 0};

    const uint64_t per_iter = iteration_events(o);
    // This worker's share of the rate, and its phase so workers do not burst together.
    const double interval =
        o->rate > 0 && per_iter > 0 ? (double)per_iter * o->jobs / o->rate : 0.0;
    double next = start + interval * index / (o->jobs ? o->jobs : 1);
    const double deadline = o->duration > 0 ? start + o->duration : 0.0;

    for (uint64_t it = 0; o->iterations == 0 || it < o->iterations; it++) {
        if (deadline > 0 || interval > 0) {
            double t = now_s();
            if (deadline > 0 && t >= deadline)
                break;
            if (interval > 0) {
                if (next > t)
                    sleep_until(next);
                next += interval;
            }
        }
        for (unsigned i = 0; i < o->execs; i++) {
            pid_t pid = fork();
            CHECK(pid >= 0, "fork");
            if (pid == 0) {
                execve("/bin/true", child_argv, child_envp);
                _exit(127);
            }
            int status;
            CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
            errno = 0;
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exec /bin/true");
        }
        for (unsigned i = 0; i < o->opens; i++) {
            int fd = open(files[i % FILES], O_RDONLY | O_CLOEXEC);
            CHECK(fd >= 0, "open");
            close(fd);
        }
        for (unsigned i = 0; i < o->renames; i++) {
            int fd = open(tmp_a, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
            CHECK(fd >= 0, "open(tmp)");
            close(fd);
            CHECK(syscall(SYS_renameat2, AT_FDCWD, tmp_a, AT_FDCWD, tmp_b, 0) == 0, "renameat2");
            CHECK(unlinkat(AT_FDCWD, tmp_b, 0) == 0, "unlinkat");
        }
        for (unsigned i = 0; i < o->connects; i++) {
            int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            CHECK(c >= 0, "socket(client)");
            CHECK(setsockopt(c, SOL_SOCKET, SO_LINGER, &no_linger, sizeof no_linger) == 0,
                  "setsockopt");
            CHECK(connect(c, (struct sockaddr *)&addr, sizeof addr) == 0, "connect");
            int a = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
            CHECK(a >= 0, "accept4");
            close(c);
            close(a);
        }
        for (unsigned i = 0; i < o->nulls; i++)
            syscall(SYS_getppid);
        for (unsigned i = 0; i < o->fcntls; i++)
            CHECK(fcntl(listener, F_GETFL) >= 0, "fcntl");
        res->iterations = it + 1;
        res->nominal_events += per_iter;
    }
    close(listener);
    for (int i = 0; i < FILES; i++)
        CHECK(unlinkat(AT_FDCWD, files[i], 0) == 0, "unlinkat(file)");
    CHECK(unlinkat(AT_FDCWD, dir, AT_REMOVEDIR) == 0, "unlinkat(dir)");
    res->nominal_events += WORKER_FIXED_EVENTS;
}

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

static int parse_u(const char *s, unsigned *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > 1000000000UL)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: ritma-overhead-load [--iterations N] [--duration S] [--rate EV_PER_S]\n"
            "         [--jobs J] [--execs K] [--opens K] [--renames K] [--connects K]\n"
            "         [--nulls K] [--fcntls K] [--dir DIR]\n"
            "  at least one of --iterations (per worker) and --duration must be given\n");
    exit(2);
}

int main(int argc, char **argv) {
    struct options o = {.jobs = 1, .execs = 1, .opens = 20, .renames = 2, .connects = 5,
                        .dir = "/dev/shm"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        char *end;
        int bad = 0;
        if (!strcmp(a, "--iterations")) {
            errno = 0;
            o.iterations = strtoull(v, &end, 10);
            bad = errno || *end || end == v;
        } else if (!strcmp(a, "--duration")) {
            o.duration = strtod(v, &end);
            bad = *end || end == v || !(o.duration >= 0);
        } else if (!strcmp(a, "--rate")) {
            o.rate = strtod(v, &end);
            bad = *end || end == v || !(o.rate >= 0);
        } else if (!strcmp(a, "--jobs")) {
            bad = parse_u(v, &o.jobs) || o.jobs == 0 || o.jobs > 256;
        } else if (!strcmp(a, "--execs")) {
            bad = parse_u(v, &o.execs);
        } else if (!strcmp(a, "--opens")) {
            bad = parse_u(v, &o.opens);
        } else if (!strcmp(a, "--renames")) {
            bad = parse_u(v, &o.renames);
        } else if (!strcmp(a, "--connects")) {
            bad = parse_u(v, &o.connects);
        } else if (!strcmp(a, "--nulls")) {
            bad = parse_u(v, &o.nulls);
        } else if (!strcmp(a, "--fcntls")) {
            bad = parse_u(v, &o.fcntls);
        } else if (!strcmp(a, "--dir")) {
            o.dir = v;
        } else {
            usage();
        }
        if (bad) {
            fprintf(stderr, "ritma-overhead-load: bad value for %s: %s\n", a, v);
            exit(2);
        }
    }
    if (o.iterations == 0 && o.duration == 0)
        usage();

    struct worker_result *results = mmap(NULL, sizeof *results * o.jobs, PROT_READ | PROT_WRITE,
                                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (results == MAP_FAILED)
        die("mmap");
    memset(results, 0, sizeof *results * o.jobs);

    double start = now_s();
    for (unsigned j = 0; j < o.jobs; j++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork(worker)");
        if (pid == 0) {
            worker(&o, j, start, &results[j]);
            _exit(results[j].failed ? 1 : 0);
        }
    }
    int failed = 0;
    for (unsigned j = 0; j < o.jobs; j++) {
        int status;
        if (wait(&status) < 0)
            die("wait");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    }
    double wall = now_s() - start;

    struct rusage self, children;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    uint64_t iterations = 0, events = 0;
    for (unsigned j = 0; j < o.jobs; j++) {
        iterations += results[j].iterations;
        // A worker's own fork and exit count even when it failed early.
        events += results[j].nominal_events;
        if (results[j].failed)
            fprintf(stderr, "ritma-overhead-load: worker %u: %s failed: %s\n", j,
                    results[j].failed_call,
                    results[j].failed > 0 ? strerror(results[j].failed) : "bad status");
    }
    double user = tv_s(self.ru_utime) + tv_s(children.ru_utime);
    double sys = tv_s(self.ru_stime) + tv_s(children.ru_stime);
    printf("{\"jobs\":%u,\"iterations\":%llu,\"events_per_iteration\":%llu,"
           "\"nominal_events\":%llu,\"syscalls_null\":%llu,\"wall_s\":%.6f,\"user_s\":%.6f,"
           "\"sys_s\":%.6f,\"cpu_s\":%.6f,\"rate\":%.1f,\"target_rate\":%.1f,\"failed\":%s}\n",
           o.jobs, (unsigned long long)iterations, (unsigned long long)iteration_events(&o),
           (unsigned long long)events, (unsigned long long)(iterations * o.nulls), wall, user,
           sys, user + sys, wall > 0 ? (double)events / wall : 0.0, o.rate,
           failed ? "true" : "false");
    return failed ? 1 : 0;
}
