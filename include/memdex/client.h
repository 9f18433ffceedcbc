/*
 * libmemdex-client: the C client library of memdex.
 *
 * A client handle holds one connection (TCP or Unix socket) to memdexd, opened lazily and
 * reopened on the next call after it breaks. Every command has a blocking function with typed
 * results (mdx_client_get, mdx_client_find, ...) and a queueing twin (mdx_client_queue_get,
 * ...) for pipelining: queue any number of requests, mdx_client_flush() writes them all in one
 * write, mdx_client_read_reply() returns the replies in request order.
 *
 * Conventions (every function):
 * - Fallible functions return 0 or a code from memdex/error.h. After a failure,
 *   mdx_client_err_kind() tells a server error (the server answered with that code; the
 *   connection is fine) from a transport error (MDX_ETIMEOUT, MDX_ECONNLOST, or MDX_EPROTO when
 *   the server sent bytes that are not the protocol; the connection was closed) from a local
 *   error (bad argument, out of memory, misuse; nothing was sent). mdx_client_err_name() and
 *   mdx_client_errmsg() give the server's code name and message, or a local description.
 * - Arguments (names, keys, bodies, values) are borrowed for the call only. They may point
 *   into the previous call's results: arguments are encoded before anything is read.
 * - Results are views into the client's buffers: valid until the next call on the same client,
 *   other than the accessors that take a const client (mdx_client_err_*, mdx_client_errmsg,
 *   mdx_client_pending, mdx_client_counters). Copy what you keep.
 * - Retries: a blocking call of an idempotent command (mdx_op_idempotent()) that fails with a
 *   transport error is retried on a new connection, per the retry policy (attempts,
 *   exponential backoff with jitter, total deadline). A non-idempotent command (put, delete,
 *   update, create/drop) is retried only when none of its bytes were sent (the connection could
 *   not be opened, or was found closed before sending); once it may have reached the server,
 *   a lost reply is reported as MDX_ECONNLOST (or MDX_ETIMEOUT) and it is never resent.
 *   Server errors are answers and are not retried, except MDX_EMAXCLIENTS and MDX_ESHUTDOWN
 *   (the server turned the connection away), which are retried under the same rules.
 *   Pipelined requests are never retried.
 * - Threads: a client handle is not thread-safe. Use one handle per thread (or serialize all
 *   calls on a handle yourself). Handles share no mutable state, so different handles may be
 *   used in different threads at once. The library installs no signal handlers (it writes with
 *   MSG_NOSIGNAL, so a closed socket never raises SIGPIPE).
 * - Memory: requests are encoded into a per-client buffer and replies read into another; both
 *   are reused, so steady-state calls do not allocate.
 */
#ifndef MEMDEX_CLIENT_H
#define MEMDEX_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "memdex/error.h"
#include "memdex/protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mdx_client mdx_client_t;

/* ---- options ---- */

/** Retry policy for blocking calls (see the conventions above). */
typedef struct {
    int attempts;       /* tries in all, the first included (default 3); 1: never retry */
    int backoff_ms;     /* delay before the 2nd try (default 10); doubles on each retry */
    int backoff_max_ms; /* cap on one delay (default 1000) */
    int deadline_ms;    /* bound on a whole call, retries and waits included (default 10000);
                           <= 0: no bound beyond the attempts and the timeouts */
} mdx_client_retry_t;

typedef struct {
    /** Where the server listens: "host:port" ("127.0.0.1:7711", "localhost:7711",
     *  "[::1]:7711"), or a Unix socket as "unix:/path/to/sock" or an absolute path. Copied by
     *  mdx_client_new. Host names are resolved with getaddrinfo on each connect. */
    const char *addr;
    int connect_timeout_ms;  /* connect plus the hello exchange (default 5000); <= 0: none */
    int read_timeout_ms;     /* longest wait for the next byte of an expected reply
                                (default 5000); <= 0: none */
    int write_timeout_ms;    /* longest wait for the socket to take more bytes (default 5000);
                                <= 0: none */
    const char *client_name; /* sent in hello for the server's logs (default "libmemdex-client");
                                at most 255 bytes; copied by mdx_client_new */
    mdx_client_retry_t retry;
} mdx_client_opts_t;

