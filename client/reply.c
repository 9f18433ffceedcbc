/*
 * Reading results: the typed decoders of replies, field lookup in record bodies, scalar
 * parsing, and the msgpack writer offered to callers.
 *
 * Nothing here trusts its input. Reply payloads have passed mdx_resp_decode (one well-formed
 * msgpack value), but their shapes have not: every decoder checks the type of everything it
 * reads and returns MDX_EPROTO rather than guess. The field helpers are safe on any bytes.
 * Arrays of typed results are built in the client's arena, one block per decode, sized by a
 * counting pass first, so a decode never reallocates under views it has already handed out.
 */
#include "client/client_int.h"

#include <stddef.h>
#include <string.h>

#include "common/alloc.h"

/* ---- arena ---- */

void *mdx__cl_arena(mdx_client_t *c, size_t n)
{
    if (n == 0)
        n = 1;
    if (n > c->arena_cap) {
        size_t cap = c->arena_cap ? c->arena_cap : 1024;
        while (cap < n) {
            if (cap > SIZE_MAX / 2)
                return NULL;
            cap *= 2;
        }
        /* The old block's contents are dead (views end with the next call): no copy. */
        void *a = mdx_malloc(cap);
        if (!a)
            return NULL;
        mdx_free(c->arena);
        c->arena = a;
        c->arena_cap = cap;
    }
    return c->arena;
}

/* ---- scalars and fields ---- */

int mdx_val_parse(const void *mp, size_t len, mdx_val_t *out)
{
    const uint8_t *p = mp;
    mdx_mp_tok_t t;
    if (!mp || mdx_mp_check(p, len, MDX_MP_MAX_DEPTH) || mdx_mp_read(&p, p + len, &t))
        return MDX_EPROTO;
    mdx_val_t v;
    memset(&v, 0, sizeof(v));
    switch (t.type) {
    case MDX_MP_NIL:
        v.type = MDX_VAL_NIL;
        break;
    case MDX_MP_BOOL:
        v.type = MDX_VAL_BOOL;
        v.v.b = t.v.b;
        break;
    case MDX_MP_INT:
        v.type = MDX_VAL_INT;
        v.v.i = t.v.i;
        break;
    case MDX_MP_UINT:
        v.type = MDX_VAL_UINT;
        v.v.u = t.v.u;
        break;
    case MDX_MP_FLOAT:
        v.type = MDX_VAL_DOUBLE;
        v.v.d = t.v.f;
        break;
    case MDX_MP_STR:
    case MDX_MP_BIN:
        v.type = t.type == MDX_MP_STR ? MDX_VAL_STR : MDX_VAL_BIN;
        v.ptr = t.v.ptr;
        v.len = t.len;
        break;
    default:
        v.type = MDX_VAL_MP;
        v.ptr = mp;
        v.len = len;
        break;
    }
    *out = v;
    return 0;
}

/* Finds field in the map [body, body+len): 1 with the value's token and bytes, 0 when absent,
 * -1 when body is not a well-formed map. */
static int find_field(const void *body, size_t len, const char *field, mdx_mp_tok_t *tok,
                      mdx_bytes_t *raw)
{
    if (!body)
        return 0;
    const uint8_t *p = body, *end = p + len;
    mdx_mp_tok_t t;
    if (mdx_mp_read(&p, end, &t) || t.type != MDX_MP_MAP)
        return -1;
    size_t flen = strlen(field);
    int found = 0;
    for (uint32_t i = 0; i < t.len; i++) {
        mdx_mp_tok_t k;
        if (mdx_mp_read(&p, end, &k))
            return -1;
        int match = 0;
        if (k.type == MDX_MP_STR)
            match = k.len == flen && memcmp(k.v.ptr, field, flen) == 0;
        else if (k.type == MDX_MP_ARRAY || k.type == MDX_MP_MAP)
            return -1; /* keys of a body are strings; anything else is not one of ours */
        const uint8_t *v = p, *q = p;
        if (mdx_mp_skip(&p, end, MDX_MP_MAX_DEPTH))
            return -1;
        if (match) {
            if (mdx_mp_read(&q, end, tok))
                return -1;
            raw->ptr = v;
            raw->len = (size_t)(p - v);
            found = 1;
        }
    }
    return found;
}

static int field(const void *body, size_t len, const char *name, mdx_mp_tok_t *t, mdx_bytes_t *raw)
{
    if (!name)
        return MDX_EINVAL;
    int r = find_field(body, len, name, t, raw);
    if (r < 0)
        return MDX_EPROTO;
    if (r == 0 || t->type == MDX_MP_NIL)
        return MDX_ENOTFOUND;
    return 0;
}

