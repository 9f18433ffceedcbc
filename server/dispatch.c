/*
 * Dispatch: one decoded request in, one response frame appended to the connection's output.
 *
 * The decoder (protocol/request.c) has already checked the envelope, the argument names and
 * their msgpack types; what is left here is what only the engine can judge (names, keys,
 * bodies, limits), and its errors come back as error replies with the engine's message.
 * Record keys and bodies are copied from the engine's views into the output verbatim: bodies
 * are the msgpack bytes the client stored, keys their canonical encoding. Nothing here
 * allocates except the output buffer itself when it grows.
 *
 * Result shapes are normative in docs/protocol.md; keep the two in step.
 */
#include <string.h>

#include "memdex/store.h"
#include "protocol/response.h"
#include "server/log.h"
#include "server/server.h"

#define MDX_DEFAULT_PAGE 100 /* find/scan limit when the request gives none */
/* Largest accepted ttl_ms (about 31,700 years): keeps now + ttl far from int64 overflow. */
#define MDX_TTL_MAX_MS INT64_C(1000000000000000)

/* Static strings as msgpack str. */
#define PUT_LIT(out, s) mdx_mp_put_str((out), (s), sizeof(s) - 1)

_Static_assert(MDX_PROTO_MAX_TAGS == MDX_TAGS_MAX && MDX_PROTO_MAX_TAG == MDX_TAG_MAX,
               "the decoder checks tags against the engine's limits");

typedef struct {
    mdx_server_t *srv;
    mdx_conn_t *c;
    mdx_buf_t *out;
    uint64_t n;
    int over; /* output passed output_limit or ran out of memory: stop, close the client */
} page_t;

void mdx_reply_error(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, uint64_t id, int code,
                     const char *msg)
{
    if (code > 0 && code < MDX_ERRNO_MAX)
        srv->stats.errors[code]++;
    mdx_log_debug("%s: request %llu: %s: %s", mdx_conn_peer(c), (unsigned long long)id,
                  mdx_err_name(code), msg ? msg : mdx_strerror(code));
    mdx_resp_error(out, id, code, msg);
}

/* A failed engine call: the message names what was wrong. */
static int store_error(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                       int code)
{
    mdx_reply_error(srv, c, out, req->id, code, mdx_store_errmsg(srv->store));
    return 0;
}

/* Copies a STR argument into a NUL-terminated buffer of MDX_PROTO_MAX_STR + 1 bytes. The
 * engine takes C strings, so a name holding a NUL byte would silently become a shorter one:
 * refuse it instead. */
static int cstr(const mdx_request_t *req, mdx_arg_t a, char buf[MDX_PROTO_MAX_STR + 1])
{
    const mdx_argval_t *v = &req->args[a];
    if (v->len > MDX_PROTO_MAX_STR || memchr(v->str, '\0', v->len))
        return -1;
    memcpy(buf, v->str, v->len);
    buf[v->len] = '\0';
    return 0;
}

static int bad_name(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                    mdx_arg_t a)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "argument '%s' must not contain a NUL byte", mdx_arg_name(a));
    mdx_reply_error(srv, c, out, req->id, MDX_EBADNAME, msg);
    return 0;
}

static int reply_nil(mdx_buf_t *out, uint64_t id)
{
    size_t mark;
    mdx_resp_begin(out, &mark, id, 0);
    mdx_mp_put_nil(out);
    mdx_resp_end(out, mark);
    return 0;
}

static int reply_uint(mdx_buf_t *out, uint64_t id, uint64_t v)
{
    size_t mark;
    mdx_resp_begin(out, &mark, id, 0);
    mdx_mp_put_uint(out, v);
    mdx_resp_end(out, mark);
    return 0;
}

/* An array whose length is known only after its elements are written: reserve the largest
 * header, then write the shortest one and close the gap, so replies stay in the shortest
 * encoding (clients and tests may compare bytes). */
static size_t array_open(mdx_buf_t *out)
{
    static const uint8_t room[5];
    size_t pos = out->len;
    mdx_buf_append(out, room, sizeof(room));
    return pos;
}

static void array_close(mdx_buf_t *out, size_t pos, uint64_t n)
{
    if (out->err)
        return;
    uint8_t h[5];
    size_t hl = mdx_mp_enc_array_header(h, (uint32_t)n);
    memcpy(out->data + pos, h, hl);
    if (hl < 5) {
        memmove(out->data + pos + hl, out->data + pos + 5, out->len - pos - 5);
        out->len -= 5 - hl;
    }
}