/** Fills opts with the defaults above (addr "127.0.0.1:7711"). Always call it before setting
 *  fields, so that fields added later get their defaults. */
void mdx_client_opts_init(mdx_client_opts_t *opts);

/* ---- lifecycle ---- */

/** Creates a client. No I/O: the connection opens on the first call (or mdx_client_connect).
 *  opts may be NULL (defaults). Returns 0, MDX_EINVAL (malformed address, client name too
 *  long, negative attempts) or MDX_ENOMEM.
 *  Caller frees with mdx_client_free. */
int mdx_client_new(const mdx_client_opts_t *opts, mdx_client_t **out);

/** Closes the connection (if any) and frees the client and every buffer and result view it
 *  owns. Accepts NULL. */
void mdx_client_free(mdx_client_t *c);

/** Opens the connection now (connect, then the hello exchange: protocol 1 is checked and the
 *  server's max_frame remembered), retrying per the retry policy. Does nothing when already
 *  connected. Returns 0, MDX_ECONNLOST (refused, reset, unreachable, name not resolved),
 *  MDX_ETIMEOUT, MDX_EPROTO (not a memdex server, or another protocol version), or a server
 *  error (MDX_EMAXCLIENTS, MDX_ESHUTDOWN). */
int mdx_client_connect(mdx_client_t *c);

/** Closes the connection; the next call opens a new one. Requests queued or in flight are
 *  dropped (mdx_client_pending() becomes 0): those in flight may or may not have run. */
void mdx_client_close(mdx_client_t *c);

/** 1 when a connection is open (it may still turn out to be broken on the next call). */
int mdx_client_is_connected(const mdx_client_t *c);

/* ---- errors ---- */

typedef enum {
    MDX_CLIENT_ERR_NONE = 0,  /* the last call succeeded */
    MDX_CLIENT_ERR_SERVER,    /* the server replied with an error code; connection intact */
    MDX_CLIENT_ERR_TRANSPORT, /* timeout, connection lost, garbage from the server;
                                 connection closed */
    MDX_CLIENT_ERR_LOCAL      /* refused before sending: bad argument, too big, no memory,
                                 misuse (MDX_EBUSY: replies pending) */
} mdx_client_err_kind_t;

/** Kind of the error of the last call on c (MDX_CLIENT_ERR_NONE after a success). */
mdx_client_err_kind_t mdx_client_err_kind(const mdx_client_t *c);
/** Code of the last call on c: 0 or what it returned. */
int mdx_client_err_code(const mdx_client_t *c);
/** Name of that code: for a server error the "code" string the server sent ("NOTFOUND"),
 *  otherwise mdx_err_name(code); "OK" after a success. Returns a view valid until the next
 *  call on c. */
const char *mdx_client_err_name(const mdx_client_t *c);
/** Message of the last error: the server's message for a server error, or a local description
 *  ("read from 127.0.0.1:7711: timed out after 5000 ms"); "" after a success. NUL-terminated,
 *  possibly truncated to a few hundred bytes. Returns a view valid until the next call on c. */
const char *mdx_client_errmsg(const mdx_client_t *c);

/* ---- values ---- */

/** A string or byte view. Not NUL-terminated. */
typedef struct {
    const char *ptr;
    size_t len;
} mdx_str_t;

typedef struct {
    const uint8_t *ptr; /* NULL for "absent" where documented */
    size_t len;
} mdx_bytes_t;

/** A key or a scalar value to send: what argument types `key` and `scalar` of the protocol
 *  carry. MDX_VAL_MP sends ready-made msgpack bytes (exactly one value; a key or cursor from a
 *  result, for example). A zeroed mdx_val_t is MDX_VAL_NONE: "argument absent". */