int mdx_field_str(const void *body, size_t len, const char *name, mdx_str_t *out)
{
    mdx_mp_tok_t t;
    mdx_bytes_t raw;
    int rc = field(body, len, name, &t, &raw);
    if (rc)
        return rc;
    if (t.type != MDX_MP_STR)
        return MDX_EINVAL;
    out->ptr = (const char *)t.v.ptr;
    out->len = t.len;
    return 0;
}

int mdx_field_bin(const void *body, size_t len, const char *name, mdx_bytes_t *out)
{
    mdx_mp_tok_t t;
    mdx_bytes_t raw;
    int rc = field(body, len, name, &t, &raw);
    if (rc)
        return rc;
    if (t.type != MDX_MP_BIN)
        return MDX_EINVAL;
    out->ptr = t.v.ptr;
    out->len = t.len;
    return 0;
}

int mdx_field_int(const void *body, size_t len, const char *name, int64_t *out)
{
    mdx_mp_tok_t t;
    mdx_bytes_t raw;
    int rc = field(body, len, name, &t, &raw);
    if (rc)
        return rc;
    if (t.type != MDX_MP_INT)
        return MDX_EINVAL;
    *out = t.v.i;
    return 0;
}

int mdx_field_uint(const void *body, size_t len, const char *name, uint64_t *out)
{
    mdx_mp_tok_t t;
    mdx_bytes_t raw;
    int rc = field(body, len, name, &t, &raw);
    if (rc)
        return rc;
    if (t.type == MDX_MP_INT && t.v.i >= 0)
        *out = (uint64_t)t.v.i;
    else if (t.type == MDX_MP_UINT)
        *out = t.v.u;
    else
        return MDX_EINVAL;
    return 0;
}

int mdx_field_double(const void *body, size_t len, const char *name, double *out)
{
    mdx_mp_tok_t t;
    mdx_bytes_t raw;
    int rc = field(body, len, name, &t, &raw);
    if (rc)
        return rc;
    if (t.type == MDX_MP_FLOAT)
        *out = t.v.f;
    else if (t.type == MDX_MP_INT)
        *out = (double)t.v.i;
    else if (t.type == MDX_MP_UINT)
        *out = (double)t.v.u;
    else
        return MDX_EINVAL;
    return 0;
}

int mdx_field_bool(const void *body, size_t len, const char *name, int *out)
{
    mdx_mp_tok_t t;
    mdx_bytes_t raw;
    int rc = field(body, len, name, &t, &raw);
    if (rc)
        return rc;
    if (t.type != MDX_MP_BOOL)
        return MDX_EINVAL;
    *out = t.v.b;
    return 0;
}

int mdx_field_raw(const void *body, size_t len, const char *name, mdx_bytes_t *out)
{
    mdx_mp_tok_t t;
    mdx_bytes_t raw;
    if (!name)
        return MDX_EINVAL;
    int r = find_field(body, len, name, &t, &raw);
    if (r < 0)
        return MDX_EPROTO;
    if (r == 0)
        return MDX_ENOTFOUND;
    *out = raw;
    return 0;
}

/* ---- typed decoders ---- */

/* Reads one header of the given type. */
static int expect(const uint8_t **p, const uint8_t *end, mdx_mp_type_t type, mdx_mp_tok_t *t)
{
    if (mdx_mp_read(p, end, t) || t->type != type)
        return MDX_EPROTO;
    return 0;
}

/* [start, end) of the next value, and *p past it. */
static int value(const uint8_t **p, const uint8_t *end, mdx_bytes_t *out)
{
    const uint8_t *s = *p;
    if (mdx_mp_skip(p, end, MDX_MP_MAX_DEPTH))
        return MDX_EPROTO;
    out->ptr = s;
    out->len = (size_t)(*p - s);
    return 0;
}

int mdx_client_reply_uint(const mdx_client_reply_t *r, uint64_t *out)
{
    if (r->status)
        return r->status;
    mdx_val_t v;
    if (mdx_val_parse(r->body.ptr, r->body.len, &v))
        return MDX_EPROTO;
    if (v.type == MDX_VAL_INT && v.v.i >= 0)
        *out = (uint64_t)v.v.i;
    else if (v.type == MDX_VAL_UINT)
        *out = v.v.u;
    else
        return MDX_EPROTO;
    return 0;
}