/* One [key, body] pair of a find or scan page. */
static int page_rec(void *data, const mdx_rec_view_t *r)
{
    page_t *pg = data;
    mdx_buf_t *out = pg->out;
    mdx_mp_put_array(out, 2);
    mdx_buf_append(out, r->key, r->key_len);
    mdx_buf_append(out, r->body, r->body_len);
    pg->n++;
    if (out->err || mdx_conn_unsent(pg->c) > pg->srv->cfg->output_limit) {
        pg->over = 1;
        return 1;
    }
    return 0;
}

static int op_hello(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req)
{
    if (mdx_req_has(req, MDX_ARG_PROTOCOL) &&
        req->args[MDX_ARG_PROTOCOL].u != MDX_PROTOCOL_VERSION) {
        char msg[96];
        snprintf(msg, sizeof(msg), "unsupported protocol version %llu (this server speaks %d)",
                 (unsigned long long)req->args[MDX_ARG_PROTOCOL].u, MDX_PROTOCOL_VERSION);
        mdx_reply_error(srv, c, out, req->id, MDX_EPROTO, msg);
        return 0;
    }
    if (mdx_req_has(req, MDX_ARG_CLIENT))
        mdx_log_debug("%s: hello from '%.*s'", mdx_conn_peer(c), (int)req->args[MDX_ARG_CLIENT].len,
                      req->args[MDX_ARG_CLIENT].str);
    size_t mark;
    mdx_resp_begin(out, &mark, req->id, 0);
    mdx_mp_put_map(out, 4);
    PUT_LIT(out, "protocol");
    mdx_mp_put_uint(out, MDX_PROTOCOL_VERSION);
    PUT_LIT(out, "server");
    PUT_LIT(out, "memdex");
    PUT_LIT(out, "version");
    PUT_LIT(out, MDX_SERVER_VERSION);
    PUT_LIT(out, "max_frame");
    mdx_mp_put_uint(out, srv->cfg->max_frame);
    mdx_resp_end(out, mark);
    return 0;
}

static int op_ping(mdx_buf_t *out, const mdx_request_t *req)
{
    size_t mark;
    mdx_resp_begin(out, &mark, req->id, 0);
    PUT_LIT(out, "pong");
    mdx_resp_end(out, mark);
    return 0;
}

/* {"name", "field", "kind", "unique", "entries"}: one element of list_indexes, and of a
 * list_collections entry's "indexes". */
static void put_index_info(mdx_buf_t *out, const mdx_coll_t *coll, size_t i)
{
    mdx_index_info_t inf;
    if (mdx_index_info(coll, i, &inf)) {
        mdx_mp_put_nil(out); /* cannot happen: callers stay below mdx_index_count */
        return;
    }
    mdx_mp_put_map(out, 5);
    PUT_LIT(out, "name");
    mdx_mp_put_str(out, inf.name, strlen(inf.name));
    PUT_LIT(out, "field");
    mdx_mp_put_str(out, inf.field, strlen(inf.field));
    PUT_LIT(out, "kind");
    if (inf.kind == MDX_INDEX_SKIPLIST)
        PUT_LIT(out, "skiplist");
    else
        PUT_LIT(out, "hash");
    PUT_LIT(out, "unique");
    mdx_mp_put_bool(out, inf.unique);
    PUT_LIT(out, "entries");
    mdx_mp_put_uint(out, inf.entries);
}

static void put_cstr(mdx_buf_t *out, const char *s)
{
    mdx_mp_put_str(out, s, strlen(s));
}

static void put_coll_entry(mdx_buf_t *out, const mdx_coll_t *coll)
{
    size_t ni = mdx_index_count(coll);
    mdx_coll_opts_t o;
    mdx_coll_options(coll, &o);
    mdx_mp_put_map(out, 6);
    PUT_LIT(out, "name");
    put_cstr(out, mdx_coll_name(coll));
    PUT_LIT(out, "records");
    mdx_mp_put_uint(out, mdx_coll_records(coll));
    PUT_LIT(out, "indexes");
    mdx_mp_put_array(out, (uint32_t)ni);
    for (size_t i = 0; i < ni; i++)
        put_index_info(out, coll, i);
    PUT_LIT(out, "capacity");
    mdx_mp_put_uint(out, o.capacity);
    PUT_LIT(out, "policy");
    put_cstr(out, mdx_evict_policy_name(mdx_coll_policy(coll)));
    PUT_LIT(out, "default_ttl_ms");
    mdx_mp_put_uint(out, (uint64_t)o.default_ttl_ms);
}

