/*
 * Index values: conversion from msgpack, the total order, hashing and encoding (see value.h).
 *
 * Numbers compare exactly across int64, uint64 and double: no value is ever converted to a
 * type that could round it. A double is split into its integral part (exact once the double is
 * known to lie within the integer type's range) and its fraction (d - trunc(d), also exact),
 * and the two are compared in turn. Hashing follows the same rule from the other side: a
 * number is hashed in one canonical form (int64 when it is an integer in int64 range, uint64
 * when an integer in [2^63, 2^64), raw double bits otherwise), so values that compare equal
 * hash equal. Each class has its own XXH3 seed, so "1" (string) and 1 hash apart.
 *
 * mdx_value_cmp is on the skiplist's hot path: same-type comparisons return before any class
 * or cross-type logic.
 */
#include "index/value.h"

#include <math.h>
#include <string.h>
#include <xxhash.h>

#include "memdex/error.h"

/* Seeds per hashed form: arbitrary but fixed, distinct so that classes hash apart. */
#define SEED_TAG 0x6d64785f74616700ULL /* nil, false, true: + type */
#define SEED_I64 0x6d64785f69363421ULL
#define SEED_U64 0x6d64785f75363421ULL
#define SEED_DBL 0x6d64785f64626c21ULL
#define SEED_STR 0x6d64785f73747221ULL
#define SEED_BIN 0x6d64785f62696e21ULL

#define TWO_63 0x1p63
#define TWO_64 0x1p64

int mdx_value_from_tok(const mdx_mp_tok_t *tok, mdx_value_t *out)
{
    out->len = 0;
    switch (tok->type) {
    case MDX_MP_NIL:
        out->type = MDX_V_NIL;
        out->v.u = 0;
        return 0;
    case MDX_MP_BOOL:
        out->type = tok->v.b ? MDX_V_TRUE : MDX_V_FALSE;
        out->v.u = 0;
        return 0;
    case MDX_MP_INT:
        out->type = MDX_V_INT;
        out->v.i = tok->v.i;
        return 0;
    case MDX_MP_UINT:
        /* The reader only yields UINT above INT64_MAX; keep the value invariant even for a
         * hand-made token. */
        if (tok->v.u <= INT64_MAX) {
            out->type = MDX_V_INT;
            out->v.i = (int64_t)tok->v.u;
        } else {
            out->type = MDX_V_UINT;
            out->v.u = tok->v.u;
        }
        return 0;
    case MDX_MP_FLOAT:
        if (isnan(tok->v.f))
            return MDX_ENAN;
        out->type = MDX_V_DOUBLE;
        out->v.d = tok->v.f;
        return 0;
    case MDX_MP_STR:
    case MDX_MP_BIN:
        out->type = tok->type == MDX_MP_STR ? MDX_V_STR : MDX_V_BIN;
        out->len = tok->len;
        out->v.p = tok->v.ptr;
        return 0;
    case MDX_MP_ARRAY:
    case MDX_MP_MAP:
    case MDX_MP_EXT:
        return MDX_EBADFIELD;
    }
    return MDX_EBADFIELD;
}

int mdx_value_decode(const uint8_t *buf, size_t len, mdx_value_t *out)
{
    const uint8_t *p = buf, *end = buf + len;
    mdx_mp_tok_t tok;
    if (len == 0 || mdx_mp_read(&p, end, &tok))
        return MDX_EPROTO;
    if (tok.type == MDX_MP_ARRAY || tok.type == MDX_MP_MAP) {
        /* Only the header was read: a malformed container is a protocol error, a well-formed
         * one an unindexable field. */
        return mdx_mp_check(buf, len, MDX_MP_MAX_DEPTH) ? MDX_EPROTO : MDX_EBADFIELD;
    }
    /* Scalars and ext are read whole (payload included), so one value means p == end. */
    if (p != end)
        return MDX_EPROTO;
    return mdx_value_from_tok(&tok, out);
}

static inline int cmp_bytes(const mdx_value_t *a, const mdx_value_t *b)
{
    uint32_t n = a->len < b->len ? a->len : b->len;
    if (n) {
        int r = memcmp(a->v.p, b->v.p, n);
        if (r)
            return r < 0 ? -1 : 1;
    }
    return (a->len > b->len) - (a->len < b->len);
}

