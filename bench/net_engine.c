/*
 * The engine of memdex-bench net (see net.h): connections, the epoll loop, closed and open
 * loop scheduling, and the accounting of every operation.
 *
 * Invariants: an operation is in exactly one place, a connection's free list or in flight;
 * an in-flight operation has op->left entries in its connection's reply queue (the queue is a
 * fixed ring of 2 * pipeline + 2 entries, enough for two replies per operation, the most any
 * step sends, plus the follow-up a reply handler appends while its own entry is still queued).
 * issued = ok + failed once the run has drained, per kind; the run fails rather than
 * dropping an operation silently.
 */
#define _GNU_SOURCE /* accept4-free, but timerfd and TCP options want it on some libcs */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bench/net.h"

#define IN_CHUNK      (64 * 1024)
#define DRAIN_TIMEOUT (30 * 1000000000ull) /* after the end, wait this long for replies */

typedef struct {
    const net_cfg_t *cfg;
    net_result_t *r;
    bench_workload_t w;
    net_data_t data;
    uint8_t *value;
    net_conn_t *conns;
    uint32_t nconns;
    int ep, tfd;
    uint64_t t_start, t_measure, t_end;
    uint64_t target; /* ops mode: operations to issue in all */
    uint64_t issued, done;
    uint64_t last_done_ns;
    int stopping;
    double interval_ns; /* open loop */
    uint64_t sched_i;
    uint32_t rr;
    char *err;
    size_t errlen;
} eng_t;

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int net_result_init(net_result_t *r)
{
    memset(r, 0, sizeof(*r));
    int rc = bench_hist_init(&r->all);
    for (int k = 0; k < BENCH_OP__COUNT; k++)
        rc |= bench_hist_init(&r->hist[k]);
    return rc ? -1 : 0;
}

void net_result_fini(net_result_t *r)
{
    bench_hist_fini(&r->all);
    for (int k = 0; k < BENCH_OP__COUNT; k++)
        bench_hist_fini(&r->hist[k]);
}

