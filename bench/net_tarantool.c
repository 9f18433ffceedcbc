/*
 * memdex-bench net, Tarantool driver: IPROTO (Tarantool's binary protocol), packed and
 * unpacked with msgpack-c.
 *
 *   request  := 0xce uint32-BE length, header {0x00 REQUEST_TYPE: type, 0x01 SYNC: n}, body
 *   response := 0xce uint32-BE length, header {0x00 CODE: 0 | 0x8000 + errcode, 0x01 SYNC, ...},
 *               body {0x30 DATA: [tuple, ...]} or {0x31 ERROR: message, ...}
 *
 * Data model: space "bench" (id 512, memtx) of tuples [key (string), score (unsigned),
 * value (string)], a HASH primary index on key and a non-unique TREE index "by_score" on score.
 * get is SELECT on index 0 (iterator EQ, limit 1), put is REPLACE, range is SELECT on index 1
 * (iterator GE, limit n). On connect the server sends a 128-byte greeting first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <msgpack.h>

#include "bench/net.h"

enum {
    IPROTO_REQUEST_TYPE = 0x00,
    IPROTO_SYNC = 0x01,
    IPROTO_SPACE_ID = 0x10,
    IPROTO_INDEX_ID = 0x11,
    IPROTO_LIMIT = 0x12,
    IPROTO_OFFSET = 0x13,
    IPROTO_ITERATOR = 0x14,
    IPROTO_KEY = 0x20,
    IPROTO_TUPLE = 0x21,
    IPROTO_EXPR = 0x27,
    IPROTO_DATA = 0x30,
    IPROTO_ERROR = 0x31,
    IPROTO_SELECT = 1,
    IPROTO_REPLACE = 3,
    IPROTO_EVAL = 8,
    ITER_EQ = 0,
    ITER_GE = 5,
    GREETING_SIZE = 128,
};

static int buf_write(void *data, const char *p, size_t n)
{
    mdx_buf_append(data, p, n);
    return 0;
}

/* Starts a request: length placeholder (0xce + 4 bytes, patched by req_end) and header. */
static size_t req_begin(msgpack_packer *pk, mdx_buf_t *out, unsigned type, uint64_t sync)
{
    size_t mark = out->len;
    static const uint8_t ph[5] = {0xce, 0, 0, 0, 0};
    mdx_buf_append(out, ph, 5);
    msgpack_packer_init(pk, out, buf_write);
    msgpack_pack_map(pk, 2);
    msgpack_pack_uint8(pk, IPROTO_REQUEST_TYPE);
    msgpack_pack_uint32(pk, type);
    msgpack_pack_uint8(pk, IPROTO_SYNC);
    msgpack_pack_uint64(pk, sync);
    return mark;
}

static void req_end(mdx_buf_t *out, size_t mark)
{
    if (out->err)
        return;
    uint32_t n = (uint32_t)(out->len - mark - 5);
    uint8_t *p = out->data + mark + 1;
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
}

static void enc_select(net_conn_t *c, net_op_t *op, mdx_buf_t *out)
{
    msgpack_packer pk;
    op->id = c->next_id++;
    size_t mark = req_begin(&pk, out, IPROTO_SELECT, op->id);
    int scan = op->d.kind == BENCH_OP_SCAN;
    msgpack_pack_map(&pk, 6);
    msgpack_pack_uint8(&pk, IPROTO_SPACE_ID);
    msgpack_pack_uint32(&pk, NET_TNT_SPACE);
    msgpack_pack_uint8(&pk, IPROTO_INDEX_ID);
    msgpack_pack_uint32(&pk, scan ? 1 : 0);
    msgpack_pack_uint8(&pk, IPROTO_LIMIT);
    msgpack_pack_uint32(&pk, scan ? op->d.scan_len : 1);
    msgpack_pack_uint8(&pk, IPROTO_OFFSET);
    msgpack_pack_uint32(&pk, 0);
    msgpack_pack_uint8(&pk, IPROTO_ITERATOR);
    msgpack_pack_uint32(&pk, scan ? ITER_GE : ITER_EQ);
    msgpack_pack_uint8(&pk, IPROTO_KEY);
    msgpack_pack_array(&pk, 1);
    if (scan) {
        msgpack_pack_uint64(&pk, (uint64_t)op->d.keynum);
    } else {
        char key[32];
        size_t kl = bench_key_name(op->d.keynum, key);
        msgpack_pack_str(&pk, kl);
        msgpack_pack_str_body(&pk, key, kl);
    }
    req_end(out, mark);
    net_conn_expect(c, op);
}

