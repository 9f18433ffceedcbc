/*
 * The integration harness (see harness.h): child process control, a blocking client, and a
 * JSON <-> msgpack pair for writing requests and checking replies.
 */
/* pipe2, syscall(SYS_pidfd_open), prctl: Linux-only test code. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "memdex/error.h"
#include "protocol/response.h"
#include "tests/integration/harness.h"

#ifndef MEMDEXD_PATH
#error "MEMDEXD_PATH must name the memdexd binary"
#endif

/* ---- time ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the stderr reader ---- */

typedef struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd;
    char *text;
    size_t len, cap;
    int eof;
} logger_t;

static void *logger_main(void *arg)
{
    logger_t *lg = arg;
    char buf[4096];
    for (;;) {
        ssize_t n = read(lg->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        pthread_mutex_lock(&lg->mu);
        if (n <= 0) {
            lg->eof = 1;
            pthread_cond_broadcast(&lg->cv);
            pthread_mutex_unlock(&lg->mu);
            return NULL;
        }
        /* Echo to our stderr so ctest --output-on-failure shows the server's side too. */
        fwrite(buf, 1, (size_t)n, stderr);
        if (lg->len + (size_t)n + 1 > lg->cap) {
            size_t cap = (lg->cap ? lg->cap : 4096);
            while (cap < lg->len + (size_t)n + 1)
                cap *= 2;
            lg->text = realloc(lg->text, cap);
            lg->cap = cap;
        }
        memcpy(lg->text + lg->len, buf, (size_t)n);
        lg->len += (size_t)n;
        lg->text[lg->len] = '\0';
        pthread_cond_broadcast(&lg->cv);
        pthread_mutex_unlock(&lg->mu);
    }
}

static void deadline_ts(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* ---- the server process ---- */

static pid_t spawn(const char *const *argv, int out_fd, int err_fd)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (out_fd >= 0)
            dup2(out_fd, 1);
        dup2(err_fd, 2);
        execv(argv[0], (char *const *)argv);
        dprintf(2, "harness: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Removes a directory's files, then the directory (no recursion: data_dir holds files). */
static void remove_dir_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

void mdx_srv_start(mdx_srv_t *s, const char *const *extra)
{
    static unsigned started;
    const char *argv[64];
    char dir[sizeof(s->data_dir)];
    int n = 0;
    /* itest-data/<test pid>-<n>: unique among the tests ctest runs at once. */
    mkdir("itest-data", 0755);
    snprintf(dir, sizeof(dir), "itest-data/%d-%u", (int)getpid(), started++);
    remove_dir_files(dir);
    argv[n++] = MEMDEXD_PATH;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--data-dir";
    argv[n++] = dir;
    for (int i = 0; extra && extra[i]; i++) {
        assert_true(n < 62);
        argv[n++] = extra[i];
    }
    argv[n] = NULL;

    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    memset(s, 0, sizeof(*s));
    memcpy(s->data_dir, dir, sizeof(dir));
    s->pid = spawn(argv, -1, p[1]);
    close(p[1]);

    logger_t *lg = calloc(1, sizeof(*lg));
    assert_non_null(lg);
    lg->fd = p[0];
    pthread_mutex_init(&lg->mu, NULL);
    pthread_cond_init(&lg->cv, NULL);
    assert_int_equal(pthread_create(&lg->thread, NULL, logger_main, lg), 0);
    s->logger = lg;
    s->err_fd = p[0];

    /* The listening line names the real port. */
    static const char marker[] = "listening on 127.0.0.1:";
    struct timespec dl;
    deadline_ts(&dl, MDX_TEST_TIMEOUT_MS);
    pthread_mutex_lock(&lg->mu);
    const char *m = NULL;
    while (!(lg->text && (m = strstr(lg->text, marker)) && strchr(m, '\n')) && !lg->eof) {
        if (pthread_cond_timedwait(&lg->cv, &lg->mu, &dl) == ETIMEDOUT)
            break;
    }
    if (m && strchr(m, '\n'))
        s->port = atoi(m + sizeof(marker) - 1);
    pthread_mutex_unlock(&lg->mu);
    if (s->port <= 0) {
        kill(s->pid, SIGKILL);
        fail_msg("memdexd did not print its listening line");
    }

    /* Readiness: the listening line comes after listen(), so this normally succeeds at once;
     * keep trying (without sleeping) until the deadline in case it ever does not. */
    int64_t end = now_ms() + MDX_TEST_TIMEOUT_MS;
    for (;;) {
        mdx_cli_t c;
        if (mdx_cli_connect(&c, s->port) == 0) {
            mdx_cli_close(&c);
            break;
        }
        if (now_ms() > end) {
            kill(s->pid, SIGKILL);
            fail_msg("memdexd does not accept connections on port %d", s->port);
        }
        sched_yield();
    }
}

/* Waits for a child's exit; SIGKILL after timeout_ms. */
static int wait_child(pid_t pid, int timeout_ms, int *timed_out)
{
    int status = 0;
    *timed_out = 0;
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) {
        struct pollfd p = {pfd, POLLIN, 0};
        int r;
        do
            r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r == 0) {
            *timed_out = 1;
            kill(pid, SIGKILL);
        }
        close(pfd);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        return status;
    }
    /* No pidfd (old kernel): poll waitpid. */
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (now_ms() > end) {
            *timed_out = 1;
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return status;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

int mdx_srv_stop(mdx_srv_t *s, int sig)
{
    if (!s->pid)
        return 0;
    if (sig >= 0)
        kill(s->pid, sig ? sig : SIGTERM);
    int to;
    int status = wait_child(s->pid, MDX_TEST_TIMEOUT_MS, &to);
    s->pid = 0;
    logger_t *lg = s->logger;
    pthread_join(lg->thread, NULL);
    close(lg->fd);
    free(lg->text);
    pthread_mutex_destroy(&lg->mu);
    pthread_cond_destroy(&lg->cv);
    free(lg);
    s->logger = NULL;
    remove_dir_files(s->data_dir);
    if (to)
        fail_msg("memdexd did not exit within %d ms of signal %d", MDX_TEST_TIMEOUT_MS,
                 sig ? sig : SIGTERM);
    return status;
}

char *mdx_srv_log(mdx_srv_t *s)
{
    logger_t *lg = s->logger;
    pthread_mutex_lock(&lg->mu);
    char *t = strdup(lg->text ? lg->text : "");
    pthread_mutex_unlock(&lg->mu);
    return t;
}

int mdx_srv_log_wait(mdx_srv_t *s, const char *text, int timeout_ms)
{
    logger_t *lg = s->logger;
    struct timespec dl;
    deadline_ts(&dl, timeout_ms);
    pthread_mutex_lock(&lg->mu);
    int found;
    while (!(found = lg->text && strstr(lg->text, text)) && !lg->eof)
        if (pthread_cond_timedwait(&lg->cv, &lg->mu, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&lg->mu);
    return found;
}

long mdx_srv_rss_kb(const mdx_srv_t *s)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)s->pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    assert_true(kb > 0);
    return kb;
}

static char *slurp(int fd)
{
    size_t len = 0, cap = 4096;
    char *t = malloc(cap);
    for (;;) {
        if (len + 1024 > cap)
            t = realloc(t, cap *= 2);
        ssize_t n = read(fd, t + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    t[len] = '\0';
    return t;
}

int mdx_run_memdexd(const char *const *args, char **out, char **err)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = MEMDEXD_PATH;
    for (int i = 0; args && args[i]; i++) {
        assert_true(n < 63);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    /* Output goes to files: no reader threads needed, no pipe can fill. */
    FILE *fo = tmpfile(), *fe = tmpfile();
    assert_non_null(fo);
    assert_non_null(fe);
    pid_t pid = spawn(argv, fileno(fo), fileno(fe));
    int to;
    int status = wait_child(pid, MDX_TEST_TIMEOUT_MS, &to);
    assert_false(to);
    lseek(fileno(fo), 0, SEEK_SET);
    lseek(fileno(fe), 0, SEEK_SET);
    *out = slurp(fileno(fo));
    *err = slurp(fileno(fe));
    fclose(fo);
    fclose(fe);
    return status;
}

/* ---- client ---- */

int mdx_cli_connect(mdx_cli_t *c, int port)
{
    memset(c, 0, sizeof(*c));
    c->next_id = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a))) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        return -e;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

int mdx_cli_connect_unix(mdx_cli_t *c, const char *path)
{
    memset(c, 0, sizeof(*c));
    c->next_id = 1;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a))) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        return -e;
    }
    return 0;
}

