/*
 * memdex-bench net, memdex driver: the memdex wire protocol (docs/protocol.md) with the
 * frame encoders of protocol/response.h and the zero-copy msgpack reader of common/mp.h.
 *
 * Data model: collection "bench", key "user<fnv>" (str), body {"s": keynum, "v": value}, and a
 * skiplist index "by_score" on "s". get is `get`, put is `put` (upsert: the whole record),
 * range is `find` with ge = start and limit = length.
 */
#include <stdio.h>
#include <string.h>

#include "bench/net.h"
#include "memdex/error.h"
#include "protocol/response.h"

#define MAX_REPLY_FRAME (64u << 20)

static void put_body(mdx_buf_t *out, const net_conn_t *c, int64_t keynum)
{
    mdx_mp_put_map(out, 2);
    mdx_mp_put_str(out, "s", 1);
    mdx_mp_put_int(out, keynum);
    mdx_mp_put_str(out, "v", 1);
    mdx_mp_put_str(out, c->data->value, c->data->value_size);
}

static void enc_get(net_conn_t *c, net_op_t *op, mdx_buf_t *out)
{
    char key[32];
    size_t kl = bench_key_name(op->d.keynum, key);
    size_t mark;
    op->id = c->next_id++;
    mdx_req_begin(out, &mark, op->id, "get", 2);
    mdx_req_arg(out, MDX_ARG_COLL);
    mdx_mp_put_str(out, NET_COLL, sizeof(NET_COLL) - 1);
    mdx_req_arg(out, MDX_ARG_KEY);
    mdx_mp_put_str(out, key, kl);
    mdx_req_end(out, mark);
    net_conn_expect(c, op);
}

static void enc_put(net_conn_t *c, net_op_t *op, mdx_buf_t *out)
{
    char key[32];
    size_t kl = bench_key_name(op->d.keynum, key);
    size_t mark;
    op->id = c->next_id++;
    mdx_req_begin(out, &mark, op->id, "put", 3);
    mdx_req_arg(out, MDX_ARG_COLL);
    mdx_mp_put_str(out, NET_COLL, sizeof(NET_COLL) - 1);
    mdx_req_arg(out, MDX_ARG_KEY);
    mdx_mp_put_str(out, key, kl);
    mdx_req_arg(out, MDX_ARG_BODY);
    put_body(out, c, op->d.keynum);
    mdx_req_end(out, mark);
    net_conn_expect(c, op);
}

static void enc_find(net_conn_t *c, net_op_t *op, mdx_buf_t *out)
{
    size_t mark;
    op->id = c->next_id++;
    mdx_req_begin(out, &mark, op->id, "find", 4);
    mdx_req_arg(out, MDX_ARG_COLL);
    mdx_mp_put_str(out, NET_COLL, sizeof(NET_COLL) - 1);
    mdx_req_arg(out, MDX_ARG_INDEX);
    mdx_mp_put_str(out, NET_INDEX, sizeof(NET_INDEX) - 1);
    mdx_req_arg(out, MDX_ARG_GE);
    mdx_mp_put_int(out, op->d.keynum);
    mdx_req_arg(out, MDX_ARG_LIMIT);
    mdx_mp_put_uint(out, op->d.scan_len);
    mdx_req_end(out, mark);
    net_conn_expect(c, op);
}

static void md_encode(net_conn_t *c, net_op_t *op, mdx_buf_t *out)
{
    switch (op->d.kind) {
    case BENCH_OP_READ:
    case BENCH_OP_RMW:
        enc_get(c, op, out);
        break;
    case BENCH_OP_UPDATE:
    case BENCH_OP_INSERT:
        enc_put(c, op, out);
        break;
    case BENCH_OP_SCAN:
    default:
        enc_find(c, op, out);
        break;
    }
}

/* The length of the "records" array of a find result; -1 when the body is not such a map. */
static long find_count(const uint8_t *p, const uint8_t *end)
{
    mdx_mp_tok_t t;
    if (mdx_mp_read(&p, end, &t) || t.type != MDX_MP_MAP)
        return -1;
    for (uint32_t i = 0; i < t.len; i++) {
        mdx_mp_tok_t k;
        if (mdx_mp_read(&p, end, &k))
            return -1;
        if (k.type == MDX_MP_STR && k.len == 7 && memcmp(k.v.ptr, "records", 7) == 0) {
            mdx_mp_tok_t a;
            if (mdx_mp_read(&p, end, &a) || a.type != MDX_MP_ARRAY)
                return -1;
            return (long)a.len;
        }
        if (mdx_mp_skip(&p, end, MDX_MP_MAX_DEPTH))
            return -1;
    }
    return -1;
}

