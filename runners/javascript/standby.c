/*
 * The JavaScript runner's entry point, `/opt/sandboxd/runner/standby` (static, no libc of
 * the image's), in the two command lines of the runner contract (docs/runner-modes.md):
 *
 *   standby <input_dir> <output_dir>   cold: exec node on `run` with the same arguments.
 *   standby --standby                  warm, one job: relay between the supervisor's
 *                                      channel (fd 3) and the warm Node runner.
 *
 * Node can neither receive descriptors (SCM_RIGHTS) nor fork safely, so this relay owns
 * the channel. It starts `node run --standby-node` (the runner's warm half, "A") with
 *   fd 3  a stream socket to us (the control channel),
 *   fd 4  the write end of the pipe that becomes the Jest process's stdout,
 *   fd 5  the write end of the pipe that becomes its stderr,
 * and A starts the Jest process ("B", jest-warm.js) with those as its 1 and 2, B loads
 * Jest and runs it once on an exercise of its own, and A says `y` on the control channel
 * once B is ready. We then say `y` to the supervisor, take the `R` frame (the job's three
 * descriptors and its JSON), pass the JSON on to A (4-byte little-endian length, then
 * the bytes), and copy what B writes to its stdout and stderr into the job's stdout and
 * stderr, where the daemon counts it against the output limit. A answers with
 * `status=<B's wait status>\n\n<results.json>` and ends; we send `d` with that status,
 * A's rusage (A has reaped B, so B's is in it), and the results, then exit 0.
 *
 * If A ends without its answer (the tests killed it), we end the same way (same signal
 * or exit code): a standby runner's own end is then the job's end. We never run job code
 * and are not dumpable, so the tests (the same uid) cannot reach the channel or the job's
 * descriptors through /proc or ptrace.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NODE "/usr/bin/node"
#define RUN "/opt/sandboxd/runner/run"
#define CHANNEL 3
#define MAX_FRAME (16u << 20)
#define MAX_RESULT (9u << 20)

static void die(const char *what) {
    dprintf(2, "sandboxd javascript standby: %s: %s\n", what, strerror(errno));
    _exit(70);
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_exactly(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int send_frame(char type, const char *payload, size_t n) {
    unsigned char head[5];
    uint32_t len = (uint32_t)n + 1;
    head[0] = len & 0xff;
    head[1] = (len >> 8) & 0xff;
    head[2] = (len >> 16) & 0xff;
    head[3] = (len >> 24) & 0xff;
    head[4] = (unsigned char)type;
    if (write_all(CHANNEL, head, 5) < 0) return -1;
    return n ? write_all(CHANNEL, payload, n) : 0;
}

/* One frame from the supervisor, with the descriptors that came with its header. */
static int receive_frame(char *type, char **payload, size_t *n, int fds[3], int *nfds) {
    unsigned char head[5];
    char control[CMSG_SPACE(8 * sizeof(int))];
    struct iovec iov = {head, 5};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t r;
    do r = recvmsg(CHANNEL, &msg, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return -1;
    *nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *got = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (*nfds < 3) fds[(*nfds)++] = got[i];
            else { close(got[i]); (*nfds)++; }
        }
    }
    if (r < 5 && read_exactly(CHANNEL, head + r, 5 - (size_t)r) < 0) return -1;
    uint32_t len = head[0] | (uint32_t)head[1] << 8 | (uint32_t)head[2] << 16 | (uint32_t)head[3] << 24;
    if (len < 1 || len > MAX_FRAME) return -1;
    *type = (char)head[4];
    *n = len - 1;
    *payload = malloc(*n + 1);
    if (!*payload) return -1;
    if (*n && read_exactly(CHANNEL, *payload, *n) < 0) return -1;
    return 0;
}