/* Starts a background snapshot; its outcome shows in stats and the log. */
static int op_snapshot(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req)
{
    if (srv->shutting_down) {
        mdx_reply_error(srv, c, out, req->id, MDX_ESHUTDOWN,
                        "the server is shutting down (it takes a final snapshot as it exits "
                        "when snapshot_on_shutdown is on)");
        return 0;
    }
    int rc = mdx_srv_snap_start(srv, "command");
    if (rc == MDX_EBUSY) {
        mdx_reply_error(srv, c, out, req->id, rc, "a snapshot is already in progress");
        return 0;
    }
    if (rc)
        return store_error(srv, c, out, req, rc);
    return reply_nil(out, req->id);
}

static int op_list_collections(mdx_server_t *srv, mdx_buf_t *out, const mdx_request_t *req)
{
    size_t n = mdx_coll_count(srv->store), mark;
    mdx_resp_begin(out, &mark, req->id, 0);
    mdx_mp_put_array(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        put_coll_entry(out, mdx_coll_at(srv->store, i));
    mdx_resp_end(out, mark);
    return 0;
}

static int op_list_indexes(mdx_buf_t *out, const mdx_request_t *req, mdx_coll_t *coll)
{
    size_t n = mdx_index_count(coll), mark;
    mdx_resp_begin(out, &mark, req->id, 0);
    mdx_mp_put_array(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        put_index_info(out, coll, i);
    mdx_resp_end(out, mark);
    return 0;
}

typedef struct {
    mdx_buf_t *out;
    uint32_t n;
} tags_out_t;

static void put_tag(void *data, const char *tag, size_t len)
{
    tags_out_t *t = data;
    mdx_mp_put_str(t->out, tag, len);
    t->n++;
}

/* One found record of get/mget: its body, or with_tags {"body": body, "tags": [str...]}.
 * The body is copied before the tags are looked up, so the view is used while valid. */
static int put_found(mdx_buf_t *out, mdx_coll_t *coll, const uint8_t *key, size_t klen,
                     const mdx_rec_view_t *v, int with_tags)
{
    if (!with_tags) {
        mdx_buf_append(out, v->body, v->body_len);
        return 0;
    }
    mdx_mp_put_map(out, 2);
    PUT_LIT(out, "body");
    mdx_buf_append(out, v->body, v->body_len);
    PUT_LIT(out, "tags");
    tags_out_t t = {out, 0};
    size_t arr = array_open(out);
    int rc = mdx_tags_get(coll, key, klen, put_tag, &t);
    array_close(out, arr, t.n);
    return rc;
}

static int with_tags(const mdx_request_t *req)
{
    return mdx_req_has(req, MDX_ARG_WITH_TAGS) && req->args[MDX_ARG_WITH_TAGS].u;
}

static int op_get(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                  mdx_coll_t *coll)
{
    const mdx_argval_t *k = &req->args[MDX_ARG_KEY];
    mdx_rec_view_t v;
    int rc = mdx_get(coll, k->raw, k->raw_len, &v);
    if (rc && rc != MDX_ENOTFOUND)
        return store_error(srv, c, out, req, rc);
    size_t mark;
    mdx_resp_begin(out, &mark, req->id, 0);
    if (rc) {
        mdx_mp_put_nil(out);
    } else if ((rc = put_found(out, coll, k->raw, k->raw_len, &v, with_tags(req)))) {
        mdx_resp_rollback(out, mark);
        return store_error(srv, c, out, req, rc);
    }
    mdx_resp_end(out, mark);
    return 0;
}

/* {"state": "hit", "record": <as get>} | {"state": "fill", "token": N} | {"state": "wait"} */
static int op_get_lease(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                        mdx_coll_t *coll)
{
    static const char *const states[] = {"hit", "fill", "wait"};
    const mdx_argval_t *k = &req->args[MDX_ARG_KEY];
    uint64_t ms = req->args[MDX_ARG_LEASE_MS].u, token;
    mdx_rec_view_t v;
    mdx_lease_state_t ls;
    int rc = mdx_get_or_lease(coll, k->raw, k->raw_len, ms > INT64_MAX ? 0 : (int64_t)ms, &v, &ls,
                              &token);
    if (rc)
        return store_error(srv, c, out, req, rc);
    size_t mark;
    mdx_resp_begin(out, &mark, req->id, 0);
    mdx_mp_put_map(out, ls == MDX_LEASE_WAIT ? 1 : 2);
    mdx_mp_put_str(out, "state", 5);
    mdx_mp_put_str(out, states[ls], strlen(states[ls]));
    if (ls == MDX_LEASE_FILL) {
        mdx_mp_put_str(out, "token", 5);
        mdx_mp_put_uint(out, token);
    } else if (ls == MDX_LEASE_HIT) {
        mdx_mp_put_str(out, "record", 6);
        if ((rc = put_found(out, coll, k->raw, k->raw_len, &v, with_tags(req)))) {
            mdx_resp_rollback(out, mark);
            return store_error(srv, c, out, req, rc);
        }
    }
    mdx_resp_end(out, mark);
    return 0;
}

static int op_mget(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                   mdx_coll_t *coll)
{
    const mdx_argval_t *ks = &req->args[MDX_ARG_KEYS];
    const uint8_t *p = ks->raw, *end = ks->raw + ks->raw_len;
    mdx_mp_tok_t t;
    size_t mark;
    if (mdx_mp_read(&p, end, &t) || t.type != MDX_MP_ARRAY) {
        mdx_reply_error(srv, c, out, req->id, MDX_EBADARGS, "argument 'keys' must be an array");
        return 0;
    }
    mdx_resp_begin(out, &mark, req->id, 0);
    mdx_mp_put_array(out, t.len);
    for (uint32_t i = 0; i < t.len; i++) {
        const uint8_t *k = p;
        mdx_rec_view_t v;
        if (mdx_mp_skip(&p, end, 1)) {
            mdx_resp_rollback(out, mark);
            mdx_reply_error(srv, c, out, req->id, MDX_EBADARGS, "malformed 'keys'");
            return 0;
        }
        int rc = mdx_get(coll, k, (size_t)(p - k), &v);
        if (rc == MDX_ENOTFOUND) {
            mdx_mp_put_nil(out);
        } else if (rc) {
            mdx_resp_rollback(out, mark);
            return store_error(srv, c, out, req, rc);
        } else if ((rc = put_found(out, coll, k, (size_t)(p - k), &v, with_tags(req)))) {
            mdx_resp_rollback(out, mark);
            return store_error(srv, c, out, req, rc);
        }
        if (out->err || mdx_conn_unsent(c) > srv->cfg->output_limit)
            return -1;
    }
    mdx_resp_end(out, mark);
    return 0;
}

/* Fills a query from find/count arguments. Returns 0, or -1 after replying with an error. */
static int make_query(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                      mdx_query_t *q, char index[MDX_PROTO_MAX_STR + 1])
{
    memset(q, 0, sizeof(*q));
    if (cstr(req, MDX_ARG_INDEX, index)) {
        bad_name(srv, c, out, req, MDX_ARG_INDEX);
        return -1;
    }
    q->index = index;
    const mdx_argval_t *a = req->args;
    if (mdx_req_has(req, MDX_ARG_EQ)) {
        q->eq = a[MDX_ARG_EQ].raw;
        q->eq_len = a[MDX_ARG_EQ].raw_len;
    }
    if (mdx_req_has(req, MDX_ARG_GE) || mdx_req_has(req, MDX_ARG_GT)) {
        mdx_arg_t b = mdx_req_has(req, MDX_ARG_GE) ? MDX_ARG_GE : MDX_ARG_GT;
        q->lo = a[b].raw;
        q->lo_len = a[b].raw_len;
        q->lo_kind = b == MDX_ARG_GE ? MDX_BOUND_INCL : MDX_BOUND_EXCL;
    }
    if (mdx_req_has(req, MDX_ARG_LE) || mdx_req_has(req, MDX_ARG_LT)) {
        mdx_arg_t b = mdx_req_has(req, MDX_ARG_LE) ? MDX_ARG_LE : MDX_ARG_LT;
        q->hi = a[b].raw;
        q->hi_len = a[b].raw_len;
        q->hi_kind = b == MDX_ARG_LE ? MDX_BOUND_INCL : MDX_BOUND_EXCL;
    }
    q->desc = mdx_req_has(req, MDX_ARG_DESC) && a[MDX_ARG_DESC].u;
    q->limit = MDX_DEFAULT_PAGE;
    if (mdx_req_has(req, MDX_ARG_LIMIT)) /* out of range values are the engine's to refuse */
        q->limit = a[MDX_ARG_LIMIT].u > UINT32_MAX ? UINT32_MAX : (uint32_t)a[MDX_ARG_LIMIT].u;
    if (mdx_req_has(req, MDX_ARG_OFFSET))
        q->offset = a[MDX_ARG_OFFSET].u;
    if (mdx_req_has(req, MDX_ARG_AFTER)) {
        q->after = a[MDX_ARG_AFTER].raw;
        q->after_len = a[MDX_ARG_AFTER].raw_len;
    }
    return 0;
}

static int op_find(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                   mdx_coll_t *coll)
{
    mdx_query_t q;
    char index[MDX_PROTO_MAX_STR + 1];
    if (make_query(srv, c, out, req, &q, index))
        return 0;
    page_t pg = {srv, c, out, 0, 0};
    mdx_find_result_t res;
    size_t mark;
    mdx_resp_begin(out, &mark, req->id, 0);
    mdx_mp_put_map(out, 3);
    PUT_LIT(out, "records");
    size_t arr = array_open(out);
    int rc = mdx_find(coll, &q, page_rec, &pg, &res);
    if (pg.over)
        return -1;
    if (rc) {
        mdx_resp_rollback(out, mark);
        return store_error(srv, c, out, req, rc);
    }
    array_close(out, arr, pg.n);
    PUT_LIT(out, "more");
    mdx_mp_put_bool(out, res.more);
    PUT_LIT(out, "cursor");
    if (res.more && res.cursor)
        mdx_buf_append(out, res.cursor, res.cursor_len);
    else
        mdx_mp_put_nil(out);
    mdx_resp_end(out, mark);
    return 0;
}

static int op_count(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                    mdx_coll_t *coll)
{
    mdx_query_t q;
    char index[MDX_PROTO_MAX_STR + 1];
    uint64_t n;
    if (make_query(srv, c, out, req, &q, index))
        return 0;
    int rc = mdx_count(coll, &q, &n);
    if (rc)
        return store_error(srv, c, out, req, rc);
    return reply_uint(out, req->id, n);
}

static int op_scan(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                   mdx_coll_t *coll)
{
    const mdx_argval_t *a = req->args;
    uint64_t cursor = mdx_req_has(req, MDX_ARG_CURSOR) ? a[MDX_ARG_CURSOR].u : 0, next = 0;
    uint32_t limit = MDX_DEFAULT_PAGE;
    if (mdx_req_has(req, MDX_ARG_LIMIT))
        limit = a[MDX_ARG_LIMIT].u > UINT32_MAX ? UINT32_MAX : (uint32_t)a[MDX_ARG_LIMIT].u;
    page_t pg = {srv, c, out, 0, 0};
    size_t mark;
    mdx_resp_begin(out, &mark, req->id, 0);
    mdx_mp_put_map(out, 2);
    PUT_LIT(out, "records");
    size_t arr = array_open(out);
    int rc = mdx_scan(coll, cursor, limit, page_rec, &pg, &next);
    if (pg.over)
        return -1;
    if (rc) {
        mdx_resp_rollback(out, mark);
        return store_error(srv, c, out, req, rc);
    }
    array_close(out, arr, pg.n);
    PUT_LIT(out, "cursor");
    mdx_mp_put_uint(out, next);
    mdx_resp_end(out, mark);
    return 0;
}

/* A millisecond TTL argument (ttl_ms, default_ttl_ms). Returns 0, or -1 after replying. */
static int ttl_arg(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                   mdx_arg_t a, int64_t *ttl)
{
    uint64_t u = req->args[a].u;
    if (u > (uint64_t)MDX_TTL_MAX_MS) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s must be at most %lld", mdx_arg_name(a),
                 (long long)MDX_TTL_MAX_MS);
        mdx_reply_error(srv, c, out, req->id, MDX_EINVAL, msg);
        return -1;
    }
    *ttl = (int64_t)u;
    return 0;
}