typedef enum {
    MDX_VAL_NONE = 0,
    MDX_VAL_NIL,
    MDX_VAL_BOOL,
    MDX_VAL_INT,
    MDX_VAL_UINT,
    MDX_VAL_DOUBLE,
    MDX_VAL_STR,
    MDX_VAL_BIN,
    MDX_VAL_MP
} mdx_val_type_t;

typedef struct {
    mdx_val_type_t type;
    union {
        int b;
        int64_t i;
        uint64_t u;
        double d;
    } v;
    const void *ptr; /* STR, BIN, MP: the bytes (borrowed) */
    size_t len;
} mdx_val_t;

static inline mdx_val_t mdx_val_nil(void)
{
    mdx_val_t x;
    memset(&x, 0, sizeof(x));
    x.type = MDX_VAL_NIL;
    return x;
}
static inline mdx_val_t mdx_val_bool(int b)
{
    mdx_val_t x = mdx_val_nil();
    x.type = MDX_VAL_BOOL;
    x.v.b = b != 0;
    return x;
}
static inline mdx_val_t mdx_val_int(int64_t i)
{
    mdx_val_t x = mdx_val_nil();
    x.type = MDX_VAL_INT;
    x.v.i = i;
    return x;
}
static inline mdx_val_t mdx_val_uint(uint64_t u)
{
    mdx_val_t x = mdx_val_nil();
    x.type = MDX_VAL_UINT;
    x.v.u = u;
    return x;
}
static inline mdx_val_t mdx_val_double(double d)
{
    mdx_val_t x = mdx_val_nil();
    x.type = MDX_VAL_DOUBLE;
    x.v.d = d;
    return x;
}
static inline mdx_val_t mdx_val_strn(const char *s, size_t len)
{
    mdx_val_t x = mdx_val_nil();
    x.type = MDX_VAL_STR;
    x.ptr = s;
    x.len = len;
    return x;
}
/** s is NUL-terminated. */
static inline mdx_val_t mdx_val_str(const char *s)
{
    return mdx_val_strn(s, strlen(s));
}
static inline mdx_val_t mdx_val_bin(const void *p, size_t len)
{
    mdx_val_t x = mdx_val_strn((const char *)p, len);
    x.type = MDX_VAL_BIN;
    return x;
}
/** Exactly one msgpack value, sent as is (checked to be well formed before sending). */
static inline mdx_val_t mdx_val_mp(const void *p, size_t len)
{
    mdx_val_t x = mdx_val_strn((const char *)p, len);
    x.type = MDX_VAL_MP;
    return x;
}

/** Reads one msgpack scalar (a key from a result, say) into *out: NIL, BOOL, INT (any integer
 *  that fits int64), UINT (above INT64_MAX), DOUBLE, STR or BIN (out->ptr a view into mp).
 *  Arrays, maps and ext values come back as MDX_VAL_MP over their bytes. Returns 0 or
 *  MDX_EPROTO (not exactly one well-formed value). */
int mdx_val_parse(const void *mp, size_t len, mdx_val_t *out);

/* ---- reading record bodies ---- */

/* Each looks up the string key `field` in the msgpack map [body, body+len) (a record body, or
 * any map in a result) and returns 0 with the value, MDX_ENOTFOUND when the field is absent or
 * nil (or body is NULL), MDX_EINVAL when it holds another type, or MDX_EPROTO when body is not
 * a well-formed map. Safe on any bytes. When a key repeats, the last one wins. Views point into
 * body. */
int mdx_field_str(const void *body, size_t len, const char *field, mdx_str_t *out);
int mdx_field_bin(const void *body, size_t len, const char *field, mdx_bytes_t *out);
/** Integers only; MDX_EINVAL also when the value does not fit int64. */
int mdx_field_int(const void *body, size_t len, const char *field, int64_t *out);
/** Non-negative integers only. */
int mdx_field_uint(const void *body, size_t len, const char *field, uint64_t *out);
/** Floats and integers (converted). */
int mdx_field_double(const void *body, size_t len, const char *field, double *out);
int mdx_field_bool(const void *body, size_t len, const char *field, int *out);
/** The value's msgpack bytes, whatever its type (nil included: this one returns MDX_ENOTFOUND
 *  only when the field is absent). */
