/*
 * sandboxd-supervisor: the trusted process inside every sandbox.
 *
 * Started once with the container (its command, under docker-init), it is the only
 * thing the daemon talks to on a job's path: it starts each job's process as the job
 * user, feeds its stdin, passes its output on as it comes, and reports its end the
 * moment it happens. It runs as its own uid (not the job user's), not dumpable, with
 * CAP_SETUID and CAP_SETGID alone (to switch a child to the job user), and its channel
 * is a Unix socket in a directory only its uid may enter, accepted once, from a peer
 * outside the sandbox's pid namespace (the daemon on the host). The protocol is in
 * README.md beside this file; the daemon's side is sandboxd/sandbox/supervisor.py.
 *
 * Language-agnostic and static: it needs nothing of the image but the kernel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROTOCOL_VERSION 1
#define MAX_FRAME (16u << 20)      /* the largest message either way */
#define CHUNK (64u << 10)          /* output passed on in messages of at most this */
#define GATHER_MS 20               /* output waits this long for more before it goes */
#define MAX_ARGS 256
#define MAX_ENV 256
#define MAX_FIELD (64u << 10)

/* Messages to the daemon. */
#define M_HELLO 'h'
#define M_STARTED 's'
#define M_FAILED 'f'
#define M_STDOUT 'o'
#define M_STDERR 'e'
#define M_REPORT 't'
#define M_EXIT 'x'
#define M_WARM 'w'
#define M_PONG 'p'
#define M_LOG 'l'
/* Messages from the daemon. */
#define C_RUN 'R'
#define C_WARM 'W'
#define C_PING 'P'
/* Between the supervisor and a warm runner (fork or standby). */
#define R_READY 'y'
#define R_DONE 'd'
#define R_RUN 'R'

static uid_t job_uid, own_uid;
static gid_t job_gid, own_gid;

/* ---- small helpers ------------------------------------------------------------------- */

static void die(const char *what) {
    fprintf(stderr, "sandboxd-supervisor: %s: %s\n", what, strerror(errno));
    _exit(70);
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_nonblock(int fd) {
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static int write_full(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pfd = {fd, POLLOUT, 0};
                poll(&pfd, 1, -1);
                continue;
            }
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

struct buf {
    char *data;
    size_t len, cap;
};

static int buf_add(struct buf *b, const void *data, size_t len) {
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return -1;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void buf_drop(struct buf *b, size_t n) {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static void buf_free(struct buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- the daemon's channel ------------------------------------------------------------ */

static int client = -1;

static int send_frame(int fd, char type, const void *payload, size_t len) {
    unsigned char head[5];
    uint32_t n = (uint32_t)len + 1;
    head[0] = n & 0xff;
    head[1] = (n >> 8) & 0xff;
    head[2] = (n >> 16) & 0xff;
    head[3] = (n >> 24) & 0xff;
    head[4] = (unsigned char)type;
    if (write_full(fd, head, 5) < 0)
        return -1;
    return len ? write_full(fd, payload, len) : 0;
}

static void to_daemon(char type, const void *payload, size_t len) {
    if (client >= 0 && send_frame(client, type, payload, len) < 0)
        _exit(0); /* the daemon is gone: so is this sandbox */
}

static void to_daemon_text(char type, const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof text)
        n = sizeof text - 1;
    to_daemon(type, text, (size_t)n);
}

/* Frames arriving on a stream: complete ones are taken off the front of `in`. */
static int next_frame(struct buf *in, char *type, char **payload, size_t *len) {
    if (in->len < 5)
        return 0;
    const unsigned char *h = (const unsigned char *)in->data;
    uint32_t n = h[0] | (h[1] << 8) | (h[2] << 16) | ((uint32_t)h[3] << 24);
    if (n < 1 || n > MAX_FRAME)
        return -1;
    if (in->len < 4 + (size_t)n)
        return 0;
    *type = in->data[4];
    *payload = in->data + 5;
    *len = n - 1;
    return 1;
}

static void frame_done(struct buf *in) {
    const unsigned char *h = (const unsigned char *)in->data;
    uint32_t n = h[0] | (h[1] << 8) | (h[2] << 16) | ((uint32_t)h[3] << 24);
    buf_drop(in, 4 + (size_t)n);
}

/* A child starts with the signal handling a program expects: nothing blocked, SIGPIPE
 * not ignored (ours is; an ignored signal would stay ignored across execve). */
static void restore_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
}

/* ---- privileges ---------------------------------------------------------------------- */

static int set_caps(uint32_t caps) {
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{caps, caps, caps}, {0, 0, 0}};
    return (int)syscall(SYS_capset, &head, data);
}

static const uint32_t SWITCH_CAPS = (1u << CAP_SETUID) | (1u << CAP_SETGID);

/* Become our own uid, keeping only what switching a child to the job user needs. */
static void drop_to_own_uid(void) {
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        die("keep capabilities");
    if (setgroups(0, NULL) < 0 || setresgid(own_gid, own_gid, own_gid) < 0)
        die("set our gid");
    if (setresuid(own_uid, own_uid, own_uid) < 0)
        die("set our uid");
    if (set_caps(SWITCH_CAPS) < 0)
        die("keep CAP_SETUID and CAP_SETGID");
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        die("prctl");
}

/* In a child, before it runs anything of the job's: the job user, no capability at all.
 * Returns 0, or -1 with errno set. */
static int become_job_user(void) {
    /* The job's processes are the OOM killer's first choice, not ours. Written while we
     * are still our own uid and, for that moment, dumpable: a non-dumpable process's
     * /proc/self belongs to root, and the write would fail. Only our uid could reach us
     * in that window; the uid switch below makes us non-dumpable again until execve. */
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
        return -1;
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "1000", 4) != 4) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    if (setgroups(0, NULL) < 0 || setresgid(job_gid, job_gid, job_gid) < 0 ||
        setresuid(job_uid, job_uid, job_uid) < 0)
        return -1;
    /* From one non-zero uid to another the kernel keeps capabilities: drop them. */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 || set_caps(0) < 0)
        return -1;
    return 0;
}

