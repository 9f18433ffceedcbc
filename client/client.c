/*
 * libmemdex-client: the handle, request encoding, blocking calls with retries, and
 * pipelining (see memdex/client.h).
 *
 * Every command is described by a req_t and encoded by one function, encode(), straight into
 * the output buffer (mdx_req_begin ... mdx_req_end: no intermediate copies, no allocation once
 * the buffers have grown). A blocking call is: encode, make sure a live connection is open,
 * write, read one reply. Its frame stays in the output buffer until the call ends, so a retry
 * resends the very same bytes; whether it may retry is decided by two facts only: is the op
 * idempotent, and did any byte of the request reach the socket.
 */
#include "client/client_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "protocol/response.h"

/* ---- time and errors ---- */

int64_t mdx__cl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mdx__cl_clear_err(mdx_client_t *c)
{
    c->err_kind = MDX_CLIENT_ERR_NONE;
    c->err_code = 0;
    c->err_name[0] = '\0';
    c->err_msg[0] = '\0';
}

int mdx__cl_fail(mdx_client_t *c, mdx_client_err_kind_t kind, int code, const char *fmt, ...)
{
    c->err_kind = kind;
    c->err_code = code;
    snprintf(c->err_name, sizeof(c->err_name), "%s", mdx_err_name(code));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err_msg, sizeof(c->err_msg), fmt, ap);
    va_end(ap);
    return code;
}

mdx_client_err_kind_t mdx_client_err_kind(const mdx_client_t *c)
{
    return c->err_kind;
}

int mdx_client_err_code(const mdx_client_t *c)
{
    return c->err_code;
}

const char *mdx_client_err_name(const mdx_client_t *c)
{
    return c->err_code ? c->err_name : "OK";
}

const char *mdx_client_errmsg(const mdx_client_t *c)
{
    return c->err_msg;
}

void mdx_client_counters(const mdx_client_t *c, mdx_client_counters_t *out)
{
    *out = c->counters;
}

size_t mdx_client_pending(const mdx_client_t *c)
{
    return c->ring_len;
}

int mdx_client_is_connected(const mdx_client_t *c)
{
    return c->fd >= 0;
}

/* ---- lifecycle ---- */

void mdx_client_opts_init(mdx_client_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->addr = "127.0.0.1:7711";
    o->connect_timeout_ms = 5000;
    o->read_timeout_ms = 5000;
    o->write_timeout_ms = 5000;
    o->client_name = "libmemdex-client";
    o->retry.attempts = 3;
    o->retry.backoff_ms = 10;
    o->retry.backoff_max_ms = 1000;
    o->retry.deadline_ms = 10000;
}