int mdx_field_raw(const void *body, size_t len, const char *field, mdx_bytes_t *out);

/* ---- building msgpack ---- */

/** A growable msgpack writer for bodies and other arguments, in the shortest encodings.
 *  Errors stick in err (MDX_ENOMEM, or MDX_ETOOBIG for a str/bin over 2^32-1 bytes): write a
 *  whole value, then check err once. data/len are the bytes written so far. Not tied to a
 *  client. Caller frees the buffer with mdx_mpbuf_fini. */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
    int err;
} mdx_mpbuf_t;

void mdx_mpbuf_init(mdx_mpbuf_t *b);
void mdx_mpbuf_fini(mdx_mpbuf_t *b);
/** Empties b (keeps its memory) and clears err. */
void mdx_mpbuf_reset(mdx_mpbuf_t *b);
/** Container headers: the n elements (map: n key/value pairs) follow. */
void mdx_mpbuf_map(mdx_mpbuf_t *b, uint32_t n);
void mdx_mpbuf_array(mdx_mpbuf_t *b, uint32_t n);
/** s NUL-terminated. */
void mdx_mpbuf_str(mdx_mpbuf_t *b, const char *s);
void mdx_mpbuf_strn(mdx_mpbuf_t *b, const char *s, size_t len);
void mdx_mpbuf_bin(mdx_mpbuf_t *b, const void *p, size_t len);
void mdx_mpbuf_int(mdx_mpbuf_t *b, int64_t v);
void mdx_mpbuf_uint(mdx_mpbuf_t *b, uint64_t v);
void mdx_mpbuf_double(mdx_mpbuf_t *b, double v);
void mdx_mpbuf_bool(mdx_mpbuf_t *b, int v);
void mdx_mpbuf_nil(mdx_mpbuf_t *b);
/** Appends bytes as they are (already msgpack). */
void mdx_mpbuf_raw(mdx_mpbuf_t *b, const void *p, size_t len);

/* ---- command arguments and results ---- */

typedef enum { MDX_CLIENT_HASH = 0, MDX_CLIENT_SKIPLIST = 1 } mdx_client_index_kind_t;

typedef enum {
    MDX_CLIENT_UPSERT = 0, /* insert or replace (the default) */
    MDX_CLIENT_INSERT = 1, /* fail with MDX_EEXISTS when the key exists */
    MDX_CLIENT_REPLACE = 2 /* fail with MDX_ENOTFOUND when it does not */
} mdx_client_put_mode_t;

/** put options; NULL or zeroed: upsert, no expiry (or the collection's default TTL), no
 *  tags. */
typedef struct {
    mdx_client_put_mode_t mode;
    uint64_t ttl_ms;         /* 0: no expiry */
    int keep_ttl;            /* when replacing, keep the old expiry (ttl_ms ignored) */
    const char *ttl_class;   /* a TTL class ("short", ..., "none"), or NULL; not with ttl_ms */
    const char *const *tags; /* n_tags tags (NUL-terminated, 1..128 bytes), or NULL */
    size_t n_tags;           /* at most 16 */
    uint64_t lease;          /* a token from mdx_client_get_lease (0: none): fill that lease;
                                MDX_ELEASE when it is no longer held */
} mdx_client_put_opts_t;

/** A collection's cache options (create_collection_opts, configure_collection). Members left
 *  zero (NULL) are not sent: configure_collection keeps their current value. */
typedef struct {
    uint64_t capacity;  /* most records held */
    int set_capacity;   /* send capacity even when 0 (0: no limit) */
    const char *policy; /* "noeviction", "s3fifo", "sieve", "lru", "default", or NULL */
    uint64_t default_ttl_ms;
    int set_default_ttl_ms;  /* send default_ttl_ms even when 0 (0: no expiry) */
    const char *default_ttl; /* a TTL class name, or NULL; not with default_ttl_ms */
} mdx_client_coll_opts_t;