/* A TTL class argument (ttl_class, default_ttl): its TTL in ms, 0 for "none". Returns 0, or -1
 * after replying INVAL naming the unknown class. */
static int ttl_class_arg(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                         mdx_arg_t a, int64_t *ttl)
{
    int rc = mdx_ttl_class_get(srv->store, req->args[a].str, req->args[a].len, ttl);
    if (rc) {
        store_error(srv, c, out, req, rc);
        return -1;
    }
    return 0;
}

/* Fills o from the collection options present in req (capacity, policy, default_ttl_ms,
 * default_ttl), leaving the others as they are. Returns 0, or -1 after replying. */
static int coll_opts_arg(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                         mdx_coll_opts_t *o)
{
    const mdx_argval_t *a = req->args;
    if (mdx_req_has(req, MDX_ARG_CAPACITY))
        o->capacity = a[MDX_ARG_CAPACITY].u;
    if (mdx_req_has(req, MDX_ARG_POLICY) &&
        mdx_evict_policy_parse(a[MDX_ARG_POLICY].str, a[MDX_ARG_POLICY].len, 1, &o->policy)) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "unknown policy '%.*s' (expected noeviction, s3fifo, sieve, lru or default)",
                 (int)(a[MDX_ARG_POLICY].len > 64 ? 64 : a[MDX_ARG_POLICY].len),
                 a[MDX_ARG_POLICY].str);
        mdx_reply_error(srv, c, out, req->id, MDX_EINVAL, msg);
        return -1;
    }
    if (mdx_req_has(req, MDX_ARG_DEFAULT_TTL_MS))
        return ttl_arg(srv, c, out, req, MDX_ARG_DEFAULT_TTL_MS, &o->default_ttl_ms);
    if (mdx_req_has(req, MDX_ARG_DEFAULT_TTL))
        return ttl_class_arg(srv, c, out, req, MDX_ARG_DEFAULT_TTL, &o->default_ttl_ms);
    return 0;
}