void mdx_cli_close(mdx_cli_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->pos = c->len = c->cap = 0;
}

int mdx_cli_try_send(mdx_cli_t *c, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

void mdx_cli_send(mdx_cli_t *c, const void *p, size_t n)
{
    int rc = mdx_cli_try_send(c, p, n);
    if (rc)
        fail_msg("send failed: %s", strerror(-rc));
}

/* Reads more bytes into c->buf; 1 on data, 0 on EOF/error, -1 on timeout. */
static int fill(mdx_cli_t *c, int64_t deadline)
{
    /* Consumed bytes are dropped here, once per read, not once per frame: a client reading
     * thousands of pipelined replies must not move the rest of the buffer for each one. */
    if (c->pos) {
        memmove(c->buf, c->buf + c->pos, c->len - c->pos);
        c->len -= c->pos;
        c->pos = 0;
    }
    if (c->cap - c->len < 65536) {
        size_t cap = c->cap ? c->cap * 2 : 131072;
        c->buf = realloc(c->buf, cap);
        assert_non_null(c->buf);
        c->cap = cap;
    }
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {c->fd, POLLIN, 0};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return -1;
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        c->len += (size_t)n;
        return 1;
    }
}

int mdx_cli_recv(mdx_cli_t *c, mdx_reply_t *r, int timeout_ms)
{
    int64_t deadline = now_ms() + (timeout_ms ? timeout_ms : MDX_TEST_TIMEOUT_MS);
    memset(r, 0, sizeof(*r));
    for (;;) {
        if (c->len - c->pos >= 4) {
            const uint8_t *f = c->buf + c->pos;
            size_t l = (size_t)f[0] << 24 | (size_t)f[1] << 16 | (size_t)f[2] << 8 | f[3];
            if (c->len - c->pos >= 4 + l) {
                r->payload = malloc(l ? l : 1);
                assert_non_null(r->payload);
                memcpy(r->payload, f + 4, l);
                r->payload_len = l;
                c->pos += 4 + l;
                if (c->pos == c->len)
                    c->pos = c->len = 0;
                int st;
                if (mdx_resp_decode(r->payload, l, &r->id, &st, &r->body, &r->body_len))
                    fail_msg("reply is not a valid [id, status, body] envelope");
                r->status = st;
                return 0;
            }
        }
        if (fill(c, deadline) <= 0)
            return -1;
    }
}