/** Conditions of find and count; MDX_VAL_NONE (zeroed) members are absent. eq excludes the
 *  bounds; ge excludes gt; le excludes lt (the server answers MDX_EBADARGS). */
typedef struct {
    mdx_val_t eq, ge, gt, le, lt;
} mdx_client_cond_t;

/** find options; NULL or zeroed: no condition, ascending, the server's default page. */
typedef struct {
    mdx_client_cond_t cond;
    int desc;        /* descending order */
    uint32_t limit;  /* records per page, 1..10000; 0: the server's default (100) */
    uint64_t offset; /* records to skip first */
    mdx_val_t after; /* MDX_VAL_MP over the previous page's cursor to continue; NONE: start */
} mdx_client_find_opts_t;

/** A record in a result: its key and body as msgpack (use mdx_val_parse and mdx_field_*). */
typedef struct {
    mdx_bytes_t key;
    mdx_bytes_t body;
} mdx_client_record_t;

typedef struct {
    const mdx_client_record_t *records; /* n of them, in index order (reversed with desc) */
    size_t n;
    int more;           /* further records match */
    mdx_bytes_t cursor; /* when more: pass mdx_val_mp(cursor.ptr, cursor.len) as after;
                           otherwise ptr NULL */
} mdx_client_find_t;

typedef struct {
    const mdx_client_record_t *records;
    size_t n;
    uint64_t cursor; /* pass to the next scan call; 0 when the scan is complete */
} mdx_client_scan_t;

typedef struct {
    const mdx_bytes_t *bodies; /* n of them, in the order of the keys; ptr NULL when absent */
    size_t n;
} mdx_client_mget_t;

typedef struct {
    mdx_str_t name;
    mdx_str_t field;
    mdx_client_index_kind_t kind;
    int unique;
    uint64_t entries; /* records in the index */
} mdx_client_index_t;

typedef struct {
    const mdx_client_index_t *indexes;
    size_t n;
} mdx_client_indexes_t;

typedef struct {
    mdx_str_t name;
    uint64_t records;
    const mdx_client_index_t *indexes;
    size_t n_indexes;
} mdx_client_coll_t;

typedef struct {
    const mdx_client_coll_t *colls; /* in creation order */
    size_t n;
} mdx_client_colls_t;

typedef struct {
    uint64_t protocol;
    mdx_str_t server;  /* "memdex" */
    mdx_str_t version; /* "x.y.z" */
    uint64_t max_frame;
} mdx_client_hello_t;

/** stats: the documented numbers, and the whole map (raw) for the nested maps "commands",
 *  "errors" and "collections" and for keys later servers add (read them with mdx_field_*). */
typedef struct {
    uint64_t uptime_s;
    uint64_t conn_current, conn_total, conn_rejected;
    uint64_t records;
    uint64_t memory;
    mdx_bytes_t raw;
    /* The cache tier (totals over every collection; per collection in raw "collections"). */
    uint64_t maxmemory; /* 0: no limit */
    uint64_t gets, hits, misses;
    double hit_ratio;
    uint64_t evicted_memory, evicted_capacity, expired, invalidated, invalidations, oom;
    uint64_t pending;
    mdx_str_t policy; /* the server's maxmemory_policy */
} mdx_client_stats_t;

/* ---- blocking commands ---- */

/* One function per command (docs/protocol.md has the arguments and errors of each). Each
 * connects when needed, sends the request, waits for its reply and decodes it into the
 * out-parameters, which are written only on success. Besides the server errors listed in
 * docs/protocol.md, each can return:
 *   transport: MDX_ETIMEOUT, MDX_ECONNLOST, MDX_EPROTO (malformed reply);
 *   local: MDX_EINVAL (a NULL name, a key of the wrong type, malformed MDX_VAL_MP bytes),
 *          MDX_ETOOBIG (the request exceeds the server's max_frame), MDX_ENOMEM,
 *          MDX_EBUSY (pipelined requests are pending: read their replies first).
 * Names (coll, index, field, ...) are NUL-terminated. Keys must be INT, UINT, STR, BIN or MP.
 * Result views are valid until the next call on c. */