/* ---- requests from the daemon: NUL-separated tagged fields, then raw data ------------- */

struct request {
    char mode[16];       /* "exec" (argv as the job user) or "runner" (the warm runner) */
    char *argv[MAX_ARGS + 1];
    char *envp[MAX_ENV + 1];
    char *cwd;
    const char *runner_request; /* passed to a warm runner as it is */
    size_t runner_request_len;
    const char *data; /* stdin */
    size_t data_len;
};

/* Fields: <tag><text>\0 ... then \0, then the data. Tags: m mode, a arg, e env, c cwd,
 * r runner request. Pointers point into `payload`, which must outlive the request. */
static int parse_request(char *payload, size_t len, struct request *req) {
    size_t argc = 0, envc = 0, i = 0;
    memset(req, 0, sizeof *req);
    while (i < len && payload[i] != '\0') {
        char *end = memchr(payload + i, '\0', len - i);
        if (!end || (size_t)(end - (payload + i)) > MAX_FIELD)
            return -1;
        char tag = payload[i];
        char *text = payload + i + 1;
        switch (tag) {
        case 'm':
            if (strlen(text) >= sizeof req->mode)
                return -1;
            strcpy(req->mode, text);
            break;
        case 'a':
            if (argc >= MAX_ARGS)
                return -1;
            req->argv[argc++] = text;
            break;
        case 'e':
            if (envc >= MAX_ENV)
                return -1;
            req->envp[envc++] = text;
            break;
        case 'c':
            req->cwd = text;
            break;
        case 'r':
            req->runner_request = text;
            req->runner_request_len = (size_t)(end - text);
            break;
        default:
            return -1;
        }
        i = (size_t)(end - payload) + 1;
    }
    if (i >= len)
        return -1; /* no terminating empty field */
    req->argv[argc] = NULL;
    req->envp[envc] = NULL;
    req->data = payload + i + 1;
    req->data_len = len - i - 1;
    return 0;
}

/* ---- the job ------------------------------------------------------------------------- */

struct stream {
    int fd; /* our read end, -1 once closed */
    char kind; /* M_STDOUT or M_STDERR */
    struct buf held;
};