int mdx_client_new(const mdx_client_opts_t *opts, mdx_client_t **out)
{
    mdx_client_opts_t d;
    if (!opts) {
        mdx_client_opts_init(&d);
        opts = &d;
    }
    const char *name = opts->client_name ? opts->client_name : "libmemdex-client";
    if (strlen(name) > MDX_PROTO_MAX_STR || !*name || opts->retry.attempts < 0 ||
        opts->retry.backoff_ms < 0 || opts->retry.backoff_max_ms < 0)
        return MDX_EINVAL;
    mdx_client_t *c = mdx_calloc(1, sizeof(*c));
    if (!c)
        return MDX_ENOMEM;
    c->fd = -1;
    c->next_id = 1;
    c->max_frame = MDX_DEFAULT_MAX_FRAME;
    mdx_buf_init(&c->out);
    mdx_buf_init(&c->in);
    mdx_buf_init(&c->hs);
    c->connect_timeout_ms = opts->connect_timeout_ms;
    c->read_timeout_ms = opts->read_timeout_ms;
    c->write_timeout_ms = opts->write_timeout_ms;
    c->retry = opts->retry;
    if (c->retry.attempts < 1)
        c->retry.attempts = 1;
    int rc = mdx__cl_parse_addr(c, opts->addr);
    if (!rc) {
        size_t al = strlen(opts->addr), nl = strlen(name);
        c->addr = mdx_malloc(al + 1);
        c->client_name = mdx_malloc(nl + 1);
        if (c->addr && c->client_name) {
            memcpy(c->addr, opts->addr, al + 1);
            memcpy(c->client_name, name, nl + 1);
        } else {
            rc = MDX_ENOMEM;
        }
    }
    if (rc) {
        mdx_client_free(c);
        return rc;
    }
    /* Jitter only needs to differ between clients and over time; no global state. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    c->rng = ((uint64_t)(uintptr_t)c * 0x9e3779b97f4a7c15u) ^ (uint64_t)ts.tv_nsec ^
             ((uint64_t)ts.tv_sec << 32) ^ 1;
    *out = c;
    return 0;
}

/* Closes the connection and forgets every pending request. */
static void drop_all(mdx_client_t *c)
{
    mdx__cl_disconnect(c);
    c->out.len = 0;
    c->out.err = 0;
    c->out_sent = 0;
    c->queued = 0;
    c->ring_head = 0;
    c->ring_len = 0;
}

void mdx_client_free(mdx_client_t *c)
{
    if (!c)
        return;
    drop_all(c);
    mdx_buf_fini(&c->out);
    mdx_buf_fini(&c->in);
    mdx_buf_fini(&c->hs);
    mdx_free(c->ring);
    mdx_free(c->arena);
    mdx_free(c->addr);
    mdx_free(c->host);
    mdx_free(c->client_name);
    mdx_free(c);
}

void mdx_client_close(mdx_client_t *c)
{
    mdx__cl_clear_err(c);
    drop_all(c);
}

/* ---- retries ---- */

static uint64_t next_rand(mdx_client_t *c)
{
    uint64_t x = c->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return x * 0x2545f4914f6cdd1du;
}

/* Delay before retry number `attempt` (1 = the first retry): exponential, capped, with "equal
 * jitter" (half fixed, half random) so that clients cut off together do not return together. */
static int64_t backoff(mdx_client_t *c, int attempt)
{
    int64_t d = c->retry.backoff_ms;
    for (int i = 1; i < attempt && d < c->retry.backoff_max_ms; i++)
        d *= 2;
    if (d > c->retry.backoff_max_ms)
        d = c->retry.backoff_max_ms;
    if (d <= 1)
        return d;
    return d / 2 + (int64_t)(next_rand(c) % (uint64_t)(d - d / 2 + 1));
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

static int64_t deadline_from_now(const mdx_client_t *c)
{
    return c->retry.deadline_ms > 0 ? mdx__cl_now_ms() + c->retry.deadline_ms : INT64_MAX;
}

/* Sleeps before another attempt; 0 when the attempts or the deadline do not allow one. */
static int may_retry(mdx_client_t *c, int attempt, int64_t deadline)
{
    if (attempt >= c->retry.attempts)
        return 0;
    int64_t d = backoff(c, attempt);
    if (deadline != INT64_MAX && mdx__cl_now_ms() + d >= deadline)
        return 0;
    sleep_ms(d);
    c->counters.retries++;
    return 1;
}

static int connect_retrying(mdx_client_t *c)
{
    int64_t deadline = deadline_from_now(c);
    for (int attempt = 1;; attempt++) {
        int rc = mdx__cl_open(c, deadline);
        if (!rc)
            return 0;
        int again = c->err_kind == MDX_CLIENT_ERR_TRANSPORT ||
                    (c->err_kind == MDX_CLIENT_ERR_SERVER &&
                     (rc == MDX_EMAXCLIENTS || rc == MDX_ESHUTDOWN));
        if (!again || !may_retry(c, attempt, deadline))
            return rc;
    }
}

int mdx_client_connect(mdx_client_t *c)
{
    mdx__cl_clear_err(c);
    if (c->fd >= 0)
        return 0;
    return connect_retrying(c);
}

/* An open connection, reopened when found closed. Only checked with nothing in flight: a
 * dead connection then costs nothing, since no request on it can have been lost. */
static void drop_if_stale(mdx_client_t *c)
{
    if (c->fd >= 0 && c->ring_len == c->queued && mdx__cl_stale(c))
        mdx__cl_disconnect(c);
}

/* ---- encoding ---- */

enum { RAW = MDX_OP__COUNT };

typedef struct {
    int op; /* mdx_op_t, or RAW */
    const char *opname;
    int raw_op; /* RAW: the op opname names in the table, or RAW */
    const char *coll, *name, *index, *field;
    mdx_val_t key;
    const mdx_val_t *keys;
    size_t nkeys;
    const void *body; /* put: body; update: set; raw: the args map */
    size_t body_len;
    const mdx_client_put_opts_t *put;
    const char *const *unset;
    size_t n_unset;
    const mdx_client_find_opts_t *find;
    const mdx_client_cond_t *cond;
    uint64_t u; /* scan: cursor; ttl_set: ttl_ms */
    uint32_t limit;
    int kind, unique;
} req_t;

static int bad_arg(mdx_client_t *c, mdx_arg_t a, const char *why)
{
    return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_EINVAL, "argument '%s' %s", mdx_arg_name(a),
                        why);
}

static int check_name(mdx_client_t *c, const char *s, mdx_arg_t a)
{
    return s ? 0 : bad_arg(c, a, "is NULL");
}

static int check_mp(mdx_client_t *c, const void *p, size_t len, mdx_arg_t a)
{
    if (!p || mdx_mp_check(p, len, MDX_MP_MAX_DEPTH))
        return bad_arg(c, a, "is not exactly one well-formed msgpack value");
    return 0;
}

/* key: a key (int, uint, str, bin or ready msgpack); otherwise any scalar. */
static int check_val(mdx_client_t *c, const mdx_val_t *v, mdx_arg_t a, int key)
{
    switch (v->type) {
    case MDX_VAL_INT:
    case MDX_VAL_UINT:
        return 0;
    case MDX_VAL_STR:
    case MDX_VAL_BIN:
        return v->ptr || !v->len ? 0 : bad_arg(c, a, "has a NULL pointer");
    case MDX_VAL_MP:
        return check_mp(c, v->ptr, v->len, a);
    case MDX_VAL_NIL:
    case MDX_VAL_BOOL:
    case MDX_VAL_DOUBLE:
        return key ? bad_arg(c, a, "must be an integer, string or binary") : 0;
    default:
        return bad_arg(c, a, key ? "is missing" : "has an unknown value type");
    }
}

static void put_val(mdx_buf_t *b, const mdx_val_t *v)
{
    switch (v->type) {
    case MDX_VAL_NIL:
        mdx_mp_put_nil(b);
        break;
    case MDX_VAL_BOOL:
        mdx_mp_put_bool(b, v->v.b);
        break;
    case MDX_VAL_INT:
        mdx_mp_put_int(b, v->v.i);
        break;
    case MDX_VAL_UINT:
        mdx_mp_put_uint(b, v->v.u);
        break;
    case MDX_VAL_DOUBLE:
        mdx_mp_put_double(b, v->v.d);
        break;
    case MDX_VAL_STR:
        mdx_mp_put_str(b, v->len ? v->ptr : "", v->len);
        break;
    case MDX_VAL_BIN:
        mdx_mp_put_bin(b, v->len ? v->ptr : "", v->len);
        break;
    case MDX_VAL_MP:
        mdx_buf_append(b, v->ptr, v->len);
        break;
    default:
        break;
    }
}

static void put_cstr(mdx_buf_t *b, const char *s)
{
    mdx_mp_put_str(b, s, strlen(s));
}

static const mdx_arg_t cond_args[5] = {MDX_ARG_EQ, MDX_ARG_GE, MDX_ARG_GT, MDX_ARG_LE, MDX_ARG_LT};

static const mdx_val_t *cond_val(const mdx_client_cond_t *cd, int i)
{
    const mdx_val_t *v[5] = {&cd->eq, &cd->ge, &cd->gt, &cd->le, &cd->lt};
    return v[i];
}

static int check_cond(mdx_client_t *c, const mdx_client_cond_t *cd, uint32_t *n)
{
    if (!cd)
        return 0;
    for (int i = 0; i < 5; i++) {
        const mdx_val_t *v = cond_val(cd, i);
        if (v->type == MDX_VAL_NONE)
            continue;
        int rc = check_val(c, v, cond_args[i], 0);
        if (rc)
            return rc;
        (*n)++;
    }
    return 0;
}

static void put_cond(mdx_buf_t *b, const mdx_client_cond_t *cd)
{
    if (!cd)
        return;
    for (int i = 0; i < 5; i++) {
        const mdx_val_t *v = cond_val(cd, i);
        if (v->type == MDX_VAL_NONE)
            continue;
        mdx_req_arg(b, cond_args[i]);
        put_val(b, v);
    }
}

static int check_tags(mdx_client_t *c, const char *const *tags, size_t n)
{
    if (n > MDX_PROTO_MAX_TAGS)
        return bad_arg(c, MDX_ARG_TAGS, "holds more than 16 tags");
    for (size_t i = 0; i < n; i++) {
        int rc = check_name(c, tags[i], MDX_ARG_TAGS);
        if (rc)
            return rc;
        size_t l = strlen(tags[i]);
        if (l == 0 || l > MDX_PROTO_MAX_TAG)
            return bad_arg(c, MDX_ARG_TAGS, "holds a tag that is not 1 to 128 bytes long");
    }
    return 0;
}

static void put_tags(mdx_buf_t *b, const char *const *tags, size_t n)
{
    mdx_req_arg(b, MDX_ARG_TAGS);
    mdx_mp_put_array(b, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        put_cstr(b, tags[i]);
}

/* Checks r and counts its arguments. */
static int validate(mdx_client_t *c, const req_t *r, uint32_t *nargs)
{
    uint32_t n = 0;
    int rc = 0;
    switch (r->op) {
    case MDX_OP_HELLO:
        n = 2;
        break;
    case MDX_OP_PING:
    case MDX_OP_LIST_COLLECTIONS:
    case MDX_OP_STATS:
    case MDX_OP_SNAPSHOT:
        break;
    case MDX_OP_CREATE_COLLECTION:
    case MDX_OP_DROP_COLLECTION:
        rc = check_name(c, r->name, MDX_ARG_NAME);
        n = 1;
        break;
    case MDX_OP_CREATE_INDEX:
        if ((rc = check_name(c, r->coll, MDX_ARG_COLL)) ||
            (rc = check_name(c, r->name, MDX_ARG_NAME)) ||
            (rc = check_name(c, r->field, MDX_ARG_FIELD)))
            break;
        if (r->kind != MDX_CLIENT_HASH && r->kind != MDX_CLIENT_SKIPLIST)
            rc = bad_arg(c, MDX_ARG_KIND, "must be MDX_CLIENT_HASH or MDX_CLIENT_SKIPLIST");
        n = 5;
        break;
    case MDX_OP_DROP_INDEX:
        if (!(rc = check_name(c, r->coll, MDX_ARG_COLL)))
            rc = check_name(c, r->name, MDX_ARG_NAME);
        n = 2;
        break;
    case MDX_OP_LIST_INDEXES:
        rc = check_name(c, r->coll, MDX_ARG_COLL);
        n = 1;
        break;
    case MDX_OP_PUT:
        if ((rc = check_name(c, r->coll, MDX_ARG_COLL)) ||
            (rc = check_val(c, &r->key, MDX_ARG_KEY, 1)) ||
            (rc = check_mp(c, r->body, r->body_len, MDX_ARG_BODY)))
            break;
        n = 3;
        if (r->put) {
            if ((unsigned)r->put->mode > MDX_CLIENT_REPLACE) {
                rc = bad_arg(c, MDX_ARG_MODE, "must be upsert, insert or replace");
                break;
            }
            n += (r->put->mode != MDX_CLIENT_UPSERT) + (r->put->ttl_ms > 0) +
                 (r->put->keep_ttl != 0);
            if (r->put->ttl_class) {
                if ((rc = check_name(c, r->put->ttl_class, MDX_ARG_TTL_CLASS)))
                    break;
                n++;
            }
            if (r->put->tags) {
                if ((rc = check_tags(c, r->put->tags, r->put->n_tags)))
                    break;
                n++;
            }
            n += r->put->lease != 0;
        }
        break;
    case MDX_OP_GET_LEASE:
        if (!(rc = check_name(c, r->coll, MDX_ARG_COLL)))
            rc = check_val(c, &r->key, MDX_ARG_KEY, 1);
        if (!rc && (r->u < 1 || r->u > 60000))
            rc = bad_arg(c, MDX_ARG_LEASE_MS, "must be 1 to 60000");
        n = 3;
        break;
    case MDX_OP_GET:
    case MDX_OP_DELETE:
    case MDX_OP_TTL_GET:
    case MDX_OP_TTL_CLEAR:
    case MDX_OP_TTL_SET:
        if (!(rc = check_name(c, r->coll, MDX_ARG_COLL)))
            rc = check_val(c, &r->key, MDX_ARG_KEY, 1);
        n = r->op == MDX_OP_TTL_SET ? 3 : 2;
        break;
    case MDX_OP_MGET:
        if ((rc = check_name(c, r->coll, MDX_ARG_COLL)))
            break;
        if (!r->keys || r->nkeys == 0 || r->nkeys > UINT32_MAX) {
            rc = bad_arg(c, MDX_ARG_KEYS, "must hold at least one key");
            break;
        }
        for (size_t i = 0; i < r->nkeys && !rc; i++)
            rc = check_val(c, &r->keys[i], MDX_ARG_KEYS, 1);
        n = 2;
        break;
    case MDX_OP_UPDATE:
        if ((rc = check_name(c, r->coll, MDX_ARG_COLL)) ||
            (rc = check_val(c, &r->key, MDX_ARG_KEY, 1)))
            break;
        n = 2;
        if (r->body) {
            if ((rc = check_mp(c, r->body, r->body_len, MDX_ARG_SET)))
                break;
            n++;
        }
        if (r->unset) {
            for (size_t i = 0; i < r->n_unset && !rc; i++)
                rc = check_name(c, r->unset[i], MDX_ARG_UNSET);
            if (r->n_unset > UINT32_MAX)
                rc = bad_arg(c, MDX_ARG_UNSET, "has too many names");
            n++;
        }
        break;
    case MDX_OP_FIND:
    case MDX_OP_COUNT: {
        if ((rc = check_name(c, r->coll, MDX_ARG_COLL)) ||
            (rc = check_name(c, r->index, MDX_ARG_INDEX)))
            break;
        n = 2;
        const mdx_client_cond_t *cd =
            r->op == MDX_OP_FIND ? (r->find ? &r->find->cond : NULL) : r->cond;
        if ((rc = check_cond(c, cd, &n)))
            break;
        if (r->op == MDX_OP_FIND && r->find) {
            const mdx_client_find_opts_t *f = r->find;
            n += (f->desc != 0) + (f->limit != 0) + (f->offset != 0);
            if (f->after.type != MDX_VAL_NONE) {
                if (f->after.type != MDX_VAL_MP) {
                    rc = bad_arg(c, MDX_ARG_AFTER, "must be the cursor of a find result");
                    break;
                }
                rc = check_mp(c, f->after.ptr, f->after.len, MDX_ARG_AFTER);
                n++;
            }
        }
        break;
    }
    case MDX_OP_SCAN:
        rc = check_name(c, r->coll, MDX_ARG_COLL);
        n = 1 + (r->u != 0) + (r->limit != 0);
        break;
    case RAW: {
        if (!r->opname || !*r->opname)
            return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_EINVAL, "op is NULL or empty");
        if (!r->body)
            break;
        mdx_mp_tok_t t;
        const uint8_t *p = r->body;
        if (mdx_mp_check(r->body, r->body_len, MDX_MP_MAX_DEPTH) ||
            mdx_mp_read(&p, p + r->body_len, &t) || t.type != MDX_MP_MAP)
            return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_EINVAL,
                                "args must be exactly one well-formed msgpack map");
        n = t.len;
        break;
    }
    default:
        return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_EINVAL, "unknown op %d", r->op);
    }
    *nargs = n;
    return rc;
}

