/*
 * The client's socket: address parsing, connect with a timeout, the hello exchange, and
 * buffered reads and writes bounded by timeouts and the call's deadline.
 *
 * The socket is non-blocking and every wait is a poll() with the smaller of the I/O timeout
 * (an inactivity bound: it restarts whenever bytes move) and what is left of the deadline.
 * While a write waits for room, replies are read too: the server stops reading a client whose
 * replies pile up, so a client that only wrote could wait forever on a server that only waits
 * for it. Every transport failure closes the socket, so a connection is either open and in
 * step with the ring of pending requests, or closed.
 */
#include "client/client_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/alloc.h"
#include "protocol/response.h"

#define READ_CHUNK (64u << 10) /* free space guaranteed before each recv */
#define MAX_REPLY  ((size_t)UINT32_MAX)

/* ---- address ---- */

static char *dup_n(const char *s, size_t n)
{
    char *d = mdx_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

int mdx__cl_parse_addr(mdx_client_t *c, const char *addr)
{
    if (!addr || !*addr)
        return MDX_EINVAL;
    if (strncmp(addr, "unix:", 5) == 0 || addr[0] == '/') {
        const char *path = addr[0] == '/' ? addr : addr + 5;
        struct sockaddr_un un;
        if (!*path || strlen(path) >= sizeof(un.sun_path))
            return MDX_EINVAL;
        c->is_unix = 1;
        c->host = dup_n(path, strlen(path));
        return c->host ? 0 : MDX_ENOMEM;
    }
    if (strncmp(addr, "tcp://", 6) == 0)
        addr += 6;
    const char *host = addr, *colon;
    size_t hlen;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return MDX_EINVAL;
        host = addr + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return MDX_EINVAL;
        hlen = (size_t)(colon - addr);
    }
    const char *port = colon + 1;
    size_t plen = strlen(port);
    if (hlen == 0 || plen == 0 || plen > 5 || strspn(port, "0123456789") != plen)
        return MDX_EINVAL;
    long pn = strtol(port, NULL, 10);
    if (pn < 1 || pn > 65535)
        return MDX_EINVAL;
    memcpy(c->port, port, plen + 1);
    c->is_unix = 0;
    c->host = dup_n(host, hlen);
    return c->host ? 0 : MDX_ENOMEM;
}

/* ---- waiting ---- */

/* poll timeout for one wait: the I/O timeout, cut to the deadline. 0 when the deadline has
 * passed; -1 for no bound. */
static int wait_ms(int io_timeout_ms, int64_t deadline)
{
    int t = io_timeout_ms > 0 ? io_timeout_ms : -1;
    if (deadline != INT64_MAX) {
        int64_t left = deadline - mdx__cl_now_ms();
        if (left <= 0)
            return 0;
        if (t < 0 || left < t)
            t = (int)(left > INT32_MAX ? INT32_MAX : left);
    }
    return t;
}

/* Returns the poll revents, 0 on timeout, -1 on a poll failure (errno set). */
static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = {fd, events, 0};
    int64_t end = timeout_ms < 0 ? INT64_MAX : mdx__cl_now_ms() + timeout_ms;
    for (;;) {
        int r = poll(&p, 1, timeout_ms);
        if (r > 0)
            return p.revents;
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -1;
        if (end != INT64_MAX) {
            int64_t left = end - mdx__cl_now_ms();
            timeout_ms = left > 0 ? (int)left : 0;
        }
    }
}

/* strerror is not thread-safe; the XSI strerror_r is (_POSIX_C_SOURCE selects it). */
static const char *errstr(int err, char *buf, size_t n)
{
    if (strerror_r(err, buf, n))
        snprintf(buf, n, "error %d", err);
    return buf;
}

static int lost(mdx_client_t *c, const char *what, int err)
{
    char eb[128];
    mdx__cl_disconnect(c);
    return mdx__cl_fail(c, MDX_CLIENT_ERR_TRANSPORT, MDX_ECONNLOST, "%s %s: %s", what, c->addr,
                        err ? errstr(err, eb, sizeof(eb)) : "connection closed by the server");
}

static int timed_out(mdx_client_t *c, const char *what, int waited_ms)
{
    mdx__cl_disconnect(c);
    return mdx__cl_fail(c, MDX_CLIENT_ERR_TRANSPORT, MDX_ETIMEOUT, "%s %s: timed out after %d ms",
                        what, c->addr, waited_ms);
}

/* ---- connect ---- */

void mdx__cl_disconnect(mdx_client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in.len = 0;
    c->in_pos = 0;
    c->in.err = 0;
}

/* One non-blocking connect; returns the fd or -1 with *err (an errno, or ETIMEDOUT). */
static int connect_one(int family, const struct sockaddr *sa, socklen_t salen, int64_t deadline,
                       int timeout_ms, int *err)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (connect(fd, sa, salen) == 0)
        return fd;
    if (errno != EINPROGRESS && errno != EINTR) {
        *err = errno;
        close(fd);
        return -1;
    }
    int r = wait_fd(fd, POLLOUT, wait_ms(timeout_ms, deadline));
    if (r <= 0) {
        *err = r == 0 ? ETIMEDOUT : errno;
        close(fd);
        return -1;
    }
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr) {
        *err = soerr ? soerr : errno;
        close(fd);
        return -1;
    }
    return fd;
}

