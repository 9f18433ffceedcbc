/*
 * Zero-copy msgpack reader and shortest-form writer (see mp.h).
 *
 * Invariant of the reader: no byte at or beyond `end` is ever read, and every declared length
 * is compared with the bytes that remain before the payload is touched. Skipping is iterative
 * with an explicit stack of remaining element counts, so hostile nesting cannot exhaust the C
 * stack, and a header that claims more elements than there are bytes left fails at once
 * (every element needs at least one byte).
 */
#include "common/mp.h"

#include <string.h>

#include "common/alloc.h"
#include "memdex/error.h"

static inline uint16_t ld16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t ld64(const uint8_t *p)
{
    return (uint64_t)ld32(p) << 32 | ld32(p + 4);
}

int mdx_mp_read(const uint8_t **pp, const uint8_t *end, mdx_mp_tok_t *t)
{
    const uint8_t *p = *pp;
    if (p >= end)
        return MDX_EPROTO;
    size_t avail = (size_t)(end - p) - 1;
    uint8_t c = *p++;
    size_t need = 0; /* header bytes after the type byte */
    uint32_t plen = 0;

    if (c <= 0x7f) {
        t->type = MDX_MP_INT;
        t->v.i = c;
        goto done;
    }
    if (c >= 0xe0) {
        t->type = MDX_MP_INT;
        t->v.i = (int8_t)c;
        goto done;
    }
    if ((c & 0xf0) == 0x80) {
        t->type = MDX_MP_MAP;
        t->len = c & 0x0f;
        goto done;
    }
    if ((c & 0xf0) == 0x90) {
        t->type = MDX_MP_ARRAY;
        t->len = c & 0x0f;
        goto done;
    }
    if ((c & 0xe0) == 0xa0) {
        t->type = MDX_MP_STR;
        plen = c & 0x1f;
        goto payload;
    }
    switch (c) {
    case 0xc0:
        t->type = MDX_MP_NIL;
        goto done;
    case 0xc2:
    case 0xc3:
        t->type = MDX_MP_BOOL;
        t->v.b = c == 0xc3;
        goto done;
    case 0xc4:
    case 0xc5:
    case 0xc6:
    case 0xd9:
    case 0xda:
    case 0xdb: {
        need = (c == 0xc4 || c == 0xd9) ? 1 : (c == 0xc5 || c == 0xda) ? 2 : 4;
        if (avail < need)
            return MDX_EPROTO;
        plen = need == 1 ? p[0] : need == 2 ? ld16(p) : ld32(p);
        p += need;
        avail -= need;
        t->type = c >= 0xd9 ? MDX_MP_STR : MDX_MP_BIN;
        goto payload;
    }
    case 0xc7:
    case 0xc8:
    case 0xc9: {
        need = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
        if (avail < need + 1)
            return MDX_EPROTO;
        plen = need == 1 ? p[0] : need == 2 ? ld16(p) : ld32(p);
        t->ext_type = (int8_t)p[need];
        p += need + 1;
        avail -= need + 1;
        t->type = MDX_MP_EXT;
        goto payload;
    }
    case 0xca:
        if (avail < 4)
            return MDX_EPROTO;
        {
            uint32_t u = ld32(p);
            float f;
            memcpy(&f, &u, 4);
            t->type = MDX_MP_FLOAT;
            t->v.f = f;
        }
        p += 4;
        goto done;
    case 0xcb:
        if (avail < 8)
            return MDX_EPROTO;
        {
            uint64_t u = ld64(p);
            memcpy(&t->v.f, &u, 8);
            t->type = MDX_MP_FLOAT;
        }
        p += 8;
        goto done;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
        need = (size_t)1 << (c - 0xcc);
        if (avail < need)
            return MDX_EPROTO;
        uint64_t u = need == 1 ? p[0] : need == 2 ? ld16(p) : need == 4 ? ld32(p) : ld64(p);
        p += need;
        if (u > INT64_MAX) {
            t->type = MDX_MP_UINT;
            t->v.u = u;
        } else {
            t->type = MDX_MP_INT;
            t->v.i = (int64_t)u;
        }
        goto done;
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        need = (size_t)1 << (c - 0xd0);
        if (avail < need)
            return MDX_EPROTO;
        int64_t i = need == 1   ? (int8_t)p[0]
                    : need == 2 ? (int16_t)ld16(p)
                    : need == 4 ? (int32_t)ld32(p)
                                : (int64_t)ld64(p);
        p += need;
        t->type = MDX_MP_INT;
        t->v.i = i;
        goto done;
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        if (avail < 1)
            return MDX_EPROTO;
        t->type = MDX_MP_EXT;
        t->ext_type = (int8_t)p[0];
        p++;
        avail--;
        plen = 1u << (c - 0xd4);
        goto payload;
    case 0xdc:
    case 0xdd:
    case 0xde:
    case 0xdf:
        need = (c == 0xdc || c == 0xde) ? 2 : 4;
        if (avail < need)
            return MDX_EPROTO;
        t->type = c <= 0xdd ? MDX_MP_ARRAY : MDX_MP_MAP;
        t->len = need == 2 ? ld16(p) : ld32(p);
        p += need;
        goto done;
    default: /* 0xc1: never used */
        return MDX_EPROTO;
    }

payload:
    if (avail < plen)
        return MDX_EPROTO;
    t->len = plen;
    t->v.ptr = p;
    p += plen;
done:
    *pp = p;
    return 0;
}