static void emit(mdx_client_t *c, const req_t *r)
{
    mdx_buf_t *b = &c->out;
    switch (r->op) {
    case MDX_OP_HELLO:
        mdx_req_arg(b, MDX_ARG_PROTOCOL);
        mdx_mp_put_uint(b, MDX_PROTOCOL_VERSION);
        mdx_req_arg(b, MDX_ARG_CLIENT);
        put_cstr(b, c->client_name);
        break;
    case MDX_OP_CREATE_COLLECTION:
    case MDX_OP_DROP_COLLECTION:
        mdx_req_arg(b, MDX_ARG_NAME);
        put_cstr(b, r->name);
        break;
    case MDX_OP_CREATE_INDEX:
    case MDX_OP_DROP_INDEX:
        mdx_req_arg(b, MDX_ARG_COLL);
        put_cstr(b, r->coll);
        mdx_req_arg(b, MDX_ARG_NAME);
        put_cstr(b, r->name);
        if (r->op == MDX_OP_CREATE_INDEX) {
            mdx_req_arg(b, MDX_ARG_FIELD);
            put_cstr(b, r->field);
            mdx_req_arg(b, MDX_ARG_KIND);
            put_cstr(b, r->kind == MDX_CLIENT_SKIPLIST ? "skiplist" : "hash");
            mdx_req_arg(b, MDX_ARG_UNIQUE);
            mdx_mp_put_bool(b, r->unique);
        }
        break;
    case MDX_OP_LIST_INDEXES:
        mdx_req_arg(b, MDX_ARG_COLL);
        put_cstr(b, r->coll);
        break;
    case MDX_OP_PUT:
    case MDX_OP_GET:
    case MDX_OP_GET_LEASE:
    case MDX_OP_DELETE:
    case MDX_OP_TTL_GET:
    case MDX_OP_TTL_CLEAR:
    case MDX_OP_TTL_SET:
    case MDX_OP_UPDATE:
        mdx_req_arg(b, MDX_ARG_COLL);
        put_cstr(b, r->coll);
        mdx_req_arg(b, MDX_ARG_KEY);
        put_val(b, &r->key);
        if (r->op == MDX_OP_PUT) {
            mdx_req_arg(b, MDX_ARG_BODY);
            mdx_buf_append(b, r->body, r->body_len);
            if (r->put && r->put->mode != MDX_CLIENT_UPSERT) {
                static const char *const modes[] = {"upsert", "insert", "replace"};
                mdx_req_arg(b, MDX_ARG_MODE);
                put_cstr(b, modes[r->put->mode]);
            }
            if (r->put && r->put->ttl_ms > 0) {
                mdx_req_arg(b, MDX_ARG_TTL_MS);
                mdx_mp_put_uint(b, r->put->ttl_ms);
            }
            if (r->put && r->put->keep_ttl) {
                mdx_req_arg(b, MDX_ARG_KEEP_TTL);
                mdx_mp_put_bool(b, 1);
            }
            if (r->put && r->put->ttl_class) {
                mdx_req_arg(b, MDX_ARG_TTL_CLASS);
                put_cstr(b, r->put->ttl_class);
            }
            if (r->put && r->put->tags)
                put_tags(b, r->put->tags, r->put->n_tags);
            if (r->put && r->put->lease) {
                mdx_req_arg(b, MDX_ARG_LEASE);
                mdx_mp_put_uint(b, r->put->lease);
            }
        } else if (r->op == MDX_OP_TTL_SET || r->op == MDX_OP_GET_LEASE) {
            mdx_req_arg(b, r->op == MDX_OP_TTL_SET ? MDX_ARG_TTL_MS : MDX_ARG_LEASE_MS);
            mdx_mp_put_uint(b, r->u);
        } else if (r->op == MDX_OP_UPDATE) {
            if (r->body) {
                mdx_req_arg(b, MDX_ARG_SET);
                mdx_buf_append(b, r->body, r->body_len);
            }
            if (r->unset) {
                mdx_req_arg(b, MDX_ARG_UNSET);
                mdx_mp_put_array(b, (uint32_t)r->n_unset);
                for (size_t i = 0; i < r->n_unset; i++)
                    put_cstr(b, r->unset[i]);
            }
        }
        break;
    case MDX_OP_MGET:
        mdx_req_arg(b, MDX_ARG_COLL);
        put_cstr(b, r->coll);
        mdx_req_arg(b, MDX_ARG_KEYS);
        mdx_mp_put_array(b, (uint32_t)r->nkeys);
        for (size_t i = 0; i < r->nkeys; i++)
            put_val(b, &r->keys[i]);
        break;
    case MDX_OP_FIND:
    case MDX_OP_COUNT:
        mdx_req_arg(b, MDX_ARG_COLL);
        put_cstr(b, r->coll);
        mdx_req_arg(b, MDX_ARG_INDEX);
        put_cstr(b, r->index);
        if (r->op == MDX_OP_COUNT) {
            put_cond(b, r->cond);
        } else if (r->find) {
            const mdx_client_find_opts_t *f = r->find;
            put_cond(b, &f->cond);
            if (f->desc) {
                mdx_req_arg(b, MDX_ARG_DESC);
                mdx_mp_put_bool(b, 1);
            }
            if (f->limit) {
                mdx_req_arg(b, MDX_ARG_LIMIT);
                mdx_mp_put_uint(b, f->limit);
            }
            if (f->offset) {
                mdx_req_arg(b, MDX_ARG_OFFSET);
                mdx_mp_put_uint(b, f->offset);
            }
            if (f->after.type == MDX_VAL_MP) {
                mdx_req_arg(b, MDX_ARG_AFTER);
                mdx_buf_append(b, f->after.ptr, f->after.len);
            }
        }
        break;
    case MDX_OP_SCAN:
        mdx_req_arg(b, MDX_ARG_COLL);
        put_cstr(b, r->coll);
        if (r->u) {
            mdx_req_arg(b, MDX_ARG_CURSOR);
            mdx_mp_put_uint(b, r->u);
        }
        if (r->limit) {
            mdx_req_arg(b, MDX_ARG_LIMIT);
            mdx_mp_put_uint(b, r->limit);
        }
        break;
    case RAW:
        if (r->body) {
            /* The pairs, after the map header that mdx_req_begin wrote again. */
            const uint8_t *p = r->body, *end = p + r->body_len;
            mdx_mp_tok_t t;
            mdx_mp_read(&p, end, &t);
            mdx_buf_append(b, p, (size_t)(end - p));
        }
        break;
    default: /* ping, list_collections, stats: no arguments */
        break;
    }
}