static struct {
    int active;
    pid_t pid;         /* exec mode: our child; runner mode: 0 (the runner's child) */
    int via_runner;
    struct stream out[2];
    int stdin_fd;      /* our write end, -1 once done */
    struct buf stdin_left;
    long long due;     /* when held output must go, 0 if none is held */
    int ended;         /* its end is known: status below, or the runner's report */
    int status;
    struct rusage ru;
    struct buf report; /* a warm runner's report (results), passed on as it is */
    int finished;      /* a warm runner said it finished the job */
    char runner_error[256]; /* a fork runner (ours, not the job's) says it failed */
} job = {.out = {{.fd = -1}, {.fd = -1}}, .stdin_fd = -1};

static void job_reset(void) {
    for (int i = 0; i < 2; i++) {
        if (job.out[i].fd >= 0)
            close(job.out[i].fd);
        buf_free(&job.out[i].held);
    }
    if (job.stdin_fd >= 0)
        close(job.stdin_fd);
    buf_free(&job.stdin_left);
    buf_free(&job.report);
    memset(&job, 0, sizeof job);
    job.out[0].fd = job.out[1].fd = job.stdin_fd = -1;
}

static void flush_output(void) {
    for (int i = 0; i < 2; i++) {
        struct stream *s = &job.out[i];
        size_t off = 0;
        while (off < s->held.len) {
            size_t n = s->held.len - off > CHUNK ? CHUNK : s->held.len - off;
            to_daemon(s->kind, s->held.data + off, n);
            off += n;
        }
        s->held.len = 0;
    }
    job.due = 0;
}

/* Read what a stream has; 0 at its end, 1 otherwise. */
static int pull(struct stream *s) {
    char chunk[CHUNK];
    for (;;) {
        ssize_t n = read(s->fd, chunk, sizeof chunk);
        if (n > 0) {
            if (buf_add(&s->held, chunk, (size_t)n) < 0)
                die("memory");
            if (s->held.len >= CHUNK)
                flush_output();
            else if (!job.due)
                job.due = now_ms() + GATHER_MS;
            continue;
        }
        if (n == 0) {
            close(s->fd);
            s->fd = -1;
            return 0;
        }
        if (errno == EINTR)
            continue;
        return 1; /* EAGAIN: nothing more now */
    }
}

static void feed_stdin(void) {
    while (job.stdin_fd >= 0 && job.stdin_left.len > 0) {
        ssize_t n = write(job.stdin_fd, job.stdin_left.data, job.stdin_left.len);
        if (n > 0) {
            buf_drop(&job.stdin_left, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return;
        } else { /* EPIPE: the job does not read its stdin */
            break;
        }
    }
    if (job.stdin_fd >= 0) {
        close(job.stdin_fd);
        job.stdin_fd = -1;
    }
}

/* The job's end, once its process ended (or its runner reported) and its output was read
 * as far as the pipes held it then: what a process of the job's that outlives it writes
 * later is not waited for. */
static void finish_job(void) {
    for (int i = 0; i < 2; i++)
        if (job.out[i].fd >= 0)
            pull(&job.out[i]);
    flush_output();
    if (job.report.len)
        to_daemon(M_REPORT, job.report.data, job.report.len);
    int code = WIFEXITED(job.status) ? WEXITSTATUS(job.status) : -1;
    int sig = WIFSIGNALED(job.status) ? WTERMSIG(job.status) : 0;
    to_daemon_text(M_EXIT,
                   "code=%d\nsignal=%d\nutime_us=%lld\nstime_us=%lld\nmaxrss_kb=%ld\n"
                   "finished=%d\nrunner_error=%s\n",
                   code, sig,
                   (long long)job.ru.ru_utime.tv_sec * 1000000 + job.ru.ru_utime.tv_usec,
                   (long long)job.ru.ru_stime.tv_sec * 1000000 + job.ru.ru_stime.tv_usec,
                   job.ru.ru_maxrss, job.finished, job.runner_error);
    job_reset();
}

/* Three pipes for a job: fds[0..2] are the child's stdin, stdout, stderr ends. */
static int job_pipes(int fds[3]) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]), close(in[1]);
        return -1;
    }
    if (pipe2(err, O_CLOEXEC) < 0) {
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        return -1;
    }
    fds[0] = in[0], fds[1] = out[1], fds[2] = err[1];
    job.stdin_fd = in[1];
    job.out[0] = (struct stream){out[0], M_STDOUT, {0}};
    job.out[1] = (struct stream){err[0], M_STDERR, {0}};
    set_nonblock(job.stdin_fd);
    set_nonblock(out[0]);
    set_nonblock(err[0]);
    return 0;
}