int mdx_mp_skip(const uint8_t **pp, const uint8_t *end, unsigned max_depth)
{
    /* remaining[d]: values still to skip at depth d. */
    uint64_t remaining[MDX_MP_MAX_DEPTH + 2];
    const uint8_t *p = *pp;
    unsigned depth = 0;
    if (max_depth > MDX_MP_MAX_DEPTH)
        max_depth = MDX_MP_MAX_DEPTH;
    remaining[0] = 1;
    for (;;) {
        while (remaining[depth] == 0) {
            if (depth == 0) {
                *pp = p;
                return 0;
            }
            depth--;
        }
        remaining[depth]--;
        mdx_mp_tok_t t;
        if (mdx_mp_read(&p, end, &t))
            return MDX_EPROTO;
        if (t.type == MDX_MP_ARRAY || t.type == MDX_MP_MAP) {
            uint64_t n = t.type == MDX_MP_MAP ? (uint64_t)t.len * 2 : t.len;
            if (n == 0)
                continue;
            if (depth + 1 > max_depth || n > (uint64_t)(end - p))
                return MDX_EPROTO;
            remaining[++depth] = n;
        }
    }
}

int mdx_mp_check(const uint8_t *buf, size_t len, unsigned max_depth)
{
    const uint8_t *p = buf;
    if (mdx_mp_skip(&p, buf + len, max_depth))
        return MDX_EPROTO;
    return p == buf + len ? 0 : MDX_EPROTO;
}

int mdx_mp_check_body(const uint8_t *buf, size_t len, unsigned max_depth)
{
    const uint8_t *p = buf, *end = buf + len;
    mdx_mp_tok_t t;
    if (mdx_mp_read(&p, end, &t) || t.type != MDX_MP_MAP)
        return MDX_EBADBODY;
    if (t.len > (size_t)(end - p) || max_depth == 0)
        return MDX_EBADBODY;
    for (uint32_t i = 0; i < t.len; i++) {
        mdx_mp_tok_t k;
        if (mdx_mp_read(&p, end, &k) || k.type != MDX_MP_STR)
            return MDX_EBADBODY;
        if (mdx_mp_skip(&p, end, max_depth - 1))
            return MDX_EBADBODY;
    }
    return p == end ? 0 : MDX_EBADBODY;
}

int mdx_mp_map_find(const uint8_t *map, size_t len, const char *field, size_t flen,
                    mdx_mp_tok_t *tok, const uint8_t **vstart, const uint8_t **vend)
{
    const uint8_t *p = map, *end = map + len;
    mdx_mp_tok_t t;
    int found = 0;
    if (mdx_mp_read(&p, end, &t) || t.type != MDX_MP_MAP)
        return 0;
    for (uint32_t i = 0; i < t.len; i++) {
        mdx_mp_tok_t k;
        if (mdx_mp_read(&p, end, &k))
            return 0;
        const uint8_t *vs = p;
        int match = k.type == MDX_MP_STR && k.len == flen && memcmp(k.v.ptr, field, flen) == 0;
        if (match) {
            mdx_mp_tok_t v;
            const uint8_t *q = p;
            if (mdx_mp_read(&q, end, &v))
                return 0;
            if (tok)
                *tok = v;
            found = 1;
        }
        if (mdx_mp_skip(&p, end, MDX_MP_MAX_DEPTH))
            return 0;
        if (match) {
            if (vstart)
                *vstart = vs;
            if (vend)
                *vend = p;
        }
    }
    return found;
}

/* ---- writer ---- */

void mdx_buf_init(mdx_buf_t *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}

void mdx_buf_fini(mdx_buf_t *b)
{
    mdx_free(b->data);
    mdx_buf_init(b);
}