static int connect_any(mdx_client_t *c, int64_t deadline)
{
    int err = 0, fd = -1;
    int64_t start = mdx__cl_now_ms();
    if (c->is_unix) {
        struct sockaddr_un un;
        memset(&un, 0, sizeof(un));
        un.sun_family = AF_UNIX;
        memcpy(un.sun_path, c->host, strlen(c->host) + 1);
        fd = connect_one(AF_UNIX, (struct sockaddr *)&un, sizeof(un), deadline,
                         c->connect_timeout_ms, &err);
    } else {
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        int g = getaddrinfo(c->host, c->port, &hints, &res);
        if (g) {
            return mdx__cl_fail(c, MDX_CLIENT_ERR_TRANSPORT, MDX_ECONNLOST,
                                "connect to %s: cannot resolve '%s': %s", c->addr, c->host,
                                gai_strerror(g));
        }
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            fd = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline,
                             c->connect_timeout_ms, &err);
            if (fd < 0 && err == ETIMEDOUT)
                break;
        }
        freeaddrinfo(res);
        if (fd >= 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
    }
    if (fd < 0) {
        if (err == ETIMEDOUT)
            return mdx__cl_fail(c, MDX_CLIENT_ERR_TRANSPORT, MDX_ETIMEOUT,
                                "connect to %s: timed out after %d ms", c->addr,
                                (int)(mdx__cl_now_ms() - start));
        char eb[128];
        return mdx__cl_fail(c, MDX_CLIENT_ERR_TRANSPORT, MDX_ECONNLOST, "connect to %s: %s",
                            c->addr, errstr(err, eb, sizeof(eb)));
    }
    c->fd = fd;
    c->in.len = 0;
    c->in_pos = 0;
    return 0;
}

/* ---- reading ---- */

/* One recv into in. Returns bytes read (> 0), 0 at EOF, -1 when it would block, -2 on an error
 * (errno set) or when no memory is left for the buffer (errno ENOMEM). */
static long read_some(mdx_client_t *c)
{
    mdx_buf_t *in = &c->in;
    if (in->cap - in->len < READ_CHUNK && c->in_pos > 0) {
        /* Only the unconsumed tail is still needed: views of earlier replies end with the
         * call that returned them. */
        size_t keep = in->len - c->in_pos;
        memmove(in->data, in->data + c->in_pos, keep);
        in->len = keep;
        c->in_pos = 0;
    }
    if (mdx_buf_reserve(in, READ_CHUNK)) {
        in->err = 0;
        errno = ENOMEM;
        return -2;
    }
    for (;;) {
        ssize_t n = recv(c->fd, in->data + in->len, in->cap - in->len, 0);
        if (n > 0) {
            in->len += (size_t)n;
            c->counters.reads++;
            return (long)n;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -1;
        return -2;
    }
}

int mdx__cl_read_frame(mdx_client_t *c, int64_t deadline, const uint8_t **payload, size_t *len)
{
    int64_t waited_from = mdx__cl_now_ms();
    for (;;) {
        size_t avail = c->in.len - c->in_pos;
        if (avail >= MDX_FRAME_HEADER) {
            long r = mdx_frame_next(c->in.data + c->in_pos, avail, MAX_REPLY, payload, len);
            if (r > 0) {
                c->in_pos += (size_t)r;
                return 0;
            }
        }
        if (c->fd < 0)
            return lost(c, "read from", 0);
        long n = read_some(c);
        if (n > 0) {
            waited_from = mdx__cl_now_ms();
            continue;
        }
        if (n == 0)
            return lost(c, "read from", 0);
        if (n == -2) {
            if (errno == ENOMEM) {
                mdx__cl_disconnect(c);
                return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_ENOMEM,
                                    "no memory for a reply from %s", c->addr);
            }
            return lost(c, "read from", errno);
        }
        int t = wait_ms(c->read_timeout_ms, deadline);
        int r = t == 0 ? 0 : wait_fd(c->fd, POLLIN, t);
        if (r == 0)
            return timed_out(c, "read from", (int)(mdx__cl_now_ms() - waited_from));
        if (r < 0)
            return lost(c, "read from", errno);
    }
}

/* ---- writing ---- */