/* create_collection and configure_collection. Every option is checked before anything
 * changes, so a refused create leaves no collection behind. */
static int op_coll_setup(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req)
{
    char name[MDX_PROTO_MAX_STR + 1];
    mdx_coll_t *coll = NULL;
    mdx_coll_opts_t o = {0};
    int create = req->op == MDX_OP_CREATE_COLLECTION, rc;
    if (cstr(req, MDX_ARG_NAME, name))
        return bad_name(srv, c, out, req, MDX_ARG_NAME);
    if (!create) {
        rc = mdx_coll_find(srv->store, name, strlen(name), &coll);
        if (rc)
            return store_error(srv, c, out, req, rc);
        mdx_coll_options(coll, &o);
    }
    if (coll_opts_arg(srv, c, out, req, &o))
        return 0;
    if (create && (rc = mdx_coll_create(srv->store, name, &coll)))
        return store_error(srv, c, out, req, rc);
    if (!create || (req->present & mdx_op_allowed(MDX_OP_CREATE_COLLECTION) &
                    ~(UINT64_C(1) << MDX_ARG_NAME))) {
        rc = mdx_coll_configure(coll, &o);
        if (rc) {
            /* A new collection cannot be over a capacity yet; drop it anyway if it is. */
            mdx_reply_error(srv, c, out, req->id, rc, mdx_store_errmsg(srv->store));
            if (create)
                (void)mdx_coll_drop(srv->store, name);
            return 0;
        }
    }
    mdx_srv_snap_dirty(srv, 1);
    return reply_nil(out, req->id);
}