/* ---- the warm runner: a process that serves jobs handed to it with their pipes -------- */

static struct {
    pid_t pid;
    int channel; /* our end of its socketpair */
    int log[2];  /* its own stdout and stderr: our read ends */
    int ready, busy, standby;
    struct buf in;
} runner = {0, -1, {-1, -1}, 0, 0, 0, {0}};

static void runner_gone(void) {
    if (runner.channel >= 0)
        close(runner.channel);
    for (int i = 0; i < 2; i++)
        if (runner.log[i] >= 0)
            close(runner.log[i]);
    buf_free(&runner.in);
    int busy = runner.busy;
    memset(&runner, 0, sizeof runner);
    runner.channel = runner.log[0] = runner.log[1] = -1;
    if (busy && job.active && job.via_runner && !job.ended) {
        /* It died with a job: the job ends, not finished (its children may live on). */
        job.ended = 1;
        job.status = W_EXITCODE(0, SIGKILL);
        finish_job();
    }
}

static int send_with_fds(int fd, char type, const char *payload, size_t len, int fds[3]) {
    unsigned char head[5];
    uint32_t n = (uint32_t)len + 1;
    head[0] = n & 0xff, head[1] = (n >> 8) & 0xff, head[2] = (n >> 16) & 0xff;
    head[3] = (n >> 24) & 0xff, head[4] = (unsigned char)type;
    struct iovec iov = {head, 5};
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(3 * sizeof(int));
    memcpy(CMSG_DATA(c), fds, 3 * sizeof(int));
    ssize_t sent;
    do
        sent = sendmsg(fd, &msg, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    if (sent != 5)
        return -1;
    return write_full(fd, payload, len);
}

static void start_runner(struct request *req) {
    if (runner.pid) {
        to_daemon_text(M_WARM, "pid=%d\nready=%d\nerror=already running\n", runner.pid,
                       runner.ready);
        return;
    }
    runner.standby = strcmp(req->mode, "standby") == 0;
    int pair[2], log_out[2], log_err[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0 ||
        pipe2(log_out, O_CLOEXEC) < 0 || pipe2(log_err, O_CLOEXEC) < 0) {
        to_daemon_text(M_WARM, "pid=0\nready=0\nerror=%s\n", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        to_daemon_text(M_WARM, "pid=0\nready=0\nerror=%s\n", strerror(errno));
        close(pair[0]), close(pair[1]), close(log_out[0]), close(log_out[1]);
        close(log_err[0]), close(log_err[1]);
        return;
    }
    if (pid == 0) {
        restore_signals();
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null < 0 || dup2(null, 0) < 0 || dup2(log_out[1], 1) < 0 || dup2(log_err[1], 2) < 0 ||
            dup2(pair[1], 3) < 0)
            _exit(71);
        if (null > 3)
            close(null);
        if (runner.standby) {
            /* A standby runner runs the job's code in its own process: the job user's. */
            if (become_job_user() < 0)
                _exit(72);
        } else {
            /* A fork runner stays ours and switches each child it makes to the job user. */
            if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SETUID, 0, 0) < 0 ||
                prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SETGID, 0, 0) < 0)
                _exit(72);
        }
        if (req->cwd && chdir(req->cwd) < 0)
            _exit(73);
        setsid();
        execve(req->argv[0], req->argv, req->envp);
        _exit(127);
    }
    close(pair[1]), close(log_out[1]), close(log_err[1]);
    runner.pid = pid;
    runner.channel = pair[0];
    runner.log[0] = log_out[0];
    runner.log[1] = log_err[0];
    set_nonblock(runner.channel);
    set_nonblock(runner.log[0]);
    set_nonblock(runner.log[1]);
}

