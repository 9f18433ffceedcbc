/*
 * Connections: reading, framing, dispatch, batching of replies, backpressure and closing.
 *
 * One read is one batch: every complete frame in it is decoded and dispatched in order, each
 * response is appended to the connection's collecting output buffer, and at the end of the
 * batch that buffer goes out in one uv_write. While a write is in flight (its buffer must live
 * until the callback), responses collect in the other buffer, which is written when the
 * callback fires. At most one write is in flight per connection, so replies keep their order.
 *
 * Backpressure: after a batch, a connection whose unsent output (collected plus not yet taken
 * by the kernel) is above output_pause stops being read; it is read again once the unsent
 * output falls to half that. Within a batch, a connection whose unsent output passes
 * output_limit is closed at once: that is a client which sends requests and does not read the
 * replies. Memory per connection therefore stays below output_limit plus one response plus one
 * frame.
 *
 * Closing politely (end of input, an oversized frame, a refused client, shutdown): stop
 * reading, flush, uv_shutdown (FIN after the last byte), then uv_close. Buffers are freed in the
 * close callback only, which libuv calls after any pending write callback.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/alloc.h"
#include "protocol/response.h"
#include "server/log.h"
#include "server/server.h"

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_write(uv_write_t *req, int status);

/* Peer address for log lines, looked up only when a line is about to be written. */
const char *mdx_conn_peer(mdx_conn_t *c)
{
    if (c->peer[0])
        return c->peer;
    snprintf(c->peer, sizeof(c->peer), "?");
    if (c->u.handle.type == UV_NAMED_PIPE) {
        snprintf(c->peer, sizeof(c->peer), "unix");
        return c->peer;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->u.tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[INET6_ADDRSTRLEN] = "";
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof(ip));
            snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, (unsigned)ntohs(a->sin_port));
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof(ip));
            snprintf(c->peer, sizeof(c->peer), "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
        }
    }
    return c->peer;
}

size_t mdx_conn_unsent(const mdx_conn_t *c)
{
    size_t n = c->out[c->cur].len;
    if (c->writing)
        n += uv_stream_get_write_queue_size(&c->u.stream);
    return n;
}

static void on_close(uv_handle_t *h)
{
    mdx_conn_t *c = h->data;
    mdx_server_t *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (!c->rejected)
        srv->stats.conn_current--;
    mdx_free(c->in);
    mdx_buf_fini(&c->out[0]);
    mdx_buf_fini(&c->out[1]);
    mdx_free(c);
    if (srv->shutting_down && !srv->conns)
        mdx_server_conns_gone(srv);
}

/* Closes now, dropping unsent output. Safe to call more than once and from inside any
 * callback of the connection: memory is released in on_close, on a later loop iteration. */
static void kill_conn(mdx_conn_t *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    c->reading = 0;
    uv_close(&c->u.handle, on_close);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    kill_conn(req->data);
}

/* Sends the collecting buffer unless a write is already in flight. The kernel is tried first
 * (uv_try_write): a batch's replies nearly always fit the socket buffer, and a write that
 * completes synchronously inside uv_write still goes through libuv's write queue, whose drain
 * re-arms the poll watcher (one needless epoll_ctl per batch). What the kernel does not take
 * goes to uv_write, and the buffer then lives until on_write. */
static void flush(mdx_conn_t *c)
{
    if (c->writing || c->dead)
        return;
    mdx_buf_t *b = &c->out[c->cur];
    if (b->len == 0)
        return;
    uv_buf_t ub = uv_buf_init((char *)b->data, (unsigned)b->len);
    int n = uv_try_write(&c->u.stream, &ub, 1);
    if (n < 0 && n != UV_EAGAIN) {
        mdx_log_debug("%s: write failed: %s", mdx_conn_peer(c), uv_strerror(n));
        kill_conn(c);
        return;
    }
    if (n > 0 && (size_t)n == b->len) {
        b->len = 0;
        if (b->cap > MDX_OUT_KEEP || b->err) {
            mdx_buf_fini(b);
            mdx_buf_init(b);
        }
        return;
    }
    if (n > 0) {
        ub.base += n;
        ub.len -= (size_t)n;
    }
    int rc = uv_write(&c->wreq, &c->u.stream, &ub, 1, on_write);
    if (rc) {
        mdx_log_debug("%s: write failed: %s", mdx_conn_peer(c), uv_strerror(rc));
        kill_conn(c);
        return;
    }
    c->writing = 1;
    c->cur ^= 1;
}