/* invalidate: one collection, or every one when coll is absent. Large tags leave records to
 * reclaim: the reclaim step takes them from here, in slices. */
static int op_invalidate(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req)
{
    const mdx_argval_t *a = req->args;
    uint64_t removed = 0;
    int rc;
    if (mdx_req_has(req, MDX_ARG_COLL)) {
        mdx_coll_t *coll;
        rc = mdx_coll_find(srv->store, a[MDX_ARG_COLL].str, a[MDX_ARG_COLL].len, &coll);
        if (rc == 0)
            rc = mdx_invalidate(coll, a[MDX_ARG_TAGS].raw, a[MDX_ARG_TAGS].raw_len, &removed);
    } else {
        rc = mdx_store_invalidate(srv->store, a[MDX_ARG_TAGS].raw, a[MDX_ARG_TAGS].raw_len,
                                  &removed);
    }
    if (rc)
        return store_error(srv, c, out, req, rc);
    mdx_srv_snap_dirty(srv, removed);
    mdx_srv_reclaim_kick(srv);
    size_t mark;
    mdx_resp_begin(out, &mark, req->id, 0);
    mdx_mp_put_map(out, 1);
    PUT_LIT(out, "removed");
    mdx_mp_put_uint(out, removed);
    mdx_resp_end(out, mark);
    return 0;
}