/** hello again (the client already says hello on each connect). */
int mdx_client_hello(mdx_client_t *c, mdx_client_hello_t *out);
int mdx_client_ping(mdx_client_t *c);
int mdx_client_create_collection(mdx_client_t *c, const char *name);
int mdx_client_drop_collection(mdx_client_t *c, const char *name);
int mdx_client_list_collections(mdx_client_t *c, mdx_client_colls_t *out);
int mdx_client_create_index(mdx_client_t *c, const char *coll, const char *name, const char *field,
                            mdx_client_index_kind_t kind, int unique);
int mdx_client_drop_index(mdx_client_t *c, const char *coll, const char *name);
int mdx_client_list_indexes(mdx_client_t *c, const char *coll, mdx_client_indexes_t *out);
/** body: one msgpack map (body_len bytes), sent as is. opts may be NULL. */
int mdx_client_put(mdx_client_t *c, const char *coll, mdx_val_t key, const void *body,
                   size_t body_len, const mdx_client_put_opts_t *opts);
/** *body (a view) and *body_len: the record's body; *body NULL and *body_len 0 when there is
 *  no such record (that is not an error). */
int mdx_client_get(mdx_client_t *c, const char *coll, mdx_val_t key, const uint8_t **body,
                   size_t *body_len);
/** What mdx_client_get_lease found. */
typedef enum {
    MDX_CLIENT_LEASE_HIT = 0,  /* the record: *body, *body_len */
    MDX_CLIENT_LEASE_FILL = 1, /* a miss, and this client holds the lease: *token */
    MDX_CLIENT_LEASE_WAIT = 2, /* a miss, and another client holds it: retry shortly */
} mdx_client_lease_t;
/** get_lease (docs/protocol.md): a get that, on a miss, lets one client fill the record
 *  (put with opts.lease = *token) and tells the others to wait. lease_ms: 1..60000. *token is
 *  0 and *body NULL unless the state says otherwise. Not retried on a lost connection. */
int mdx_client_get_lease(mdx_client_t *c, const char *coll, mdx_val_t key, uint64_t lease_ms,
                         mdx_client_lease_t *state, uint64_t *token, const uint8_t **body,
                         size_t *body_len);
/** n: 1..10000 keys. */
int mdx_client_mget(mdx_client_t *c, const char *coll, const mdx_val_t *keys, size_t n,
                    mdx_client_mget_t *out);
/** *deleted (may be NULL): 1 when a record was deleted, 0 when there was none. */
int mdx_client_delete(mdx_client_t *c, const char *coll, mdx_val_t key, int *deleted);
/** set: a msgpack map of fields to set, or NULL; unset: n_unset field names (NUL-terminated)
 *  to remove, or NULL. At least one of them must be given. */
int mdx_client_update(mdx_client_t *c, const char *coll, mdx_val_t key, const void *set,
                      size_t set_len, const char *const *unset, size_t n_unset);
/** opts may be NULL. */
int mdx_client_find(mdx_client_t *c, const char *coll, const char *index,
                    const mdx_client_find_opts_t *opts, mdx_client_find_t *out);
/** cond may be NULL (every record in the index). */
int mdx_client_count(mdx_client_t *c, const char *coll, const char *index,
                     const mdx_client_cond_t *cond, uint64_t *out);
/** cursor 0 starts; limit 0: the server's default. */
int mdx_client_scan(mdx_client_t *c, const char *coll, uint64_t cursor, uint32_t limit,
                    mdx_client_scan_t *out);
/** ttl_ms >= 1. */
int mdx_client_ttl_set(mdx_client_t *c, const char *coll, mdx_val_t key, uint64_t ttl_ms);
/** *ms: milliseconds remaining, or -1 when the record has no expiry. */
int mdx_client_ttl_get(mdx_client_t *c, const char *coll, mdx_val_t key, int64_t *ms);
int mdx_client_ttl_clear(mdx_client_t *c, const char *coll, mdx_val_t key);
int mdx_client_stats(mdx_client_t *c, mdx_client_stats_t *out);
/** create_collection with cache options (opts may be NULL: as mdx_client_create_collection). */
int mdx_client_create_collection_opts(mdx_client_t *c, const char *name,
                                      const mdx_client_coll_opts_t *opts);