int net_connect(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc) {
        set_err(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            e = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        set_err(err, errlen, "cannot connect to %s:%d: %s", host, port, strerror(e));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int net_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int net_read_more(int fd, mdx_buf_t *b)
{
    if (mdx_buf_reserve(b, IN_CHUNK))
        return -1;
    for (;;) {
        ssize_t n = recv(fd, b->data + b->len, b->cap - b->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        b->len += (size_t)n;
        return 0;
    }
}

void net_conn_expect(net_conn_t *c, net_op_t *op)
{
    /* The ring is sized for the worst case (see the file header); overflowing it would be a
     * driver bug, and a benchmark built on one measures nothing. */
    if (c->q_len >= c->q_cap) {
        fprintf(stderr, "memdex-bench: reply queue overflow (driver bug)\n");
        abort();
    }
    c->q[(c->q_head + c->q_len) % c->q_cap] = op;
    c->q_len++;
    op->left++;
}

/* ---- connections ---- */

static void conn_fini(net_conn_t *c)
{
    if (c->dstate && c->drv->conn_fini)
        c->drv->conn_fini(c);
    if (c->fd >= 0)
        close(c->fd);
    free(c->in);
    mdx_buf_fini(&c->out);
    free(c->q);
    free(c->ops);
}

static int conn_open(eng_t *e, net_conn_t *c)
{
    const net_cfg_t *cfg = e->cfg;
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->drv = cfg->drv;
    c->data = &e->data;
    c->next_id = 1;
    mdx_buf_init(&c->out);
    c->q_cap = 2 * cfg->pipeline + 2;
    c->q = calloc(c->q_cap, sizeof(*c->q));
    c->ops = calloc(cfg->pipeline, sizeof(*c->ops));
    c->in_cap = IN_CHUNK;
    c->in = malloc(c->in_cap);
    if (!c->q || !c->ops || !c->in) {
        set_err(e->err, e->errlen, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < cfg->pipeline; i++) {
        c->ops[i].next_free = c->free_ops;
        c->free_ops = &c->ops[i];
    }
    c->fd = net_connect(cfg->host, cfg->port, e->err, e->errlen);
    if (c->fd < 0)
        return -1;
    if (c->drv->conn_init && c->drv->conn_init(c)) {
        set_err(e->err, e->errlen, "out of memory");
        return -1;
    }
    if (c->drv->handshake && c->drv->handshake(c, e->err, e->errlen))
        return -1;
    int fl = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
    /* Large buffers so a deep pipeline never stalls on the socket. */
    int sz = 1 << 20;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, c->fd, &ev)) {
        set_err(e->err, e->errlen, "epoll_ctl: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int conn_flush(eng_t *e, net_conn_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            set_err(e->err, e->errlen, "send: %s", strerror(errno));
            return -1;
        }
        c->out_off += (size_t)n;
    }
    int want_out = c->out_off < c->out.len;
    if (!want_out) {
        c->out.len = 0;
        c->out_off = 0;
    }
    if (want_out != c->epoll_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(e->ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->epoll_out = want_out;
    }
    if (c->out.err) {
        set_err(e->err, e->errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- operations ---- */

static int more_to_issue(const eng_t *e)
{
    if (e->stopping)
        return 0;
    return e->target == 0 || e->issued < e->target;
}

static void issue(eng_t *e, net_conn_t *c, uint64_t t0)
{
    net_op_t *op = c->free_ops;
    c->free_ops = op->next_free;
    memset(op, 0, sizeof(*op));
    bench_workload_next(&e->w, &op->d);
    op->t0 = t0;
    c->inflight++;
    e->issued++;
    e->r->issued[op->d.kind]++;
    c->drv->encode(c, op, &c->out);
}

static void complete(eng_t *e, net_conn_t *c, net_op_t *op, uint64_t now)
{
    net_result_t *r = e->r;
    bench_opkind_t k = op->d.kind;
    int ok = !op->failed;
    if (ok && k == BENCH_OP_SCAN) {
        /* Every key from the start to the highest acknowledged insert exists, so at least that
         * many records (up to the limit) must come back, and never more than the limit. */
        int64_t avail = op->d.acked - op->d.keynum + 1;
        uint32_t want = avail < 0                          ? 0
                        : (uint64_t)avail < op->d.scan_len ? (uint32_t)avail
                                                           : op->d.scan_len;
        ok = op->got >= want && op->got <= op->d.scan_len;
    }
    if (k == BENCH_OP_INSERT)
        bench_workload_ack(&e->w, op->d.keynum);
    if (ok)
        r->ok[k]++;
    else
        r->failed[k]++;
    e->done++;
    e->last_done_ns = now;
    int in_window = now >= e->t_measure && (e->target || now <= e->t_end);
    if (in_window && ok) {
        uint64_t lat = now > op->t0 ? now - op->t0 : 0;
        bench_hist_record(&r->hist[k], lat);
        bench_hist_record(&r->all, lat);
        r->measured[k]++;
    }
    op->next_free = c->free_ops;
    c->free_ops = op;
    c->inflight--;
}

static int conn_read(eng_t *e, net_conn_t *c)
{
    for (;;) {
        if (c->in_off == c->in_len) {
            c->in_off = c->in_len = 0;
        } else if (c->in_cap - c->in_len < IN_CHUNK / 4) {
            if (c->in_off > 0) {
                memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
                c->in_len -= c->in_off;
                c->in_off = 0;
            }
            if (c->in_cap - c->in_len < IN_CHUNK / 4) {
                uint8_t *p = realloc(c->in, c->in_cap * 2);
                if (!p) {
                    set_err(e->err, e->errlen, "out of memory");
                    return -1;
                }
                c->in = p;
                c->in_cap *= 2;
            }
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            set_err(e->err, e->errlen, "%s closed the connection%s%s", c->drv->name,
                    n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
            return -1;
        }
        c->in_len += (size_t)n;
        if ((size_t)n < c->in_cap - c->in_len + (size_t)n)
            break; /* short read: the socket is drained */
    }
    uint64_t now = 0;
    while (c->q_len > 0) {
        net_op_t *op = c->q[c->q_head];
        int rc = c->drv->reply(c, op, &c->out, e->err, e->errlen);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        c->q_head = (c->q_head + 1) % c->q_cap;
        c->q_len--;
        if (op->left == 0) {
            if (!now)
                now = bench_now_ns();
            complete(e, c, op, now);
            if (e->cfg->rate == 0) {
                if (e->t_end && now >= e->t_end)
                    e->stopping = 1;
                if (more_to_issue(e))
                    issue(e, c, now);
            }
        }
    }
    if (c->q_len == 0 && c->in_off < c->in_len && c->drv != &net_drv_redis) {
        set_err(e->err, e->errlen, "%s sent %zu bytes nobody asked for", c->drv->name,
                c->in_len - c->in_off);
        return -1;
    }
    return conn_flush(e, c);
}

/* Open loop: issue every operation that is due, on connections with a free slot; arm the
 * timer for the next one. An operation that finds every slot busy waits (its t0 stays its due
 * time, so the wait counts in its latency). */
static int schedule(eng_t *e, uint64_t now)
{
    uint32_t tried = 0;
    while (more_to_issue(e)) {
        uint64_t due = e->t_start + (uint64_t)((double)e->sched_i * e->interval_ns);
        if (due > now) {
            struct itimerspec its;
            memset(&its, 0, sizeof(its));
            its.it_value.tv_sec = (time_t)(due / 1000000000u);
            its.it_value.tv_nsec = (long)(due % 1000000000u);
            timerfd_settime(e->tfd, TFD_TIMER_ABSTIME, &its, NULL);
            break;
        }
        if (e->t_end && due >= e->t_end) {
            e->stopping = 1;
            break;
        }
        net_conn_t *c = NULL;
        for (; tried < e->nconns; tried++) {
            net_conn_t *cand = &e->conns[e->rr];
            e->rr = (e->rr + 1) % e->nconns;
            if (cand->free_ops) {
                c = cand;
                tried = 0;
                break;
            }
        }
        if (!c)
            break; /* all busy: a completion calls us again */
        if (now - due > 1000000)
            e->r->late++;
        issue(e, c, due);
        e->sched_i++;
    }
    for (uint32_t i = 0; i < e->nconns; i++)
        if (e->conns[i].out.len > e->conns[i].out_off && conn_flush(e, &e->conns[i]))
            return -1;
    return 0;
}

static int inflight_total(const eng_t *e)
{
    for (uint32_t i = 0; i < e->nconns; i++)
        if (e->conns[i].inflight)
            return 1;
    return 0;
}

int net_run(const net_cfg_t *cfg, net_result_t *r, char *err, size_t errlen)
{
    eng_t e;
    memset(&e, 0, sizeof(e));
    e.cfg = cfg;
    e.r = r;
    e.err = err;
    e.errlen = errlen;
    e.ep = e.tfd = -1;
    int rc = -1;

    /* The data set: how many records exist (or, for the load, how many to make). */
    int fd = net_connect(cfg->host, cfg->port, err, errlen);
    if (fd < 0)
        return -1;
    int64_t records = 0;
    int prc = cfg->drv->prepare(fd, cfg->reset || cfg->workload->load, &records, err, errlen);
    close(fd);
    if (prc)
        return -1;
    r->records_before = records;
    if (cfg->workload->load) {
        records = cfg->records;
        e.target = (uint64_t)cfg->records;
    } else {
        if (records < 2) {
            set_err(err, errlen, "%s holds %lld records: run the load workload first",
                    cfg->drv->name, (long long)records);
            return -1;
        }
        e.target = cfg->ops;
    }
    uint64_t expected = cfg->expected_ops ? cfg->expected_ops : (uint64_t)records;
    if (bench_workload_init(&e.w, cfg->workload, cfg->dist, records, expected, cfg->scan_len,
                            cfg->scan_max, cfg->seed)) {
        set_err(err, errlen, "out of memory");
        bench_workload_fini(&e.w);
        return -1;
    }
    e.value = malloc(cfg->value_size ? cfg->value_size : 1);
    e.conns = calloc(cfg->conns, sizeof(*e.conns));
    if (!e.value || !e.conns) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < cfg->value_size; i++)
        e.value[i] = (uint8_t)('a' + i % 26);
    e.data.value = e.value;
    e.data.value_size = cfg->value_size;

    e.ep = epoll_create1(EPOLL_CLOEXEC);
    e.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (e.ep < 0 || e.tfd < 0) {
        set_err(err, errlen, "epoll/timerfd: %s", strerror(errno));
        goto out;
    }
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(e.ep, EPOLL_CTL_ADD, e.tfd, &tev);
    for (uint32_t i = 0; i < cfg->conns; i++) {
        e.nconns = i + 1;
        if (conn_open(&e, &e.conns[i]))
            goto out;
    }

    e.t_start = bench_now_ns();
    e.t_measure = e.t_start + (uint64_t)(cfg->warmup_s * 1e9);
    e.t_end = e.target ? 0 : e.t_measure + (uint64_t)(cfg->duration_s * 1e9);
    if (cfg->rate > 0) {
        e.interval_ns = 1e9 / cfg->rate;
        if (schedule(&e, e.t_start))
            goto out;
    } else {
        for (uint32_t i = 0; i < e.nconns; i++) {
            net_conn_t *c = &e.conns[i];
            while (c->free_ops && more_to_issue(&e))
                issue(&e, c, bench_now_ns());
            if (conn_flush(&e, c))
                goto out;
        }
    }

    struct epoll_event evs[256];
    uint64_t drain_deadline = 0;
    for (;;) {
        uint64_t now = bench_now_ns();
        if (e.t_end && now >= e.t_end)
            e.stopping = 1;
        if (!more_to_issue(&e)) {
            if (!inflight_total(&e))
                break;
            if (!drain_deadline)
                drain_deadline = now + DRAIN_TIMEOUT;
            if (now > drain_deadline) {
                set_err(err, errlen, "replies still missing %.0f s after the end",
                        DRAIN_TIMEOUT / 1e9);
                goto out;
            }
        }
        int timeout = 100;
        if (e.t_end && !e.stopping && e.t_end > now) {
            uint64_t ms = (e.t_end - now) / 1000000u + 1;
            if (ms < (uint64_t)timeout)
                timeout = (int)ms;
        }
        int n = epoll_wait(e.ep, evs, 256, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            set_err(err, errlen, "epoll_wait: %s", strerror(errno));
            goto out;
        }
        for (int i = 0; i < n; i++) {
            net_conn_t *c = evs[i].data.ptr;
            if (!c) {
                uint64_t ticks;
                ssize_t rd = read(e.tfd, &ticks, sizeof(ticks));
                (void)rd;
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && conn_flush(&e, c))
                goto out;
            if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conn_read(&e, c))
                goto out;
        }
        if (cfg->rate > 0 && schedule(&e, bench_now_ns()))
            goto out;
    }
    if (e.target)
        r->elapsed_s = (double)(e.last_done_ns -
                                (e.t_measure < e.last_done_ns ? e.t_measure : e.last_done_ns)) /
                       1e9;
    else
        r->elapsed_s = (double)(e.t_end - e.t_measure) / 1e9;
    r->records_after = bench_ackctr_last(&e.w.inserts) + 1;
    rc = 0;
out:
    if (e.conns)
        for (uint32_t i = 0; i < e.nconns; i++)
            conn_fini(&e.conns[i]);
    free(e.conns);
    free(e.value);
    if (e.ep >= 0)
        close(e.ep);
    if (e.tfd >= 0)
        close(e.tfd);
    bench_workload_fini(&e.w);
    return rc;
}