static int ring_push(mdx_client_t *c, uint64_t id, int op)
{
    if (c->ring_len == c->ring_cap) {
        size_t cap = c->ring_cap ? c->ring_cap * 2 : 64;
        mdx__pend_t *r = mdx_calloc(cap, sizeof(*r));
        if (!r)
            return MDX_ENOMEM;
        for (size_t i = 0; i < c->ring_len; i++)
            r[i] = c->ring[(c->ring_head + i) & (c->ring_cap - 1)];
        mdx_free(c->ring);
        c->ring = r;
        c->ring_cap = cap;
        c->ring_head = 0;
    }
    mdx__pend_t *p = &c->ring[(c->ring_head + c->ring_len) & (c->ring_cap - 1)];
    p->id = id;
    p->op = op;
    c->ring_len++;
    return 0;
}

/* Appends the request's frame to out and its (id, op) to the ring. On failure nothing
 * changes (except the error). */
static int encode(mdx_client_t *c, const req_t *r)
{
    uint32_t nargs = 0;
    int rc = validate(c, r, &nargs);
    if (rc)
        return rc;
    uint64_t id = c->next_id++;
    size_t mark;
    mdx_req_begin(&c->out, &mark, id, r->op == RAW ? r->opname : mdx_op_name((mdx_op_t)r->op),
                  nargs);
    emit(c, r);
    mdx_req_end(&c->out, mark);
    if (c->out.err) {
        rc = c->out.err;
        mdx_resp_rollback(&c->out, mark);
        return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, rc,
                            rc == MDX_ENOMEM ? "no memory to encode the request"
                                             : "request too large for a frame");
    }
    size_t plen = c->out.len - mark - MDX_FRAME_HEADER;
    if (plen > c->max_frame) {
        mdx_resp_rollback(&c->out, mark);
        return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_ETOOBIG,
                            "request of %zu bytes exceeds the server's frame limit of %llu bytes",
                            plen, (unsigned long long)c->max_frame);
    }
    if (ring_push(c, id, r->op == RAW ? r->raw_op : r->op)) {
        mdx_resp_rollback(&c->out, mark);
        return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_ENOMEM, "no memory to queue a request");
    }
    c->queued++;
    c->counters.requests++;
    return 0;
}