static void enc_replace(net_conn_t *c, net_op_t *op, mdx_buf_t *out)
{
    msgpack_packer pk;
    op->id = c->next_id++;
    size_t mark = req_begin(&pk, out, IPROTO_REPLACE, op->id);
    char key[32];
    size_t kl = bench_key_name(op->d.keynum, key);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_uint8(&pk, IPROTO_SPACE_ID);
    msgpack_pack_uint32(&pk, NET_TNT_SPACE);
    msgpack_pack_uint8(&pk, IPROTO_TUPLE);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str(&pk, kl);
    msgpack_pack_str_body(&pk, key, kl);
    msgpack_pack_uint64(&pk, (uint64_t)op->d.keynum);
    msgpack_pack_str(&pk, c->data->value_size);
    msgpack_pack_str_body(&pk, c->data->value, c->data->value_size);
    req_end(out, mark);
    net_conn_expect(c, op);
}

static void tt_encode(net_conn_t *c, net_op_t *op, mdx_buf_t *out)
{
    switch (op->d.kind) {
    case BENCH_OP_READ:
    case BENCH_OP_RMW:
    case BENCH_OP_SCAN:
        enc_select(c, op, out);
        break;
    case BENCH_OP_UPDATE:
    case BENCH_OP_INSERT:
    default:
        enc_replace(c, op, out);
        break;
    }
}

static int tt_conn_init(net_conn_t *c)
{
    /* Two unpack results (header, body), reused for every reply of the connection. */
    msgpack_unpacked *u = malloc(2 * sizeof(*u));
    if (!u)
        return -1;
    msgpack_unpacked_init(&u[0]);
    msgpack_unpacked_init(&u[1]);
    c->dstate = u;
    return 0;
}

static void tt_conn_fini(net_conn_t *c)
{
    msgpack_unpacked *u = c->dstate;
    msgpack_unpacked_destroy(&u[0]);
    msgpack_unpacked_destroy(&u[1]);
    free(u);
    c->dstate = NULL;
}

static int read_exact(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = recv(fd, b, n, 0);
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static int tt_handshake(net_conn_t *c, char *err, size_t errlen)
{
    char g[GREETING_SIZE];
    if (read_exact(c->fd, g, sizeof(g)) || memcmp(g, "Tarantool", 9) != 0) {
        snprintf(err, errlen, "tarantool: no greeting from the server");
        return -1;
    }
    return 0;
}

static const msgpack_object *map_get(const msgpack_object *m, uint64_t key)
{
    if (m->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_POSITIVE_INTEGER && kv->key.via.u64 == key)
            return &kv->val;
    }
    return NULL;
}

/* Splits one response off [p, p+len): header and body unpacked into u (header first: the
 * caller reads code and sync, then calls again for the body). Returns the frame size, 0 when
 * incomplete, -1 when malformed. */
static long frame_size(const uint8_t *p, size_t len)
{
    if (len < 5)
        return 0;
    if (p[0] != 0xce)
        return -1;
    size_t n = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
    return len < 5 + n ? 0 : (long)(5 + n);
}

/* Decodes a response frame: *code, *sync, and the DATA array (NULL when absent). The objects
 * live in u until its next use. */