/* For a closing connection: once every byte is handed to the kernel, send FIN and close. */
static void maybe_finish(mdx_conn_t *c)
{
    if (c->dead || c->shut || c->writing || c->out[c->cur].len)
        return;
    c->shut = 1;
    if (uv_shutdown(&c->sreq, &c->u.stream, on_shutdown))
        kill_conn(c);
}

static void stop_reading(mdx_conn_t *c)
{
    if (c->reading) {
        uv_read_stop(&c->u.stream);
        c->reading = 0;
    }
}

static void begin_close(mdx_conn_t *c)
{
    if (c->dead)
        return;
    c->closing = 1;
    stop_reading(c);
    flush(c);
    maybe_finish(c);
}

static void start_reading(mdx_conn_t *c)
{
    if (c->reading || c->dead || c->closing)
        return;
    int rc = uv_read_start(&c->u.stream, on_alloc, on_read);
    if (rc) {
        mdx_log_debug("%s: read failed: %s", mdx_conn_peer(c), uv_strerror(rc));
        kill_conn(c);
        return;
    }
    c->reading = 1;
    c->paused = 0;
}

static void on_write(uv_write_t *req, int status)
{
    mdx_conn_t *c = req->data;
    mdx_server_t *srv = c->srv;
    mdx_buf_t *b = &c->out[c->cur ^ 1];
    c->writing = 0;
    b->len = 0;
    /* Keep a modest buffer for the next batch; give back what a burst grew. */
    if (b->cap > MDX_OUT_KEEP || b->err) {
        mdx_buf_fini(b);
        mdx_buf_init(b);
    }
    if (c->dead)
        return;
    if (status < 0) {
        mdx_log_debug("%s: write failed: %s", mdx_conn_peer(c), uv_strerror(status));
        kill_conn(c);
        return;
    }
    flush(c);
    if (c->closing) {
        maybe_finish(c);
        return;
    }
    if (c->paused && mdx_conn_unsent(c) <= srv->cfg->output_pause / 2) {
        mdx_log_debug("%s: output drained; reading resumed", mdx_conn_peer(c));
        start_reading(c);
    }
}

/* Runs every complete frame in [p, p+len); returns the bytes consumed. Stops early when the
 * connection is closing or closed. */