int mdx_client_reply_int(const mdx_client_reply_t *r, int64_t *out)
{
    if (r->status)
        return r->status;
    mdx_val_t v;
    if (mdx_val_parse(r->body.ptr, r->body.len, &v) || v.type != MDX_VAL_INT)
        return MDX_EPROTO;
    *out = v.v.i;
    return 0;
}

int mdx_client_reply_body(const mdx_client_reply_t *r, const uint8_t **body, size_t *len)
{
    if (r->status)
        return r->status;
    const uint8_t *p = r->body.ptr;
    mdx_mp_tok_t t;
    if (!p || mdx_mp_read(&p, p + r->body.len, &t))
        return MDX_EPROTO;
    if (t.type == MDX_MP_NIL) {
        *body = NULL;
        *len = 0;
        return 0;
    }
    if (t.type != MDX_MP_MAP)
        return MDX_EPROTO;
    *body = r->body.ptr;
    *len = r->body.len;
    return 0;
}

int mdx_client_reply_hello(const mdx_client_reply_t *r, mdx_client_hello_t *out)
{
    if (r->status)
        return r->status;
    mdx_client_hello_t h;
    memset(&h, 0, sizeof(h));
    const void *b = r->body.ptr;
    size_t n = r->body.len;
    if (mdx_field_uint(b, n, "protocol", &h.protocol) || mdx_field_str(b, n, "server", &h.server) ||
        mdx_field_str(b, n, "version", &h.version) ||
        mdx_field_uint(b, n, "max_frame", &h.max_frame))
        return MDX_EPROTO;
    *out = h;
    return 0;
}

/* An absent number is 0 (later servers may drop or rename keys; clients ignore what they do
 * not know); a present one of the wrong type is a protocol error. */
static int opt_uint(const void *b, size_t n, const char *name, uint64_t *out)
{
    int rc = mdx_field_uint(b, n, name, out);
    if (rc == MDX_ENOTFOUND) {
        *out = 0;
        return 0;
    }
    return rc ? MDX_EPROTO : 0;
}

int mdx_client_reply_stats(const mdx_client_reply_t *r, mdx_client_stats_t *out)
{
    if (r->status)
        return r->status;
    mdx_client_stats_t s;
    memset(&s, 0, sizeof(s));
    const void *b = r->body.ptr;
    size_t n = r->body.len;
    mdx_bytes_t conn = {NULL, 0};
    int rc = mdx_field_raw(b, n, "connections", &conn);
    if (rc && rc != MDX_ENOTFOUND)
        return MDX_EPROTO;
    if (opt_uint(b, n, "uptime_s", &s.uptime_s) || opt_uint(b, n, "records", &s.records) ||
        opt_uint(b, n, "memory", &s.memory))
        return MDX_EPROTO;
    if (conn.ptr && (opt_uint(conn.ptr, conn.len, "current", &s.conn_current) ||
                     opt_uint(conn.ptr, conn.len, "total", &s.conn_total) ||
                     opt_uint(conn.ptr, conn.len, "rejected", &s.conn_rejected)))
        return MDX_EPROTO;
    static const struct {
        const char *name;
        size_t off;
    } cache[] = {
        {"maxmemory", offsetof(mdx_client_stats_t, maxmemory)},
        {"gets", offsetof(mdx_client_stats_t, gets)},
        {"hits", offsetof(mdx_client_stats_t, hits)},
        {"misses", offsetof(mdx_client_stats_t, misses)},
        {"evicted_memory", offsetof(mdx_client_stats_t, evicted_memory)},
        {"evicted_capacity", offsetof(mdx_client_stats_t, evicted_capacity)},
        {"expired", offsetof(mdx_client_stats_t, expired)},
        {"invalidated", offsetof(mdx_client_stats_t, invalidated)},
        {"invalidations", offsetof(mdx_client_stats_t, invalidations)},
        {"oom", offsetof(mdx_client_stats_t, oom)},
        {"pending", offsetof(mdx_client_stats_t, pending)},
    };
    for (size_t i = 0; i < sizeof(cache) / sizeof(cache[0]); i++) {
        uint64_t v;
        if (opt_uint(b, n, cache[i].name, &v))
            return MDX_EPROTO;
        memcpy((char *)&s + cache[i].off, &v, sizeof(v));
    }
    mdx_bytes_t hr;
    if (mdx_field_raw(b, n, "hit_ratio", &hr) == 0) {
        mdx_val_t v;
        if (mdx_val_parse(hr.ptr, hr.len, &v))
            return MDX_EPROTO;
        if (v.type == MDX_VAL_DOUBLE)
            s.hit_ratio = v.v.d;
        else if (v.type == MDX_VAL_UINT)
            s.hit_ratio = (double)v.v.u;
        else
            return MDX_EPROTO;
    }
    int prc = mdx_field_str(b, n, "policy", &s.policy);
    if (prc && prc != MDX_ENOTFOUND)
        return MDX_EPROTO;
    s.raw = r->body;
    *out = s;
    return 0;
}