/* ---- replies ---- */

static int bad_reply(mdx_client_t *c, const char *what)
{
    mdx__cl_disconnect(c);
    return mdx__cl_fail(c, MDX_CLIENT_ERR_TRANSPORT, MDX_EPROTO, "%s from %s", what, c->addr);
}

/* Reads the reply to the oldest request in flight. Returns 0, the server's error code (the
 * reply is filled and the error recorded), or a transport error. */
static int take_reply(mdx_client_t *c, int64_t deadline, mdx_client_reply_t *out)
{
    for (;;) {
        const uint8_t *payload, *body;
        size_t plen, blen;
        int rc = mdx__cl_read_frame(c, deadline, &payload, &plen);
        if (rc)
            return rc;
        uint64_t id;
        int status;
        if (mdx_resp_decode(payload, plen, &id, &status, &body, &blen))
            return bad_reply(c, "malformed reply");
        if (status < 0)
            continue; /* a push: none is defined in protocol 1 */
        const mdx__pend_t *p = &c->ring[c->ring_head];
        /* id 0 with an error: the server could not tell which request it answers (a frame over
         * its limit, say) and is closing; the oldest request is the one that failed. */
        if (id != p->id && !(id == 0 && status > 0))
            return bad_reply(c, "reply out of order");
        mdx_client_reply_t r;
        memset(&r, 0, sizeof(r));
        r.id = p->id;
        r.op = (mdx_op_t)p->op;
        r.status = status;
        r.body.ptr = body;
        r.body.len = blen;
        c->ring_head = (c->ring_head + 1) & (c->ring_cap - 1);
        c->ring_len--;
        c->counters.replies++;
        if (status > 0) {
            r.err_name.ptr = "";
            r.err_msg.ptr = "";
            mdx_field_str(body, blen, "code", &r.err_name);
            mdx_field_str(body, blen, "message", &r.err_msg);
            mdx__cl_fail(c, MDX_CLIENT_ERR_SERVER, status, "%.*s", (int)r.err_msg.len,
                         r.err_msg.ptr);
            if (r.err_name.len)
                snprintf(c->err_name, sizeof(c->err_name), "%.*s", (int)r.err_name.len,
                         r.err_name.ptr);
        }
        *out = r;
        return status;
    }
}

/* ---- blocking calls ---- */

static int call(mdx_client_t *c, const req_t *r, mdx_client_reply_t *rep)
{
    mdx__cl_clear_err(c);
    if (c->ring_len)
        return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_EBUSY,
                            "%zu pipelined requests are pending: read their replies first",
                            c->ring_len);
    int rc = encode(c, r);
    if (rc)
        return rc;
    const mdx__pend_t pend = c->ring[c->ring_head];
    int idem = pend.op != RAW ? mdx_op_idempotent((mdx_op_t)pend.op) : 0;
    int64_t deadline = deadline_from_now(c);
    for (int attempt = 1;; attempt++) {
        int wrote = 0;
        /* Every attempt starts from the same state: one request, unsent. */
        c->out_sent = 0;
        c->queued = 1;
        c->ring_head = 0;
        c->ring_len = 0;
        ring_push(c, pend.id, pend.op); /* cannot fail: the ring has room for one */
        drop_if_stale(c);
        rc = c->fd < 0 ? mdx__cl_open(c, deadline) : 0;
        if (!rc)
            rc = mdx__cl_write(c, deadline, &wrote);
        if (!rc) {
            c->queued = 0;
            rc = take_reply(c, deadline, rep);
        }
        if (!rc)
            break;
        /* A server error is an answer, except these two, which say the request was turned
         * away (at the connection's hello, or because the server is going down). */
        int transient = c->err_kind == MDX_CLIENT_ERR_TRANSPORT ||
                        (c->err_kind == MDX_CLIENT_ERR_SERVER &&
                         (rc == MDX_EMAXCLIENTS || rc == MDX_ESHUTDOWN));
        if (!transient || !(idem || !wrote))
            break;
        if (!may_retry(c, attempt, deadline))
            break;
        mdx__cl_disconnect(c);
    }
    c->out.len = 0;
    c->out_sent = 0;
    c->queued = 0;
    c->ring_head = 0;
    c->ring_len = 0;
    return rc;
}

/* A result that does not have its op's shape: the server is not speaking protocol 1. */
static int decoded(mdx_client_t *c, int rc)
{
    if (rc == 0)
        return 0;
    if (rc == MDX_ENOMEM)
        return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_ENOMEM, "no memory for the result");
    return bad_reply(c, "result of an unexpected shape");
}

static int call_nil(mdx_client_t *c, const req_t *r)
{
    mdx_client_reply_t rep;
    return call(c, r, &rep);
}

static int queue(mdx_client_t *c, const req_t *r)
{
    mdx__cl_clear_err(c);
    return encode(c, r);
}

#define REQ(...)                                                                                   \
    req_t r;                                                                                       \
    memset(&r, 0, sizeof(r));                                                                      \
    __VA_ARGS__

int mdx_client_hello(mdx_client_t *c, mdx_client_hello_t *out)
{
    REQ(r.op = MDX_OP_HELLO;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc)
        return rc;
    mdx_client_hello_t h;
    if ((rc = decoded(c, mdx_client_reply_hello(&rep, &h))))
        return rc;
    *out = h;
    return 0;
}