static int decode(msgpack_unpacked *u, msgpack_unpacked *ub, const uint8_t *p, size_t n,
                  uint64_t *code, uint64_t *sync, const msgpack_object **data)
{
    size_t off = 0;
    if (msgpack_unpack_next(u, (const char *)p + 5, n - 5, &off) != MSGPACK_UNPACK_SUCCESS)
        return -1;
    const msgpack_object *c = map_get(&u->data, IPROTO_REQUEST_TYPE);
    const msgpack_object *s = map_get(&u->data, IPROTO_SYNC);
    if (!c || !s || c->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        s->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    *code = c->via.u64;
    *sync = s->via.u64;
    *data = NULL;
    if (off < n - 5) {
        if (msgpack_unpack_next(ub, (const char *)p + 5, n - 5, &off) != MSGPACK_UNPACK_SUCCESS)
            return -1;
        *data = map_get(&ub->data, IPROTO_DATA);
    }
    return 0;
}

static int tt_reply(net_conn_t *c, net_op_t *op, mdx_buf_t *out, char *err, size_t errlen)
{
    (void)out;
    const uint8_t *p = c->in + c->in_off;
    long n = frame_size(p, c->in_len - c->in_off);
    if (n == 0)
        return 0;
    msgpack_unpacked *u = c->dstate;
    uint64_t code, sync;
    const msgpack_object *data;
    if (n < 0 || decode(&u[0], &u[1], p, (size_t)n, &code, &sync, &data)) {
        snprintf(err, errlen, "tarantool sent a malformed response");
        return -1;
    }
    c->in_off += (size_t)n;
    if (sync != op->id) {
        snprintf(err, errlen, "tarantool answered sync %llu where %llu was due",
                 (unsigned long long)sync, (unsigned long long)op->id);
        return -1;
    }
    op->left--;
    if (code != 0 || !data || data->type != MSGPACK_OBJECT_ARRAY) {
        op->failed = 1;
    } else {
        uint32_t cnt = data->via.array.size;
        switch (op->d.kind) {
        case BENCH_OP_READ:
        case BENCH_OP_RMW:
            if (op->step == 0) {
                const msgpack_object *t = cnt == 1 ? &data->via.array.ptr[0] : NULL;
                if (!t || t->type != MSGPACK_OBJECT_ARRAY || t->via.array.size != 3 ||
                    t->via.array.ptr[2].type != MSGPACK_OBJECT_STR ||
                    t->via.array.ptr[2].via.str.size != c->data->value_size) {
                    op->failed = 1;
                } else if (op->d.kind == BENCH_OP_RMW) {
                    op->step = 1;
                    enc_replace(c, op, out);
                }
            } else if (cnt != 1) {
                op->failed = 1;
            }
            break;
        case BENCH_OP_SCAN:
            op->got = cnt;
            break;
        default:
            if (cnt != 1)
                op->failed = 1;
            break;
        }
    }
    return 1;
}

/* The schema, created here when the init file did not (the guest user needs the rights). */
static const char prepare_lua[] =
    "local reset = ...\n"
    "if box.space.bench == nil then\n"
    "  local s = box.schema.space.create('bench', {id = 512, engine = 'memtx'})\n"
    "  s:format({{name = 'key', type = 'string'}, {name = 'score', type = 'unsigned'},\n"
    "            {name = 'value', type = 'string'}})\n"
    "  s:create_index('primary', {type = 'hash', parts = {'key'}})\n"
    "  s:create_index('by_score', {type = 'tree', unique = false, parts = {'score'}})\n"
    "end\n"
    "if reset then box.space.bench:truncate() end\n"
    "return box.space.bench:len()\n";

static int tt_prepare(int fd, int reset, int64_t *records, char *err, size_t errlen)
{
    char g[GREETING_SIZE];
    if (read_exact(fd, g, sizeof(g)) || memcmp(g, "Tarantool", 9) != 0) {
        snprintf(err, errlen, "tarantool: no greeting from the server");
        return -1;
    }
    mdx_buf_t req, in;
    mdx_buf_init(&req);
    mdx_buf_init(&in);
    msgpack_packer pk;
    size_t mark = req_begin(&pk, &req, IPROTO_EVAL, 1);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_uint8(&pk, IPROTO_EXPR);
    msgpack_pack_str(&pk, sizeof(prepare_lua) - 1);
    msgpack_pack_str_body(&pk, prepare_lua, sizeof(prepare_lua) - 1);
    msgpack_pack_uint8(&pk, IPROTO_TUPLE);
    msgpack_pack_array(&pk, 1);
    if (reset)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    req_end(&req, mark);
    int rc = -1;
    msgpack_unpacked u, ub;
    msgpack_unpacked_init(&u);
    msgpack_unpacked_init(&ub);
    if (req.err || net_write_all(fd, req.data, req.len))
        goto out;
    long n;
    while ((n = frame_size(in.data, in.len)) == 0)
        if (net_read_more(fd, &in))
            goto out;
    uint64_t code, sync;
    const msgpack_object *data;
    if (n < 0 || decode(&u, &ub, in.data, (size_t)n, &code, &sync, &data))
        goto out;
    if (code != 0) {
        const msgpack_object *m = map_get(&ub.data, IPROTO_ERROR);
        snprintf(err, errlen, "tarantool: preparing the space failed: %.*s",
                 m && m->type == MSGPACK_OBJECT_STR ? (int)m->via.str.size : 0,
                 m && m->type == MSGPACK_OBJECT_STR ? m->via.str.ptr : "");
        rc = -2;
        goto out;
    }
    if (!data || data->type != MSGPACK_OBJECT_ARRAY || data->via.array.size != 1 ||
        data->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        goto out;
    *records = (int64_t)data->via.array.ptr[0].via.u64;
    rc = 0;
out:
    if (rc == -1)
        snprintf(err, errlen, "tarantool: preparing the space failed (connection or protocol)");
    msgpack_unpacked_destroy(&u);
    msgpack_unpacked_destroy(&ub);
    mdx_buf_fini(&req);
    mdx_buf_fini(&in);
    return rc ? -1 : 0;
}

const net_driver_t net_drv_tarantool = {
    .name = "tarantool",
    .default_port = 3301,
    .conn_init = tt_conn_init,
    .conn_fini = tt_conn_fini,
    .handshake = tt_handshake,
    .encode = tt_encode,
    .reply = tt_reply,
    .prepare = tt_prepare,
};
