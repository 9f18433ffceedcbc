/*
 * Unit tests for common/mp.c: the zero-copy msgpack reader and the shortest-form writer.
 *
 * Every input the reader sees here sits at the very end of a heap block of exactly its size
 * (tail_copy), so AddressSanitizer reports any read at or past `end`. Decoders are tested the
 * picohttpparser way: each valid value is fed whole, then cut at every proper prefix (which must
 * fail with *p unchanged), and a stream of values is fed with one more byte visible at a time.
 * Writer output is compared byte for byte with msgpack-c's packer. The randomized round trip
 * prints its seed; set MDX_SEED to replay a run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/alloc.h"
#include "common/mp.h"
#include "memdex/error.h"

/* ---- helpers ---- */

/* What the current loop iteration is checking, printed when a check fails. */
static char ctx[256];

#define CK(cond)                                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("%s: check failed: %s\n", ctx, #cond);                                     \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#define CKI(a, b)                                                                                  \
    do {                                                                                           \
        intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);                                           \
        if (a_ != b_) {                                                                            \
            print_error("%s: %s == %jd, expected %s == %jd\n", ctx, #a, a_, #b, b_);               \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* Copies n bytes into a heap block of exactly n bytes: a read at or past the end is an ASan
 * report. Free with free(). */
static uint8_t *tail_copy(const void *src, size_t n)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    if (n)
        memcpy(p, src, n);
    return p;
}

static void hexdump(char *out, size_t outsz, const uint8_t *p, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 4 < outsz; i++)
        o += (size_t)snprintf(out + o, outsz - o, "%02x", p[i]);
}

/* Asserts that read, skip and check all reject every proper prefix of v[0..len) with
 * MDX_EPROTO and leave *p unchanged; mdx_mp_read succeeds once the first `hdr` bytes are there
 * (the header of a container, the whole of anything else). */
static void check_prefixes(const uint8_t *v, size_t len, size_t hdr, const char *what)
{
    char name[128];
    snprintf(name, sizeof name, "%s", what); /* what may be ctx itself */
    for (size_t k = 0; k < len; k++) {
        snprintf(ctx, sizeof ctx, "%s: prefix of %zu of %zu bytes", name, k, len);
        uint8_t *buf = tail_copy(v, k);
        const uint8_t *p = buf;
        mdx_mp_tok_t t;
        if (k < hdr) {
            CKI(mdx_mp_read(&p, buf + k, &t), MDX_EPROTO);
            CK(p == buf);
        } else {
            CKI(mdx_mp_read(&p, buf + k, &t), 0);
            CK(p == buf + hdr);
        }
        p = buf;
        CKI(mdx_mp_skip(&p, buf + k, MDX_MP_MAX_DEPTH), MDX_EPROTO);
        CK(p == buf);
        CKI(mdx_mp_check(buf, k, MDX_MP_MAX_DEPTH), MDX_EPROTO);
        free(buf);
    }
}

static void pk_init(msgpack_sbuffer *sb, msgpack_packer *pk)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
}

static void assert_same_bytes(const mdx_buf_t *b, const msgpack_sbuffer *sb)
{
    char h1[128], h2[128];
    CKI(b->err, 0);
    if (b->len != sb->size || (b->len && memcmp(b->data, sb->data, b->len) != 0)) {
        hexdump(h1, sizeof h1, b->data, b->len);
        hexdump(h2, sizeof h2, (const uint8_t *)sb->data, sb->size);
        print_error("%s: mdx wrote %zu bytes %s, msgpack-c %zu bytes %s\n", ctx, b->len, h1,
                    sb->size, h2);
        fail();
    }
}

/* Lengths of the shortest msgpack encodings, computed from the spec, not from mp.c. */
static size_t shortest_uint_len(uint64_t v)
{
    return v <= 0x7f ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= 0xffffffffu ? 5 : 9;
}

static size_t shortest_int_len(int64_t v)
{
    if (v >= 0)
        return shortest_uint_len((uint64_t)v);
    return v >= -32 ? 1 : v >= INT8_MIN ? 2 : v >= INT16_MIN ? 3 : v >= INT32_MIN ? 5 : 9;
}

/* splitmix64 */
static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t *s, uint64_t n)
{
    return n ? rnd(s) % n : 0;
}

static uint64_t test_seed(void)
{
    const char *e = getenv("MDX_SEED");
    uint64_t seed = e && *e ? strtoull(e, NULL, 0) : 0x6d656d646578u;
    print_message("seed=%" PRIu64 " (set MDX_SEED=%" PRIu64 " to replay)\n", seed, seed);
    return seed;
}

/* ---- every format family, exact values ---- */

typedef struct {
    const char *name;
    uint8_t in[40];
    size_t len; /* bytes of the whole value */
    mdx_mp_type_t type;
    size_t hdr; /* bytes mdx_mp_read consumes; 0 means len */
    int64_t i;  /* INT, BOOL */
    uint64_t u; /* UINT */
    double f;   /* FLOAT */
    uint32_t n; /* STR, BIN, EXT: payload bytes (the last n of in); ARRAY, MAP: count */
    int8_t ext; /* EXT */
} fcase_t;

#define B(...) .in = {__VA_ARGS__}, .len = sizeof((const uint8_t[]){__VA_ARGS__})
#define X8     'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'
#define N8     0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0