int mdx_client_ping(mdx_client_t *c)
{
    REQ(r.op = MDX_OP_PING;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc)
        return rc;
    mdx_val_t v;
    if (mdx_val_parse(rep.body.ptr, rep.body.len, &v) || v.type != MDX_VAL_STR || v.len != 4 ||
        memcmp(v.ptr, "pong", 4) != 0)
        return bad_reply(c, "ping answered without \"pong\"");
    return 0;
}

int mdx_client_create_collection(mdx_client_t *c, const char *name)
{
    REQ(r.op = MDX_OP_CREATE_COLLECTION; r.name = name;)
    return call_nil(c, &r);
}

int mdx_client_drop_collection(mdx_client_t *c, const char *name)
{
    REQ(r.op = MDX_OP_DROP_COLLECTION; r.name = name;)
    return call_nil(c, &r);
}

int mdx_client_list_collections(mdx_client_t *c, mdx_client_colls_t *out)
{
    REQ(r.op = MDX_OP_LIST_COLLECTIONS;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc)
        return rc;
    mdx_client_colls_t v;
    if ((rc = decoded(c, mdx_client_reply_colls(c, &rep, &v))))
        return rc;
    *out = v;
    return 0;
}

int mdx_client_create_index(mdx_client_t *c, const char *coll, const char *name, const char *field,
                            mdx_client_index_kind_t kind, int unique)
{
    REQ(r.op = MDX_OP_CREATE_INDEX; r.coll = coll; r.name = name; r.field = field;
        r.kind = (int)kind; r.unique = unique != 0;)
    return call_nil(c, &r);
}

int mdx_client_drop_index(mdx_client_t *c, const char *coll, const char *name)
{
    REQ(r.op = MDX_OP_DROP_INDEX; r.coll = coll; r.name = name;)
    return call_nil(c, &r);
}

int mdx_client_list_indexes(mdx_client_t *c, const char *coll, mdx_client_indexes_t *out)
{
    REQ(r.op = MDX_OP_LIST_INDEXES; r.coll = coll;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc)
        return rc;
    mdx_client_indexes_t v;
    if ((rc = decoded(c, mdx_client_reply_indexes(c, &rep, &v))))
        return rc;
    *out = v;
    return 0;
}

int mdx_client_put(mdx_client_t *c, const char *coll, mdx_val_t key, const void *body,
                   size_t body_len, const mdx_client_put_opts_t *opts)
{
    REQ(r.op = MDX_OP_PUT; r.coll = coll; r.key = key; r.body = body; r.body_len = body_len;
        r.put = opts;)
    return call_nil(c, &r);
}

int mdx_client_get(mdx_client_t *c, const char *coll, mdx_val_t key, const uint8_t **body,
                   size_t *body_len)
{
    REQ(r.op = MDX_OP_GET; r.coll = coll; r.key = key;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc)
        return rc;
    const uint8_t *b = NULL;
    size_t n = 0;
    if ((rc = decoded(c, mdx_client_reply_body(&rep, &b, &n))))
        return rc;
    *body = b;
    *body_len = n;
    return 0;
}

int mdx_client_get_lease(mdx_client_t *c, const char *coll, mdx_val_t key, uint64_t lease_ms,
                         mdx_client_lease_t *state, uint64_t *token, const uint8_t **body,
                         size_t *body_len)
{
    REQ(r.op = MDX_OP_GET_LEASE; r.coll = coll; r.key = key; r.u = lease_ms;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc)
        return rc;
    const uint8_t *b = NULL;
    size_t n = 0;
    if ((rc = decoded(c, mdx_client_reply_body(&rep, &b, &n))))
        return rc;
    static const char *const states[] = {"hit", "fill", "wait"};
    mdx_mp_tok_t st, v;
    const uint8_t *vs = NULL, *ve = NULL;
    int s = -1;
    if (b && mdx_mp_map_find(b, n, "state", 5, &st, NULL, NULL) && st.type == MDX_MP_STR)
        for (int i = 0; i < 3; i++)
            if (st.len == strlen(states[i]) && memcmp(st.v.ptr, states[i], st.len) == 0)
                s = i;
    *token = 0;
    *body = NULL;
    *body_len = 0;
    if (s == MDX_CLIENT_LEASE_FILL &&
        !(mdx_mp_map_find(b, n, "token", 5, &v, NULL, NULL) && v.type == MDX_MP_INT && v.v.i > 0))
        s = -1;
    else if (s == MDX_CLIENT_LEASE_FILL)
        *token = (uint64_t)v.v.i;
    if (s == MDX_CLIENT_LEASE_HIT &&
        !(mdx_mp_map_find(b, n, "record", 6, &v, &vs, &ve) && v.type == MDX_MP_MAP))
        s = -1;
    else if (s == MDX_CLIENT_LEASE_HIT) {
        *body = vs;
        *body_len = (size_t)(ve - vs);
    }
    if (s < 0)
        return bad_reply(c, "get_lease reply without a valid state");
    *state = (mdx_client_lease_t)s;
    return 0;
}

int mdx_client_mget(mdx_client_t *c, const char *coll, const mdx_val_t *keys, size_t n,
                    mdx_client_mget_t *out)
{
    REQ(r.op = MDX_OP_MGET; r.coll = coll; r.keys = keys; r.nkeys = n;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc)
        return rc;
    mdx_client_mget_t v;
    if ((rc = decoded(c, mdx_client_reply_mget(c, &rep, &v))))
        return rc;
    if (v.n != n)
        return bad_reply(c, "mget result of the wrong length");
    *out = v;
    return 0;
}

int mdx_client_delete(mdx_client_t *c, const char *coll, mdx_val_t key, int *deleted)
{
    REQ(r.op = MDX_OP_DELETE; r.coll = coll; r.key = key;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc)
        return rc;
    uint64_t u = 0;
    if ((rc = decoded(c, mdx_client_reply_uint(&rep, &u))))
        return rc;
    if (deleted)
        *deleted = u != 0;
    return 0;
}

int mdx_client_update(mdx_client_t *c, const char *coll, mdx_val_t key, const void *set,
                      size_t set_len, const char *const *unset, size_t n_unset)
{
    REQ(r.op = MDX_OP_UPDATE; r.coll = coll; r.key = key; r.body = set; r.body_len = set_len;
        r.unset = unset; r.n_unset = n_unset;)
    return call_nil(c, &r);
}

int mdx_client_find(mdx_client_t *c, const char *coll, const char *index,
                    const mdx_client_find_opts_t *opts, mdx_client_find_t *out)
{
    REQ(r.op = MDX_OP_FIND; r.coll = coll; r.index = index; r.find = opts;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc)
        return rc;
    mdx_client_find_t v;
    if ((rc = decoded(c, mdx_client_reply_find(c, &rep, &v))))
        return rc;
    *out = v;
    return 0;
}

int mdx_client_count(mdx_client_t *c, const char *coll, const char *index,
                     const mdx_client_cond_t *cond, uint64_t *out)
{
    REQ(r.op = MDX_OP_COUNT; r.coll = coll; r.index = index; r.cond = cond;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc)
        return rc;
    uint64_t u = 0;
    if ((rc = decoded(c, mdx_client_reply_uint(&rep, &u))))
        return rc;
    *out = u;
    return 0;
}