/** Changes a collection's cache options; at least one must be set (else MDX_EINVAL, local). */
int mdx_client_configure_collection(mdx_client_t *c, const char *name,
                                    const mdx_client_coll_opts_t *opts);
/** Removes the records holding any of the n tags (1..16) in coll, or in every collection when
 *  coll is NULL. *removed (may be NULL): how many. */
int mdx_client_invalidate(mdx_client_t *c, const char *coll, const char *const *tags, size_t n,
                          uint64_t *removed);
/** Starts a background snapshot (MDX_EBUSY when one runs). */
int mdx_client_snapshot(mdx_client_t *c);

/* ---- raw requests and replies ---- */

/** One reply. status 0: body is the result; status > 0: the server's error code, err_name and
 *  err_msg its "code" and "message", body the error map. All views valid until the next call
 *  on the client. */
typedef struct {
    uint64_t id;
    mdx_op_t op; /* the request's op; MDX_OP__COUNT for a raw op name not in the table */
    int status;
    mdx_str_t err_name;
    mdx_str_t err_msg;
    mdx_bytes_t body;
} mdx_client_reply_t;

/** Any command by name: op (NUL-terminated) with args, one msgpack map (args_len bytes; NULL
 *  and 0 send an empty map). Retried like the named op (an op not in the table is treated as
 *  non-idempotent). Returns 0 or the reply's error code (*out is filled for both), or a
 *  transport or local error (*out untouched). */
int mdx_client_call(mdx_client_t *c, const char *op, const void *args, size_t args_len,
                    mdx_client_reply_t *out);

/* Typed decoders for a reply (from mdx_client_read_reply or mdx_client_call). Each returns
 * r->status when it is an error reply, MDX_EPROTO when the body is not the shape the op
 * returns, else 0. Those taking c build arrays in c's buffers: valid until the next call on
 * c. */
int mdx_client_reply_uint(const mdx_client_reply_t *r, uint64_t *out); /* count, delete */
int mdx_client_reply_int(const mdx_client_reply_t *r, int64_t *out);   /* ttl_get */
/** get: *body NULL when the result is nil. */
int mdx_client_reply_body(const mdx_client_reply_t *r, const uint8_t **body, size_t *len);
int mdx_client_reply_hello(const mdx_client_reply_t *r, mdx_client_hello_t *out);
int mdx_client_reply_stats(const mdx_client_reply_t *r, mdx_client_stats_t *out);
int mdx_client_reply_mget(mdx_client_t *c, const mdx_client_reply_t *r, mdx_client_mget_t *out);
int mdx_client_reply_find(mdx_client_t *c, const mdx_client_reply_t *r, mdx_client_find_t *out);
int mdx_client_reply_scan(mdx_client_t *c, const mdx_client_reply_t *r, mdx_client_scan_t *out);
int mdx_client_reply_indexes(mdx_client_t *c, const mdx_client_reply_t *r,
                             mdx_client_indexes_t *out);
int mdx_client_reply_colls(mdx_client_t *c, const mdx_client_reply_t *r, mdx_client_colls_t *out);

/* ---- pipelining ---- */

/* mdx_client_queue_<cmd> encodes a request into the client's output buffer and returns: no
 * I/O, no reply. Arguments are as for the blocking twin and are copied (encoded) at once.
 * Returns 0 or a local error (MDX_EINVAL, MDX_ETOOBIG, MDX_ENOMEM; the request is not queued
 * and those queued before it stay). Queue any number, then mdx_client_flush(), then call
 * mdx_client_read_reply() once per request: replies come in request order.
 *
 * Memory grows with what is queued and not flushed, and with replies that arrive while a
 * flush is writing (it reads them so the server's backpressure cannot deadlock the pair). For
 * a long stream, flush every few thousand requests and read those replies.
 *
 * A transport error in flush or read_reply closes the connection and drops every pending
 * request (queued or in flight; those in flight may or may not have run). Nothing pipelined
 * is retried. */
