/*
 * memdex-bench net, Redis driver: RESP requests written directly, replies parsed with
 * hiredis's reader (redisReader: a protocol parser that does no I/O, fed what the engine read).
 *
 * Data model, as a Redis user would lay it out: each record is a string key "user<fnv>" holding
 * the value; the ordered secondary index is the sorted set "bench:by_score" of keys scored by
 * keynum. get is GET, put is SET (the score of a key never changes in these workloads, so a
 * replace leaves the sorted set alone, which spares Redis the index upkeep memdex and Tarantool
 * do), insert is SET then ZADD (two pipelined commands: one operation), and range is
 * ZRANGEBYSCORE bench:by_score <start> +inf LIMIT 0 <n> followed, once its reply is in, by MGET
 * of the keys it returned (two round trips: the second depends on the first).
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <hiredis/hiredis.h>

#include "bench/net.h"

static void resp_arr(mdx_buf_t *out, unsigned n)
{
    char h[24];
    int l = snprintf(h, sizeof(h), "*%u\r\n", n);
    mdx_buf_append(out, h, (size_t)l);
}

static void resp_str(mdx_buf_t *out, const void *s, size_t n)
{
    char h[24];
    int l = snprintf(h, sizeof(h), "$%zu\r\n", n);
    mdx_buf_append(out, h, (size_t)l);
    mdx_buf_append(out, s, n);
    mdx_buf_append(out, "\r\n", 2);
}

static void resp_cstr(mdx_buf_t *out, const char *s)
{
    resp_str(out, s, strlen(s));
}

static void resp_int(mdx_buf_t *out, int64_t v)
{
    char b[24];
    int l = snprintf(b, sizeof(b), "%lld", (long long)v);
    resp_str(out, b, (size_t)l);
}

static void enc_set(net_conn_t *c, net_op_t *op, mdx_buf_t *out)
{
    char key[32];
    size_t kl = bench_key_name(op->d.keynum, key);
    resp_arr(out, 3);
    resp_cstr(out, "SET");
    resp_str(out, key, kl);
    resp_str(out, c->data->value, c->data->value_size);
    net_conn_expect(c, op);
}

static void rd_encode(net_conn_t *c, net_op_t *op, mdx_buf_t *out)
{
    char key[32];
    size_t kl;
    switch (op->d.kind) {
    case BENCH_OP_READ:
    case BENCH_OP_RMW:
        kl = bench_key_name(op->d.keynum, key);
        resp_arr(out, 2);
        resp_cstr(out, "GET");
        resp_str(out, key, kl);
        net_conn_expect(c, op);
        break;
    case BENCH_OP_UPDATE:
        enc_set(c, op, out);
        break;
    case BENCH_OP_INSERT:
        enc_set(c, op, out);
        kl = bench_key_name(op->d.keynum, key);
        resp_arr(out, 4);
        resp_cstr(out, "ZADD");
        resp_cstr(out, NET_REDIS_ZSET);
        resp_int(out, op->d.keynum);
        resp_str(out, key, kl);
        net_conn_expect(c, op);
        break;
    case BENCH_OP_SCAN:
    default:
        resp_arr(out, 7);
        resp_cstr(out, "ZRANGEBYSCORE");
        resp_cstr(out, NET_REDIS_ZSET);
        resp_int(out, op->d.keynum);
        resp_cstr(out, "+inf");
        resp_cstr(out, "LIMIT");
        resp_cstr(out, "0");
        resp_int(out, op->d.scan_len);
        net_conn_expect(c, op);
        break;
    }
}

static int rd_conn_init(net_conn_t *c)
{
    c->dstate = redisReaderCreate();
    return c->dstate ? 0 : -1;
}

static void rd_conn_fini(net_conn_t *c)
{
    redisReaderFree(c->dstate);
    c->dstate = NULL;
}

static int is_ok(const redisReply *r)
{
    return r->type == REDIS_REPLY_STATUS && r->len == 2 && memcmp(r->str, "OK", 2) == 0;
}

static void apply(net_conn_t *c, net_op_t *op, const redisReply *r, mdx_buf_t *out)
{
    switch (op->d.kind) {
    case BENCH_OP_READ:
    case BENCH_OP_RMW:
        if (op->step == 0) {
            if (r->type != REDIS_REPLY_STRING || r->len != c->data->value_size) {
                op->failed = 1;
                return;
            }
            if (op->d.kind == BENCH_OP_RMW) {
                op->step = 1;
                enc_set(c, op, out);
            }
        } else if (!is_ok(r)) {
            op->failed = 1;
        }
        return;
    case BENCH_OP_UPDATE:
        if (!is_ok(r))
            op->failed = 1;
        return;
    case BENCH_OP_INSERT:
        /* First the SET's +OK, then ZADD's count of added members. */
        if (op->left == 2 ? !is_ok(r) : r->type != REDIS_REPLY_INTEGER)
            op->failed = 1;
        return;
    case BENCH_OP_SCAN:
    default:
        if (r->type != REDIS_REPLY_ARRAY) {
            op->failed = 1;
            return;
        }
        if (op->step == 0) {
            op->got = (uint32_t)r->elements;
            if (r->elements == 0)
                return;
            resp_arr(out, (unsigned)r->elements + 1);
            resp_cstr(out, "MGET");
            for (size_t i = 0; i < r->elements; i++) {
                const redisReply *e = r->element[i];
                if (e->type != REDIS_REPLY_STRING) {
                    op->failed = 1;
                    resp_str(out, "", 0);
                } else {
                    resp_str(out, e->str, (size_t)e->len);
                }
            }
            op->step = 1;
            net_conn_expect(c, op);
        } else {
            if (r->elements != op->got)
                op->failed = 1;
            for (size_t i = 0; i < r->elements; i++)
                if (r->element[i]->type != REDIS_REPLY_STRING)
                    op->failed = 1;
        }
        return;
    }
}