int mdx_client_scan(mdx_client_t *c, const char *coll, uint64_t cursor, uint32_t limit,
                    mdx_client_scan_t *out)
{
    REQ(r.op = MDX_OP_SCAN; r.coll = coll; r.u = cursor; r.limit = limit;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc)
        return rc;
    mdx_client_scan_t v;
    if ((rc = decoded(c, mdx_client_reply_scan(c, &rep, &v))))
        return rc;
    *out = v;
    return 0;
}

int mdx_client_ttl_set(mdx_client_t *c, const char *coll, mdx_val_t key, uint64_t ttl_ms)
{
    REQ(r.op = MDX_OP_TTL_SET; r.coll = coll; r.key = key; r.u = ttl_ms;)
    return call_nil(c, &r);
}

int mdx_client_ttl_get(mdx_client_t *c, const char *coll, mdx_val_t key, int64_t *ms)
{
    REQ(r.op = MDX_OP_TTL_GET; r.coll = coll; r.key = key;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc)
        return rc;
    int64_t v;
    if ((rc = decoded(c, mdx_client_reply_int(&rep, &v))))
        return rc;
    *ms = v;
    return 0;
}

int mdx_client_ttl_clear(mdx_client_t *c, const char *coll, mdx_val_t key)
{
    REQ(r.op = MDX_OP_TTL_CLEAR; r.coll = coll; r.key = key;)
    return call_nil(c, &r);
}

int mdx_client_stats(mdx_client_t *c, mdx_client_stats_t *out)
{
    REQ(r.op = MDX_OP_STATS;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc)
        return rc;
    mdx_client_stats_t v;
    if ((rc = decoded(c, mdx_client_reply_stats(&rep, &v))))
        return rc;
    *out = v;
    return 0;
}

/* The cache-tier commands are encoded here and sent through the raw path, which keeps each
 * op's idempotence (they are in the table). */
static int call_args(mdx_client_t *c, const char *op, mdx_buf_t *args, mdx_client_reply_t *rep)
{
    if (args->err) {
        mdx_buf_fini(args);
        return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_ENOMEM, "out of memory");
    }
    int rc = mdx_client_call(c, op, args->data, args->len, rep);
    mdx_buf_fini(args);
    return rc;
}

/* name and the options of o into args (a map of 1 + *n entries; the header is written by the
 * caller once n is known, so the entries go to a second buffer). */
static int coll_opts_args(mdx_client_t *c, const char *name, const mdx_client_coll_opts_t *o,
                          mdx_buf_t *args)
{
    mdx_buf_t e;
    uint32_t n = 1;
    int rc = check_name(c, name, MDX_ARG_NAME);
    if (rc)
        return rc;
    mdx_buf_init(&e);
    mdx_req_arg(&e, MDX_ARG_NAME);
    put_cstr(&e, name);
    if (o && (o->capacity || o->set_capacity)) {
        mdx_req_arg(&e, MDX_ARG_CAPACITY);
        mdx_mp_put_uint(&e, o->capacity);
        n++;
    }
    if (o && (o->default_ttl_ms || o->set_default_ttl_ms)) {
        mdx_req_arg(&e, MDX_ARG_DEFAULT_TTL_MS);
        mdx_mp_put_uint(&e, o->default_ttl_ms);
        n++;
    }
    static const struct {
        mdx_arg_t arg;
        size_t off;
    } strs[] = {{MDX_ARG_POLICY, offsetof(mdx_client_coll_opts_t, policy)},
                {MDX_ARG_DEFAULT_TTL, offsetof(mdx_client_coll_opts_t, default_ttl)}};
    for (size_t i = 0; o && i < sizeof(strs) / sizeof(strs[0]); i++) {
        const char *v;
        memcpy(&v, (const char *)o + strs[i].off, sizeof(v));
        if (!v)
            continue;
        mdx_req_arg(&e, strs[i].arg);
        put_cstr(&e, v);
        n++;
    }
    mdx_buf_init(args);
    mdx_mp_put_map(args, n);
    mdx_buf_append(args, e.data, e.len);
    if (e.err)
        args->err = e.err;
    mdx_buf_fini(&e);
    return 0;
}

static int coll_setup(mdx_client_t *c, const char *op, const char *name,
                      const mdx_client_coll_opts_t *o)
{
    mdx_buf_t args;
    mdx_client_reply_t rep;
    int rc = coll_opts_args(c, name, o, &args);
    if (rc)
        return rc;
    rc = call_args(c, op, &args, &rep);
    if (rc)
        return rc;
    return rep.body.len == 1 && rep.body.ptr[0] == 0xc0 ? 0 : bad_reply(c, "expected nil");
}

int mdx_client_create_collection_opts(mdx_client_t *c, const char *name,
                                      const mdx_client_coll_opts_t *opts)
{
    return coll_setup(c, "create_collection", name, opts);
}

int mdx_client_configure_collection(mdx_client_t *c, const char *name,
                                    const mdx_client_coll_opts_t *opts)
{
    if (!opts || !(opts->capacity || opts->set_capacity || opts->policy || opts->default_ttl_ms ||
                   opts->set_default_ttl_ms || opts->default_ttl))
        return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_EINVAL,
                            "configure_collection needs at least one option");
    return coll_setup(c, "configure_collection", name, opts);
}

int mdx_client_invalidate(mdx_client_t *c, const char *coll, const char *const *tags, size_t n,
                          uint64_t *removed)
{
    int rc;
    if ((coll && (rc = check_name(c, coll, MDX_ARG_COLL))) || (rc = check_tags(c, tags, n)))
        return rc;
    if (!tags || n == 0)
        return bad_arg(c, MDX_ARG_TAGS, "must hold at least one tag");
    mdx_buf_t args;
    mdx_buf_init(&args);
    mdx_mp_put_map(&args, coll ? 2 : 1);
    if (coll) {
        mdx_req_arg(&args, MDX_ARG_COLL);
        put_cstr(&args, coll);
    }
    put_tags(&args, tags, n);
    mdx_client_reply_t rep;
    if ((rc = call_args(c, "invalidate", &args, &rep)))
        return rc;
    uint64_t v;
    if (mdx_field_uint(rep.body.ptr, rep.body.len, "removed", &v))
        return bad_reply(c, "invalidate answered without \"removed\"");
    if (removed)
        *removed = v;
    return 0;
}

int mdx_client_snapshot(mdx_client_t *c)
{
    REQ(r.op = MDX_OP_SNAPSHOT;)
    return call_nil(c, &r);
}

/* A raw request is encoded from the caller's args map, but an op it names in the table keeps
 * that op's idempotence and shows in reply.op. */
static int op_by_name(const char *name)
{
    for (int i = 0; name && i < MDX_OP__COUNT; i++)
        if (strcmp(mdx_op_name((mdx_op_t)i), name) == 0)
            return i;
    return RAW;
}

