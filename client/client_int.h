/*
 * Private to client/: the client handle and the pieces the client's .c files share.
 *
 * Buffers and their invariants:
 * - out holds encoded request frames; [0, out_sent) have been written to the socket. A flush
 *   empties it; a blocking call keeps its one frame until the call ends so that a retry can
 *   resend the same bytes.
 * - in holds received bytes; [0, in_pos) are consumed (their views may still be in the hands
 *   of the caller until the next call, so in is compacted only when more bytes are read).
 * - ring holds (id, op) of every request queued or in flight, oldest first; queued counts the
 *   newest of them whose frames are not fully written yet. With no connection the ring holds
 *   only queued requests: closing drops everything.
 * - arena holds the arrays of typed results (records, bodies, indexes); reset per decode.
 */
#ifndef MDX_CLIENT_INT_H
#define MDX_CLIENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/mp.h"
#include "memdex/client.h"

#define MDX_CLIENT_ERRMSG_MAX 512
#define MDX_CLIENT_NAME_MAX   48

typedef struct {
    uint64_t id;
    int op; /* mdx_op_t, or MDX_OP__COUNT for a raw op */
} mdx__pend_t;

struct mdx_client {
    /* configuration */
    char *addr; /* as given, for messages */
    int is_unix;
    char *host; /* TCP: host (brackets removed); Unix: the path */
    char port[8];
    char *client_name;
    int connect_timeout_ms, read_timeout_ms, write_timeout_ms;
    mdx_client_retry_t retry;

    /* connection */
    int fd; /* -1: closed */
    uint64_t max_frame;

    mdx_buf_t out;
    size_t out_sent;
    mdx_buf_t in;
    size_t in_pos;
    mdx_buf_t hs; /* the hello frame of a connect, apart from queued requests */

    mdx__pend_t *ring;
    size_t ring_cap; /* a power of two, or 0 */
    size_t ring_head, ring_len;
    size_t queued;
    uint64_t next_id;

    void *arena;
    size_t arena_cap;

    /* last error */
    mdx_client_err_kind_t err_kind;
    int err_code;
    char err_name[MDX_CLIENT_NAME_MAX];
    char err_msg[MDX_CLIENT_ERRMSG_MAX];

    mdx_client_counters_t counters;
    uint64_t rng;
};

/* Errors (client.c). Each returns code. */
int mdx__cl_fail(mdx_client_t *c, mdx_client_err_kind_t kind, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
void mdx__cl_clear_err(mdx_client_t *c);

/* Monotonic milliseconds; deadlines are absolute in this clock, INT64_MAX for none. */
int64_t mdx__cl_now_ms(void);

/* Connection (conn.c). Transport failures set the error (kind TRANSPORT) and close the
 * socket; they do not touch out or the ring. */
int mdx__cl_parse_addr(mdx_client_t *c, const char *addr);
/** Opens the socket and says hello, by the deadline (and connect_timeout_ms). */
int mdx__cl_open(mdx_client_t *c, int64_t deadline);
/** Closes the socket and forgets received bytes. */
void mdx__cl_disconnect(mdx_client_t *c);
/** 1 when the open connection is known dead (EOF or error pending; nothing else read). */
int mdx__cl_stale(mdx_client_t *c);
/** Writes out[out_sent, out.len). *wrote is set to 1 once any byte was written. Reads any
 *  replies that arrive meanwhile into in. */
int mdx__cl_write(mdx_client_t *c, int64_t deadline, int *wrote);
/** Waits for the next complete frame and returns its payload (a view into in) after marking
 *  it consumed. */
int mdx__cl_read_frame(mdx_client_t *c, int64_t deadline, const uint8_t **payload, size_t *len);

/* Arena for typed results (reply.c): a block of at least n bytes, 16-aligned, NULL on
 * failure. Invalidates the previous block. */
void *mdx__cl_arena(mdx_client_t *c, size_t n);

#endif