static const fcase_t fcases[] = {
    {"positive fixint 0", B(0x00), MDX_MP_INT, .i = 0},
    {"positive fixint 127", B(0x7f), MDX_MP_INT, .i = 127},
    {"negative fixint -32", B(0xe0), MDX_MP_INT, .i = -32},
    {"negative fixint -1", B(0xff), MDX_MP_INT, .i = -1},
    {"uint8 0 (not shortest)", B(0xcc, 0x00), MDX_MP_INT, .i = 0},
    {"uint8 255", B(0xcc, 0xff), MDX_MP_INT, .i = 255},
    {"uint16 256", B(0xcd, 0x01, 0x00), MDX_MP_INT, .i = 256},
    {"uint16 65535", B(0xcd, 0xff, 0xff), MDX_MP_INT, .i = 65535},
    {"uint32 65536", B(0xce, 0x00, 0x01, 0x00, 0x00), MDX_MP_INT, .i = 65536},
    {"uint32 max", B(0xce, 0xff, 0xff, 0xff, 0xff), MDX_MP_INT, .i = 4294967295},
    {"uint64 2^32", B(0xcf, 0, 0, 0, 1, 0, 0, 0, 0), MDX_MP_INT, .i = 4294967296},
    {"uint64 byte order", B(0xcf, 1, 2, 3, 4, 5, 6, 7, 8), MDX_MP_INT, .i = 0x0102030405060708},
    {"uint64 INT64_MAX stays INT", B(0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
     MDX_MP_INT, .i = INT64_MAX},
    {"uint64 INT64_MAX+1 is UINT", B(0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0), MDX_MP_UINT,
     .u = (uint64_t)INT64_MAX + 1},
    {"uint64 max is UINT", B(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), MDX_MP_UINT,
     .u = UINT64_MAX},
    {"int8 -128", B(0xd0, 0x80), MDX_MP_INT, .i = -128},
    {"int8 -1", B(0xd0, 0xff), MDX_MP_INT, .i = -1},
    {"int8 127", B(0xd0, 0x7f), MDX_MP_INT, .i = 127},
    {"int16 -32768", B(0xd1, 0x80, 0x00), MDX_MP_INT, .i = -32768},
    {"int16 -129", B(0xd1, 0xff, 0x7f), MDX_MP_INT, .i = -129},
    {"int16 258", B(0xd1, 0x01, 0x02), MDX_MP_INT, .i = 258},
    {"int32 min", B(0xd2, 0x80, 0, 0, 0), MDX_MP_INT, .i = INT32_MIN},
    {"int32 -32769", B(0xd2, 0xff, 0xff, 0x7f, 0xff), MDX_MP_INT, .i = -32769},
    {"int32 byte order", B(0xd2, 1, 2, 3, 4), MDX_MP_INT, .i = 0x01020304},
    {"int64 min", B(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0), MDX_MP_INT, .i = INT64_MIN},
    {"int64 -2^31-1", B(0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff), MDX_MP_INT,
     .i = -2147483649},
    {"int64 max", B(0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), MDX_MP_INT,
     .i = INT64_MAX},
    {"float32 1.5", B(0xca, 0x3f, 0xc0, 0, 0), MDX_MP_FLOAT, .f = 1.5},
    {"float32 -0.25", B(0xca, 0xbe, 0x80, 0, 0), MDX_MP_FLOAT, .f = -0.25},
    {"float32 1/3 widened exactly", B(0xca, 0x3e, 0xaa, 0xaa, 0xab), MDX_MP_FLOAT,
     .f = (double)(1.0f / 3.0f)},
    {"float32 -inf", B(0xca, 0xff, 0x80, 0, 0), MDX_MP_FLOAT, .f = -INFINITY},
    {"float64 1.5", B(0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0), MDX_MP_FLOAT, .f = 1.5},
    {"float64 pi", B(0xcb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18), MDX_MP_FLOAT,
     .f = 3.141592653589793},
    {"float64 -0.0", B(0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0), MDX_MP_FLOAT, .f = -0.0},
    {"float64 max", B(0xcb, 0x7f, 0xef, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), MDX_MP_FLOAT,
     .f = DBL_MAX},
    {"nil", B(0xc0), MDX_MP_NIL},
    {"false", B(0xc2), MDX_MP_BOOL, .i = 0},
    {"true", B(0xc3), MDX_MP_BOOL, .i = 1},
    {"fixstr empty", B(0xa0), MDX_MP_STR, .n = 0},
    {"fixstr abc", B(0xa3, 'a', 'b', 'c'), MDX_MP_STR, .n = 3},
    {"fixstr 31", B(0xbf, X8, X8, X8, 'x', 'x', 'x', 'x', 'x', 'x', 'y'), MDX_MP_STR, .n = 31},
    {"str8 empty", B(0xd9, 0x00), MDX_MP_STR, .n = 0},
    {"str8", B(0xd9, 0x03, 'a', 'b', 'c'), MDX_MP_STR, .n = 3},
    {"str16", B(0xda, 0x00, 0x03, 'a', 'b', 'c'), MDX_MP_STR, .n = 3},
    {"str32", B(0xdb, 0, 0, 0, 0x03, 'a', 'b', 'c'), MDX_MP_STR, .n = 3},
    {"bin8 empty", B(0xc4, 0x00), MDX_MP_BIN, .n = 0},
    {"bin8", B(0xc4, 0x02, 0x00, 0xff), MDX_MP_BIN, .n = 2},
    {"bin16", B(0xc5, 0x00, 0x02, 0x00, 0xff), MDX_MP_BIN, .n = 2},
    {"bin32", B(0xc6, 0, 0, 0, 0x02, 0x00, 0xff), MDX_MP_BIN, .n = 2},
    {"fixarray empty", B(0x90), MDX_MP_ARRAY, .hdr = 1, .n = 0},
    {"fixarray 3", B(0x93, 0x01, 0x02, 0x03), MDX_MP_ARRAY, .hdr = 1, .n = 3},
    {"fixarray 15", B(0x9f, N8, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc3), MDX_MP_ARRAY, .hdr = 1,
     .n = 15},
    {"array16", B(0xdc, 0x00, 0x02, 0x01, 0xc0), MDX_MP_ARRAY, .hdr = 3, .n = 2},
    {"array32", B(0xdd, 0, 0, 0, 0x02, 0xa1, 'x', 0xc3), MDX_MP_ARRAY, .hdr = 5, .n = 2},
    {"fixmap empty", B(0x80), MDX_MP_MAP, .hdr = 1, .n = 0},
    {"fixmap 1", B(0x81, 0xa1, 'k', 0x01), MDX_MP_MAP, .hdr = 1, .n = 1},
    {"map16", B(0xde, 0x00, 0x01, 0xa1, 'k', 0x92, 0x01, 0x02), MDX_MP_MAP, .hdr = 3, .n = 1},
    {"map32 with int keys", B(0xdf, 0, 0, 0, 0x02, 0x01, 0x02, 0x03, 0x04), MDX_MP_MAP, .hdr = 5,
     .n = 2},
    {"nested containers", B(0x92, 0x81, 0xa1, 'a', 0x91, 0xc0, 0xdc, 0x00, 0x01, 0x90),
     MDX_MP_ARRAY, .hdr = 1, .n = 2},
    {"fixext1", B(0xd4, 0x05, 0xaa), MDX_MP_EXT, .n = 1, .ext = 5},
    {"fixext2", B(0xd5, 0xff, 0x01, 0x02), MDX_MP_EXT, .n = 2, .ext = -1},
    {"fixext4", B(0xd6, 0x80, 1, 2, 3, 4), MDX_MP_EXT, .n = 4, .ext = -128},
    {"fixext8", B(0xd7, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8), MDX_MP_EXT, .n = 8, .ext = 127},
    {"fixext16", B(0xd8, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16), MDX_MP_EXT,
     .n = 16, .ext = 1},
    {"ext8 empty", B(0xc7, 0x00, 0x07), MDX_MP_EXT, .n = 0, .ext = 7},
    {"ext8", B(0xc7, 0x03, 0x07, 'a', 'b', 'c'), MDX_MP_EXT, .n = 3, .ext = 7},
    {"ext16", B(0xc8, 0x00, 0x03, 0xfe, 'a', 'b', 'c'), MDX_MP_EXT, .n = 3, .ext = -2},
    {"ext32", B(0xc9, 0, 0, 0, 0x03, 0x10, 'a', 'b', 'c'), MDX_MP_EXT, .n = 3, .ext = 16},
};

#define NCASES (sizeof fcases / sizeof fcases[0])

static void check_tok(const fcase_t *c, const mdx_mp_tok_t *t, const uint8_t *buf)
{
    CKI(t->type, c->type);
    if (c->type == MDX_MP_EXT)
        CKI(t->ext_type, c->ext);
    switch (c->type) {
    case MDX_MP_NIL:
        break;
    case MDX_MP_BOOL:
        CKI(t->v.b, c->i);
        break;
    case MDX_MP_INT:
        CKI(t->v.i, c->i);
        break;
    case MDX_MP_UINT:
        CK(t->v.u == c->u);
        break;
    case MDX_MP_FLOAT:
        /* bit-exact: tells -0.0 from 0.0 and catches a float32 read as something else */
        CK(memcmp(&t->v.f, &c->f, sizeof(double)) == 0);
        break;
    case MDX_MP_EXT:
    case MDX_MP_STR:
    case MDX_MP_BIN:
        CKI(t->len, c->n);
        CK(t->v.ptr == buf + c->len - c->n); /* a view into the input, not a copy */
        break;
    case MDX_MP_ARRAY:
    case MDX_MP_MAP:
        CKI(t->len, c->n);
        break;
    }
}

static void read_decodes_every_format_family_exactly(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const fcase_t *c = &fcases[i];
        size_t hdr = c->hdr ? c->hdr : c->len;
        snprintf(ctx, sizeof ctx, "case '%s'", c->name);
        uint8_t *buf = tail_copy(c->in, c->len);
        const uint8_t *p = buf;
        mdx_mp_tok_t t;
        memset(&t, 0xa5, sizeof t);
        CKI(mdx_mp_read(&p, buf + c->len, &t), 0);
        CKI(p - buf, hdr);
        check_tok(c, &t, buf);

        p = buf;
        CKI(mdx_mp_skip(&p, buf + c->len, MDX_MP_MAX_DEPTH), 0);
        CKI(p - buf, c->len);
        CKI(mdx_mp_check(buf, c->len, MDX_MP_MAX_DEPTH), 0);
        free(buf);
    }
}

static void every_proper_prefix_is_rejected_with_p_unchanged(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const fcase_t *c = &fcases[i];
        check_prefixes(c->in, c->len, c->hdr ? c->hdr : c->len, c->name);
    }
}

static void check_rejects_trailing_bytes_but_skip_stops_at_the_value_end(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const fcase_t *c = &fcases[i];
        snprintf(ctx, sizeof ctx, "case '%s' + trailing byte", c->name);
        uint8_t tmp[sizeof c->in + 1];
        memcpy(tmp, c->in, c->len);
        tmp[c->len] = 0xc1; /* invalid: skip must not even look at it */
        uint8_t *buf = tail_copy(tmp, c->len + 1);
        const uint8_t *p = buf;
        CKI(mdx_mp_skip(&p, buf + c->len + 1, MDX_MP_MAX_DEPTH), 0);
        CKI(p - buf, c->len);
        CKI(mdx_mp_check(buf, c->len + 1, MDX_MP_MAX_DEPTH), MDX_EPROTO);
        free(buf);
    }
}

/* The whole table as one stream, made visible one byte more at a time: at each length k the
 * reader must consume exactly the values that end at or before k and stop there. */