int mdx_client_call(mdx_client_t *c, const char *op, const void *args, size_t args_len,
                    mdx_client_reply_t *out)
{
    REQ(r.op = RAW; r.opname = op; r.raw_op = op_by_name(op); r.body = args; r.body_len = args_len;)
    mdx_client_reply_t rep;
    int rc = call(c, &r, &rep);
    if (rc && c->err_kind != MDX_CLIENT_ERR_SERVER)
        return rc;
    *out = rep;
    return rc;
}

/* ---- pipelining ---- */

int mdx_client_queue_hello(mdx_client_t *c)
{
    REQ(r.op = MDX_OP_HELLO;)
    return queue(c, &r);
}

int mdx_client_queue_ping(mdx_client_t *c)
{
    REQ(r.op = MDX_OP_PING;)
    return queue(c, &r);
}

int mdx_client_queue_create_collection(mdx_client_t *c, const char *name)
{
    REQ(r.op = MDX_OP_CREATE_COLLECTION; r.name = name;)
    return queue(c, &r);
}

int mdx_client_queue_drop_collection(mdx_client_t *c, const char *name)
{
    REQ(r.op = MDX_OP_DROP_COLLECTION; r.name = name;)
    return queue(c, &r);
}

int mdx_client_queue_list_collections(mdx_client_t *c)
{
    REQ(r.op = MDX_OP_LIST_COLLECTIONS;)
    return queue(c, &r);
}

int mdx_client_queue_create_index(mdx_client_t *c, const char *coll, const char *name,
                                  const char *field, mdx_client_index_kind_t kind, int unique)
{
    REQ(r.op = MDX_OP_CREATE_INDEX; r.coll = coll; r.name = name; r.field = field;
        r.kind = (int)kind; r.unique = unique != 0;)
    return queue(c, &r);
}

int mdx_client_queue_drop_index(mdx_client_t *c, const char *coll, const char *name)
{
    REQ(r.op = MDX_OP_DROP_INDEX; r.coll = coll; r.name = name;)
    return queue(c, &r);
}

int mdx_client_queue_list_indexes(mdx_client_t *c, const char *coll)
{
    REQ(r.op = MDX_OP_LIST_INDEXES; r.coll = coll;)
    return queue(c, &r);
}

int mdx_client_queue_put(mdx_client_t *c, const char *coll, mdx_val_t key, const void *body,
                         size_t body_len, const mdx_client_put_opts_t *opts)
{
    REQ(r.op = MDX_OP_PUT; r.coll = coll; r.key = key; r.body = body; r.body_len = body_len;
        r.put = opts;)
    return queue(c, &r);
}

int mdx_client_queue_get(mdx_client_t *c, const char *coll, mdx_val_t key)
{
    REQ(r.op = MDX_OP_GET; r.coll = coll; r.key = key;)
    return queue(c, &r);
}

int mdx_client_queue_mget(mdx_client_t *c, const char *coll, const mdx_val_t *keys, size_t n)
{
    REQ(r.op = MDX_OP_MGET; r.coll = coll; r.keys = keys; r.nkeys = n;)
    return queue(c, &r);
}

int mdx_client_queue_delete(mdx_client_t *c, const char *coll, mdx_val_t key)
{
    REQ(r.op = MDX_OP_DELETE; r.coll = coll; r.key = key;)
    return queue(c, &r);
}

int mdx_client_queue_update(mdx_client_t *c, const char *coll, mdx_val_t key, const void *set,
                            size_t set_len, const char *const *unset, size_t n_unset)
{
    REQ(r.op = MDX_OP_UPDATE; r.coll = coll; r.key = key; r.body = set; r.body_len = set_len;
        r.unset = unset; r.n_unset = n_unset;)
    return queue(c, &r);
}

int mdx_client_queue_find(mdx_client_t *c, const char *coll, const char *index,
                          const mdx_client_find_opts_t *opts)
{
    REQ(r.op = MDX_OP_FIND; r.coll = coll; r.index = index; r.find = opts;)
    return queue(c, &r);
}

int mdx_client_queue_count(mdx_client_t *c, const char *coll, const char *index,
                           const mdx_client_cond_t *cond)
{
    REQ(r.op = MDX_OP_COUNT; r.coll = coll; r.index = index; r.cond = cond;)
    return queue(c, &r);
}

int mdx_client_queue_scan(mdx_client_t *c, const char *coll, uint64_t cursor, uint32_t limit)
{
    REQ(r.op = MDX_OP_SCAN; r.coll = coll; r.u = cursor; r.limit = limit;)
    return queue(c, &r);
}

int mdx_client_queue_ttl_set(mdx_client_t *c, const char *coll, mdx_val_t key, uint64_t ttl_ms)
{
    REQ(r.op = MDX_OP_TTL_SET; r.coll = coll; r.key = key; r.u = ttl_ms;)
    return queue(c, &r);
}

int mdx_client_queue_ttl_get(mdx_client_t *c, const char *coll, mdx_val_t key)
{
    REQ(r.op = MDX_OP_TTL_GET; r.coll = coll; r.key = key;)
    return queue(c, &r);
}

int mdx_client_queue_ttl_clear(mdx_client_t *c, const char *coll, mdx_val_t key)
{
    REQ(r.op = MDX_OP_TTL_CLEAR; r.coll = coll; r.key = key;)
    return queue(c, &r);
}

int mdx_client_queue_stats(mdx_client_t *c)
{
    REQ(r.op = MDX_OP_STATS;)
    return queue(c, &r);
}

int mdx_client_queue(mdx_client_t *c, const char *op, const void *args, size_t args_len)
{
    REQ(r.op = RAW; r.opname = op; r.raw_op = op_by_name(op); r.body = args; r.body_len = args_len;)
    return queue(c, &r);
}

int mdx_client_flush(mdx_client_t *c)
{
    mdx__cl_clear_err(c);
    if (c->out_sent == c->out.len)
        return 0;
    drop_if_stale(c);
    int rc = c->fd < 0 ? connect_retrying(c) : 0;
    if (!rc)
        rc = mdx__cl_write(c, INT64_MAX, NULL);
    if (rc) {
        drop_all(c);
        return rc;
    }
    c->out.len = 0;
    c->out_sent = 0;
    c->queued = 0;
    return 0;
}

int mdx_client_read_reply(mdx_client_t *c, mdx_client_reply_t *out)
{
    mdx__cl_clear_err(c);
    if (c->ring_len == 0)
        return mdx__cl_fail(c, MDX_CLIENT_ERR_LOCAL, MDX_EINVAL, "no reply is pending");
    int rc;
    if (c->queued && (rc = mdx_client_flush(c)))
        return rc;
    rc = take_reply(c, INT64_MAX, out);
    if (rc && c->err_kind != MDX_CLIENT_ERR_SERVER)
        drop_all(c);
    return rc;
}