int mdx_cli_wait_closed(mdx_cli_t *c, int timeout_ms)
{
    int64_t deadline = now_ms() + (timeout_ms ? timeout_ms : MDX_TEST_TIMEOUT_MS);
    for (;;) {
        c->pos = c->len = 0;
        int r = fill(c, deadline);
        if (r == 0)
            return 1;
        if (r < 0)
            return 0;
    }
}

void mdx_reply_free(mdx_reply_t *r)
{
    free(r->payload);
    memset(r, 0, sizeof(*r));
}

/* ---- JSON -> msgpack ---- */

typedef struct {
    const char *p;
    const char *start;
} jp_t;

static void jfail(const jp_t *j, const char *what)
{
    fail_msg("bad JSON in test (%s) at offset %d: %s", what, (int)(j->p - j->start), j->start);
}

static void ws(jp_t *j)
{
    while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')
        j->p++;
}

static void jvalue(jp_t *j, mdx_buf_t *b);

/* Counts the elements of the container starting at j->p (after '[' or '{'), without
 * consuming them. */
static uint32_t jcount(const jp_t *j, char close)
{
    jp_t k = *j;
    mdx_buf_t scratch;
    mdx_buf_init(&scratch);
    uint32_t n = 0;
    ws(&k);
    if (*k.p == close) {
        mdx_buf_fini(&scratch);
        return 0;
    }
    for (;;) {
        jvalue(&k, &scratch);
        if (close == '}') {
            ws(&k);
            if (*k.p != ':')
                jfail(&k, "expected ':'");
            k.p++;
            jvalue(&k, &scratch);
        }
        n++;
        ws(&k);
        if (*k.p == ',') {
            k.p++;
            continue;
        }
        if (*k.p == close)
            break;
        jfail(&k, "expected ',' or a closing bracket");
    }
    mdx_buf_fini(&scratch);
    return n;
}