static int md_reply(net_conn_t *c, net_op_t *op, mdx_buf_t *out, char *err, size_t errlen)
{
    const uint8_t *payload;
    size_t plen;
    long n =
        mdx_frame_next(c->in + c->in_off, c->in_len - c->in_off, MAX_REPLY_FRAME, &payload, &plen);
    if (n == 0)
        return 0;
    uint64_t id;
    int status;
    const uint8_t *body;
    size_t blen;
    if (n < 0 || mdx_resp_decode(payload, plen, &id, &status, &body, &blen)) {
        snprintf(err, errlen, "memdex sent a malformed frame");
        return -1;
    }
    c->in_off += (size_t)n;
    if (status < 0)
        return 1; /* a push: not ours to count (version 1 servers send none) */
    if (id != op->id) {
        snprintf(err, errlen, "memdex answered id %llu where %llu was due", (unsigned long long)id,
                 (unsigned long long)op->id);
        return -1;
    }
    op->left--;
    if (status != 0) {
        op->failed = 1;
        return 1;
    }
    const uint8_t *end = body + blen;
    mdx_mp_tok_t t;
    switch (op->d.kind) {
    case BENCH_OP_READ:
    case BENCH_OP_RMW:
        if (op->step == 0) {
            /* A record is a map holding the value; nil means it was not found. */
            const uint8_t *p = body;
            if (mdx_mp_read(&p, end, &t) || t.type != MDX_MP_MAP || t.len != 2 ||
                blen < c->data->value_size) {
                op->failed = 1;
                return 1;
            }
            if (op->d.kind == BENCH_OP_RMW) {
                op->step = 1;
                enc_put(c, op, out);
            }
        } else if (!(blen == 1 && body[0] == 0xc0)) {
            op->failed = 1;
        }
        break;
    case BENCH_OP_SCAN: {
        long cnt = find_count(body, end);
        if (cnt < 0)
            op->failed = 1;
        else
            op->got = (uint32_t)cnt;
        break;
    }
    default:
        if (!(blen == 1 && body[0] == 0xc0))
            op->failed = 1;
        break;
    }
    return 1;
}

/* One blocking request/reply on the prepare connection. Returns the status (0 or an error
 * code), -1 when the exchange failed. *body is a view into in. */
static int call(int fd, mdx_buf_t *req, mdx_buf_t *in, const uint8_t **body, size_t *blen)
{
    if (req->err || net_write_all(fd, req->data, req->len))
        return -1;
    in->len = 0;
    for (;;) {
        const uint8_t *payload;
        size_t plen;
        long n = mdx_frame_next(in->data, in->len, MAX_REPLY_FRAME, &payload, &plen);
        if (n < 0)
            return -1;
        if (n > 0) {
            uint64_t id;
            int status;
            if (mdx_resp_decode(payload, plen, &id, &status, body, blen))
                return -1;
            return status;
        }
        if (net_read_more(fd, in))
            return -1;
    }
}

static int md_prepare(int fd, int reset, int64_t *records, char *err, size_t errlen)
{
    mdx_buf_t req, in;
    mdx_buf_init(&req);
    mdx_buf_init(&in);
    const uint8_t *body;
    size_t blen, mark;
    int rc = -1, st;
    const char *what = "";

    if (reset) {
        what = "drop_collection";
        mdx_req_begin(&req, &mark, 1, what, 1);
        mdx_req_arg(&req, MDX_ARG_NAME);
        mdx_mp_put_str(&req, NET_COLL, sizeof(NET_COLL) - 1);
        mdx_req_end(&req, mark);
        st = call(fd, &req, &in, &body, &blen);
        if (st != 0 && st != MDX_ENOCOLL)
            goto out;
    }
    what = "create_collection";
    req.len = 0;
    mdx_req_begin(&req, &mark, 2, what, 1);
    mdx_req_arg(&req, MDX_ARG_NAME);
    mdx_mp_put_str(&req, NET_COLL, sizeof(NET_COLL) - 1);
    mdx_req_end(&req, mark);
    st = call(fd, &req, &in, &body, &blen);
    if (st != 0 && st != MDX_ECOLLEXISTS)
        goto out;
    what = "create_index";
    req.len = 0;
    mdx_req_begin(&req, &mark, 3, what, 4);
    mdx_req_arg(&req, MDX_ARG_COLL);
    mdx_mp_put_str(&req, NET_COLL, sizeof(NET_COLL) - 1);
    mdx_req_arg(&req, MDX_ARG_NAME);
    mdx_mp_put_str(&req, NET_INDEX, sizeof(NET_INDEX) - 1);
    mdx_req_arg(&req, MDX_ARG_FIELD);
    mdx_mp_put_str(&req, "s", 1);
    mdx_req_arg(&req, MDX_ARG_KIND);
    mdx_mp_put_str(&req, "skiplist", 8);
    mdx_req_end(&req, mark);
    st = call(fd, &req, &in, &body, &blen);
    if (st != 0 && st != MDX_EINDEXEXISTS)
        goto out;
    what = "count";
    req.len = 0;
    mdx_req_begin(&req, &mark, 4, what, 2);
    mdx_req_arg(&req, MDX_ARG_COLL);
    mdx_mp_put_str(&req, NET_COLL, sizeof(NET_COLL) - 1);
    mdx_req_arg(&req, MDX_ARG_INDEX);
    mdx_mp_put_str(&req, NET_INDEX, sizeof(NET_INDEX) - 1);
    mdx_req_end(&req, mark);
    st = call(fd, &req, &in, &body, &blen);
    if (st != 0)
        goto out;
    const uint8_t *p = body;
    mdx_mp_tok_t t;
    if (mdx_mp_read(&p, body + blen, &t) || t.type != MDX_MP_INT) {
        st = MDX_EPROTO;
        goto out;
    }
    *records = t.v.i;
    rc = 0;
out:
    if (rc)
        snprintf(err, errlen, "memdex: %s failed: %s", what,
                 st > 0 ? mdx_strerror(st) : "connection lost");
    mdx_buf_fini(&req);
    mdx_buf_fini(&in);
    return rc;
}

const net_driver_t net_drv_memdex = {
    .name = "memdex",
    .default_port = 7711,
    .encode = md_encode,
    .reply = md_reply,
    .prepare = md_prepare,
};