/* End as A ended: its signal, or its exit code (never 0: it did not answer). */
static void end_like(int status) {
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigset_t all;
        sigemptyset(&all);
        sigaddset(&all, sig);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        prctl(PR_SET_DUMPABLE, 0); /* no core, whatever the signal */
        kill(getpid(), sig);
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 70;
    _exit(code ? code : 70);
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copy what is in `from` now to `to` (or drop it when to < 0); 0 at end of file. */
static int pump(int from, int to) {
    char buf[65536];
    ssize_t r;
    do r = read(from, buf, sizeof buf);
    while (r < 0 && errno == EINTR);
    if (r < 0) return errno == EAGAIN ? 1 : 0;
    if (r == 0) return 0;
    if (to >= 0 && write_all(to, buf, (size_t)r) < 0) {
        /* the job's stream is gone (the daemon stopped reading): keep draining */
    }
    return 1;
}

static int standby(void) {
    prctl(PR_SET_DUMPABLE, 0);
    signal(SIGPIPE, SIG_IGN);
    int ctl[2], out[2], err[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0) die("socketpair");
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) die("pipe");
    pid_t a = fork();
    if (a < 0) die("fork");
    if (a == 0) {
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        /* out of the way of 0-5 first, then into place (dup2 clears close-on-exec) */
        int c = fcntl(ctl[1], F_DUPFD_CLOEXEC, 10), o = fcntl(out[1], F_DUPFD_CLOEXEC, 10),
            e = fcntl(err[1], F_DUPFD_CLOEXEC, 10);
        if (devnull < 0 || c < 0 || o < 0 || e < 0) _exit(71);
        if (dup2(devnull, 0) < 0 || dup2(c, 3) < 0 || dup2(o, 4) < 0 || dup2(e, 5) < 0) _exit(71);
        char *argv[] = {"node", RUN, "--standby-node", NULL};
        execv(NODE, argv);
        _exit(127);
    }
    close(ctl[1]);
    close(out[1]);
    close(err[1]);
    close(0);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);

    /* Until A is ready: B's output goes to our own (the daemon's debug log). */
    int job_out = 1, job_err = 2, out_open = 1, err_open = 1;
    char *result = malloc(MAX_RESULT);
    size_t result_n = 0;
    if (!result) die("malloc");
    int ready = 0, job = 0, ctl_open = 1;
    for (;;) {
        struct pollfd p[4] = {
            {ctl_open ? ctl[0] : -1, POLLIN, 0},
            {out_open ? out[0] : -1, POLLIN, 0},
            {err_open ? err[0] : -1, POLLIN, 0},
            {ready && !job ? CHANNEL : -1, POLLIN, 0},
        };
        if (!ctl_open) break;
        if (poll(p, 4, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (p[1].revents) out_open = pump(out[0], job_out);
        if (p[2].revents) err_open = pump(err[0], job_err);
        if (p[0].revents) {
            char buf[65536];
            ssize_t r = read(ctl[0], buf, sizeof buf);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                ctl_open = 0;
                continue;
            }
            size_t off = 0;
            if (!ready) {
                if (buf[0] != 'y') break; /* not A speaking as agreed: end below */
                ready = 1;
                off = 1;
                if (send_frame('y', NULL, 0) < 0) goto gone;
            }
            if (!job && (size_t)r > off) break; /* A says more before its job: end */
            size_t take = (size_t)r - off;
            if (take > MAX_RESULT - result_n) take = MAX_RESULT - result_n;
            memcpy(result + result_n, buf + off, take);
            result_n += take;
        }
        if (p[3].revents) {
            char type, *payload = NULL;
            size_t n = 0;
            int fds[3], nfds = 0;
            if (receive_frame(&type, &payload, &n, fds, &nfds) < 0) goto gone;
            if (type != 'R' || nfds != 3) {
                for (int i = 0; i < nfds && i < 3; i++) close(fds[i]);
                goto gone; /* not the supervisor speaking: end, the sandbox is retired */
            }
            close(fds[0]); /* the Jest process's stdin is /dev/null, as when cold */
            job_out = fds[1];
            job_err = fds[2];
            job = 1;
            unsigned char len[4] = {n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >> 24) & 0xff};
            if (write_all(ctl[0], len, 4) < 0 || write_all(ctl[0], payload, n) < 0) {
                /* A is gone: its end is seen below */
            }
            free(payload);
        }
    }
    /* A answered (or ended). What B wrote before it ended is in the pipes now: copy it
     * before `d`, without waiting for a process the tests left behind holding them. */
    for (long long until = now_ms() + 100; out_open || err_open;) {
        if (out_open) out_open = pump(out[0], job_out) && out_open;
        if (err_open) err_open = pump(err[0], job_err) && err_open;
        struct pollfd p[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
        long long left = until - now_ms();
        if (left <= 0 || poll(p, 2, (int)left) <= 0) break;
    }
    close(ctl[0]);
    if (!job) kill(a, SIGKILL); /* ended or spoke out of turn before its job: no job ran */
    int status;
    struct rusage ru;
    while (wait4(a, &status, 0, &ru) < 0) {
        if (errno != EINTR) die("wait4");
    }
    if (!job) end_like(status);
    /* A's answer: "status=<n>\n\n<results>" and a clean exit, else its end is the job's */
    char *blank = result_n ? memmem(result, result_n, "\n\n", 2) : NULL;
    long b_status;
    char *endp;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !blank || result_n < 8
        || memcmp(result, "status=", 7) != 0
        || (b_status = strtol(result + 7, &endp, 10), endp != blank) || b_status < 0)
        end_like(status);
    size_t body = result_n - (size_t)(blank + 2 - result);
    char head[256];
    int h = snprintf(head, sizeof head, "status=%ld\nutime_us=%lld\nstime_us=%lld\nmaxrss_kb=%ld\n\n",
                     b_status, (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
                     (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, ru.ru_maxrss);
    size_t total = (size_t)h + body;
    char *msg = malloc(total);
    if (!msg) die("malloc");
    memcpy(msg, head, (size_t)h);
    memcpy(msg + h, blank + 2, body);
    send_frame('d', msg, total); /* the supervisor reads it even once we have ended */
    return 0;
gone:
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    return 2;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--standby") == 0) return standby();
    if (argc == 3 && argv[1][0] != '-') {
        char *args[] = {"node", RUN, argv[1], argv[2], NULL};
        execv(NODE, args);
        dprintf(2, "sandboxd javascript runner: cannot run %s: %s\n", NODE, strerror(errno));
        return 127;
    }
    dprintf(2, "usage: standby <input_dir> <output_dir> | standby --standby\n");
    return 2;
}