static void runner_message(char type, char *payload, size_t len) {
    if (type == R_READY && !runner.ready) {
        runner.ready = 1;
        to_daemon_text(M_WARM, "pid=%d\nready=1\n", runner.pid);
    } else if (type == R_DONE && runner.busy && job.active && job.via_runner) {
        /* "status=N\nutime_us=N\nstime_us=N\nmaxrss_kb=N\n\n" then the results. A standby
         * runner is the job's own process: what it says is as good as the job's word. */
        char *sep = memmem(payload, len, "\n\n", 2);
        size_t head_len = sep ? (size_t)(sep - payload) : len;
        char head[512];
        if (head_len >= sizeof head)
            head_len = sizeof head - 1;
        memcpy(head, payload, head_len);
        head[head_len] = '\0';
        long long utime = 0, stime = 0;
        long maxrss = 0;
        int status = W_EXITCODE(0, SIGKILL);
        for (char *line = strtok(head, "\n"); line; line = strtok(NULL, "\n")) {
            sscanf(line, "status=%d", &status);
            sscanf(line, "utime_us=%lld", &utime);
            sscanf(line, "stime_us=%lld", &stime);
            sscanf(line, "maxrss_kb=%ld", &maxrss);
            /* Our failure, in a fork runner's words: a standby runner is the job's. */
            if (!runner.standby && !strncmp(line, "error=", 6)) {
                snprintf(job.runner_error, sizeof job.runner_error, "%s", line + 6);
                for (char *c = job.runner_error; *c; c++)
                    if (*c == '\n')
                        *c = ' ';
            }
        }
        job.status = status;
        job.ru.ru_utime.tv_sec = utime / 1000000, job.ru.ru_utime.tv_usec = utime % 1000000;
        job.ru.ru_stime.tv_sec = stime / 1000000, job.ru.ru_stime.tv_usec = stime % 1000000;
        job.ru.ru_maxrss = maxrss;
        if (sep && buf_add(&job.report, sep + 2, len - head_len - 2) < 0)
            die("memory");
        job.finished = 1;
        job.ended = 1;
        runner.busy = 0;
        finish_job();
    } else {
        to_daemon_text(M_LOG, "runner %d: unexpected message '%c'", runner.pid, type);
    }
}

/* ---- running a job ------------------------------------------------------------------- */

static void run_job(struct request *req) {
    if (job.active) {
        to_daemon_text(M_FAILED, "error=a job is running\n");
        return;
    }
    job_reset();
    int via_runner = strcmp(req->mode, "runner") == 0;
    if (via_runner && !(runner.pid && runner.ready && !runner.busy)) {
        to_daemon_text(M_FAILED, "error=no warm runner is ready\n");
        return;
    }
    if (!via_runner && (strcmp(req->mode, "exec") != 0 || !req->argv[0])) {
        to_daemon_text(M_FAILED, "error=bad request\n");
        return;
    }
    int child_fds[3];
    if (job_pipes(child_fds) < 0) {
        to_daemon_text(M_FAILED, "error=pipes: %s\n", strerror(errno));
        job_reset();
        return;
    }
    if (buf_add(&job.stdin_left, req->data, req->data_len) < 0)
        die("memory");
    job.active = 1;
    job.via_runner = via_runner;
    if (via_runner) {
        int sent = send_with_fds(runner.channel, R_RUN, req->runner_request,
                                 req->runner_request_len, child_fds);
        for (int i = 0; i < 3; i++)
            close(child_fds[i]);
        if (sent < 0) {
            to_daemon_text(M_FAILED, "error=the warm runner does not listen: %s\n",
                           strerror(errno));
            job_reset();
            return;
        }
        runner.busy = 1;
        to_daemon_text(M_STARTED, "pid=%d\n", runner.pid);
    } else {
        int report[2]; /* the child tells us why it could not start, else it is closed */
        if (pipe2(report, O_CLOEXEC) < 0) {
            to_daemon_text(M_FAILED, "error=pipe: %s\n", strerror(errno));
            for (int i = 0; i < 3; i++)
                close(child_fds[i]);
            job_reset();
            return;
        }
        pid_t pid = fork();
        if (pid == 0) {
            restore_signals();
            const char *step = "set up its stdio";
            if (dup2(child_fds[0], 0) >= 0 && dup2(child_fds[1], 1) >= 0 &&
                dup2(child_fds[2], 2) >= 0) {
                step = "become the job user";
                setsid();
                if (become_job_user() == 0) {
                    step = "enter its directory";
                    if (!req->cwd || chdir(req->cwd) == 0) {
                        step = "execute";
                        execve(req->argv[0], req->argv, req->envp);
                    }
                }
            }
            int err = errno;
            dprintf(report[1], "errno=%d\nstep=%s\n", err, step);
            _exit(127);
        }
        int err = errno;
        close(report[1]);
        for (int i = 0; i < 3; i++)
            close(child_fds[i]);
        if (pid < 0) {
            close(report[0]);
            to_daemon_text(M_FAILED, "error=fork: %s\n", strerror(err));
            job_reset();
            return;
        }
        char why[256];
        ssize_t n;
        do
            n = read(report[0], why, sizeof why - 1);
        while (n < 0 && errno == EINTR);
        close(report[0]);
        job.pid = pid;
        if (n > 0) { /* the exec failed: its process ends at once */
            why[n] = '\0';
            to_daemon(M_FAILED, why, (size_t)n);
            int status;
            waitpid(pid, &status, 0);
            job_reset();
            return;
        }
        to_daemon_text(M_STARTED, "pid=%d\n", pid);
    }
    feed_stdin();
}