static void jstring(jp_t *j, mdx_buf_t *b)
{
    j->p++; /* opening quote */
    mdx_buf_t s;
    mdx_buf_init(&s);
    while (*j->p != '"') {
        if (!*j->p)
            jfail(j, "unterminated string");
        char ch = *j->p++;
        if (ch == '\\') {
            char e = *j->p++;
            switch (e) {
            case 'n':
                ch = '\n';
                break;
            case 't':
                ch = '\t';
                break;
            case 'u': {
                unsigned v;
                if (sscanf(j->p, "%4x", &v) != 1 || v > 0xff)
                    jfail(j, "only \\u00XX escapes are supported");
                j->p += 4;
                ch = (char)v;
                break;
            }
            default:
                ch = e;
            }
        }
        mdx_buf_append(&s, &ch, 1);
    }
    j->p++;
    mdx_mp_put_str(b, s.data ? (const char *)s.data : "", s.len);
    mdx_buf_fini(&s);
}

static void jvalue(jp_t *j, mdx_buf_t *b)
{
    ws(j);
    char ch = *j->p;
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        j->p++;
        uint32_t n = jcount(j, close);
        if (ch == '{')
            mdx_mp_put_map(b, n);
        else
            mdx_mp_put_array(b, n);
        for (uint32_t i = 0; i < n; i++) {
            jvalue(j, b);
            if (ch == '{') {
                ws(j);
                j->p++; /* ':' (checked by jcount) */
                jvalue(j, b);
            }
            ws(j);
            if (*j->p == ',')
                j->p++;
        }
        ws(j);
        j->p++; /* close */
    } else if (ch == '"') {
        jstring(j, b);
    } else if (strncmp(j->p, "true", 4) == 0) {
        mdx_mp_put_bool(b, 1);
        j->p += 4;
    } else if (strncmp(j->p, "false", 5) == 0) {
        mdx_mp_put_bool(b, 0);
        j->p += 5;
    } else if (strncmp(j->p, "null", 4) == 0) {
        mdx_mp_put_nil(b);
        j->p += 4;
    } else if (strncmp(j->p, "<bin:", 5) == 0) {
        j->p += 5;
        uint8_t bin[1024];
        size_t n = 0;
        unsigned v;
        while (*j->p != '>' && n < sizeof(bin) && sscanf(j->p, "%2x", &v) == 1) {
            bin[n++] = (uint8_t)v;
            j->p += 2;
        }
        if (*j->p != '>')
            jfail(j, "bad <bin:hex>");
        j->p++;
        mdx_mp_put_bin(b, bin, n);
    } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
        const char *s = j->p;
        int is_float = 0;
        while (*j->p == '-' || *j->p == '+' || *j->p == '.' || *j->p == 'e' || *j->p == 'E' ||
               (*j->p >= '0' && *j->p <= '9')) {
            if (*j->p == '.' || *j->p == 'e' || *j->p == 'E')
                is_float = 1;
            j->p++;
        }
        if (is_float)
            mdx_mp_put_double(b, strtod(s, NULL));
        else if (*s == '-')
            mdx_mp_put_int(b, strtoll(s, NULL, 10));
        else
            mdx_mp_put_uint(b, strtoull(s, NULL, 10));
    } else {
        jfail(j, "unexpected character");
    }
}