static int op_put(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                  mdx_coll_t *coll)
{
    const mdx_argval_t *a = req->args;
    char tclass[MDX_PROTO_MAX_STR + 1];
    mdx_put_opts_t o = {.mode = MDX_PUT_UPSERT, .ttl_ms = 0, .keep_ttl = 0};
    if (mdx_req_has(req, MDX_ARG_MODE))
        o.mode = (mdx_put_mode_t)a[MDX_ARG_MODE].u;
    if (mdx_req_has(req, MDX_ARG_TTL_MS) && ttl_arg(srv, c, out, req, MDX_ARG_TTL_MS, &o.ttl_ms))
        return 0;
    o.keep_ttl = mdx_req_has(req, MDX_ARG_KEEP_TTL) && a[MDX_ARG_KEEP_TTL].u;
    if (mdx_req_has(req, MDX_ARG_TTL_CLASS)) {
        if (cstr(req, MDX_ARG_TTL_CLASS, tclass))
            return bad_name(srv, c, out, req, MDX_ARG_TTL_CLASS);
        o.ttl_class = tclass;
    }
    if (mdx_req_has(req, MDX_ARG_TAGS)) {
        o.tags = a[MDX_ARG_TAGS].raw;
        o.tags_len = a[MDX_ARG_TAGS].raw_len;
    }
    if (mdx_req_has(req, MDX_ARG_LEASE))
        o.lease = a[MDX_ARG_LEASE].u;
    int rc = mdx_put(coll, a[MDX_ARG_KEY].raw, a[MDX_ARG_KEY].raw_len, a[MDX_ARG_BODY].raw,
                     a[MDX_ARG_BODY].raw_len, &o);
    if (rc)
        return store_error(srv, c, out, req, rc);
    mdx_srv_snap_dirty(srv, 1);
    return reply_nil(out, req->id);
}

static int op_update(mdx_server_t *srv, mdx_conn_t *c, mdx_buf_t *out, const mdx_request_t *req,
                     mdx_coll_t *coll)
{
    const mdx_argval_t *a = req->args;
    const uint8_t *set = NULL, *unset = NULL;
    size_t set_len = 0, unset_len = 0;
    if (mdx_req_has(req, MDX_ARG_SET)) {
        set = a[MDX_ARG_SET].raw;
        set_len = a[MDX_ARG_SET].raw_len;
    }
    if (mdx_req_has(req, MDX_ARG_UNSET)) {
        unset = a[MDX_ARG_UNSET].raw;
        unset_len = a[MDX_ARG_UNSET].raw_len;
    }
    int rc = mdx_update(coll, a[MDX_ARG_KEY].raw, a[MDX_ARG_KEY].raw_len, set, set_len, unset,
                        unset_len);
    if (rc)
        return store_error(srv, c, out, req, rc);
    mdx_srv_snap_dirty(srv, 1);
    return reply_nil(out, req->id);
}