int mdx_buf_reserve(mdx_buf_t *b, size_t n)
{
    if (b->err)
        return b->err;
    if (b->cap - b->len >= n)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            b->err = MDX_ENOMEM;
            return b->err;
        }
        cap *= 2;
    }
    uint8_t *d = mdx_realloc(b->data, cap);
    if (!d) {
        b->err = MDX_ENOMEM;
        return b->err;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void mdx_buf_append(mdx_buf_t *b, const void *src, size_t n)
{
    if (n == 0 || mdx_buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static inline void st16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void st32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void st64(uint8_t *p, uint64_t v)
{
    st32(p, (uint32_t)(v >> 32));
    st32(p + 4, (uint32_t)v);
}

size_t mdx_mp_enc_uint(uint8_t o[9], uint64_t v)
{
    if (v <= 0x7f) {
        o[0] = (uint8_t)v;
        return 1;
    }
    if (v <= 0xff) {
        o[0] = 0xcc;
        o[1] = (uint8_t)v;
        return 2;
    }
    if (v <= 0xffff) {
        o[0] = 0xcd;
        st16(o + 1, (uint16_t)v);
        return 3;
    }
    if (v <= 0xffffffffu) {
        o[0] = 0xce;
        st32(o + 1, (uint32_t)v);
        return 5;
    }
    o[0] = 0xcf;
    st64(o + 1, v);
    return 9;
}

size_t mdx_mp_enc_int(uint8_t o[9], int64_t v)
{
    if (v >= 0)
        return mdx_mp_enc_uint(o, (uint64_t)v);
    if (v >= -32) {
        o[0] = (uint8_t)(int8_t)v;
        return 1;
    }
    if (v >= INT8_MIN) {
        o[0] = 0xd0;
        o[1] = (uint8_t)(int8_t)v;
        return 2;
    }
    if (v >= INT16_MIN) {
        o[0] = 0xd1;
        st16(o + 1, (uint16_t)(int16_t)v);
        return 3;
    }
    if (v >= INT32_MIN) {
        o[0] = 0xd2;
        st32(o + 1, (uint32_t)(int32_t)v);
        return 5;
    }
    o[0] = 0xd3;
    st64(o + 1, (uint64_t)v);
    return 9;
}

static size_t enc_hdr(uint8_t o[5], uint32_t n, uint8_t fix, uint32_t fixmax, uint8_t c8,
                      uint8_t c16, uint8_t c32)
{
    if (fix && n <= fixmax) {
        o[0] = (uint8_t)(fix | n);
        return 1;
    }
    if (c8 && n <= 0xff) {
        o[0] = c8;
        o[1] = (uint8_t)n;
        return 2;
    }
    if (n <= 0xffff) {
        o[0] = c16;
        st16(o + 1, (uint16_t)n);
        return 3;
    }
    o[0] = c32;
    st32(o + 1, n);
    return 5;
}

size_t mdx_mp_enc_str_header(uint8_t o[5], uint32_t len)
{
    return enc_hdr(o, len, 0xa0, 31, 0xd9, 0xda, 0xdb);
}
size_t mdx_mp_enc_bin_header(uint8_t o[5], uint32_t len)
{
    return enc_hdr(o, len, 0, 0, 0xc4, 0xc5, 0xc6);
}
size_t mdx_mp_enc_array_header(uint8_t o[5], uint32_t n)
{
    return enc_hdr(o, n, 0x90, 15, 0, 0xdc, 0xdd);
}
size_t mdx_mp_enc_map_header(uint8_t o[5], uint32_t n)
{
    return enc_hdr(o, n, 0x80, 15, 0, 0xde, 0xdf);
}

void mdx_mp_put_nil(mdx_buf_t *b)
{
    uint8_t c = 0xc0;
    mdx_buf_append(b, &c, 1);
}
void mdx_mp_put_bool(mdx_buf_t *b, int v)
{
    uint8_t c = v ? 0xc3 : 0xc2;
    mdx_buf_append(b, &c, 1);
}
void mdx_mp_put_int(mdx_buf_t *b, int64_t v)
{
    uint8_t o[9];
    mdx_buf_append(b, o, mdx_mp_enc_int(o, v));
}
void mdx_mp_put_uint(mdx_buf_t *b, uint64_t v)
{
    uint8_t o[9];
    mdx_buf_append(b, o, mdx_mp_enc_uint(o, v));
}
void mdx_mp_put_double(mdx_buf_t *b, double v)
{
    uint8_t o[9];
    uint64_t u;
    memcpy(&u, &v, 8);
    o[0] = 0xcb;
    st64(o + 1, u);
    mdx_buf_append(b, o, 9);
}
/* msgpack lengths are 32-bit: a longer payload cannot be encoded, and casting its length
 * would write a header that disagrees with the bytes after it. */
static int payload_fits(mdx_buf_t *b, size_t len)
{
    if (len <= UINT32_MAX)
        return 1;
    if (!b->err)
        b->err = MDX_ETOOBIG;
    return 0;
}

void mdx_mp_put_str(mdx_buf_t *b, const void *s, size_t len)
{
    uint8_t o[5];
    if (!payload_fits(b, len))
        return;
    mdx_buf_append(b, o, mdx_mp_enc_str_header(o, (uint32_t)len));
    mdx_buf_append(b, s, len);
}
void mdx_mp_put_bin(mdx_buf_t *b, const void *s, size_t len)
{
    uint8_t o[5];
    if (!payload_fits(b, len))
        return;
    mdx_buf_append(b, o, mdx_mp_enc_bin_header(o, (uint32_t)len));
    mdx_buf_append(b, s, len);
}
void mdx_mp_put_array(mdx_buf_t *b, uint32_t n)
{
    uint8_t o[5];
    mdx_buf_append(b, o, mdx_mp_enc_array_header(o, n));
}
void mdx_mp_put_map(mdx_buf_t *b, uint32_t n)
{
    uint8_t o[5];
    mdx_buf_append(b, o, mdx_mp_enc_map_header(o, n));
}