void mdx_json_to_mp(mdx_buf_t *b, const char *json)
{
    jp_t j = {json, json};
    jvalue(&j, b);
    ws(&j);
    if (*j.p)
        jfail(&j, "trailing characters");
    assert_int_equal(b->err, 0);
}

/* ---- msgpack -> JSON ---- */

static void put_s(mdx_buf_t *o, const char *s)
{
    mdx_buf_append(o, s, strlen(s));
}

static int render(mdx_buf_t *o, const uint8_t **p, const uint8_t *end, int depth)
{
    mdx_mp_tok_t t;
    char tmp[64];
    if (depth > 64 || mdx_mp_read(p, end, &t))
        return -1;
    switch (t.type) {
    case MDX_MP_NIL:
        put_s(o, "null");
        break;
    case MDX_MP_BOOL:
        put_s(o, t.v.b ? "true" : "false");
        break;
    case MDX_MP_INT:
        snprintf(tmp, sizeof(tmp), "%lld", (long long)t.v.i);
        put_s(o, tmp);
        break;
    case MDX_MP_UINT:
        snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)t.v.u);
        put_s(o, tmp);
        break;
    case MDX_MP_FLOAT:
        snprintf(tmp, sizeof(tmp), "%.17g", t.v.f);
        if (!strpbrk(tmp, ".eninf"))
            strcat(tmp, ".0");
        put_s(o, tmp);
        break;
    case MDX_MP_STR:
        put_s(o, "\"");
        for (uint32_t i = 0; i < t.len; i++) {
            uint8_t ch = t.v.ptr[i];
            if (ch == '"' || ch == '\\') {
                tmp[0] = '\\';
                tmp[1] = (char)ch;
                tmp[2] = '\0';
            } else if (ch < 0x20 || ch >= 0x7f) {
                snprintf(tmp, sizeof(tmp), "\\u%04x", ch);
            } else {
                tmp[0] = (char)ch;
                tmp[1] = '\0';
            }
            put_s(o, tmp);
        }
        put_s(o, "\"");
        break;
    case MDX_MP_BIN:
        put_s(o, "<bin:");
        for (uint32_t i = 0; i < t.len; i++) {
            snprintf(tmp, sizeof(tmp), "%02x", t.v.ptr[i]);
            put_s(o, tmp);
        }
        put_s(o, ">");
        break;
    case MDX_MP_EXT:
        snprintf(tmp, sizeof(tmp), "<ext:%d:%u>", t.ext_type, (unsigned)t.len);
        put_s(o, tmp);
        break;
    case MDX_MP_ARRAY:
    case MDX_MP_MAP:
        put_s(o, t.type == MDX_MP_ARRAY ? "[" : "{");
        for (uint32_t i = 0; i < t.len; i++) {
            if (i)
                put_s(o, ",");
            if (render(o, p, end, depth + 1))
                return -1;
            if (t.type == MDX_MP_MAP) {
                put_s(o, ":");
                if (render(o, p, end, depth + 1))
                    return -1;
            }
        }
        put_s(o, t.type == MDX_MP_ARRAY ? "]" : "}");
        break;
    }
    return 0;
}

char *mdx_mp_to_json(const uint8_t *p, size_t n)
{
    mdx_buf_t o;
    mdx_buf_init(&o);
    const uint8_t *end = p + n;
    while (p < end) {
        if (o.len)
            put_s(&o, " ");
        if (render(&o, &p, end, 0)) {
            put_s(&o, "<malformed>");
            break;
        }
    }
    mdx_buf_append(&o, "", 1);
    assert_int_equal(o.err, 0);
    return (char *)o.data;
}

/* ---- requests ---- */

void mdx_req_json(mdx_buf_t *b, uint64_t id, const char *op, const char *args_json)
{
    mdx_buf_t args;
    mdx_buf_init(&args);
    mdx_json_to_mp(&args, args_json ? args_json : "{}");
    const uint8_t *p = args.data, *end = args.data + args.len;
    mdx_mp_tok_t t;
    assert_int_equal(mdx_mp_read(&p, end, &t), 0);
    assert_int_equal(t.type, MDX_MP_MAP);
    size_t mark;
    mdx_req_begin(b, &mark, id, op, t.len);
    mdx_buf_append(b, p, (size_t)(end - p)); /* the pairs, after the map header */
    mdx_req_end(b, mark);
    assert_int_equal(b->err, 0);
    mdx_buf_fini(&args);
}