int mdx_dispatch(mdx_server_t *srv, mdx_conn_t *c, const mdx_request_t *req, mdx_buf_t *out)
{
    mdx_store_t *st = srv->store;
    const mdx_argval_t *a = req->args;
    char name[MDX_PROTO_MAX_STR + 1], field[MDX_PROTO_MAX_STR + 1];
    mdx_coll_t *coll = NULL;
    int rc;

    switch (req->op) {
    case MDX_OP_HELLO:
        return op_hello(srv, c, out, req);
    case MDX_OP_PING:
        return op_ping(out, req);
    case MDX_OP_STATS: {
        size_t mark;
        mdx_resp_begin(out, &mark, req->id, 0);
        mdx_stats_encode(srv, out);
        mdx_resp_end(out, mark);
        return 0;
    }
    case MDX_OP_CREATE_COLLECTION:
    case MDX_OP_CONFIGURE_COLLECTION:
        return op_coll_setup(srv, c, out, req);
    case MDX_OP_INVALIDATE:
        return op_invalidate(srv, c, out, req);
    case MDX_OP_DROP_COLLECTION:
        if (cstr(req, MDX_ARG_NAME, name))
            return bad_name(srv, c, out, req, MDX_ARG_NAME);
        rc = mdx_coll_drop(st, name);
        if (rc)
            return store_error(srv, c, out, req, rc);
        mdx_srv_snap_dirty(srv, 1);
        return reply_nil(out, req->id);
    case MDX_OP_LIST_COLLECTIONS:
        return op_list_collections(srv, out, req);
    case MDX_OP_SNAPSHOT:
        return op_snapshot(srv, c, out, req);
    default:
        break;
    }

    /* Every other op names a collection. */
    rc = mdx_coll_find(st, a[MDX_ARG_COLL].str, a[MDX_ARG_COLL].len, &coll);
    if (rc)
        return store_error(srv, c, out, req, rc);
    const uint8_t *key = a[MDX_ARG_KEY].raw;
    size_t klen = a[MDX_ARG_KEY].raw_len;

    switch (req->op) {
    case MDX_OP_CREATE_INDEX:
        if (cstr(req, MDX_ARG_NAME, name))
            return bad_name(srv, c, out, req, MDX_ARG_NAME);
        if (cstr(req, MDX_ARG_FIELD, field))
            return bad_name(srv, c, out, req, MDX_ARG_FIELD);
        rc = mdx_index_create(coll, name, field, (mdx_index_kind_t)a[MDX_ARG_KIND].u,
                              mdx_req_has(req, MDX_ARG_UNIQUE) && a[MDX_ARG_UNIQUE].u);
        if (rc)
            return store_error(srv, c, out, req, rc);
        mdx_srv_snap_dirty(srv, 1);
        return reply_nil(out, req->id);
    case MDX_OP_DROP_INDEX:
        if (cstr(req, MDX_ARG_NAME, name))
            return bad_name(srv, c, out, req, MDX_ARG_NAME);
        rc = mdx_index_drop(coll, name);
        if (rc)
            return store_error(srv, c, out, req, rc);
        mdx_srv_snap_dirty(srv, 1);
        return reply_nil(out, req->id);
    case MDX_OP_LIST_INDEXES:
        return op_list_indexes(out, req, coll);
    case MDX_OP_PUT:
        return op_put(srv, c, out, req, coll);
    case MDX_OP_GET:
        return op_get(srv, c, out, req, coll);
    case MDX_OP_MGET:
        return op_mget(srv, c, out, req, coll);
    case MDX_OP_GET_LEASE:
        return op_get_lease(srv, c, out, req, coll);
    case MDX_OP_DELETE:
        rc = mdx_del(coll, key, klen);
        if (rc && rc != MDX_ENOTFOUND)
            return store_error(srv, c, out, req, rc);
        mdx_srv_snap_dirty(srv, rc ? 0 : 1);
        return reply_uint(out, req->id, rc ? 0 : 1);
    case MDX_OP_UPDATE:
        return op_update(srv, c, out, req, coll);
    case MDX_OP_FIND:
        return op_find(srv, c, out, req, coll);
    case MDX_OP_COUNT:
        return op_count(srv, c, out, req, coll);
    case MDX_OP_SCAN:
        return op_scan(srv, c, out, req, coll);
    case MDX_OP_TTL_SET: {
        int64_t ttl;
        if (mdx_req_has(req, MDX_ARG_TTL_MS)
                ? ttl_arg(srv, c, out, req, MDX_ARG_TTL_MS, &ttl)
                : ttl_class_arg(srv, c, out, req, MDX_ARG_TTL_CLASS, &ttl))
            return 0;
        /* ttl_class "none" (ttl 0) removes the expiry; ttl_ms 0 stays the engine's INVAL. */
        if (ttl == 0 && !mdx_req_has(req, MDX_ARG_TTL_MS))
            rc = mdx_ttl_clear(coll, key, klen);
        else
            rc = mdx_ttl_set(coll, key, klen, ttl);
        if (rc)
            return store_error(srv, c, out, req, rc);
        mdx_srv_snap_dirty(srv, 1);
        return reply_nil(out, req->id);
    }
    case MDX_OP_TTL_GET: {
        int64_t ms;
        size_t mark;
        rc = mdx_ttl_get(coll, key, klen, &ms);
        if (rc)
            return store_error(srv, c, out, req, rc);
        mdx_resp_begin(out, &mark, req->id, 0);
        mdx_mp_put_int(out, ms);
        mdx_resp_end(out, mark);
        return 0;
    }
    case MDX_OP_TTL_CLEAR:
        rc = mdx_ttl_clear(coll, key, klen);
        if (rc)
            return store_error(srv, c, out, req, rc);
        mdx_srv_snap_dirty(srv, 1);
        return reply_nil(out, req->id);
    default:
        break;
    }
    mdx_reply_error(srv, c, out, req->id, MDX_EINTERNAL, "operation not implemented");
    return 0;
}
