/*
 * libmemdex-client against fake servers that misbehave on purpose: one that accepts and never
 * answers, one that answers hello and then nothing, one that reads a request and hangs up
 * without replying, one that speaks something else. They check the timeouts, the retry
 * deadline, and that a request which is not idempotent is never sent twice.
 *
 * A fake server is a thread with a listening socket on 127.0.0.1 (port 0) serving up to 16
 * connections with poll(); it counts the connections it accepted and the requests it read,
 * by op, with atomics the test reads after the client call returns (the fake counts a
 * request before it closes the connection, and the client only returns after seeing that).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "memdex/client.h"
#include "protocol/response.h"

/* ---- the fake server ---- */

typedef enum {
    FAKE_SILENT,     /* accepts, never reads or writes */
    FAKE_HELLO_ONLY, /* answers hello, reads everything else and never answers */
    FAKE_HANG_UP,    /* answers hello, reads one request and closes without a reply */
    FAKE_GARBAGE     /* answers hello with bytes that are not a memdex reply */
} fake_mode_t;

#define FAKE_MAX_CONNS 16

typedef struct {
    int fd;
    uint8_t buf[1 << 16];
    size_t len;
} fake_conn_t;

typedef struct {
    fake_mode_t mode;
    int lfd, port;
    int wake[2];
    pthread_t thread;
    atomic_int accepted;
    atomic_int ops[MDX_OP__COUNT];
    fake_conn_t conns[FAKE_MAX_CONNS];
} fake_t;

static void fake_close(fake_conn_t *fc)
{
    close(fc->fd);
    fc->fd = -1;
    fc->len = 0;
}

static void send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        b += w;
        n -= (size_t)w;
    }
}

static void hello_reply(fake_t *f, int fd, uint64_t id)
{
    if (f->mode == FAKE_GARBAGE) {
        send_all(fd, "\x00\x00\x00\x03\x92\x01\x02", 7); /* a frame holding [1, 2] */
        return;
    }
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t mark;
    mdx_resp_begin(&b, &mark, id, 0);
    mdx_mp_put_map(&b, 4);
    mdx_mp_put_str(&b, "protocol", 8);
    mdx_mp_put_uint(&b, 1);
    mdx_mp_put_str(&b, "server", 6);
    mdx_mp_put_str(&b, "fake", 4);
    mdx_mp_put_str(&b, "version", 7);
    mdx_mp_put_str(&b, "0.0.0", 5);
    mdx_mp_put_str(&b, "max_frame", 9);
    mdx_mp_put_uint(&b, 1 << 20);
    mdx_resp_end(&b, mark);
    assert_int_equal(b.err, 0);
    send_all(fd, b.data, b.len);
    mdx_buf_fini(&b);
}

/* Handles the complete frames in fc's buffer; returns 0 when the connection was closed. */
static int fake_frames(fake_t *f, fake_conn_t *fc)
{
    for (;;) {
        const uint8_t *payload;
        size_t plen;
        long n = mdx_frame_next(fc->buf, fc->len, sizeof(fc->buf), &payload, &plen);
        if (n <= 0)
            return 1;
        mdx_request_t req;
        int rc = mdx_request_decode(payload, plen, &req, NULL, 0);
        memmove(fc->buf, fc->buf + n, fc->len - (size_t)n);
        fc->len -= (size_t)n;
        if (rc)
            continue;
        if (req.op == MDX_OP_HELLO) {
            hello_reply(f, fc->fd, req.id);
            continue;
        }
        atomic_fetch_add(&f->ops[req.op], 1);
        if (f->mode == FAKE_HANG_UP) {
            fake_close(fc);
            return 0;
        }
    }
}

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    for (;;) {
        struct pollfd p[2 + FAKE_MAX_CONNS];
        int map[2 + FAKE_MAX_CONNS];
        int n = 0;
        p[n++] = (struct pollfd){f->wake[0], POLLIN, 0};
        p[n++] = (struct pollfd){f->lfd, POLLIN, 0};
        for (int i = 0; i < FAKE_MAX_CONNS; i++) {
            if (f->conns[i].fd >= 0 && f->mode != FAKE_SILENT) {
                map[n] = i;
                p[n++] = (struct pollfd){f->conns[i].fd, POLLIN, 0};
            }
        }
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (p[0].revents)
            return NULL;
        if (p[1].revents & POLLIN) {
            int fd = accept(f->lfd, NULL, NULL);
            if (fd >= 0) {
                atomic_fetch_add(&f->accepted, 1);
                int slot = -1;
                for (int i = 0; i < FAKE_MAX_CONNS && slot < 0; i++)
                    if (f->conns[i].fd < 0)
                        slot = i;
                if (slot < 0) {
                    close(fd);
                } else {
                    f->conns[slot].fd = fd;
                    f->conns[slot].len = 0;
                }
            }
        }
        for (int k = 2; k < n; k++) {
            if (!p[k].revents)
                continue;
            fake_conn_t *fc = &f->conns[map[k]];
            ssize_t r = recv(fc->fd, fc->buf + fc->len, sizeof(fc->buf) - fc->len, 0);
            if (r <= 0) {
                fake_close(fc);
                continue;
            }
            fc->len += (size_t)r;
            fake_frames(f, fc);
        }
    }
}