/* ---- the loop ------------------------------------------------------------------------ */

/* What the warm runner sent: one read, or (`drain`) everything until the channel is
 * empty, for a runner that has ended: its last frames are in the socket already. */
static void read_runner(int drain) {
    do {
        char chunk[CHUNK];
        ssize_t got = read(runner.channel, chunk, sizeof chunk);
        if (got > 0) {
            if (buf_add(&runner.in, chunk, (size_t)got) < 0)
                die("memory");
            char type;
            char *payload;
            size_t len;
            int r;
            while ((r = next_frame(&runner.in, &type, &payload, &len)) > 0) {
                runner_message(type, payload, len);
                if (!runner.pid)
                    return; /* gone while its message was handled */
                frame_done(&runner.in);
            }
            if (r < 0) {
                to_daemon_text(M_LOG, "warm runner %d: malformed message", runner.pid);
                kill(runner.pid, SIGKILL);
                return;
            }
        } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(runner.channel);
            runner.channel = -1;
            return;
        } else if (errno == EAGAIN) {
            return;
        }
    } while (drain && runner.channel >= 0);
}

static void reap(void) {
    for (;;) {
        int status;
        struct rusage ru;
        pid_t pid = wait4(-1, &status, WNOHANG, &ru);
        if (pid <= 0)
            return;
        if (job.active && !job.via_runner && pid == job.pid) {
            job.status = status;
            job.ru = ru;
            job.ended = 1;
            finish_job();
        } else if (pid == runner.pid) {
            to_daemon_text(M_LOG, "warm runner %d ended (status %d)", pid, status);
            if (!runner.ready) /* the daemon waits to hear it is ready: it never will be */
                to_daemon_text(M_WARM, "pid=%d\nready=0\nerror=it ended (status %d)\n", pid,
                               status);
            if (runner.standby && runner.busy && job.active && !job.ended &&
                runner.channel >= 0)
                read_runner(1); /* its `d` may be in the socket, unread: it counts */
            if (runner.standby && runner.busy && job.active && !job.ended) {
                /* A standby's end (with no `d`) is its job's end. */
                job.status = status;
                job.ru = ru;
                job.ended = 1;
                runner.busy = 0;
                runner_gone();
                finish_job();
            } else {
                runner_gone();
            }
        }
    }
}

static void handle_daemon_frame(char type, char *payload, size_t len) {
    struct request req;
    if (type == C_PING) {
        to_daemon_text(M_PONG, "runner_pid=%d\nrunner=%s\njob=%d\n", runner.pid,
                       !runner.pid ? "none" : runner.busy ? "busy" : runner.ready ? "idle"
                                                                                : "starting",
                       job.active);
    } else if (type == C_RUN || type == C_WARM) {
        if (parse_request(payload, len, &req) < 0) {
            to_daemon_text(type == C_RUN ? M_FAILED : M_WARM, "error=malformed request\n");
            return;
        }
        if (type == C_RUN)
            run_job(&req);
        else if (!req.argv[0])
            to_daemon_text(M_WARM, "pid=0\nready=0\nerror=no command\n");
        else
            start_runner(&req);
    } else {
        to_daemon_text(M_LOG, "unknown message '%c'", type);
    }
}

static int accept_daemon(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            die("accept");
        }
        /* The daemon is on the host, outside our pid namespace: its pid reads as 0 here.
         * Anything that can name a pid in here is a process of the sandbox: refused. */
        struct ucred cred;
        socklen_t len = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid == 0 &&
            cred.uid == 0)
            return fd;
        close(fd);
    }
}