static void stream_fed_byte_at_a_time_yields_each_value_once_complete(void **state)
{
    (void)state;
    uint8_t stream[NCASES * sizeof fcases[0].in];
    size_t ends[NCASES], total = 0;
    for (size_t i = 0; i < NCASES; i++) {
        memcpy(stream + total, fcases[i].in, fcases[i].len);
        total += fcases[i].len;
        ends[i] = total;
    }
    for (size_t k = 0; k <= total; k++) {
        snprintf(ctx, sizeof ctx, "stream cut at %zu of %zu", k, total);
        uint8_t *buf = tail_copy(stream, k);
        const uint8_t *p = buf, *end = buf + k;
        size_t got = 0, want = 0;
        while (want < NCASES && ends[want] <= k)
            want++;
        while (mdx_mp_skip(&p, end, MDX_MP_MAX_DEPTH) == 0) {
            CK(got < NCASES);
            got++;
            CKI(p - buf, ends[got - 1]);
            if (p == end)
                break;
        }
        CKI(got, want);
        CKI(p - buf, want ? ends[want - 1] : 0);
        free(buf);
    }
}

/* ---- hostile input ---- */

static void expect_rejected(const uint8_t *in, size_t len, const char *name)
{
    if (name != ctx)
        snprintf(ctx, sizeof ctx, "%s", name);
    uint8_t *buf = tail_copy(in, len);
    const uint8_t *p = buf;
    CKI(mdx_mp_skip(&p, buf + len, MDX_MP_MAX_DEPTH), MDX_EPROTO);
    CK(p == buf);
    CKI(mdx_mp_check(buf, len, MDX_MP_MAX_DEPTH), MDX_EPROTO);
    CKI(mdx_mp_check_body(buf, len, MDX_MP_MAX_DEPTH), MDX_EBADBODY);
    free(buf);
}

static void byte_0xc1_is_rejected_everywhere(void **state)
{
    (void)state;
    static const uint8_t alone[] = {0xc1};
    static const uint8_t in_array[] = {0x92, 0x01, 0xc1};
    static const uint8_t as_key[] = {0x81, 0xc1, 0x01};
    static const uint8_t as_value[] = {0x81, 0xa1, 'a', 0xc1};
    static const uint8_t after_payload[] = {0x92, 0xa1, 'a', 0xc1};

    uint8_t *buf = tail_copy(alone, 1);
    const uint8_t *p = buf;
    mdx_mp_tok_t t;
    snprintf(ctx, sizeof ctx, "0xc1 read");
    CKI(mdx_mp_read(&p, buf + 1, &t), MDX_EPROTO);
    CK(p == buf);
    free(buf);

    expect_rejected(alone, sizeof alone, "0xc1 alone");
    expect_rejected(in_array, sizeof in_array, "0xc1 in an array");
    expect_rejected(as_key, sizeof as_key, "0xc1 as a map key");
    expect_rejected(as_value, sizeof as_value, "0xc1 as a map value");
    expect_rejected(after_payload, sizeof after_payload, "0xc1 after a string");
}

/* n nested one-element arrays around the fixint 1: the 1 sits at depth n. */
static uint8_t *nested_arrays(size_t n, size_t *len)
{
    uint8_t *v = malloc(n + 1);
    assert_non_null(v);
    memset(v, 0x91, n);
    v[n] = 0x01;
    *len = n + 1;
    return v;
}

/* n nested one-pair maps {"k": ...} around the fixint 1. */
static uint8_t *nested_maps(size_t n, size_t *len)
{
    uint8_t *v = malloc(3 * n + 1);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        v[3 * i] = 0x81;
        v[3 * i + 1] = 0xa1;
        v[3 * i + 2] = 'k';
    }
    v[3 * n] = 0x01;
    *len = 3 * n + 1;
    return v;
}

static void nesting_to_max_depth_is_accepted_and_one_deeper_rejected(void **state)
{
    (void)state;
    uint8_t *(*make[2])(size_t, size_t *) = {nested_arrays, nested_maps};
    for (int m = 0; m < 2; m++) {
        for (unsigned d = 0; d <= MDX_MP_MAX_DEPTH; d++) {
            size_t len, len2;
            uint8_t *ok = make[m](d, &len), *deep = make[m](d + 1, &len2);
            snprintf(ctx, sizeof ctx, "%s, value at depth %u", m ? "maps" : "arrays", d);
            uint8_t *b1 = tail_copy(ok, len), *b2 = tail_copy(deep, len2);
            const uint8_t *p = b1;
            CKI(mdx_mp_skip(&p, b1 + len, d), 0);
            CK(p == b1 + len);
            CKI(mdx_mp_check(b1, len, d), 0);
            CKI(mdx_mp_check(b1, len, MDX_MP_MAX_DEPTH), 0);
            CKI(mdx_mp_check(b2, len2, d), MDX_EPROTO);
            p = b2;
            CKI(mdx_mp_skip(&p, b2 + len2, d), MDX_EPROTO);
            CK(p == b2);
            if (m == 1 && d >= 1) {
                CKI(mdx_mp_check_body(b1, len, d), 0);
                CKI(mdx_mp_check_body(b2, len2, d), MDX_EBADBODY);
            }
            free(b1);
            free(b2);
            free(ok);
            free(deep);
        }
    }
    /* MDX_MP_MAX_DEPTH is a hard cap: a larger max_depth does not lift it. */
    size_t len;
    uint8_t *v = nested_arrays(MDX_MP_MAX_DEPTH + 1, &len);
    snprintf(ctx, sizeof ctx, "depth MDX_MP_MAX_DEPTH + 1 with max_depth 1000");
    uint8_t *b = tail_copy(v, len);
    CKI(mdx_mp_check(b, len, 1000), MDX_EPROTO);
    free(b);
    free(v);

    /* max_depth 0: scalars and empty containers only. */
    static const uint8_t empty_arr[] = {0x90}, empty_map[] = {0x80}, one[] = {0x91, 0x01};
    snprintf(ctx, sizeof ctx, "max_depth 0");
    CKI(mdx_mp_check(empty_arr, 1, 0), 0);
    CKI(mdx_mp_check(empty_map, 1, 0), 0);
    CKI(mdx_mp_check(one + 1, 1, 0), 0);
    CKI(mdx_mp_check(one, 2, 0), MDX_EPROTO);
}

static void ten_thousand_deep_nesting_is_rejected_without_recursion(void **state)
{
    (void)state;
    size_t len;
    uint8_t *v = nested_arrays(10000, &len);
    expect_rejected(v, len, "10000 nested arrays");
    free(v);
    v = nested_maps(10000, &len);
    expect_rejected(v, len, "10000 nested maps");
    free(v);
    /* array32 headers, each claiming one element */
    v = malloc(5 * 10000 + 1);
    assert_non_null(v);
    for (size_t i = 0; i < 10000; i++)
        memcpy(v + 5 * i, (const uint8_t[]){0xdd, 0, 0, 0, 1}, 5);
    v[50000] = 0xc0;
    expect_rejected(v, 50001, "10000 nested array32");
    free(v);
}