void mdx_frame_raw(mdx_buf_t *b, const void *payload, size_t n)
{
    uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    mdx_buf_append(b, h, 4);
    mdx_buf_append(b, payload, n);
}

void mdx_put_big(mdx_cli_t *c, const char *coll, uint64_t key, size_t n)
{
    char *s = malloc(n ? n : 1);
    assert_non_null(s);
    memset(s, 'x', n);
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t mark;
    uint64_t id = c->next_id++;
    mdx_req_begin(&b, &mark, id, "put", 3);
    mdx_req_arg(&b, MDX_ARG_COLL);
    mdx_mp_put_str(&b, coll, strlen(coll));
    mdx_req_arg(&b, MDX_ARG_KEY);
    mdx_mp_put_uint(&b, key);
    mdx_req_arg(&b, MDX_ARG_BODY);
    mdx_mp_put_map(&b, 1);
    mdx_mp_put_str(&b, "s", 1);
    mdx_mp_put_str(&b, s, n);
    mdx_req_end(&b, mark);
    assert_int_equal(b.err, 0);
    free(s);
    mdx_cli_send(c, b.data, b.len);
    mdx_buf_fini(&b);
    mdx_reply_t r;
    assert_int_equal(mdx_cli_recv(c, &r, 0), 0);
    assert_int_equal(r.id, id);
    assert_int_equal(r.status, 0);
    mdx_reply_free(&r);
}

char *mdx_call(mdx_cli_t *c, const char *op, const char *args_json, int *status)
{
    mdx_buf_t b;
    mdx_buf_init(&b);
    uint64_t id = c->next_id++;
    mdx_req_json(&b, id, op, args_json);
    mdx_cli_send(c, b.data, b.len);
    mdx_buf_fini(&b);
    mdx_reply_t r;
    if (mdx_cli_recv(c, &r, 0))
        fail_msg("%s %s: no reply", op, args_json ? args_json : "{}");
    assert_int_equal(r.id, id);
    *status = r.status;
    char *s = mdx_mp_to_json(r.body, r.body_len);
    mdx_reply_free(&r);
    return s;
}

/* Failures report the test's line, not the harness's. */
#define fail_at(file, line, ...)                                                                   \
    do {                                                                                           \
        print_error(__VA_ARGS__);                                                                  \
        _fail(file, line);                                                                         \
    } while (0)

void mdx__expect_ok(const char *file, int line, mdx_cli_t *c, const char *op, const char *args_json,
                    const char *want_json)
{
    int st;
    char *got = mdx_call(c, op, args_json, &st);
    if (st != 0)
        fail_at(file, line, "%s %s: expected success, got status %d: %s\n", op, args_json, st, got);
    mdx_buf_t w;
    mdx_buf_init(&w);
    mdx_json_to_mp(&w, want_json);
    char *want = mdx_mp_to_json(w.data, w.len);
    mdx_buf_fini(&w);
    if (strcmp(got, want) != 0)
        fail_at(file, line, "%s %s:\n  want %s\n  got  %s\n", op, args_json, want, got);
    free(want);
    free(got);
}

char *mdx__expect_err(const char *file, int line, mdx_cli_t *c, const char *op,
                      const char *args_json, int code)
{
    int st;
    char *got = mdx_call(c, op, args_json, &st);
    if (st != code)
        fail_at(file, line, "%s %s: expected error %s, got status %d: %s\n", op, args_json,
                mdx_err_name(code), st, got);
    char want_code[64];
    snprintf(want_code, sizeof(want_code), "{\"code\":\"%s\",\"message\":\"", mdx_err_name(code));
    if (strncmp(got, want_code, strlen(want_code)) != 0)
        fail_at(file, line, "%s %s: error body %s does not start with %s\n", op, args_json, got,
                want_code);
    return got;
}