int mdx_client_queue_hello(mdx_client_t *c);
int mdx_client_queue_ping(mdx_client_t *c);
int mdx_client_queue_create_collection(mdx_client_t *c, const char *name);
int mdx_client_queue_drop_collection(mdx_client_t *c, const char *name);
int mdx_client_queue_list_collections(mdx_client_t *c);
int mdx_client_queue_create_index(mdx_client_t *c, const char *coll, const char *name,
                                  const char *field, mdx_client_index_kind_t kind, int unique);
int mdx_client_queue_drop_index(mdx_client_t *c, const char *coll, const char *name);
int mdx_client_queue_list_indexes(mdx_client_t *c, const char *coll);
int mdx_client_queue_put(mdx_client_t *c, const char *coll, mdx_val_t key, const void *body,
                         size_t body_len, const mdx_client_put_opts_t *opts);
int mdx_client_queue_get(mdx_client_t *c, const char *coll, mdx_val_t key);
int mdx_client_queue_mget(mdx_client_t *c, const char *coll, const mdx_val_t *keys, size_t n);
int mdx_client_queue_delete(mdx_client_t *c, const char *coll, mdx_val_t key);
int mdx_client_queue_update(mdx_client_t *c, const char *coll, mdx_val_t key, const void *set,
                            size_t set_len, const char *const *unset, size_t n_unset);
int mdx_client_queue_find(mdx_client_t *c, const char *coll, const char *index,
                          const mdx_client_find_opts_t *opts);
int mdx_client_queue_count(mdx_client_t *c, const char *coll, const char *index,
                           const mdx_client_cond_t *cond);
int mdx_client_queue_scan(mdx_client_t *c, const char *coll, uint64_t cursor, uint32_t limit);
int mdx_client_queue_ttl_set(mdx_client_t *c, const char *coll, mdx_val_t key, uint64_t ttl_ms);
int mdx_client_queue_ttl_get(mdx_client_t *c, const char *coll, mdx_val_t key);
int mdx_client_queue_ttl_clear(mdx_client_t *c, const char *coll, mdx_val_t key);
int mdx_client_queue_stats(mdx_client_t *c);
/** Any op by name, as mdx_client_call. */
int mdx_client_queue(mdx_client_t *c, const char *op, const void *args, size_t args_len);

/** Connects when needed and writes everything queued, in one write when the socket takes it
 *  (it may need more for a large batch). Returns 0 (also when nothing was queued), a transport
 *  error, or a connect-time server error (MDX_EMAXCLIENTS, MDX_ESHUTDOWN). */
int mdx_client_flush(mdx_client_t *c);

/** Requests queued or sent whose replies have not been read yet. */
size_t mdx_client_pending(const mdx_client_t *c);

/** Reads the reply to the oldest pending request into *out (flushing first if requests are
 *  still queued). Returns 0; or the server's error code with *out filled (kind SERVER: the
 *  request failed, the pipeline goes on); or a transport error (*out untouched, everything
 *  pending dropped); or MDX_EINVAL when nothing is pending. *out's views are valid until the
 *  next call on c. */
int mdx_client_read_reply(mdx_client_t *c, mdx_client_reply_t *out);

/* ---- counters ---- */

/** What a client has done since mdx_client_new (for tests, tools and tuning). */
typedef struct {
    uint64_t requests; /* requests encoded (a retry resends, it does not count again) */
    uint64_t replies;  /* replies read */
    uint64_t writes;   /* write system calls that wrote bytes */
    uint64_t reads;    /* read system calls that returned bytes */
    uint64_t connects; /* connections opened (hello done) */
    uint64_t retries;  /* retries of blocking calls */
} mdx_client_counters_t;

void mdx_client_counters(const mdx_client_t *c, mdx_client_counters_t *out);

#ifdef __cplusplus
}
#endif
#endif