static fake_t *fake_start(fake_mode_t mode)
{
    fake_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->mode = mode;
    for (int i = 0; i < FAKE_MAX_CONNS; i++)
        f->conns[i].fd = -1;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 64), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pipe(f->wake), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
    return f;
}

static void fake_stop(fake_t *f)
{
    assert_int_equal(write(f->wake[1], "x", 1), 1);
    pthread_join(f->thread, NULL);
    for (int i = 0; i < FAKE_MAX_CONNS; i++)
        if (f->conns[i].fd >= 0)
            close(f->conns[i].fd);
    close(f->lfd);
    close(f->wake[0]);
    close(f->wake[1]);
    free(f);
}

/* A port on which nothing listens (bound, then closed). */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static mdx_client_t *client_for(int port, const mdx_client_opts_t *base)
{
    static char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    mdx_client_opts_t o = *base;
    o.addr = addr;
    mdx_client_t *c = NULL;
    assert_int_equal(mdx_client_new(&o, &c), 0);
    return c;
}

static mdx_client_opts_t opts(int attempts, int deadline_ms)
{
    mdx_client_opts_t o;
    mdx_client_opts_init(&o);
    o.connect_timeout_ms = 2000;
    o.read_timeout_ms = 2000;
    o.retry.attempts = attempts;
    o.retry.backoff_ms = 2;
    o.retry.backoff_max_ms = 20;
    o.retry.deadline_ms = deadline_ms;
    return o;
}

static void assert_between(int64_t v, int64_t lo, int64_t hi)
{
    if (v < lo || v > hi)
        fail_msg("%lld is not in [%lld, %lld]", (long long)v, (long long)lo, (long long)hi);
}

static const uint8_t body1[] = {0x81, 0xa1, 'a', 0x01}; /* {"a": 1} */

/* ---- timeouts ---- */

static void silent_server_times_out_during_hello(void **state)
{
    (void)state;
    fake_t *f = fake_start(FAKE_SILENT);
    mdx_client_opts_t o = opts(1, 10000);
    o.connect_timeout_ms = 200;
    mdx_client_t *c = client_for(f->port, &o);
    int64_t t0 = now_ms();
    assert_int_equal(mdx_client_ping(c), MDX_ETIMEOUT);
    assert_between(now_ms() - t0, 190, 3000);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_TRANSPORT);
    assert_string_equal(mdx_client_err_name(c), "TIMEOUT");
    assert_non_null(strstr(mdx_client_errmsg(c), "timed out"));
    assert_false(mdx_client_is_connected(c));
    assert_int_equal(atomic_load(&f->accepted), 1);
    mdx_client_free(c);
    fake_stop(f);
}

