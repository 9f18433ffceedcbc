/*
 * bench_wire (see wire.h): server processes, blocking memdex connections, msgpack paths and
 * the closed-loop load that memdex-bench snapshot and memdex-bench reclaim share.
 *
 * The load keeps one request in flight per connection; latency runs from the send to the
 * complete reply and is charged to the window selected when epoll returned the reply.
 */
#define _GNU_SOURCE /* CPU_SET, sched_setaffinity */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "bench/net.h"
#include "bench/wire.h"
#include "protocol/response.h"

/* ---- processes ---- */

int bench_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

int bench_tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int bench_pin_cpu(int cpu)
{
    if (cpu < 0)
        return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) ? -1 : 0;
}

pid_t bench_spawn(const char *const argv[], const char *logpath, int port, int cpu)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (bench_pin_cpu(cpu))
            dprintf(2, "cannot pin to cpu %d: %s\n", cpu, strerror(errno));
        execv(argv[0], (char *const *)argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    for (int i = 0; i < 3000; i++) {
        int fd = bench_tcp_connect(port);
        if (fd >= 0) {
            close(fd);
            return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "memdex-bench: %s did not start (see %s)\n", argv[0], logpath);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

void bench_stop(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

long bench_proc_kb(pid_t pid, const char *file, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, kl) == 0)
            kb = strtol(line + kl, NULL, 10);
    fclose(f);
    return kb;
}

void bench_sibling_path(const char *name, char *out, size_t n)
{
    char self[1024];
    ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[l > 0 ? l : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, n, "%s/%s", self, name);
}

/* ---- blocking request/reply connections ---- */

int bench_send_all(int fd, const void *p, size_t n)
{
    return net_write_all(fd, p, n);
}

int bench_read_more(bench_bconn_t *c)
{
    if (c->off && c->off == c->in.len)
        c->off = c->in.len = 0;
    return net_read_more(c->fd, &c->in);
}

int bench_md_reply(bench_bconn_t *c, int *status, const uint8_t **body, size_t *blen)
{
    for (;;) {
        size_t avail = c->in.len - c->off;
        if (avail >= 4) {
            const uint8_t *f = c->in.data + c->off;
            size_t l = (size_t)f[0] << 24 | (size_t)f[1] << 16 | (size_t)f[2] << 8 | f[3];
            if (avail >= 4 + l) {
                uint64_t id;
                c->off += 4 + l;
                return mdx_resp_decode(f + 4, l, &id, status, body, blen) ? -1 : 0;
            }
        }
        if (c->off) {
            memmove(c->in.data, c->in.data + c->off, c->in.len - c->off);
            c->in.len -= c->off;
            c->off = 0;
        }
        if (bench_read_more(c))
            return -1;
    }
}

int bench_md_roundtrip(bench_bconn_t *c, const mdx_buf_t *req, int *status, const uint8_t **body,
                       size_t *blen)
{
    if (bench_send_all(c->fd, req->data, req->len))
        return -1;
    return bench_md_reply(c, status, body, blen);
}

int bench_md_call(bench_bconn_t *c, const char *op, int *status, const uint8_t **body, size_t *blen)
{
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t mark;
    mdx_req_begin(&b, &mark, 1, op, 0);
    mdx_req_end(&b, mark);
    int rc = bench_md_roundtrip(c, &b, status, body, blen);
    mdx_buf_fini(&b);
    return rc;
}

int bench_mp_path(const uint8_t *p, size_t n, const char *const *keys, mdx_mp_tok_t *out)
{
    const uint8_t *vs = p, *ve = p + n;
    for (; *keys; keys++)
        if (mdx_mp_map_find(vs, (size_t)(ve - vs), *keys, strlen(*keys), out, &vs, &ve) != 1)
            return -1;
    return 0;
}

/* ---- the closed-loop load ---- */

size_t bench_md_reply_len(const bench_lconn_t *c, int *ok)
{
    if (c->len < 4)
        return 0;
    size_t l = (size_t)c->in[0] << 24 | (size_t)c->in[1] << 16 | (size_t)c->in[2] << 8 | c->in[3];
    if (c->len < 4 + l)
        return 0;
    uint64_t id;
    int st;
    const uint8_t *body;
    size_t bl;
    *ok = mdx_resp_decode(c->in + 4, l, &id, &st, &body, &bl) == 0 && st == 0 &&
          !(bl == 1 && body[0] == 0xc0 && !c->is_put);
    return 4 + l;
}

void bench_window_fini(bench_window_t *w)
{
    bench_hist_fini(&w->get);
    bench_hist_fini(&w->put);
}

static void next_request(const bench_load_t *l, bench_lconn_t *c, bench_rng_t *rng)
{
    c->out.len = 0;
    l->encode(l->data, c, rng);
    c->t0 = bench_now_ns();
}

int bench_load_run(const bench_load_t *l, bench_window_t *res, int nres)
{
    int rc = 0;
    for (int i = 0; i < nres; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        if (bench_hist_init(&res[i].get) || bench_hist_init(&res[i].put))
            rc = -1;
    }
    bench_lconn_t *cs = calloc(l->conns, sizeof(*cs));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (rc || !cs || ep < 0) {
        fprintf(stderr, "memdex-bench: %s: out of memory or descriptors\n", l->name);
        free(cs);
        if (ep >= 0)
            close(ep);
        return -1;
    }
    bench_rng_t rng;
    bench_rng_seed(&rng, l->seed);
    uint64_t opened = 0;
    for (; opened < l->conns && rc == 0; opened++) {
        bench_lconn_t *c = &cs[opened];
        mdx_buf_init(&c->out);
        c->fd = bench_tcp_connect(l->port);
        c->cap = 1 << 16;
        c->in = malloc(c->cap);
        if (c->fd < 0 || !c->in) {
            fprintf(stderr, "memdex-bench: %s: cannot connect to port %d\n", l->name, l->port);
            rc = -1;
            continue;
        }
        fcntl(c->fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        next_request(l, c, &rng);
        if (bench_send_all(c->fd, c->out.data, c->out.len))
            rc = -1;
    }
    uint64_t start = bench_now_ns(), last = start;
    uint64_t end = l->seconds > 0 ? start + (uint64_t)(l->seconds * 1e9) : UINT64_MAX;
    struct epoll_event evs[64];
    while (rc == 0 && last < end && !(l->stop && *l->stop)) {
        int n = epoll_wait(ep, evs, 64, 100);
        int ph = l->phase ? *l->phase : 0;
        bench_window_t *r = ph >= 0 && ph < nres ? &res[ph] : NULL;
        uint64_t t = bench_now_ns();
        if (r)
            r->elapsed += (double)(t - last) / 1e9;
        last = t;
        for (int e = 0; e < n; e++) {
            bench_lconn_t *c = evs[e].data.ptr;
            ssize_t k = recv(c->fd, c->in + c->len, c->cap - c->len, 0);
            if (k <= 0) {
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                fprintf(stderr, "memdex-bench: %s: the server closed a connection\n", l->name);
                rc = -1;
                break;
            }
            c->len += (size_t)k;
            int ok = 0;
            size_t used = l->reply_len(l->data, c, &ok);
            if (!used) {
                if (c->len == c->cap) {
                    uint8_t *p = realloc(c->in, c->cap * 2);
                    if (!p) {
                        rc = -1;
                        break;
                    }
                    c->in = p;
                    c->cap *= 2;
                }
                continue;
            }
            uint64_t lat = bench_now_ns() - c->t0;
            if (r) {
                bench_hist_record(c->is_put ? &r->put : &r->get, lat);
                r->ops++;
                r->errors += !ok;
                r->stalls += lat > BENCH_STALL_NS;
            }
            memmove(c->in, c->in + used, c->len - used);
            c->len -= used;
            next_request(l, c, &rng);
            if (bench_send_all(c->fd, c->out.data, c->out.len))
                rc = -1;
        }
    }
    for (uint64_t i = 0; i < opened; i++) {
        if (cs[i].fd >= 0)
            close(cs[i].fd);
        free(cs[i].in);
        mdx_buf_fini(&cs[i].out);
    }
    free(cs);
    close(ep);
    return rc;
}