static void huge_counts_and_lengths_beyond_the_buffer_are_rejected(void **state)
{
    (void)state;
    static const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03};
    static const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01};
    static const uint8_t arr32_nested[] = {0xdd, 0xff, 0xff, 0xff, 0xfe, 0xdd,
                                           0xff, 0xff, 0xff, 0xfe, 0x01};
    static const uint8_t str32_short[] = {0xdb, 0, 0, 0, 0x05, 'a', 'b', 'c', 'd'};
    static const uint8_t str32_huge[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    static const uint8_t str16_short[] = {0xda, 0x01, 0x00, 'a'};
    static const uint8_t str8_short[] = {0xd9, 0x05, 'a'};
    static const uint8_t bin32_huge[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    static const uint8_t ext32_huge[] = {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00};
    static const uint8_t fixext16_short[] = {0xd8, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

    expect_rejected(arr32, sizeof arr32, "array32 claiming 2^32-1 elements");
    expect_rejected(map32, sizeof map32, "map32 claiming 2^32-1 pairs");
    expect_rejected(arr32_nested, sizeof arr32_nested, "nested array32 claiming 2^32-2");
    const uint8_t *payload_cases[][2] = {
        {str32_short, str32_short + sizeof str32_short},
        {str32_huge, str32_huge + sizeof str32_huge},
        {str16_short, str16_short + sizeof str16_short},
        {str8_short, str8_short + sizeof str8_short},
        {bin32_huge, bin32_huge + sizeof bin32_huge},
        {ext32_huge, ext32_huge + sizeof ext32_huge},
        {fixext16_short, fixext16_short + sizeof fixext16_short},
    };
    for (size_t i = 0; i < sizeof payload_cases / sizeof payload_cases[0]; i++) {
        size_t len = (size_t)(payload_cases[i][1] - payload_cases[i][0]);
        snprintf(ctx, sizeof ctx, "payload longer than the buffer, case %zu", i);
        uint8_t *buf = tail_copy(payload_cases[i][0], len);
        const uint8_t *p = buf;
        mdx_mp_tok_t t;
        CKI(mdx_mp_read(&p, buf + len, &t), MDX_EPROTO);
        CK(p == buf);
        free(buf);
        expect_rejected(payload_cases[i][0], len, ctx);
    }

    /* The header is readable on its own; only skipping the elements fails. */
    snprintf(ctx, sizeof ctx, "array32 header alone");
    uint8_t *buf = tail_copy(arr32, sizeof arr32);
    const uint8_t *p = buf;
    mdx_mp_tok_t t;
    CKI(mdx_mp_read(&p, buf + sizeof arr32, &t), 0);
    CKI(t.type, MDX_MP_ARRAY);
    CK(t.len == 0xffffffffu);
    CK(p == buf + 5);
    free(buf);

    /* A count equal to the bytes left is fine; one more is not. */
    uint8_t *v = malloc(3 + 65535);
    assert_non_null(v);
    v[0] = 0xdc;
    v[1] = 0xff;
    v[2] = 0xff;
    memset(v + 3, 0xc0, 65535);
    snprintf(ctx, sizeof ctx, "array16 of 65535 nils");
    buf = tail_copy(v, 3 + 65535);
    CKI(mdx_mp_check(buf, 3 + 65535, MDX_MP_MAX_DEPTH), 0);
    free(buf);
    expect_rejected(v, 3 + 65534, "array16 of 65535 with 65534 nils");
    free(v);
}

/* ---- check_body and map_find ---- */

static void check_body_accepts_string_keyed_maps_only(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint8_t in[16];
        size_t len;
        int want;
    } cases[] = {
        {"empty map", B(0x80), 0},
        {"one pair", B(0x81, 0xa1, 'a', 0x01), 0},
        {"str8 key, nested value", B(0x81, 0xd9, 0x01, 'a', 0x92, 0x80, 0x90), 0},
        {"empty string key", B(0x81, 0xa0, 0xc0), 0},
        {"map16 header", B(0xde, 0x00, 0x01, 0xa1, 'a', 0xc3), 0},
        {"array", B(0x90), MDX_EBADBODY},
        {"int", B(0x01), MDX_EBADBODY},
        {"string", B(0xa1, 'a'), MDX_EBADBODY},
        {"nil", B(0xc0), MDX_EBADBODY},
        {"bin", B(0xc4, 0x00), MDX_EBADBODY},
        {"int key", B(0x81, 0x01, 0x01), MDX_EBADBODY},
        {"bin key", B(0x81, 0xc4, 0x01, 'a', 0x01), MDX_EBADBODY},
        {"nil key", B(0x81, 0xc0, 0x01), MDX_EBADBODY},
        {"array key", B(0x81, 0x90, 0x01), MDX_EBADBODY},
        {"map key", B(0x81, 0x80, 0x01), MDX_EBADBODY},
        {"ext key", B(0x81, 0xd4, 0x01, 0x02, 0x01), MDX_EBADBODY},
        {"second key not a string", B(0x82, 0xa1, 'a', 0x01, 0xc2, 0x01), MDX_EBADBODY},
        {"trailing nil", B(0x80, 0xc0), MDX_EBADBODY},
        {"two maps", B(0x80, 0x80), MDX_EBADBODY},
        {"trailing after pair", B(0x81, 0xa1, 'a', 0x01, 0x01), MDX_EBADBODY},
        {"missing value", B(0x81, 0xa1, 'a'), MDX_EBADBODY},
        {"pair count beyond the bytes", B(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01),
         MDX_EBADBODY},
        {"invalid byte in value", B(0x81, 0xa1, 'a', 0x91, 0xc1), MDX_EBADBODY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(ctx, sizeof ctx, "check_body '%s'", cases[i].name);
        uint8_t *buf = tail_copy(cases[i].in, cases[i].len);
        CKI(mdx_mp_check_body(buf, cases[i].len, MDX_MP_MAX_DEPTH), cases[i].want);
        free(buf);
        if (cases[i].want == 0) {
            for (size_t k = 0; k < cases[i].len; k++) {
                snprintf(ctx, sizeof ctx, "check_body '%s' cut at %zu", cases[i].name, k);
                buf = tail_copy(cases[i].in, k);
                CKI(mdx_mp_check_body(buf, k, MDX_MP_MAX_DEPTH), MDX_EBADBODY);
                free(buf);
            }
        }
    }
    snprintf(ctx, sizeof ctx, "check_body empty input");
    uint8_t *buf = tail_copy("", 0);
    CKI(mdx_mp_check_body(buf, 0, MDX_MP_MAX_DEPTH), MDX_EBADBODY);
    free(buf);

    /* max_depth counts the map itself as depth 0. */
    static const uint8_t d2[] = {0x81, 0xa1, 'a', 0x91, 0x01}; /* the 1 is at depth 2 */
    snprintf(ctx, sizeof ctx, "check_body depth");
    buf = tail_copy(d2, sizeof d2);
    CKI(mdx_mp_check_body(buf, sizeof d2, 2), 0);
    CKI(mdx_mp_check_body(buf, sizeof d2, 1), MDX_EBADBODY);
    free(buf);
}

static void map_find_returns_exact_value_bounds_and_last_duplicate(void **state)
{
    (void)state;
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t a0, a1, bb0, bb1, c0, c1, k0, k1, k2, k3;
    mdx_mp_put_map(&b, 5);
    mdx_mp_put_str(&b, "a", 1);
    a0 = b.len;
    mdx_mp_put_int(&b, -1000);
    a1 = b.len;
    mdx_mp_put_str(&b, "bb", 2);
    bb0 = b.len;
    mdx_mp_put_str(&b, "xyz", 3);
    bb1 = b.len;
    mdx_mp_put_str(&b, "c", 1);
    c0 = b.len;
    mdx_mp_put_array(&b, 3);
    mdx_mp_put_int(&b, 1);
    mdx_mp_put_int(&b, 2);
    mdx_mp_put_map(&b, 1);
    mdx_mp_put_str(&b, "d", 1);
    mdx_mp_put_nil(&b);
    c1 = b.len;
    mdx_mp_put_str(&b, "k", 1);
    k0 = b.len;
    mdx_mp_put_int(&b, 7);
    k1 = b.len;
    mdx_mp_put_str(&b, "k", 1);
    k2 = b.len;
    mdx_mp_put_map(&b, 1);
    mdx_mp_put_str(&b, "z", 1);
    mdx_mp_put_bool(&b, 1);
    k3 = b.len;
    assert_int_equal(b.err, 0);

    size_t len = b.len;
    uint8_t *buf = tail_copy(b.data, len);
    mdx_buf_fini(&b);
    snprintf(ctx, sizeof ctx, "map_find");
    CKI(mdx_mp_check_body(buf, len, MDX_MP_MAX_DEPTH), 0);

    mdx_mp_tok_t t;
    const uint8_t *vs, *ve;
    CKI(mdx_mp_map_find(buf, len, "a", 1, &t, &vs, &ve), 1);
    CKI(t.type, MDX_MP_INT);
    CKI(t.v.i, -1000);
    CK(vs == buf + a0);
    CK(ve == buf + a1);

    CKI(mdx_mp_map_find(buf, len, "bb", 2, &t, &vs, &ve), 1);
    CKI(t.type, MDX_MP_STR);
    CKI(t.len, 3);
    CK(t.v.ptr == buf + bb0 + 1);
    CK(memcmp(t.v.ptr, "xyz", 3) == 0);
    CK(vs == buf + bb0);
    CK(ve == buf + bb1);

    CKI(mdx_mp_map_find(buf, len, "c", 1, &t, &vs, &ve), 1);
    CKI(t.type, MDX_MP_ARRAY);
    CKI(t.len, 3);
    CK(vs == buf + c0);
    CK(ve == buf + c1);

    /* "k" appears twice: the second (a map) wins, as a decoder building a map would see it. */
    CKI(mdx_mp_map_find(buf, len, "k", 1, &t, &vs, &ve), 1);
    CKI(t.type, MDX_MP_MAP);
    CKI(t.len, 1);
    CK(vs == buf + k2);
    CK(ve == buf + k3);
    CK(ve == buf + len);
    CK(vs != buf + k0 && k1 < k2); /* not the first "k" */

    /* the field is length-delimited, not NUL-terminated */
    CKI(mdx_mp_map_find(buf, len, "bbX", 2, &t, NULL, NULL), 1);
    CKI(t.type, MDX_MP_STR);
    /* any out-parameter may be NULL */
    vs = ve = NULL;
    CKI(mdx_mp_map_find(buf, len, "a", 1, NULL, &vs, NULL), 1);
    CK(vs == buf + a0);
    CKI(mdx_mp_map_find(buf, len, "a", 1, NULL, NULL, &ve), 1);
    CK(ve == buf + a1);

    static const char *absent[] = {"d", "z", "b", "bbb", "", "A", "K", "xyz"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        snprintf(ctx, sizeof ctx, "map_find absent '%s'", absent[i]);
        CKI(mdx_mp_map_find(buf, len, absent[i], strlen(absent[i]), &t, &vs, &ve), 0);
    }
    free(buf);

    static const uint8_t empty_key[] = {0x82, 0xa1, 'a', 0x01, 0xa0, 0x05};
    snprintf(ctx, sizeof ctx, "map_find empty key");
    buf = tail_copy(empty_key, sizeof empty_key);
    CKI(mdx_mp_map_find(buf, sizeof empty_key, "", 0, &t, &vs, &ve), 1);
    CKI(t.v.i, 5);
    CK(vs == buf + 5 && ve == buf + 6);
    free(buf);
    static const uint8_t empty_map[] = {0x80};
    buf = tail_copy(empty_map, 1);
    CKI(mdx_mp_map_find(buf, 1, "a", 1, &t, &vs, &ve), 0);
    free(buf);
}

/* ---- writer vs msgpack-c ---- */

static const int64_t int_edges[] = {0,
                                    1,
                                    31,
                                    32,
                                    126,
                                    127,
                                    128,
                                    255,
                                    256,
                                    65535,
                                    65536,
                                    4294967295,
                                    4294967296,
                                    INT64_MAX - 1,
                                    INT64_MAX,
                                    -1,
                                    -31,
                                    -32,
                                    -33,
                                    -127,
                                    -128,
                                    -129,
                                    -32767,
                                    -32768,
                                    -32769,
                                    INT32_MIN + 1,
                                    INT32_MIN,
                                    (int64_t)INT32_MIN - 1,
                                    INT64_MIN + 1,
                                    INT64_MIN};

static void put_int_is_shortest_and_matches_msgpack_c(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof int_edges / sizeof int_edges[0]; i++) {
        int64_t v = int_edges[i];
        snprintf(ctx, sizeof ctx, "put_int %" PRId64, v);
        mdx_buf_t b;
        mdx_buf_init(&b);
        mdx_mp_put_int(&b, v);
        msgpack_sbuffer sb;
        msgpack_packer pk;
        pk_init(&sb, &pk);
        msgpack_pack_int64(&pk, v);
        assert_same_bytes(&b, &sb);
        CKI(b.len, shortest_int_len(v));

        uint8_t o[9];
        CKI(mdx_mp_enc_int(o, v), b.len);
        CK(memcmp(o, b.data, b.len) == 0);

        uint8_t *buf = tail_copy(b.data, b.len);
        const uint8_t *p = buf;
        mdx_mp_tok_t t;
        CKI(mdx_mp_read(&p, buf + b.len, &t), 0);
        CKI(t.type, MDX_MP_INT);
        CKI(t.v.i, v);
        CK(p == buf + b.len);
        free(buf);
        check_prefixes(b.data, b.len, b.len, ctx);
        msgpack_sbuffer_destroy(&sb);
        mdx_buf_fini(&b);
    }
}

static void put_uint_is_shortest_and_matches_msgpack_c(void **state)
{
    (void)state;
    uint64_t vals[sizeof int_edges / sizeof int_edges[0] + 4];
    size_t nv = 0;
    for (size_t i = 0; i < sizeof int_edges / sizeof int_edges[0]; i++)
        if (int_edges[i] >= 0)
            vals[nv++] = (uint64_t)int_edges[i];
    vals[nv++] = (uint64_t)INT64_MAX + 1;
    vals[nv++] = (uint64_t)INT64_MAX + 2;
    vals[nv++] = UINT64_MAX - 1;
    vals[nv++] = UINT64_MAX;
    for (size_t i = 0; i < nv; i++) {
        uint64_t v = vals[i];
        snprintf(ctx, sizeof ctx, "put_uint %" PRIu64, v);
        mdx_buf_t b;
        mdx_buf_init(&b);
        mdx_mp_put_uint(&b, v);
        msgpack_sbuffer sb;
        msgpack_packer pk;
        pk_init(&sb, &pk);
        msgpack_pack_uint64(&pk, v);
        assert_same_bytes(&b, &sb);
        CKI(b.len, shortest_uint_len(v));

        uint8_t o[9];
        CKI(mdx_mp_enc_uint(o, v), b.len);
        CK(memcmp(o, b.data, b.len) == 0);

        uint8_t *buf = tail_copy(b.data, b.len);
        const uint8_t *p = buf;
        mdx_mp_tok_t t;
        CKI(mdx_mp_read(&p, buf + b.len, &t), 0);
        if (v > INT64_MAX) {
            CKI(t.type, MDX_MP_UINT);
            CK(t.v.u == v);
        } else {
            CKI(t.type, MDX_MP_INT);
            CK(t.v.i == (int64_t)v);
        }
        free(buf);
        msgpack_sbuffer_destroy(&sb);
        mdx_buf_fini(&b);
    }
}

static void put_nil_bool_double_match_msgpack_c(void **state)
{
    (void)state;
    mdx_buf_t b;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    mdx_buf_init(&b);
    pk_init(&sb, &pk);
    mdx_mp_put_nil(&b);
    mdx_mp_put_bool(&b, 0);
    mdx_mp_put_bool(&b, 1);
    mdx_mp_put_bool(&b, 2); /* any nonzero is true */
    msgpack_pack_nil(&pk);
    msgpack_pack_false(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_true(&pk);
    snprintf(ctx, sizeof ctx, "nil, false, true, true");
    assert_same_bytes(&b, &sb);
    CKI(b.len, 4);
    mdx_buf_fini(&b);
    msgpack_sbuffer_destroy(&sb);

    /* msgpack-c and the writer both always use float64 for a double (9 bytes). */
    const double dv[] = {0.0,         -0.0,     1.5,       -1e308, DBL_MAX,          DBL_MIN,
                         DBL_MIN / 4, INFINITY, -INFINITY, NAN,    3.141592653589793};
    for (size_t i = 0; i < sizeof dv / sizeof dv[0]; i++) {
        snprintf(ctx, sizeof ctx, "put_double #%zu (%g)", i, dv[i]);
        mdx_buf_init(&b);
        pk_init(&sb, &pk);
        mdx_mp_put_double(&b, dv[i]);
        msgpack_pack_double(&pk, dv[i]);
        assert_same_bytes(&b, &sb);
        CKI(b.len, 9);
        CKI(b.data[0], 0xcb);
        uint8_t *buf = tail_copy(b.data, b.len);
        const uint8_t *p = buf;
        mdx_mp_tok_t t;
        CKI(mdx_mp_read(&p, buf + b.len, &t), 0);
        CKI(t.type, MDX_MP_FLOAT);
        CK(memcmp(&t.v.f, &dv[i], sizeof(double)) == 0);
        free(buf);
        mdx_buf_fini(&b);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void headers_are_shortest_and_match_msgpack_c(void **state)
{
    (void)state;
    static const uint32_t lens[] = {0,          1,          15,         16,        31,
                                    32,         255,        256,        65535,     65536,
                                    0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff};
    enum { STR, BIN, ARR, MAP };
    static const char *const kind[] = {"str", "bin", "array", "map"};
    for (int k = STR; k <= MAP; k++) {
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            uint32_t n = lens[i];
            snprintf(ctx, sizeof ctx, "%s header %" PRIu32, kind[k], n);
            uint8_t o[5];
            size_t got, want;
            msgpack_sbuffer sb;
            msgpack_packer pk;
            pk_init(&sb, &pk);
            switch (k) {
            case STR:
                got = mdx_mp_enc_str_header(o, n);
                msgpack_pack_str(&pk, n);
                want = n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
                break;
            case BIN:
                got = mdx_mp_enc_bin_header(o, n);
                msgpack_pack_bin(&pk, n);
                want = n < 256 ? 2 : n < 65536 ? 3 : 5;
                break;
            case ARR:
                got = mdx_mp_enc_array_header(o, n);
                msgpack_pack_array(&pk, n);
                want = n < 16 ? 1 : n < 65536 ? 3 : 5;
                break;
            default:
                got = mdx_mp_enc_map_header(o, n);
                msgpack_pack_map(&pk, n);
                want = n < 16 ? 1 : n < 65536 ? 3 : 5;
                break;
            }
            CKI(got, want);
            CKI(sb.size, want);
            CK(memcmp(o, sb.data, want) == 0);

            /* the header decodes back to the same count */
            const uint8_t *p = o;
            mdx_mp_tok_t t;
            if (k == ARR || k == MAP) {
                CKI(mdx_mp_read(&p, o + got, &t), 0);
                CKI(t.type, k == ARR ? MDX_MP_ARRAY : MDX_MP_MAP);
                CK(t.len == n);
                mdx_buf_t b;
                mdx_buf_init(&b);
                if (k == ARR)
                    mdx_mp_put_array(&b, n);
                else
                    mdx_mp_put_map(&b, n);
                CKI(b.len, got);
                CK(memcmp(b.data, o, got) == 0);
                mdx_buf_fini(&b);
            }
            msgpack_sbuffer_destroy(&sb);
        }
    }
}

static void put_str_and_bin_match_msgpack_c_and_read_back(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 70001};
    uint8_t *src = malloc(70001);
    assert_non_null(src);
    for (size_t i = 0; i < 70001; i++)
        src[i] = (uint8_t)(i * 7 + 3);
    for (int bin = 0; bin <= 1; bin++) {
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            size_t n = lens[i];
            snprintf(ctx, sizeof ctx, "put_%s of %zu bytes", bin ? "bin" : "str", n);
            mdx_buf_t b;
            msgpack_sbuffer sb;
            msgpack_packer pk;
            mdx_buf_init(&b);
            pk_init(&sb, &pk);
            if (bin) {
                mdx_mp_put_bin(&b, src, n);
                msgpack_pack_bin(&pk, n);
                msgpack_pack_bin_body(&pk, src, n);
            } else {
                mdx_mp_put_str(&b, src, n);
                msgpack_pack_str(&pk, n);
                msgpack_pack_str_body(&pk, src, n);
            }
            assert_same_bytes(&b, &sb);
            size_t hdr = b.len - n;

            uint8_t *buf = tail_copy(b.data, b.len);
            const uint8_t *p = buf;
            mdx_mp_tok_t t;
            CKI(mdx_mp_read(&p, buf + b.len, &t), 0);
            CKI(t.type, bin ? MDX_MP_BIN : MDX_MP_STR);
            CKI(t.len, n);
            CK(t.v.ptr == buf + hdr);
            CK(n == 0 || memcmp(t.v.ptr, src, n) == 0);
            CK(p == buf + b.len);
            CKI(mdx_mp_check(buf, b.len, MDX_MP_MAX_DEPTH), 0);
            free(buf);

            /* all header prefixes, and the payload one byte short and half there */
            if (b.len <= 300) {
                check_prefixes(b.data, b.len, b.len, ctx);
            } else {
                check_prefixes(b.data, hdr + 1, b.len, ctx);
                size_t cuts[] = {hdr + n / 2, b.len - 1};
                for (size_t c = 0; c < 2; c++) {
                    buf = tail_copy(b.data, cuts[c]);
                    p = buf;
                    CKI(mdx_mp_read(&p, buf + cuts[c], &t), MDX_EPROTO);
                    CK(p == buf);
                    CKI(mdx_mp_check(buf, cuts[c], MDX_MP_MAX_DEPTH), MDX_EPROTO);
                    free(buf);
                }
            }
            mdx_buf_fini(&b);
            msgpack_sbuffer_destroy(&sb);
        }
    }
    free(src);
}

/* ---- randomized round trip ---- */

#define POOL_SIZE 70000

typedef struct {
    mdx_mp_tok_t tok;   /* expected token; v.ptr is not used */
    size_t off;         /* STR, BIN, EXT: where the payload starts in the output */
    const uint8_t *src; /* STR, BIN, EXT: the payload's source */
} ev_t;

typedef struct {
    uint64_t rng;
    mdx_buf_t b;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    ev_t *ev;
    size_t nev, evcap;
    size_t budget; /* payload bytes still allowed in this value */
    int deep;      /* this value nests to MDX_MP_MAX_DEPTH */
    unsigned maxd; /* deepest value depth written */
    uint8_t pool[POOL_SIZE];
} gen_t;

static ev_t *push_ev(gen_t *g, mdx_mp_type_t type)
{
    if (g->nev == g->evcap) {
        g->evcap = g->evcap ? 2 * g->evcap : 256;
        g->ev = realloc(g->ev, g->evcap * sizeof *g->ev);
        assert_non_null(g->ev);
    }
    ev_t *e = &g->ev[g->nev++];
    memset(e, 0, sizeof *e);
    e->tok.type = type;
    return e;
}

/* Appends what msgpack-c just packed since `before` to the mdx buffer too: the writer has no
 * float32 or ext, so those go in as msgpack-c wrote them. */
static void mirror_packed(gen_t *g, size_t before)
{
    mdx_buf_append(&g->b, g->sb.data + before, g->sb.size - before);
}

static uint32_t pick_len(gen_t *g)
{
    uint64_t r = rnd_below(&g->rng, 100);
    uint32_t n;
    if (r < 60)
        n = (uint32_t)rnd_below(&g->rng, 34);
    else if (r < 85)
        n = 240 + (uint32_t)rnd_below(&g->rng, 30);
    else if (r < 99)
        n = (uint32_t)rnd_below(&g->rng, 1000);
    else
        n = 65530 + (uint32_t)rnd_below(&g->rng, 12);
    if (n > g->budget)
        n = (uint32_t)rnd_below(&g->rng, 4);
    g->budget -= n < g->budget ? n : g->budget;
    return n;
}

static uint32_t pick_count(gen_t *g)
{
    uint64_t r = rnd_below(&g->rng, 1000);
    if (r < 850)
        return (uint32_t)rnd_below(&g->rng, 5);
    if (r < 995)
        return 14 + (uint32_t)rnd_below(&g->rng, 4);
    if (g->budget < 70000 || g->nev > 100)
        return 1 + (uint32_t)rnd_below(&g->rng, 3);
    g->budget -= 70000;
    return 65534 + (uint32_t)rnd_below(&g->rng, 4);
}

static void gen_value(gen_t *g, unsigned depth);

static void gen_payload(gen_t *g, int kind)
{
    uint32_t n = pick_len(g);
    if (kind == 2 && rnd_below(&g->rng, 2))
        n = (uint32_t)1 << rnd_below(&g->rng, 5); /* favour the fixext sizes */
    const uint8_t *src = g->pool + rnd_below(&g->rng, POOL_SIZE - n + 1);
    ev_t *e;
    if (kind == 0) {
        e = push_ev(g, MDX_MP_STR);
        mdx_mp_put_str(&g->b, src, n);
        msgpack_pack_str(&g->pk, n);
        msgpack_pack_str_body(&g->pk, src, n);
    } else if (kind == 1) {
        e = push_ev(g, MDX_MP_BIN);
        mdx_mp_put_bin(&g->b, src, n);
        msgpack_pack_bin(&g->pk, n);
        msgpack_pack_bin_body(&g->pk, src, n);
    } else {
        int8_t et = (int8_t)(uint8_t)rnd(&g->rng);
        e = push_ev(g, MDX_MP_EXT);
        e->tok.ext_type = et;
        size_t before = g->sb.size;
        msgpack_pack_ext(&g->pk, n, et);
        msgpack_pack_ext_body(&g->pk, src, n);
        mirror_packed(g, before);
    }
    e->tok.len = n;
    e->off = g->b.len - n;
    e->src = src;
}

static void gen_value(gen_t *g, unsigned depth)
{
    if (depth > g->maxd)
        g->maxd = depth;
    /* Containers get rarer below depth 2 so the expected tree size stays finite. */
    int container_ok = depth < MDX_MP_MAX_DEPTH && g->nev < 2000;
    int kind;
    if (g->deep && depth < MDX_MP_MAX_DEPTH)
        kind = 9 + (int)rnd_below(&g->rng, 2);
    else if (container_ok && rnd_below(&g->rng, 100) < (depth < 2 ? 30u : 8u))
        kind = 9 + (int)rnd_below(&g->rng, 2);
    else
        kind = (int)rnd_below(&g->rng, 9);
    ev_t *e;
    switch (kind) {
    case 0:
        push_ev(g, MDX_MP_NIL);
        mdx_mp_put_nil(&g->b);
        msgpack_pack_nil(&g->pk);
        break;
    case 1: {
        int v = (int)rnd_below(&g->rng, 2);
        e = push_ev(g, MDX_MP_BOOL);
        e->tok.v.b = v;
        mdx_mp_put_bool(&g->b, v);
        if (v)
            msgpack_pack_true(&g->pk);
        else
            msgpack_pack_false(&g->pk);
        break;
    }
    case 2: {
        uint64_t u = rnd(&g->rng) >> rnd_below(&g->rng, 64);
        int64_t v = rnd_below(&g->rng, 2) ? (int64_t)(u >> 1) : -(int64_t)(u >> 1) - 1;
        e = push_ev(g, MDX_MP_INT);
        e->tok.v.i = v;
        mdx_mp_put_int(&g->b, v);
        msgpack_pack_int64(&g->pk, v);
        break;
    }
    case 3: {
        uint64_t u = rnd(&g->rng) >> rnd_below(&g->rng, 64);
        if (u > INT64_MAX) {
            e = push_ev(g, MDX_MP_UINT);
            e->tok.v.u = u;
        } else {
            e = push_ev(g, MDX_MP_INT);
            e->tok.v.i = (int64_t)u;
        }
        mdx_mp_put_uint(&g->b, u);
        msgpack_pack_uint64(&g->pk, u);
        break;
    }
    case 4: {
        uint64_t bits = rnd(&g->rng);
        double d;
        memcpy(&d, &bits, 8);
        if (isnan(d))
            d = NAN; /* signalling NaNs may be quietened in transit; keep bits stable */
        e = push_ev(g, MDX_MP_FLOAT);
        e->tok.v.f = d;
        mdx_mp_put_double(&g->b, d);
        msgpack_pack_double(&g->pk, d);
        break;
    }
    case 5: {
        uint32_t bits = (uint32_t)rnd(&g->rng);
        float f;
        memcpy(&f, &bits, 4);
        if (isnan(f))
            f = NAN;
        e = push_ev(g, MDX_MP_FLOAT);
        e->tok.v.f = f;
        size_t before = g->sb.size;
        msgpack_pack_float(&g->pk, f);
        mirror_packed(g, before);
        break;
    }
    case 6:
    case 7:
    case 8:
        gen_payload(g, kind - 6);
        break;
    case 9: {
        uint32_t n = g->deep ? 1 + (uint32_t)rnd_below(&g->rng, 2) : pick_count(g);
        e = push_ev(g, MDX_MP_ARRAY);
        e->tok.len = n;
        mdx_mp_put_array(&g->b, n);
        msgpack_pack_array(&g->pk, n);
        for (uint32_t i = 0; i < n; i++) {
            gen_value(g, depth + 1);
            g->deep = 0; /* one chain to the bottom is enough */
        }
        break;
    }
    default: {
        uint32_t n = g->deep ? 1 : pick_count(g);
        e = push_ev(g, MDX_MP_MAP);
        e->tok.len = n;
        mdx_mp_put_map(&g->b, n);
        msgpack_pack_map(&g->pk, n);
        for (uint32_t i = 0; i < n; i++) {
            int deep = g->deep;
            g->deep = 0;
            gen_value(g, depth + 1); /* key: usually a string, any value is valid msgpack */
            g->deep = deep;
            gen_value(g, depth + 1);
            g->deep = 0;
        }
        break;
    }
    }
}

static void check_against_events(gen_t *g, const uint8_t *buf, size_t len)
{
    const uint8_t *p = buf, *end = buf + len;
    for (size_t i = 0; i < g->nev; i++) {
        const ev_t *e = &g->ev[i];
        mdx_mp_tok_t t;
        CKI(mdx_mp_read(&p, end, &t), 0);
        CKI(t.type, e->tok.type);
        if (t.type == MDX_MP_EXT)
            CKI(t.ext_type, e->tok.ext_type);
        switch (t.type) {
        case MDX_MP_BOOL:
            CKI(t.v.b, e->tok.v.b);
            break;
        case MDX_MP_INT:
            CKI(t.v.i, e->tok.v.i);
            break;
        case MDX_MP_UINT:
            CK(t.v.u == e->tok.v.u);
            break;
        case MDX_MP_FLOAT:
            CK(memcmp(&t.v.f, &e->tok.v.f, sizeof(double)) == 0);
            break;
        case MDX_MP_EXT:
        case MDX_MP_STR:
        case MDX_MP_BIN:
            CKI(t.len, e->tok.len);
            CK(t.v.ptr == buf + e->off);
            CK(t.len == 0 || memcmp(t.v.ptr, e->src, t.len) == 0);
            break;
        case MDX_MP_ARRAY:
        case MDX_MP_MAP:
            CKI(t.len, e->tok.len);
            break;
        case MDX_MP_NIL:
            break;
        }
    }
    CK(p == end);
}

static void random_values_round_trip_through_writer_and_reader(void **state)
{
    (void)state;
    uint64_t seed = test_seed();
    gen_t *g = calloc(1, sizeof *g);
    assert_non_null(g);
    g->rng = seed ^ 0x5bd1e995u;
    for (size_t i = 0; i < POOL_SIZE; i++)
        g->pool[i] = (uint8_t)rnd(&g->rng);
    g->rng = seed;
    int reached_max = 0;
    const int iters = 3000;
    for (int it = 0; it < iters; it++) {
        snprintf(ctx, sizeof ctx, "seed=%" PRIu64 " iteration %d", seed, it);
        mdx_buf_init(&g->b);
        pk_init(&g->sb, &g->pk);
        g->nev = 0;
        g->budget = 150000;
        g->deep = rnd_below(&g->rng, 20) == 0;
        g->maxd = 0;
        gen_value(g, 0);
        if (g->maxd == MDX_MP_MAX_DEPTH)
            reached_max = 1;

        /* the writer and msgpack-c agree byte for byte */
        assert_same_bytes(&g->b, &g->sb);
        size_t len = g->b.len;

        /* msgpack-c's unpacker sees one complete value of exactly len bytes */
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        CKI(msgpack_unpack_next(&up, g->sb.data, len, &off), MSGPACK_UNPACK_SUCCESS);
        CKI(off, len);
        msgpack_unpacked_destroy(&up);

        uint8_t *buf = tail_copy(g->b.data, len);
        check_against_events(g, buf, len);
        CKI(mdx_mp_check(buf, len, MDX_MP_MAX_DEPTH), 0);
        const uint8_t *p = buf;
        CKI(mdx_mp_skip(&p, buf + len, MDX_MP_MAX_DEPTH), 0);
        CK(p == buf + len);
        /* the depth limit is exact: the deepest value is at maxd */
        CKI(mdx_mp_check(buf, len, g->maxd), 0);
        if (g->maxd > 0)
            CKI(mdx_mp_check(buf, len, g->maxd - 1), MDX_EPROTO);
        free(buf);

        /* skip stops exactly at the end even when more bytes follow */
        uint8_t *two = malloc(len + 1);
        assert_non_null(two);
        memcpy(two, g->b.data, len);
        two[len] = 0xc1;
        p = two;
        CKI(mdx_mp_skip(&p, two + len + 1, MDX_MP_MAX_DEPTH), 0);
        CK(p == two + len);
        CKI(mdx_mp_check(two, len + 1, MDX_MP_MAX_DEPTH), MDX_EPROTO);
        free(two);

        /* truncation anywhere is caught: every prefix of small values, a sample of big ones */
        if (len <= 256) {
            for (size_t k = 0; k < len; k++) {
                buf = tail_copy(g->b.data, k);
                p = buf;
                CKI(mdx_mp_skip(&p, buf + k, MDX_MP_MAX_DEPTH), MDX_EPROTO);
                CK(p == buf);
                free(buf);
            }
        } else {
            for (int s = 0; s < 16; s++) {
                size_t k = s == 0 ? len - 1 : (size_t)rnd_below(&g->rng, len);
                buf = tail_copy(g->b.data, k);
                p = buf;
                CKI(mdx_mp_skip(&p, buf + k, MDX_MP_MAX_DEPTH), MDX_EPROTO);
                CK(p == buf);
                free(buf);
            }
        }
        mdx_buf_fini(&g->b);
        msgpack_sbuffer_destroy(&g->sb);
    }
    snprintf(ctx, sizeof ctx, "seed=%" PRIu64, seed);
    CK(reached_max); /* the run did exercise the depth limit */
    free(g->ev);
    free(g);
}

/* ---- mdx_buf_t ---- */

static void buf_reserve_overflow_is_enomem_without_allocating(void **state)
{
    (void)state;
    mdx_buf_t b;
    mdx_buf_init(&b);
    uint64_t calls = mdx_alloc_count();
    assert_int_equal(mdx_buf_reserve(&b, SIZE_MAX), MDX_ENOMEM);
    assert_int_equal(b.err, MDX_ENOMEM);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_true(mdx_alloc_count() == calls);
    mdx_buf_fini(&b);
    assert_int_equal(b.err, 0);

    mdx_mp_put_int(&b, 5);
    assert_int_equal(mdx_buf_reserve(&b, SIZE_MAX - 1), MDX_ENOMEM);
    assert_int_equal(b.len, 1);
    assert_int_equal(b.data[0], 5);
    mdx_buf_fini(&b);
}

static void put_str_longer_than_4gib_is_refused(void **state)
{
    (void)state;
#if SIZE_MAX > UINT32_MAX
    static const uint8_t one = 'x';
    mdx_buf_t b;
    mdx_buf_init(&b);
    mdx_mp_put_nil(&b);
    assert_int_equal(b.err, 0);
    /* Guard for a regression: an attempt to allocate 4 GiB fails instead of succeeding. */
    mdx_alloc_fail_after(0);
    mdx_mp_put_str(&b, &one, (size_t)UINT32_MAX + 1);
    assert_int_equal(b.err, MDX_ETOOBIG);
    assert_int_equal(b.len, 1); /* no header claiming a wrong length */
    assert_false(mdx_alloc_fail_triggered());
    mdx_buf_fini(&b);

    mdx_buf_init(&b);
    mdx_mp_put_bin(&b, &one, (size_t)UINT32_MAX + 7);
    assert_int_equal(b.err, MDX_ETOOBIG);
    assert_int_equal(b.len, 0);
    assert_false(mdx_alloc_fail_triggered());
    mdx_alloc_fail_reset();
    mdx_buf_fini(&b);
#else
    skip();
#endif
}

#if MDX_FAULT_INJECTION

static void buf_error_is_sticky_after_injected_failure(void **state)
{
    (void)state;
    size_t base = mdx_alloc_used();
    mdx_buf_t b;
    mdx_buf_init(&b);
    mdx_alloc_fail_after(0);
    mdx_mp_put_int(&b, 1);
    assert_true(mdx_alloc_fail_triggered());
    mdx_alloc_fail_reset();
    assert_int_equal(b.err, MDX_ENOMEM);
    assert_int_equal(b.len, 0);
    assert_null(b.data);

    /* allocation works again, but the buffer keeps refusing without trying */
    uint64_t calls = mdx_alloc_count();
    mdx_mp_put_nil(&b);
    mdx_mp_put_str(&b, "abc", 3);
    mdx_mp_put_array(&b, 100);
    mdx_buf_append(&b, "x", 1);
    assert_int_equal(b.err, MDX_ENOMEM);
    assert_int_equal(b.len, 0);
    assert_int_equal(mdx_buf_reserve(&b, 1), MDX_ENOMEM);
    assert_true(mdx_alloc_count() == calls);

    mdx_buf_fini(&b);
    assert_int_equal(b.err, 0);
    assert_int_equal(mdx_alloc_used(), base);
    mdx_mp_put_int(&b, 1);
    assert_int_equal(b.err, 0);
    assert_int_equal(b.len, 1);
    assert_int_equal(b.data[0], 0x01);
    mdx_buf_fini(&b);
    assert_int_equal(mdx_alloc_used(), base);
}

static void buf_failed_growth_keeps_the_bytes_already_written(void **state)
{
    (void)state;
    size_t base = mdx_alloc_used();
    uint8_t src[200];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)i;
    mdx_buf_t b;
    mdx_buf_init(&b);
    mdx_buf_append(&b, src, 60);
    assert_int_equal(b.err, 0);
    size_t cap = b.cap;
    uint8_t *data = b.data;
    assert_true(cap >= 60 && cap < 200);

    mdx_alloc_fail_after(0);
    mdx_mp_put_bin(&b, src, 150);
    mdx_alloc_fail_reset();
    assert_int_equal(b.err, MDX_ENOMEM);
    assert_true(b.data == data);
    assert_int_equal(b.cap, cap);
    assert_true(b.len <= 60 + 2); /* at most the bin8 header went in before the failure */
    assert_memory_equal(b.data, src, 60);
    mdx_buf_fini(&b);
    assert_int_equal(mdx_alloc_used(), base);
}