int mdx_client_reply_mget(mdx_client_t *c, const mdx_client_reply_t *r, mdx_client_mget_t *out)
{
    if (r->status)
        return r->status;
    const uint8_t *p = r->body.ptr, *end = p + r->body.len;
    mdx_mp_tok_t t;
    if (!p || expect(&p, end, MDX_MP_ARRAY, &t))
        return MDX_EPROTO;
    if (t.len > (size_t)(end - p))
        return MDX_EPROTO;
    mdx_bytes_t *v = mdx__cl_arena(c, (size_t)t.len * sizeof(*v));
    if (!v)
        return MDX_ENOMEM;
    for (uint32_t i = 0; i < t.len; i++) {
        if (value(&p, end, &v[i]))
            return MDX_EPROTO;
        if (v[i].ptr[0] == 0xc0) {
            v[i].ptr = NULL;
            v[i].len = 0;
        } else if (!((v[i].ptr[0] & 0xf0) == 0x80 || v[i].ptr[0] == 0xde || v[i].ptr[0] == 0xdf)) {
            return MDX_EPROTO; /* neither nil nor a map */
        }
    }
    out->bodies = v;
    out->n = t.len;
    return 0;
}

/* [[key, body], ...] at *p into an arena array. */
static int records(mdx_client_t *c, const uint8_t **p, const uint8_t *end,
                   const mdx_client_record_t **recs, size_t *n)
{
    mdx_mp_tok_t t;
    if (expect(p, end, MDX_MP_ARRAY, &t) || t.len > (size_t)(end - *p))
        return MDX_EPROTO;
    mdx_client_record_t *v = mdx__cl_arena(c, (size_t)t.len * sizeof(*v));
    if (!v)
        return MDX_ENOMEM;
    for (uint32_t i = 0; i < t.len; i++) {
        mdx_mp_tok_t pair;
        if (expect(p, end, MDX_MP_ARRAY, &pair) || pair.len != 2 || value(p, end, &v[i].key) ||
            value(p, end, &v[i].body))
            return MDX_EPROTO;
    }
    *recs = v;
    *n = t.len;
    return 0;
}

/* Walks the top-level map of a find or scan result: each key once, in any order. */
int mdx_client_reply_find(mdx_client_t *c, const mdx_client_reply_t *r, mdx_client_find_t *out)
{
    if (r->status)
        return r->status;
    const uint8_t *p = r->body.ptr, *end = p + r->body.len;
    mdx_mp_tok_t t;
    if (!p || expect(&p, end, MDX_MP_MAP, &t))
        return MDX_EPROTO;
    mdx_client_find_t f;
    memset(&f, 0, sizeof(f));
    int have = 0;
    for (uint32_t i = 0; i < t.len; i++) {
        mdx_mp_tok_t k, v;
        if (expect(&p, end, MDX_MP_STR, &k))
            return MDX_EPROTO;
        if (k.len == 7 && memcmp(k.v.ptr, "records", 7) == 0) {
            int rc = records(c, &p, end, &f.records, &f.n);
            if (rc)
                return rc;
            have |= 1;
        } else if (k.len == 4 && memcmp(k.v.ptr, "more", 4) == 0) {
            if (expect(&p, end, MDX_MP_BOOL, &v))
                return MDX_EPROTO;
            f.more = v.v.b;
            have |= 2;
        } else if (k.len == 6 && memcmp(k.v.ptr, "cursor", 6) == 0) {
            mdx_bytes_t cur;
            if (value(&p, end, &cur))
                return MDX_EPROTO;
            if (cur.ptr[0] != 0xc0)
                f.cursor = cur;
        } else if (mdx_mp_skip(&p, end, MDX_MP_MAX_DEPTH)) {
            return MDX_EPROTO;
        }
    }
    if (have != 3 || (f.more && !f.cursor.ptr))
        return MDX_EPROTO;
    *out = f;
    return 0;
}