static int rd_reply(net_conn_t *c, net_op_t *op, mdx_buf_t *out, char *err, size_t errlen)
{
    redisReader *rd = c->dstate;
    if (c->in_off < c->in_len) {
        if (redisReaderFeed(rd, (const char *)c->in + c->in_off, c->in_len - c->in_off) !=
            REDIS_OK) {
            snprintf(err, errlen, "redis: %s", rd->errstr);
            return -1;
        }
        c->in_off = c->in_len;
    }
    void *rep = NULL;
    if (redisReaderGetReply(rd, &rep) != REDIS_OK) {
        snprintf(err, errlen, "redis: %s", rd->errstr);
        return -1;
    }
    if (!rep)
        return 0;
    const redisReply *r = rep;
    /* apply() runs before the count drops: op->left tells it which reply of the step this is,
     * and a follow-up it appends raises the count first. */
    if (r->type == REDIS_REPLY_ERROR)
        op->failed = 1;
    else
        apply(c, op, r, out);
    op->left--;
    freeReplyObject(rep);
    return 1;
}

/* A blocking command on the prepare connection; the reply is the caller's to free. */
static redisReply *sync_cmd(int fd, redisReader *rd, int argc, const char **argv)
{
    mdx_buf_t b;
    mdx_buf_init(&b);
    resp_arr(&b, (unsigned)argc);
    for (int i = 0; i < argc; i++)
        resp_cstr(&b, argv[i]);
    int rc = b.err || net_write_all(fd, b.data, b.len);
    mdx_buf_fini(&b);
    if (rc)
        return NULL;
    for (;;) {
        void *rep = NULL;
        if (redisReaderGetReply(rd, &rep) != REDIS_OK)
            return NULL;
        if (rep)
            return rep;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0 || redisReaderFeed(rd, buf, (size_t)n) != REDIS_OK)
            return NULL;
    }
}

static int rd_prepare(int fd, int reset, int64_t *records, char *err, size_t errlen)
{
    redisReader *rd = redisReaderCreate();
    if (!rd) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    redisReply *r = NULL;
    if (reset) {
        const char *argv[] = {"FLUSHALL"};
        r = sync_cmd(fd, rd, 1, argv);
        if (!r || !is_ok(r)) {
            snprintf(err, errlen, "redis: FLUSHALL failed%s%s", r && r->str ? ": " : "",
                     r && r->str ? r->str : "");
            goto out;
        }
        freeReplyObject(r);
        r = NULL;
    }
    const char *argv[] = {"ZCARD", NET_REDIS_ZSET};
    r = sync_cmd(fd, rd, 2, argv);
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        snprintf(err, errlen, "redis: ZCARD failed%s%s", r && r->str ? ": " : "",
                 r && r->str ? r->str : "");
        goto out;
    }
    *records = r->integer;
    rc = 0;
out:
    if (r)
        freeReplyObject(r);
    redisReaderFree(rd);
    return rc;
}

const net_driver_t net_drv_redis = {
    .name = "redis",
    .default_port = 6379,
    .conn_init = rd_conn_init,
    .conn_fini = rd_conn_fini,
    .encode = rd_encode,
    .reply = rd_reply,
    .prepare = rd_prepare,
};