/* SQLite-style sweep: fail the n-th allocation for n = 0, 1, ... until the message is built;
 * every failure reports ENOMEM, leaves a prefix of the message and leaks nothing. */
static void build_message(mdx_buf_t *b, const uint8_t *src)
{
    mdx_mp_put_map(b, 3);
    mdx_mp_put_str(b, "a", 1);
    mdx_mp_put_array(b, 3);
    mdx_mp_put_int(b, -5);
    mdx_mp_put_str(b, src, 100);
    mdx_mp_put_bin(b, src, 300);
    mdx_mp_put_str(b, "b", 1);
    mdx_mp_put_str(b, src, 1000);
    mdx_mp_put_str(b, "c", 1);
    mdx_mp_put_bin(b, src, 5000);
}

static void buf_out_of_memory_sweep(void **state)
{
    (void)state;
    static uint8_t src[5000];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 13);
    size_t base = mdx_alloc_used();
    mdx_buf_t ref;
    mdx_buf_init(&ref);
    build_message(&ref, src);
    assert_int_equal(ref.err, 0);
    uint8_t *refbuf = tail_copy(ref.data, ref.len);
    assert_int_equal(mdx_mp_check_body(refbuf, ref.len, MDX_MP_MAX_DEPTH), 0);
    free(refbuf);

    long n;
    for (n = 0; n < 100; n++) {
        mdx_buf_t b;
        mdx_buf_init(&b);
        mdx_alloc_fail_after(n);
        build_message(&b, src);
        int triggered = mdx_alloc_fail_triggered();
        mdx_alloc_fail_reset();
        if (b.err == 0) {
            assert_false(triggered);
            assert_int_equal(b.len, ref.len);
            assert_memory_equal(b.data, ref.data, ref.len);
            mdx_buf_fini(&b);
            break;
        }
        assert_true(triggered);
        assert_int_equal(b.err, MDX_ENOMEM);
        assert_true(b.len < ref.len);
        if (b.len)
            assert_memory_equal(b.data, ref.data, b.len);
        mdx_buf_fini(&b);
        assert_int_equal(mdx_alloc_used(), base + mdx_alloc_size(ref.data));
    }
    assert_true(n > 0 && n < 100);
    mdx_buf_fini(&ref);
    assert_int_equal(mdx_alloc_used(), base);
}