int mdx_client_reply_scan(mdx_client_t *c, const mdx_client_reply_t *r, mdx_client_scan_t *out)
{
    if (r->status)
        return r->status;
    const uint8_t *p = r->body.ptr, *end = p + r->body.len;
    mdx_mp_tok_t t;
    if (!p || expect(&p, end, MDX_MP_MAP, &t))
        return MDX_EPROTO;
    mdx_client_scan_t s;
    memset(&s, 0, sizeof(s));
    int have = 0;
    for (uint32_t i = 0; i < t.len; i++) {
        mdx_mp_tok_t k, v;
        if (expect(&p, end, MDX_MP_STR, &k))
            return MDX_EPROTO;
        if (k.len == 7 && memcmp(k.v.ptr, "records", 7) == 0) {
            int rc = records(c, &p, end, &s.records, &s.n);
            if (rc)
                return rc;
            have |= 1;
        } else if (k.len == 6 && memcmp(k.v.ptr, "cursor", 6) == 0) {
            if (mdx_mp_read(&p, end, &v))
                return MDX_EPROTO;
            if (v.type == MDX_MP_INT && v.v.i >= 0)
                s.cursor = (uint64_t)v.v.i;
            else if (v.type == MDX_MP_UINT)
                s.cursor = v.v.u;
            else
                return MDX_EPROTO;
            have |= 2;
        } else if (mdx_mp_skip(&p, end, MDX_MP_MAX_DEPTH)) {
            return MDX_EPROTO;
        }
    }
    if (have != 3)
        return MDX_EPROTO;
    *out = s;
    return 0;
}

/* One index info map at *p. */
static int index_info(const uint8_t **p, const uint8_t *end, mdx_client_index_t *out)
{
    mdx_bytes_t m;
    if (value(p, end, &m))
        return MDX_EPROTO;
    mdx_str_t kind;
    memset(out, 0, sizeof(*out));
    if (mdx_field_str(m.ptr, m.len, "name", &out->name) ||
        mdx_field_str(m.ptr, m.len, "field", &out->field) ||
        mdx_field_str(m.ptr, m.len, "kind", &kind) ||
        mdx_field_bool(m.ptr, m.len, "unique", &out->unique) ||
        opt_uint(m.ptr, m.len, "entries", &out->entries))
        return MDX_EPROTO;
    if (kind.len == 4 && memcmp(kind.ptr, "hash", 4) == 0)
        out->kind = MDX_CLIENT_HASH;
    else if (kind.len == 8 && memcmp(kind.ptr, "skiplist", 8) == 0)
        out->kind = MDX_CLIENT_SKIPLIST;
    else
        return MDX_EPROTO;
    return 0;
}

int mdx_client_reply_indexes(mdx_client_t *c, const mdx_client_reply_t *r,
                             mdx_client_indexes_t *out)
{
    if (r->status)
        return r->status;
    const uint8_t *p = r->body.ptr, *end = p + r->body.len;
    mdx_mp_tok_t t;
    if (!p || expect(&p, end, MDX_MP_ARRAY, &t) || t.len > (size_t)(end - p))
        return MDX_EPROTO;
    mdx_client_index_t *v = mdx__cl_arena(c, (size_t)t.len * sizeof(*v));
    if (!v)
        return MDX_ENOMEM;
    for (uint32_t i = 0; i < t.len; i++)
        if (index_info(&p, end, &v[i]))
            return MDX_EPROTO;
    out->indexes = v;
    out->n = t.len;
    return 0;
}