static void read_timeout_when_the_server_never_answers(void **state)
{
    (void)state;
    fake_t *f = fake_start(FAKE_HELLO_ONLY);
    mdx_client_opts_t o = opts(1, 10000);
    o.read_timeout_ms = 200;
    mdx_client_t *c = client_for(f->port, &o);
    assert_int_equal(mdx_client_connect(c), 0);
    const uint8_t *body;
    size_t blen;
    int64_t t0 = now_ms();
    assert_int_equal(mdx_client_get(c, "x", mdx_val_int(1), &body, &blen), MDX_ETIMEOUT);
    assert_between(now_ms() - t0, 190, 3000);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_TRANSPORT);
    assert_int_equal(atomic_load(&f->ops[MDX_OP_GET]), 1);
    assert_false(mdx_client_is_connected(c));

    /* Pipelined: the flush succeeds, the wait for the first reply times out and drops all. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(mdx_client_queue_get(c, "x", mdx_val_int(i)), 0);
    assert_int_equal(mdx_client_flush(c), 0);
    mdx_client_reply_t r;
    t0 = now_ms();
    assert_int_equal(mdx_client_read_reply(c, &r), MDX_ETIMEOUT);
    assert_between(now_ms() - t0, 190, 3000);
    assert_int_equal(mdx_client_pending(c), 0);
    assert_int_equal(atomic_load(&f->ops[MDX_OP_GET]), 4);
    mdx_client_free(c);
    fake_stop(f);
}

/* ---- retries and the deadline ---- */

static void retries_stop_at_the_deadline_when_refused(void **state)
{
    (void)state;
    mdx_client_opts_t o = opts(1000000, 300);
    o.retry.backoff_ms = 5;
    o.retry.backoff_max_ms = 40;
    mdx_client_t *c = client_for(dead_port(), &o);
    int64_t t0 = now_ms();
    assert_int_equal(mdx_client_ping(c), MDX_ECONNLOST);
    int64_t took = now_ms() - t0;
    assert_between(took, 200, 1000);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_TRANSPORT);
    mdx_client_counters_t cnt;
    mdx_client_counters(c, &cnt);
    assert_true(cnt.retries >= 4);
    assert_true(cnt.retries < 100);
    assert_int_equal(cnt.connects, 0);

    /* The same bound applies to connect and flush. */
    t0 = now_ms();
    assert_int_equal(mdx_client_connect(c), MDX_ECONNLOST);
    assert_between(now_ms() - t0, 200, 1000);
    assert_int_equal(mdx_client_queue_ping(c), 0);
    assert_int_equal(mdx_client_flush(c), MDX_ECONNLOST);
    assert_int_equal(mdx_client_pending(c), 0);
    mdx_client_free(c);
}

static void retries_stop_at_the_deadline_on_timeouts(void **state)
{
    (void)state;
    fake_t *f = fake_start(FAKE_HELLO_ONLY);
    mdx_client_opts_t o = opts(1000, 450);
    o.read_timeout_ms = 100;
    mdx_client_t *c = client_for(f->port, &o);
    const uint8_t *body;
    size_t blen;
    int64_t t0 = now_ms();
    assert_int_equal(mdx_client_get(c, "x", mdx_val_int(1), &body, &blen), MDX_ETIMEOUT);
    assert_between(now_ms() - t0, 400, 1500);
    int gets = atomic_load(&f->ops[MDX_OP_GET]);
    if (gets < 2 || gets > 5)
        fail_msg("%d attempts in 450 ms of 100 ms timeouts", gets);
    mdx_client_counters_t cnt;
    mdx_client_counters(c, &cnt);
    assert_int_equal(cnt.retries, (uint64_t)gets - 1);
    mdx_client_free(c);
    fake_stop(f);
}

static void attempts_bound_retries_without_a_deadline(void **state)
{
    (void)state;
    mdx_client_opts_t o = opts(3, 0);
    mdx_client_t *c = client_for(dead_port(), &o);
    /* A put that cannot connect never left: retrying it is safe, and it is retried. */
    assert_int_equal(mdx_client_put(c, "x", mdx_val_int(1), body1, sizeof(body1), NULL),
                     MDX_ECONNLOST);
    mdx_client_counters_t cnt;
    mdx_client_counters(c, &cnt);
    assert_int_equal(cnt.retries, 2);
    mdx_client_free(c);

    o = opts(1, 0);
    c = client_for(dead_port(), &o);
    assert_int_equal(mdx_client_ping(c), MDX_ECONNLOST);
    mdx_client_counters(c, &cnt);
    assert_int_equal(cnt.retries, 0);
    mdx_client_free(c);
}