#else

static void fault_injection_not_compiled_in(void **state)
{
    (void)state;
    skip();
}

#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(read_decodes_every_format_family_exactly),
        cmocka_unit_test(every_proper_prefix_is_rejected_with_p_unchanged),
        cmocka_unit_test(check_rejects_trailing_bytes_but_skip_stops_at_the_value_end),
        cmocka_unit_test(stream_fed_byte_at_a_time_yields_each_value_once_complete),
        cmocka_unit_test(byte_0xc1_is_rejected_everywhere),
        cmocka_unit_test(nesting_to_max_depth_is_accepted_and_one_deeper_rejected),
        cmocka_unit_test(ten_thousand_deep_nesting_is_rejected_without_recursion),
        cmocka_unit_test(huge_counts_and_lengths_beyond_the_buffer_are_rejected),
        cmocka_unit_test(check_body_accepts_string_keyed_maps_only),
        cmocka_unit_test(map_find_returns_exact_value_bounds_and_last_duplicate),
        cmocka_unit_test(put_int_is_shortest_and_matches_msgpack_c),
        cmocka_unit_test(put_uint_is_shortest_and_matches_msgpack_c),
        cmocka_unit_test(put_nil_bool_double_match_msgpack_c),
        cmocka_unit_test(headers_are_shortest_and_match_msgpack_c),
        cmocka_unit_test(put_str_and_bin_match_msgpack_c_and_read_back),
        cmocka_unit_test(random_values_round_trip_through_writer_and_reader),
        cmocka_unit_test(buf_reserve_overflow_is_enomem_without_allocating),
        cmocka_unit_test(put_str_longer_than_4gib_is_refused),
#if MDX_FAULT_INJECTION
        cmocka_unit_test(buf_error_is_sticky_after_injected_failure),
        cmocka_unit_test(buf_failed_growth_keeps_the_bytes_already_written),
        cmocka_unit_test(buf_out_of_memory_sweep),
#else
        cmocka_unit_test(fault_injection_not_compiled_in),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