static size_t process(mdx_conn_t *c, const uint8_t *p, size_t len)
{
    mdx_server_t *srv = c->srv;
    const mdx_config_t *cfg = srv->cfg;
    size_t off = 0;
    mdx_request_t req;
    char err[256];
    while (!c->dead && !c->closing) {
        const uint8_t *payload;
        size_t plen;
        long n = mdx_frame_next(p + off, len - off, cfg->max_frame, &payload, &plen);
        if (n == 0)
            break;
        mdx_buf_t *out = &c->out[c->cur];
        if (n < 0) {
            /* The rest of the stream cannot be framed: answer with id 0 and close. */
            uint32_t l = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 |
                         (uint32_t)p[off + 2] << 8 | p[off + 3];
            snprintf(err, sizeof(err), "frame of %lu bytes exceeds the limit of %llu",
                     (unsigned long)l, (unsigned long long)cfg->max_frame);
            mdx_reply_error(srv, c, out, 0, (int)-n, err);
            begin_close(c);
            break;
        }
        off += (size_t)n;
        int rc = mdx_request_decode(payload, plen, &req, err, sizeof(err));
        if (rc) {
            mdx_reply_error(srv, c, out, req.id, rc, err);
        } else {
            srv->stats.commands[req.op]++;
            if (mdx_dispatch(srv, c, &req, out)) {
                kill_conn(c);
                break;
            }
        }
        if (out->err) {
            mdx_log_warn("%s: out of memory building a reply; closing", mdx_conn_peer(c));
            kill_conn(c);
            break;
        }
        if (mdx_conn_unsent(c) > cfg->output_limit) {
            srv->stats.output_limit_closes++;
            mdx_log_info("%s: unsent output above output_limit (%llu bytes); closing",
                         mdx_conn_peer(c), (unsigned long long)cfg->output_limit);
            kill_conn(c);
            break;
        }
    }
    return off;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    mdx_conn_t *c = h->data;
    (void)suggested;
    if (c->in_len == 0) {
        *buf = uv_buf_init((char *)c->srv->rbuf, MDX_READ_CHUNK);
        return;
    }
    /* A partial frame is pending: read into the connection's buffer. It grows by doubling,
     * up to the frame's size (already checked against max_frame, or the frame would have
     * been refused), so the memory a connection holds stays proportional to what its client
     * actually sent: a header announcing 32 MiB costs nothing until the bytes arrive. */
    size_t want = MDX_READ_CHUNK;
    if (c->in_len >= MDX_FRAME_HEADER) {
        const uint8_t *p = c->in;
        size_t total = MDX_FRAME_HEADER +
                       ((size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | (size_t)p[3]);
        size_t grow = c->in_len * 2;
        if (grow > want)
            want = grow;
        if (want > total)
            want = total;
    }
    if (want < c->in_len + 1) /* cannot happen: a pending frame is incomplete */
        want = c->in_len + 1;
    if (c->in_cap < want) {
        uint8_t *n = mdx_realloc(c->in, want);
        if (n) {
            c->in = n;
            c->in_cap = want;
        }
    }
    if (c->in_cap <= c->in_len) {
        *buf = uv_buf_init(NULL, 0); /* on_read gets UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

/* Keeps the unconsumed tail of a shared-buffer read in the connection's own buffer. */
static int keep_tail(mdx_conn_t *c, const uint8_t *tail, size_t n)
{
    size_t want = n > MDX_READ_CHUNK ? n : MDX_READ_CHUNK;
    if (c->in_cap < want) {
        uint8_t *p = mdx_realloc(c->in, want);
        if (!p)
            return -1;
        c->in = p;
        c->in_cap = want;
    }
    memcpy(c->in, tail, n);
    c->in_len = n;
    return 0;
}

/* The end of a batch: send what it produced, then apply backpressure. */
static void after_batch(mdx_conn_t *c)
{
    if (c->dead)
        return;
    flush(c);
    if (c->closing) {
        maybe_finish(c);
        return;
    }
    size_t unsent = mdx_conn_unsent(c);
    if (c->reading && unsent > c->srv->cfg->output_pause) {
        stop_reading(c);
        c->paused = 1;
        mdx_log_debug("%s: %zu bytes of output unsent; reading paused", mdx_conn_peer(c), unsent);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    mdx_conn_t *c = s->data;
    mdx_server_t *srv = c->srv;
    if (nread == 0 || c->dead)
        return;
    if (nread < 0) {
        if (nread == UV_EOF) {
            /* The client is done sending; it may still be reading the replies. */
            begin_close(c);
        } else {
            mdx_log_debug("%s: read failed: %s", mdx_conn_peer(c), uv_strerror((int)nread));
            kill_conn(c);
        }
        return;
    }
    if ((const uint8_t *)buf->base == srv->rbuf) {
        size_t used = process(c, srv->rbuf, (size_t)nread);
        if (!c->dead && !c->closing && used < (size_t)nread &&
            keep_tail(c, srv->rbuf + used, (size_t)nread - used)) {
            mdx_log_warn("%s: out of memory buffering input; closing", mdx_conn_peer(c));
            kill_conn(c);
        }
    } else {
        c->in_len += (size_t)nread;
        size_t used = process(c, c->in, c->in_len);
        if (c->dead || c->closing) {
            c->in_len = 0;
        } else if (used) {
            memmove(c->in, c->in + used, c->in_len - used);
            c->in_len -= used;
        }
        if (c->in_len == 0) {
            /* Idle connections hold no input memory. */
            mdx_free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
    }
    after_batch(c);
}

/* The handle that takes a connection we cannot afford, only to close it. */
static union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
} drop;
static int drop_busy;

static void drop_closed(uv_handle_t *h)
{
    (void)h;
    drop_busy = 0;
}

void mdx_conn_accept(mdx_server_t *srv, uv_stream_t *listener)
{
    mdx_conn_t *c = mdx_calloc(1, sizeof(*c));
    if (!c) {
        /* libuv stops watching a listener until its pending connection is accepted, so take
         * it and drop it rather than stall every future client. */
        mdx_log_error("out of memory accepting a connection; dropping it");
        int rc = drop_busy                  ? -1
                 : listener->type == UV_TCP ? uv_tcp_init(srv->loop, &drop.tcp)
                                            : uv_pipe_init(srv->loop, &drop.pipe, 0);
        if (rc == 0) {
            drop_busy = 1;
            if (uv_accept(listener, &drop.stream) == 0)
                srv->stats.conn_rejected++;
            uv_close(&drop.handle, drop_closed);
        }
        return;
    }
    int rc = listener->type == UV_TCP ? uv_tcp_init(srv->loop, &c->u.tcp)
                                      : uv_pipe_init(srv->loop, &c->u.pipe, 0);
    if (rc) {
        mdx_log_error("cannot initialise a connection: %s", uv_strerror(rc));
        mdx_free(c);
        return;
    }
    c->srv = srv;
    c->u.handle.data = c;
    c->wreq.data = c;
    c->sreq.data = c;
    mdx_buf_init(&c->out[0]);
    mdx_buf_init(&c->out[1]);
    c->rejected = 1; /* until counted below */
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;

    rc = uv_accept(listener, &c->u.stream);
    if (rc) {
        mdx_log_warn("accept failed: %s", uv_strerror(rc));
        kill_conn(c);
        return;
    }
    if (srv->shutting_down) {
        kill_conn(c);
        return;
    }
    if (srv->stats.conn_current >= srv->cfg->max_clients) {
        char msg[96];
        srv->stats.conn_rejected++;
        snprintf(msg, sizeof(msg), "too many clients (max_clients %llu)",
                 (unsigned long long)srv->cfg->max_clients);
        mdx_log_debug("%s: refused: %s", mdx_conn_peer(c), msg);
        mdx_reply_error(srv, c, &c->out[c->cur], 0, MDX_EMAXCLIENTS, msg);
        begin_close(c);
        return;
    }
    c->rejected = 0;
    srv->stats.conn_current++;
    srv->stats.conn_total++;
    if (listener->type == UV_TCP)
        uv_tcp_nodelay(&c->u.tcp, 1);
    start_reading(c);
}

/* Takes in whatever the client had sent before the shutdown began, without waiting for more:
 * those requests were received and get their replies. Bounded, so a client that streams
 * without pause cannot hold the shutdown. */
static void drain_input(mdx_conn_t *c)
{
    uv_os_fd_t fd;
    if (uv_fileno(&c->u.handle, &fd))
        return;
    for (int i = 0; i < 64 && !c->dead && !c->closing; i++) {
        uv_buf_t b;
        on_alloc(&c->u.handle, MDX_READ_CHUNK, &b);
        if (!b.base) {
            kill_conn(c);
            return;
        }
        ssize_t n;
        do
            n = recv(fd, b.base, b.len, MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            on_read(&c->u.stream, uv_translate_sys_error(errno), &b);
            return;
        }
        on_read(&c->u.stream, n == 0 ? UV_EOF : n, &b);
    }
}

void mdx_conn_shutdown_all(mdx_server_t *srv)
{
    for (mdx_conn_t *c = srv->conns, *next; c; c = next) {
        next = c->next; /* kill_conn unlinks only in on_close, later */
        if (c->dead || c->closing)
            continue;
        drain_input(c);
        begin_close(c);
    }
}

void mdx_conn_kill_all(mdx_server_t *srv)
{
    for (mdx_conn_t *c = srv->conns; c; c = c->next)
        kill_conn(c);
}