/* ---- non-idempotent requests ---- */

static void lost_reply_to_a_write_is_not_resent(void **state)
{
    (void)state;
    fake_t *f = fake_start(FAKE_HANG_UP);
    mdx_client_opts_t o = opts(5, 10000);
    mdx_client_t *c = client_for(f->port, &o);

    assert_int_equal(mdx_client_put(c, "x", mdx_val_int(1), body1, sizeof(body1), NULL),
                     MDX_ECONNLOST);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_TRANSPORT);
    assert_int_equal(atomic_load(&f->ops[MDX_OP_PUT]), 1);
    int del;
    assert_int_equal(mdx_client_delete(c, "x", mdx_val_int(1), &del), MDX_ECONNLOST);
    assert_int_equal(atomic_load(&f->ops[MDX_OP_DELETE]), 1);
    const char *unset[] = {"a"};
    assert_int_equal(mdx_client_update(c, "x", mdx_val_int(1), NULL, 0, unset, 1), MDX_ECONNLOST);
    assert_int_equal(atomic_load(&f->ops[MDX_OP_UPDATE]), 1);
    assert_int_equal(mdx_client_create_collection(c, "y"), MDX_ECONNLOST);
    assert_int_equal(atomic_load(&f->ops[MDX_OP_CREATE_COLLECTION]), 1);
    /* a raw call of a known op keeps its idempotence */
    static const char put_args[] = "\x83\xa4"
                                   "coll"
                                   "\xa1x\xa3"
                                   "key"
                                   "\x01\xa4"
                                   "body"
                                   "\x81\xa1"
                                   "a"
                                   "\x01";
    mdx_client_reply_t r;
    assert_int_equal(mdx_client_call(c, "put", put_args, sizeof(put_args) - 1, &r), MDX_ECONNLOST);
    assert_int_equal(atomic_load(&f->ops[MDX_OP_PUT]), 2);
    mdx_client_counters_t cnt;
    mdx_client_counters(c, &cnt);
    assert_int_equal(cnt.retries, 0);

    /* An idempotent request is retried: every attempt reaches the server. */
    const uint8_t *body;
    size_t blen;
    assert_int_equal(mdx_client_get(c, "x", mdx_val_int(1), &body, &blen), MDX_ECONNLOST);
    assert_int_equal(atomic_load(&f->ops[MDX_OP_GET]), 5);
    mdx_client_counters(c, &cnt);
    assert_int_equal(cnt.retries, 4);

    /* Pipelined writes are not retried either. */
    assert_int_equal(mdx_client_queue_put(c, "x", mdx_val_int(2), body1, sizeof(body1), NULL), 0);
    assert_int_equal(mdx_client_flush(c), 0);
    assert_int_equal(mdx_client_read_reply(c, &r), MDX_ECONNLOST);
    assert_int_equal(mdx_client_pending(c), 0);
    assert_int_equal(atomic_load(&f->ops[MDX_OP_PUT]), 3);
    mdx_client_free(c);
    fake_stop(f);
}

static void a_server_that_is_not_memdex_is_a_protocol_error(void **state)
{
    (void)state;
    fake_t *f = fake_start(FAKE_GARBAGE);
    mdx_client_opts_t o = opts(2, 10000);
    mdx_client_t *c = client_for(f->port, &o);
    assert_int_equal(mdx_client_ping(c), MDX_EPROTO);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_TRANSPORT);
    assert_false(mdx_client_is_connected(c));
    mdx_client_free(c);
    fake_stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(silent_server_times_out_during_hello),
        cmocka_unit_test(read_timeout_when_the_server_never_answers),
        cmocka_unit_test(retries_stop_at_the_deadline_when_refused),
        cmocka_unit_test(retries_stop_at_the_deadline_on_timeouts),
        cmocka_unit_test(attempts_bound_retries_without_a_deadline),
        cmocka_unit_test(lost_reply_to_a_write_is_not_resent),
        cmocka_unit_test(a_server_that_is_not_memdex_is_a_protocol_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