/* i vs d, exactly. Within (-2^63, 2^63) trunc(d) fits int64 and d - trunc(d) is exact. */
static int cmp_i64_dbl(int64_t i, double d)
{
    if (d < -TWO_63)
        return 1;
    if (d >= TWO_63)
        return -1;
    int64_t t = (int64_t)d;
    if (i != t)
        return i < t ? -1 : 1;
    double frac = d - (double)t;
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

/* u vs d, exactly. Within [0, 2^64) trunc(d) fits uint64. */
static int cmp_u64_dbl(uint64_t u, double d)
{
    if (d < 0)
        return 1;
    if (d >= TWO_64)
        return -1;
    uint64_t t = (uint64_t)d;
    if (u != t)
        return u < t ? -1 : 1;
    double frac = d - (double)t;
    return frac > 0 ? -1 : 0;
}

static int cmp_i64_u64(int64_t i, uint64_t u)
{
    if (i < 0)
        return -1;
    return ((uint64_t)i > u) - ((uint64_t)i < u);
}

/* Rank of a type's class: nil 0, false 1, true 2, numbers 3, str 4, bin 5. */
static inline int type_class(int t)
{
    return t <= MDX_V_TRUE ? t : t <= MDX_V_DOUBLE ? MDX_V_INT : t - 2;
}

/* Both numbers, of different types. */
static int cmp_num_mixed(const mdx_value_t *a, const mdx_value_t *b)
{
    switch (a->type) {
    case MDX_V_INT:
        return b->type == MDX_V_UINT ? cmp_i64_u64(a->v.i, b->v.u) : cmp_i64_dbl(a->v.i, b->v.d);
    case MDX_V_UINT:
        return b->type == MDX_V_INT ? -cmp_i64_u64(b->v.i, a->v.u) : cmp_u64_dbl(a->v.u, b->v.d);
    default: /* DOUBLE */
        return b->type == MDX_V_INT ? -cmp_i64_dbl(b->v.i, a->v.d) : -cmp_u64_dbl(b->v.u, a->v.d);
    }
}

int mdx_value_cmp(const mdx_value_t *a, const mdx_value_t *b)
{
    if (a->type == b->type) {
        switch (a->type) {
        case MDX_V_INT:
            return (a->v.i > b->v.i) - (a->v.i < b->v.i);
        case MDX_V_STR:
        case MDX_V_BIN:
            return cmp_bytes(a, b);
        case MDX_V_UINT:
            return (a->v.u > b->v.u) - (a->v.u < b->v.u);
        case MDX_V_DOUBLE:
            return (a->v.d > b->v.d) - (a->v.d < b->v.d);
        default: /* nil, false, true: one value each */
            return 0;
        }
    }
    int ca = type_class(a->type), cb = type_class(b->type);
    if (ca != cb)
        return ca < cb ? -1 : 1;
    return cmp_num_mixed(a, b);
}

static inline uint64_t hash_word(uint64_t w, uint64_t seed)
{
    return XXH3_64bits_withSeed(&w, sizeof w, seed);
}

uint64_t mdx_value_hash(const mdx_value_t *v)
{
    switch (v->type) {
    case MDX_V_INT:
        return hash_word((uint64_t)v->v.i, SEED_I64);
    case MDX_V_UINT:
        return hash_word(v->v.u, SEED_U64);
    case MDX_V_DOUBLE: {
        double d = v->v.d;
        /* Canonical form of an integral double: the integer it equals (-0.0 becomes 0). */
        if (d >= -TWO_63 && d < TWO_63) {
            int64_t t = (int64_t)d;
            if ((double)t == d)
                return hash_word((uint64_t)t, SEED_I64);
        } else if (d >= TWO_63 && d < TWO_64) {
            /* Every double this large is an integer. */
            return hash_word((uint64_t)d, SEED_U64);
        }
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        return hash_word(bits, SEED_DBL);
    }
    case MDX_V_STR:
        return XXH3_64bits_withSeed(v->v.p, v->len, SEED_STR);
    case MDX_V_BIN:
        return XXH3_64bits_withSeed(v->v.p, v->len, SEED_BIN);
    default: /* nil, false, true */
        return XXH3_64bits_withSeed(NULL, 0, SEED_TAG + v->type);
    }
}

void mdx_value_encode(mdx_buf_t *b, const mdx_value_t *v)
{
    switch (v->type) {
    case MDX_V_NIL:
        mdx_mp_put_nil(b);
        break;
    case MDX_V_FALSE:
    case MDX_V_TRUE:
        mdx_mp_put_bool(b, v->type == MDX_V_TRUE);
        break;
    case MDX_V_INT:
        mdx_mp_put_int(b, v->v.i);
        break;
    case MDX_V_UINT:
        mdx_mp_put_uint(b, v->v.u);
        break;
    case MDX_V_DOUBLE:
        mdx_mp_put_double(b, v->v.d);
        break;
    case MDX_V_STR:
        mdx_mp_put_str(b, v->v.p, v->len);
        break;
    case MDX_V_BIN:
        mdx_mp_put_bin(b, v->v.p, v->len);
        break;
    default:
        break;
    }
}