int mdx_client_reply_colls(mdx_client_t *c, const mdx_client_reply_t *r, mdx_client_colls_t *out)
{
    if (r->status)
        return r->status;
    const uint8_t *p = r->body.ptr, *end = p + r->body.len;
    mdx_mp_tok_t t;
    if (!p || expect(&p, end, MDX_MP_ARRAY, &t) || t.len > (size_t)(end - p))
        return MDX_EPROTO;
    /* Counting pass: collections and all their indexes go into one block. */
    const uint8_t *body = p;
    size_t nidx = 0;
    for (uint32_t i = 0; i < t.len; i++) {
        mdx_bytes_t m, ix;
        mdx_mp_tok_t a;
        if (value(&p, end, &m) || mdx_field_raw(m.ptr, m.len, "indexes", &ix))
            return MDX_EPROTO;
        const uint8_t *q = ix.ptr;
        if (expect(&q, ix.ptr + ix.len, MDX_MP_ARRAY, &a))
            return MDX_EPROTO;
        nidx += a.len;
    }
    size_t csize = (size_t)t.len * sizeof(mdx_client_coll_t);
    csize = (csize + 15) & ~(size_t)15;
    if (nidx > (SIZE_MAX - csize) / sizeof(mdx_client_index_t))
        return MDX_EPROTO;
    uint8_t *block = mdx__cl_arena(c, csize + nidx * sizeof(mdx_client_index_t));
    if (!block)
        return MDX_ENOMEM;
    mdx_client_coll_t *colls = (mdx_client_coll_t *)block;
    mdx_client_index_t *idx = (mdx_client_index_t *)(block + csize);
    p = body;
    for (uint32_t i = 0; i < t.len; i++) {
        mdx_bytes_t m, ix;
        value(&p, end, &m);
        mdx_client_coll_t *cl = &colls[i];
        memset(cl, 0, sizeof(*cl));
        if (mdx_field_str(m.ptr, m.len, "name", &cl->name) ||
            opt_uint(m.ptr, m.len, "records", &cl->records) ||
            mdx_field_raw(m.ptr, m.len, "indexes", &ix))
            return MDX_EPROTO;
        const uint8_t *q = ix.ptr, *qend = ix.ptr + ix.len;
        mdx_mp_tok_t a;
        expect(&q, qend, MDX_MP_ARRAY, &a);
        cl->indexes = idx;
        cl->n_indexes = a.len;
        for (uint32_t j = 0; j < a.len; j++)
            if (index_info(&q, qend, idx++))
                return MDX_EPROTO;
    }
    out->colls = colls;
    out->n = t.len;
    return 0;
}

/* ---- the public msgpack writer: mdx_buf_t under another name ---- */

/* mdx_mpbuf_t mirrors mdx_buf_t field for field; the wrappers copy the four fields in and out
 * rather than cast, so neither type's layout is assumed. */
#define WRAP(b, call)                                                                              \
    do {                                                                                           \
        mdx_buf_t w = {(b)->data, (b)->len, (b)->cap, (b)->err};                                   \
        call;                                                                                      \
        (b)->data = w.data;                                                                        \
        (b)->len = w.len;                                                                          \
        (b)->cap = w.cap;                                                                          \
        (b)->err = w.err;                                                                          \
    } while (0)

void mdx_mpbuf_init(mdx_mpbuf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void mdx_mpbuf_fini(mdx_mpbuf_t *b)
{
    mdx_free(b->data);
    memset(b, 0, sizeof(*b));
}

void mdx_mpbuf_reset(mdx_mpbuf_t *b)
{
    b->len = 0;
    b->err = 0;
}

void mdx_mpbuf_map(mdx_mpbuf_t *b, uint32_t n)
{
    WRAP(b, mdx_mp_put_map(&w, n));
}

void mdx_mpbuf_array(mdx_mpbuf_t *b, uint32_t n)
{
    WRAP(b, mdx_mp_put_array(&w, n));
}

void mdx_mpbuf_str(mdx_mpbuf_t *b, const char *s)
{
    WRAP(b, mdx_mp_put_str(&w, s ? s : "", s ? strlen(s) : 0));
}

void mdx_mpbuf_strn(mdx_mpbuf_t *b, const char *s, size_t len)
{
    WRAP(b, mdx_mp_put_str(&w, len ? s : "", len));
}

void mdx_mpbuf_bin(mdx_mpbuf_t *b, const void *p, size_t len)
{
    WRAP(b, mdx_mp_put_bin(&w, len ? p : "", len));
}

void mdx_mpbuf_int(mdx_mpbuf_t *b, int64_t v)
{
    WRAP(b, mdx_mp_put_int(&w, v));
}

void mdx_mpbuf_uint(mdx_mpbuf_t *b, uint64_t v)
{
    WRAP(b, mdx_mp_put_uint(&w, v));
}

void mdx_mpbuf_double(mdx_mpbuf_t *b, double v)
{
    WRAP(b, mdx_mp_put_double(&w, v));
}

void mdx_mpbuf_bool(mdx_mpbuf_t *b, int v)
{
    WRAP(b, mdx_mp_put_bool(&w, v));
}

void mdx_mpbuf_nil(mdx_mpbuf_t *b)
{
    WRAP(b, mdx_mp_put_nil(&w));
}

void mdx_mpbuf_raw(mdx_mpbuf_t *b, const void *p, size_t len)
{
    if (len)
        WRAP(b, mdx_buf_append(&w, p, len));
}