static int send_bytes(mdx_client_t *c, const uint8_t *data, size_t len, size_t *off,
                      int64_t deadline, int *wrote)
{
    int64_t waited_from = mdx__cl_now_ms();
    while (*off < len) {
        if (c->fd < 0)
            return lost(c, "write to", 0);
        ssize_t n = send(c->fd, data + *off, len - *off, MSG_NOSIGNAL);
        if (n > 0) {
            *off += (size_t)n;
            if (wrote)
                *wrote = 1;
            c->counters.writes++;
            waited_from = mdx__cl_now_ms();
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return lost(c, "write to", errno);
        int t = wait_ms(c->write_timeout_ms, deadline);
        int r = t == 0 ? 0 : wait_fd(c->fd, POLLOUT | POLLIN, t);
        if (r == 0)
            return timed_out(c, "write to", (int)(mdx__cl_now_ms() - waited_from));
        if (r < 0)
            return lost(c, "write to", errno);
        if (r & (POLLIN | POLLHUP | POLLERR)) {
            /* Replies (or the end) arrived: take them in so the server can go on. */
            long m = read_some(c);
            if (m == 0)
                return lost(c, "write to", 0);
            if (m == -2 && errno == ENOMEM) {
                mdx__cl_disconnect(c);
                return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_ENOMEM,
                                    "no memory for replies from %s", c->addr);
            }
            if (m == -2)
                return lost(c, "write to", errno);
            if (m > 0)
                waited_from = mdx__cl_now_ms();
        }
    }
    return 0;
}

int mdx__cl_write(mdx_client_t *c, int64_t deadline, int *wrote)
{
    return send_bytes(c, c->out.data, c->out.len, &c->out_sent, deadline, wrote);
}

int mdx__cl_stale(mdx_client_t *c)
{
    if (c->fd < 0)
        return 1;
    char b;
    for (;;) {
        ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0)
            return 0;
        if (n == 0)
            return 1;
        if (errno == EINTR)
            continue;
        return !(errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

/* ---- hello ---- */

static int hello_reply(mdx_client_t *c, const uint8_t *payload, size_t len, uint64_t id)
{
    uint64_t rid;
    int status;
    const uint8_t *body;
    size_t blen;
    if (mdx_resp_decode(payload, len, &rid, &status, &body, &blen) || status < 0 ||
        (rid != id && !(rid == 0 && status > 0))) {
        mdx__cl_disconnect(c);
        return mdx__cl_fail(c, MDX_CLIENT_ERR_TRANSPORT, MDX_EPROTO,
                            "%s does not speak the memdex protocol", c->addr);
    }
    if (status > 0) {
        /* MAXCLIENTS (with id 0) or SHUTDOWN: the server refused us and closes. */
        mdx_str_t name = {"", 0}, msg = {"", 0};
        mdx_field_str(body, blen, "code", &name);
        mdx_field_str(body, blen, "message", &msg);
        mdx__cl_disconnect(c);
        mdx__cl_fail(c, MDX_CLIENT_ERR_SERVER, status, "%.*s", (int)msg.len, msg.ptr);
        if (name.len)
            snprintf(c->err_name, sizeof(c->err_name), "%.*s", (int)name.len, name.ptr);
        return status;
    }
    uint64_t proto = 0, max_frame = 0;
    if (mdx_field_uint(body, blen, "protocol", &proto) || proto != MDX_PROTOCOL_VERSION) {
        mdx__cl_disconnect(c);
        return mdx__cl_fail(c, MDX_CLIENT_ERR_TRANSPORT, MDX_EPROTO,
                            "%s speaks protocol %llu, not %d", c->addr, (unsigned long long)proto,
                            MDX_PROTOCOL_VERSION);
    }
    if (mdx_field_uint(body, blen, "max_frame", &max_frame) == 0 && max_frame > 0)
        c->max_frame = max_frame;
    return 0;
}

int mdx__cl_open(mdx_client_t *c, int64_t deadline)
{
    if (c->connect_timeout_ms > 0) {
        int64_t d = mdx__cl_now_ms() + c->connect_timeout_ms;
        if (d < deadline)
            deadline = d;
    }
    int rc = connect_any(c, deadline);
    if (rc)
        return rc;

    uint64_t id = c->next_id++;
    size_t mark;
    c->hs.len = 0;
    c->hs.err = 0;
    mdx_req_begin(&c->hs, &mark, id, "hello", 2);
    mdx_req_arg(&c->hs, MDX_ARG_PROTOCOL);
    mdx_mp_put_uint(&c->hs, MDX_PROTOCOL_VERSION);
    mdx_req_arg(&c->hs, MDX_ARG_CLIENT);
    mdx_mp_put_str(&c->hs, c->client_name, strlen(c->client_name));
    mdx_req_end(&c->hs, mark);
    if (c->hs.err) {
        mdx__cl_disconnect(c);
        return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_ENOMEM, "no memory for hello");
    }
    size_t off = 0;
    /* The hello exchange is bounded by the connect timeout (when there is one), not by the
     * I/O timeouts. */
    int rto = c->read_timeout_ms, wto = c->write_timeout_ms;
    if (c->connect_timeout_ms > 0)
        c->read_timeout_ms = c->write_timeout_ms = 0;
    rc = send_bytes(c, c->hs.data, c->hs.len, &off, deadline, NULL);
    const uint8_t *payload = NULL;
    size_t plen = 0;
    if (!rc)
        rc = mdx__cl_read_frame(c, deadline, &payload, &plen);
    c->read_timeout_ms = rto;
    c->write_timeout_ms = wto;
    if (rc)
        return rc;
    rc = hello_reply(c, payload, plen, id);
    if (rc)
        return rc;
    c->counters.connects++;
    return 0;
}