int main(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--socket"))
            path = argv[i + 1];
        else if (!strcmp(argv[i], "--uid"))
            own_uid = (uid_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--gid"))
            own_gid = (gid_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--job-uid"))
            job_uid = (uid_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--job-gid"))
            job_gid = (gid_t)atoi(argv[i + 1]);
    }
    if (!path || !own_uid || !job_uid || own_uid == job_uid || !own_gid || !job_gid) {
        fprintf(stderr, "usage: sandboxd-supervisor --socket PATH --uid N --gid N "
                        "--job-uid N --job-gid N (non-zero, distinct)\n");
        return 2;
    }
    drop_to_own_uid();
    signal(SIGPIPE, SIG_IGN);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sigfd < 0)
        die("signalfd");

    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path)
        return 2;
    strcpy(addr.sun_path, path);
    unlink(path);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    umask(077);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(listener, 1) < 0)
        die("listen");
    client = accept_daemon(listener);
    /* One daemon, once: nothing else can connect from now on. */
    close(listener);
    unlink(path);
    set_nonblock(client);
    job_reset();
    to_daemon_text(M_HELLO, "version=%d\npid=%d\nuid=%d\n", PROTOCOL_VERSION, getpid(),
                   own_uid);

    struct buf from_daemon = {0};
    for (;;) {
        struct pollfd fds[8];
        int n = 0, i_client, i_sig, i_out[2] = {-1, -1}, i_in = -1, i_runner = -1;
        int i_log[2] = {-1, -1};
        fds[i_client = n++] = (struct pollfd){client, POLLIN, 0};
        fds[i_sig = n++] = (struct pollfd){sigfd, POLLIN, 0};
        for (int i = 0; i < 2; i++)
            if (job.out[i].fd >= 0)
                fds[i_out[i] = n++] = (struct pollfd){job.out[i].fd, POLLIN, 0};
        if (job.stdin_fd >= 0 && job.stdin_left.len)
            fds[i_in = n++] = (struct pollfd){job.stdin_fd, POLLOUT, 0};
        if (runner.channel >= 0)
            fds[i_runner = n++] = (struct pollfd){runner.channel, POLLIN, 0};
        for (int i = 0; i < 2; i++)
            if (runner.log[i] >= 0)
                fds[i_log[i] = n++] = (struct pollfd){runner.log[i], POLLIN, 0};
        int timeout = -1;
        if (job.due) {
            long long left = job.due - now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        int ready = poll(fds, (nfds_t)n, timeout);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (fds[i_sig].revents) {
            struct signalfd_siginfo info;
            while (read(sigfd, &info, sizeof info) == sizeof info) {
            }
            reap();
        }
        for (int i = 0; i < 2; i++)
            if (i_out[i] >= 0 && fds[i_out[i]].revents && job.out[i].fd >= 0)
                pull(&job.out[i]);
        if (i_in >= 0 && fds[i_in].revents)
            feed_stdin();
        for (int i = 0; i < 2; i++) {
            if (i_log[i] < 0 || !fds[i_log[i]].revents || runner.log[i] < 0)
                continue;
            char line[4096];
            ssize_t got = read(runner.log[i], line, sizeof line);
            if (got > 0) {
                to_daemon(M_LOG, line, (size_t)got);
            } else if (got == 0) {
                close(runner.log[i]);
                runner.log[i] = -1;
            }
        }
        if (i_runner >= 0 && fds[i_runner].revents && runner.channel >= 0)
            read_runner(0);
        if (fds[i_client].revents) {
            char chunk[CHUNK];
            ssize_t got = read(client, chunk, sizeof chunk);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
                _exit(0); /* the daemon is gone: so is this sandbox */
            if (got > 0) {
                if (buf_add(&from_daemon, chunk, (size_t)got) < 0)
                    die("memory");
                char type;
                char *payload;
                size_t len;
                int r;
                while ((r = next_frame(&from_daemon, &type, &payload, &len)) > 0) {
                    handle_daemon_frame(type, payload, len);
                    frame_done(&from_daemon);
                }
                if (r < 0)
                    _exit(0); /* not the daemon speaking: end the sandbox */
            }
        }
        if (job.due && now_ms() >= job.due)
            flush_output();
    }
}
