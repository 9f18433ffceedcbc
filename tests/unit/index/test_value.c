/*
 * Tests for index/value.c: the total order (checked over a ranked table of tricky values, so
 * antisymmetry and transitivity are checked pair by pair and triple by triple), hashing
 * consistent with equality, conversion from msgpack tokens, decoding of every scalar encoding
 * (and refusal of everything else), and shortest encoding with round trips.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/mp.h"
#include "index/value.h"
#include "memdex/error.h"

#define NIL_                                                                                       \
    {                                                                                              \
        .type = MDX_V_NIL                                                                          \
    }
#define FALSE_                                                                                     \
    {                                                                                              \
        .type = MDX_V_FALSE                                                                        \
    }
#define TRUE_                                                                                      \
    {                                                                                              \
        .type = MDX_V_TRUE                                                                         \
    }
#define I(x)                                                                                       \
    {                                                                                              \
        .type = MDX_V_INT, .v = {.i = (x) }                                                        \
    }
#define U(x)                                                                                       \
    {                                                                                              \
        .type = MDX_V_UINT, .v = {.u = (x) }                                                       \
    }
#define D(x)                                                                                       \
    {                                                                                              \
        .type = MDX_V_DOUBLE, .v = {.d = (x) }                                                     \
    }
#define S(s)                                                                                       \
    {                                                                                              \
        .type = MDX_V_STR, .len = sizeof(s) - 1, .v = {.p = (const uint8_t *)(s) }                 \
    }
#define B(s)                                                                                       \
    {                                                                                              \
        .type = MDX_V_BIN, .len = sizeof(s) - 1, .v = {.p = (const uint8_t *)(s) }                 \
    }

/* Same bytes as "ab" at a different address: equality must be by content. */
static const char ab_copy[] = {'a', 'b', 0};
#define AB_COPY                                                                                    \
    {                                                                                              \
        .type = MDX_V_STR, .len = 2, .v = {.p = (const uint8_t *)ab_copy }                         \
    }

typedef struct {
    int rank; /* entries with equal rank are equal; a lower rank orders first */
    mdx_value_t v;
    const char *name;
} ranked_t;

#define R(rank, val)                                                                               \
    {                                                                                              \
        rank, val, #val                                                                            \
    }

static const ranked_t table[] = {
    R(0, NIL_),
    R(1, FALSE_),
    R(2, TRUE_),
    R(3, D(-INFINITY)),
    R(4, D(-1e300)),
    R(5, D(-0x1p64)),
    R(6, I(INT64_MIN)),
    R(6, D(-0x1p63)),
    R(7, I(INT64_MIN + 1)),
    R(8, I(-9007199254740993)), /* -(2^53 + 1): not a double */
    R(9, I(-9007199254740992)),
    R(9, D(-0x1p53)),
    R(10, D(-1.5)),
    R(11, I(-1)),
    R(11, D(-1.0)),
    R(12, D(-0.5)),
    R(13, I(0)),
    R(13, D(0.0)),
    R(13, D(-0.0)),
    R(14, D(0x1p-1074)), /* smallest subnormal */
    R(15, D(0.5)),
    R(16, I(1)),
    R(16, D(1.0)),
    R(17, D(1.5)),
    R(18, I(9007199254740992)), /* 2^53 */
    R(18, D(0x1p53)),
    R(19, I(9007199254740993)), /* 2^53 + 1: rounds to 2^53 as a double */
    R(20, I(9007199254740994)),
    R(20, D(0x1p53 + 2)),
    R(21, I(9223372036854774784)), /* 2^63 - 1024: the largest double below 2^63 */
    R(21, D(0x1.fffffffffffffp62)),
    R(22, I(INT64_MAX - 1)),
    R(23, I(INT64_MAX)),
    R(24, U(9223372036854775808u)), /* 2^63 */
    R(24, D(0x1p63)),
    R(25, U(9223372036854775809u)),
    R(26, U(18446744073709549568u)), /* the largest double below 2^64 */
    R(26, D(0x1.fffffffffffffp63)),
    R(27, U(UINT64_MAX)),
    R(28, D(0x1p64)),
    R(29, D(1e300)),
    R(30, D(INFINITY)),
    R(31, S("")),
    R(32, S("\0")),
    R(33, S("1")),
    R(34, S("a")),
    R(35, S("a\0")),
    R(36, S("ab")),
    R(36, AB_COPY),
    R(37, S("b")),
    R(38, S("\x7f")),
    R(39, S("\x80")), /* bytes compare unsigned */
    R(40, S("\xff")),
    R(41, S("\xff\xff")),
    R(42, B("")),
    R(43, B("\0")),
    R(44, B("1")),
    R(45, B("a")),
    R(46, B("\xff")),
};
#define NTABLE (sizeof table / sizeof table[0])

static int sign(int x)
{
    return (x > 0) - (x < 0);
}

static void test_cmp_orders_table_by_rank(void **state)
{
    (void)state;
    for (size_t i = 0; i < NTABLE; i++) {
        for (size_t j = 0; j < NTABLE; j++) {
            int got = sign(mdx_value_cmp(&table[i].v, &table[j].v));
            int want = sign(table[i].rank - table[j].rank);
            if (got != want)
                fail_msg("cmp(%s, %s) = %d, want %d", table[i].name, table[j].name, got, want);
        }
    }
}

static void test_cmp_is_antisymmetric_and_transitive(void **state)
{
    (void)state;
    for (size_t i = 0; i < NTABLE; i++) {
        const mdx_value_t *a = &table[i].v;
        assert_int_equal(mdx_value_cmp(a, a), 0);
        for (size_t j = 0; j < NTABLE; j++) {
            const mdx_value_t *b = &table[j].v;
            int ab = sign(mdx_value_cmp(a, b));
            if (ab != -sign(mdx_value_cmp(b, a)))
                fail_msg("antisymmetry fails for %s, %s", table[i].name, table[j].name);
            for (size_t k = 0; k < NTABLE; k++) {
                const mdx_value_t *c = &table[k].v;
                int bc = sign(mdx_value_cmp(b, c)), ac = sign(mdx_value_cmp(a, c));
                if (ab <= 0 && bc <= 0 && ac > 0)
                    fail_msg("transitivity fails for %s <= %s <= %s", table[i].name, table[j].name,
                             table[k].name);
                if (ab == 0 && bc == 0 && ac != 0)
                    fail_msg("equality not transitive for %s, %s, %s", table[i].name, table[j].name,
                             table[k].name);
            }
        }
    }
}

static void test_cmp_tricky_number_pairs(void **state)
{
    (void)state;
    static const struct {
        mdx_value_t a, b;
        int want;
    } cases[] = {
        {I(INT64_MAX), D(9223372036854775808.0), -1},
        {U(9223372036854775808u), D(9223372036854775808.0), 0},
        {I(9007199254740993), D(0x1p53), 1},
        {I(9007199254740991), D(0x1p53), -1},
        {D(0.5), I(0), 1},
        {D(0.5), I(1), -1},
        {D(-0.5), I(0), -1},
        {D(-0.5), I(-1), 1},
        {D(-0.0), I(0), 0},
        {D(-0.0), D(0.0), 0},
        {D(-1e300), I(INT64_MIN), -1},
        {D(1e300), I(INT64_MAX), 1},
        {D(1e300), U(UINT64_MAX), 1},
        {D(-1e300), U(9223372036854775808u), -1},
        {I(-1), U(9223372036854775808u), -1},
        {I(INT64_MAX), U(9223372036854775808u), -1},
        {U(UINT64_MAX), D(0x1p64), -1},
        {U(9223372036854775809u), D(0x1p63), 1},
        {U(9223372036854775808u), D(0x1p63 + 2048), -1},
        {I(INT64_MIN), D(-0x1p63 - 2048), 1},
        {D(INFINITY), U(UINT64_MAX), 1},
        {D(-INFINITY), I(INT64_MIN), -1},
        {I(3), D(2.9999999999999996), 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(mdx_value_cmp(&cases[i].a, &cases[i].b), cases[i].want);
        assert_int_equal(mdx_value_cmp(&cases[i].b, &cases[i].a), -cases[i].want);
    }
}

static void test_hash_equal_for_equal_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < NTABLE; i++)
        for (size_t j = 0; j < NTABLE; j++)
            if (table[i].rank == table[j].rank &&
                mdx_value_hash(&table[i].v) != mdx_value_hash(&table[j].v))
                fail_msg("equal values %s and %s hash apart", table[i].name, table[j].name);
}

static void test_hash_differs_for_different_values(void **state)
{
    (void)state;
    /* Not a guarantee in general, but for this table any collision means a lost class or
     * canonicalisation bug (e.g. "1" hashing like 1, or bin like str). */
    for (size_t i = 0; i < NTABLE; i++)
        for (size_t j = 0; j < NTABLE; j++)
            if (table[i].rank != table[j].rank &&
                mdx_value_hash(&table[i].v) == mdx_value_hash(&table[j].v))
                fail_msg("different values %s and %s hash equal", table[i].name, table[j].name);

    mdx_value_t one = I(1), one_str = S("1"), one_bin = B("1"), t = TRUE_;
    assert_int_not_equal(mdx_value_hash(&one), mdx_value_hash(&one_str));
    assert_int_not_equal(mdx_value_hash(&one_str), mdx_value_hash(&one_bin));
    assert_int_not_equal(mdx_value_hash(&one), mdx_value_hash(&t));
}

static void test_from_tok_maps_each_type(void **state)
{
    (void)state;
    static const uint8_t bytes[] = "xyz";
    mdx_mp_tok_t t;
    mdx_value_t v;

    memset(&t, 0, sizeof t);
    t.type = MDX_MP_NIL;
    assert_int_equal(mdx_value_from_tok(&t, &v), 0);
    assert_int_equal(v.type, MDX_V_NIL);

    t.type = MDX_MP_BOOL;
    t.v.b = 0;
    assert_int_equal(mdx_value_from_tok(&t, &v), 0);
    assert_int_equal(v.type, MDX_V_FALSE);
    t.v.b = 1;
    assert_int_equal(mdx_value_from_tok(&t, &v), 0);
    assert_int_equal(v.type, MDX_V_TRUE);

    t.type = MDX_MP_INT;
    t.v.i = -42;
    assert_int_equal(mdx_value_from_tok(&t, &v), 0);
    assert_int_equal(v.type, MDX_V_INT);
    assert_true(v.v.i == -42);

    t.type = MDX_MP_UINT;
    t.v.u = UINT64_MAX;
    assert_int_equal(mdx_value_from_tok(&t, &v), 0);
    assert_int_equal(v.type, MDX_V_UINT);
    assert_true(v.v.u == UINT64_MAX);

    /* A hand-made UINT token in int64 range still yields an INT: the UINT invariant holds. */
    t.v.u = 5;
    assert_int_equal(mdx_value_from_tok(&t, &v), 0);
    assert_int_equal(v.type, MDX_V_INT);
    assert_true(v.v.i == 5);

    t.type = MDX_MP_FLOAT;
    t.v.f = -2.25;
    assert_int_equal(mdx_value_from_tok(&t, &v), 0);
    assert_int_equal(v.type, MDX_V_DOUBLE);
    assert_true(v.v.d == -2.25);

    t.type = MDX_MP_STR;
    t.len = 3;
    t.v.ptr = bytes;
    assert_int_equal(mdx_value_from_tok(&t, &v), 0);
    assert_int_equal(v.type, MDX_V_STR);
    assert_int_equal(v.len, 3);
    assert_ptr_equal(v.v.p, bytes);

    t.type = MDX_MP_BIN;
    t.len = 2;
    assert_int_equal(mdx_value_from_tok(&t, &v), 0);
    assert_int_equal(v.type, MDX_V_BIN);
    assert_int_equal(v.len, 2);
    assert_ptr_equal(v.v.p, bytes);
}

static void test_from_tok_refuses_nan_and_containers(void **state)
{
    (void)state;
    mdx_mp_tok_t t;
    mdx_value_t v;
    memset(&t, 0, sizeof t);

    t.type = MDX_MP_FLOAT;
    t.v.f = NAN;
    assert_int_equal(mdx_value_from_tok(&t, &v), MDX_ENAN);
    t.v.f = -NAN;
    assert_int_equal(mdx_value_from_tok(&t, &v), MDX_ENAN);

    t.type = MDX_MP_ARRAY;
    t.len = 0;
    assert_int_equal(mdx_value_from_tok(&t, &v), MDX_EBADFIELD);
    t.type = MDX_MP_MAP;
    assert_int_equal(mdx_value_from_tok(&t, &v), MDX_EBADFIELD);
    t.type = MDX_MP_EXT;
    t.ext_type = 1;
    t.len = 1;
    t.v.ptr = (const uint8_t *)"x";
    assert_int_equal(mdx_value_from_tok(&t, &v), MDX_EBADFIELD);
}

/* Decodes from a heap copy of exactly len bytes so ASan catches any read past the end. */
static int decode_exact(const void *bytes, size_t len, mdx_value_t *out, uint8_t **copy)
{
    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    memcpy(*copy, bytes, len);
    return mdx_value_decode(*copy, len, out);
}

static void assert_same_value(const mdx_value_t *got, const mdx_value_t *want)
{
    assert_int_equal(got->type, want->type);
    switch (want->type) {
    case MDX_V_INT:
        assert_true(got->v.i == want->v.i);
        break;
    case MDX_V_UINT:
        assert_true(got->v.u == want->v.u);
        break;
    case MDX_V_DOUBLE:
        assert_memory_equal(&got->v.d, &want->v.d, sizeof(double)); /* bit-exact: -0.0 */
        break;
    case MDX_V_STR:
    case MDX_V_BIN:
        assert_int_equal(got->len, want->len);
        if (want->len)
            assert_memory_equal(got->v.p, want->v.p, want->len);
        break;
    default:
        break;
    }
}

typedef struct {
    const char *bytes;
    size_t len;
    size_t hdr; /* STR/BIN: header size, so the view must point at bytes + hdr */
    mdx_value_t want;
    const char *name;
} enc_case_t;

#define E(lit, hdr, val)                                                                           \
    {                                                                                              \
        lit, sizeof(lit) - 1, hdr, val, #lit                                                       \
    }

static const enc_case_t encodings[] = {
    E("\xc0", 0, NIL_),
    E("\xc2", 0, FALSE_),
    E("\xc3", 0, TRUE_),
    E("\x00", 0, I(0)),
    E("\x7f", 0, I(127)),
    E("\xff", 0, I(-1)),
    E("\xe0", 0, I(-32)),
    E("\xcc\x01", 0, I(1)), /* non-canonical but valid */
    E("\xcc\xff", 0, I(255)),
    E("\xcd\xff\xff", 0, I(65535)),
    E("\xce\xff\xff\xff\xff", 0, I(4294967295)),
    E("\xcf\x00\x00\x00\x00\x00\x00\x00\x05", 0, I(5)),
    E("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 0, I(INT64_MAX)),
    E("\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 0, U(9223372036854775808u)),
    E("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 0, U(UINT64_MAX)),
    E("\xd0\x80", 0, I(-128)),
    E("\xd0\x05", 0, I(5)),
    E("\xd1\x80\x00", 0, I(-32768)),
    E("\xd2\x80\x00\x00\x00", 0, I(-2147483648)),
    E("\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 0, I(INT64_MIN)),
    E("\xd3\xff\xff\xff\xff\xff\xff\xff\xfe", 0, I(-2)),
    E("\xca\x3f\xc0\x00\x00", 0, D(1.5)),
    E("\xca\x80\x00\x00\x00", 0, D(-0.0)),
    E("\xca\x7f\x80\x00\x00", 0, D(INFINITY)),
    E("\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", 0, D(1.5)),
    E("\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a", 0, D(0.1)),
    E("\xcb\xff\xf0\x00\x00\x00\x00\x00\x00", 0, D(-INFINITY)),
    E("\xa0", 1, S("")),
    E("\xa3"
      "abc",
      1, S("abc")),
    E("\xd9\x03"
      "abc",
      2, S("abc")),
    E("\xda\x00\x03"
      "abc",
      3, S("abc")),
    E("\xdb\x00\x00\x00\x03"
      "abc",
      5, S("abc")),
    E("\xc4\x00", 2, B("")),
    E("\xc4\x02\x00\xff", 2, B("\x00\xff")),
    E("\xc5\x00\x02\x00\xff", 3, B("\x00\xff")),
    E("\xc6\x00\x00\x00\x02\x00\xff", 5, B("\x00\xff")),
};

static void test_decode_every_scalar_encoding(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof encodings / sizeof encodings[0]; i++) {
        const enc_case_t *c = &encodings[i];
        mdx_value_t v;
        uint8_t *copy;
        int rc = decode_exact(c->bytes, c->len, &v, &copy);
        if (rc != 0)
            fail_msg("decode %s: rc %d", c->name, rc);
        assert_same_value(&v, &c->want);
        if (c->want.type == MDX_V_STR || c->want.type == MDX_V_BIN)
            assert_ptr_equal(v.v.p, copy + c->hdr); /* a view, not a copy */
        free(copy);

        /* Every proper prefix is truncated. */
        for (size_t k = 0; k < c->len; k++) {
            rc = decode_exact(c->bytes, k, &v, &copy);
            if (rc != MDX_EPROTO)
                fail_msg("decode of %zu-byte prefix of %s: rc %d", k, c->name, rc);
            free(copy);
        }
    }
}

static void test_decode_long_strings(void **state)
{
    (void)state;
    size_t lens[] = {31, 32, 255, 256, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int bin = 0; bin <= 1; bin++) {
            uint8_t *src = malloc(lens[i]);
            assert_non_null(src);
            for (size_t k = 0; k < lens[i]; k++)
                src[k] = (uint8_t)(k * 7);
            mdx_buf_t b;
            mdx_buf_init(&b);
            if (bin)
                mdx_mp_put_bin(&b, src, lens[i]);
            else
                mdx_mp_put_str(&b, src, lens[i]);
            assert_int_equal(b.err, 0);
            mdx_value_t v;
            uint8_t *copy;
            assert_int_equal(decode_exact(b.data, b.len, &v, &copy), 0);
            assert_int_equal(v.type, bin ? MDX_V_BIN : MDX_V_STR);
            assert_int_equal(v.len, lens[i]);
            assert_ptr_equal(v.v.p, copy + (b.len - lens[i]));
            assert_memory_equal(v.v.p, src, lens[i]);
            free(copy);
            /* One byte short of the payload. */
            assert_int_equal(decode_exact(b.data, b.len - 1, &v, &copy), MDX_EPROTO);
            free(copy);
            mdx_buf_fini(&b);
            free(src);
        }
    }
}

typedef struct {
    const char *bytes;
    size_t len;
    int want;
    const char *name;
} bad_case_t;

#define BAD(lit, want)                                                                             \
    {                                                                                              \
        lit, sizeof(lit) - 1, want, #lit                                                           \
    }

static void test_decode_refuses_malformed_and_unindexable(void **state)
{
    (void)state;
    static const bad_case_t cases[] = {
        {"", 0, MDX_EPROTO, "empty"},
        BAD("\xc1", MDX_EPROTO),
        BAD("\xc0\xc0", MDX_EPROTO),
        BAD("\x01\x00", MDX_EPROTO),
        BAD("\xa1"
            "ab",
            MDX_EPROTO),
        BAD("\xcd\xff", MDX_EPROTO),
        BAD("\xcb\x00\x00\x00\x00\x00\x00\x00", MDX_EPROTO),
        BAD("\xdb\xff\xff\xff\xff"
            "a",
            MDX_EPROTO),
        BAD("\x91", MDX_EPROTO),
        BAD("\x91\xc1", MDX_EPROTO),
        BAD("\x81\x01", MDX_EPROTO),
        BAD("\x90\xc0", MDX_EPROTO),
        BAD("\x90", MDX_EBADFIELD),
        BAD("\x80", MDX_EBADFIELD),
        BAD("\x92\x01\x02", MDX_EBADFIELD),
        BAD("\x81\xa1"
            "a"
            "\x91\x01",
            MDX_EBADFIELD),
        BAD("\xdc\x00\x01\xc0", MDX_EBADFIELD),
        BAD("\xd4\x01\x00", MDX_EBADFIELD),
        BAD("\xc7\x01\x05\x00", MDX_EBADFIELD),
        BAD("\xd4\x01", MDX_EPROTO),
        BAD("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", MDX_ENAN),
        BAD("\xcb\xff\xf8\x00\x00\x00\x00\x00\x01", MDX_ENAN),
        BAD("\xca\x7f\xc0\x00\x00", MDX_ENAN),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mdx_value_t v;
        uint8_t *copy;
        int rc = decode_exact(cases[i].bytes, cases[i].len, &v, &copy);
        free(copy);
        if (rc != cases[i].want)
            fail_msg("decode %s: rc %d, want %d", cases[i].name, rc, cases[i].want);
    }
}

static void test_encode_is_shortest(void **state)
{
    (void)state;
    static const enc_case_t cases[] = {
        E("\xc0", 0, NIL_),
        E("\xc2", 0, FALSE_),
        E("\xc3", 0, TRUE_),
        E("\x00", 0, I(0)),
        E("\x7f", 0, I(127)),
        E("\xcc\x80", 0, I(128)),
        E("\xcc\xff", 0, I(255)),
        E("\xcd\x01\x00", 0, I(256)),
        E("\xce\x00\x01\x00\x00", 0, I(65536)),
        E("\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 0, I(4294967296)),
        E("\xff", 0, I(-1)),
        E("\xe0", 0, I(-32)),
        E("\xd0\xdf", 0, I(-33)),
        E("\xd0\x80", 0, I(-128)),
        E("\xd1\xff\x7f", 0, I(-129)),
        E("\xd2\xff\xff\x7f\xff", 0, I(-32769)),
        E("\xd3\xff\xff\xff\xff\x7f\xff\xff\xff", 0, I(-2147483649)),
        E("\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 0, I(INT64_MIN)),
        E("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 0, I(INT64_MAX)),
        E("\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 0, U(9223372036854775808u)),
        E("\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", 0, D(1.5)),
        E("\xcb\x80\x00\x00\x00\x00\x00\x00\x00", 0, D(-0.0)),
        E("\xa0", 0, S("")),
        E("\xa3"
          "abc",
          0, S("abc")),
        E("\xc4\x00", 0, B("")),
        E("\xc4\x01\xff", 0, B("\xff")),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mdx_buf_t b;
        mdx_buf_init(&b);
        mdx_value_encode(&b, &cases[i].want);
        assert_int_equal(b.err, 0);
        if (b.len != cases[i].len || memcmp(b.data, cases[i].bytes, b.len) != 0)
            fail_msg("encoding of case %zu is not %s", i, cases[i].name);
        mdx_buf_fini(&b);
    }

    /* String and binary headers switch width at the msgpack limits. */
    static const struct {
        size_t len;
        size_t hdr;
        uint8_t str0, bin0;
    } widths[] = {
        {31, 1, 0xbf, 0xc4},  {32, 2, 0xd9, 0xc4},    {255, 2, 0xd9, 0xc4},
        {256, 3, 0xda, 0xc5}, {65535, 3, 0xda, 0xc5}, {65536, 5, 0xdb, 0xc6},
    };
    static uint8_t zeros[65536];
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        mdx_value_t s = {.type = MDX_V_STR, .len = (uint32_t)widths[i].len, .v = {.p = zeros}};
        mdx_value_t bn = s;
        bn.type = MDX_V_BIN;
        mdx_buf_t b;
        mdx_buf_init(&b);
        mdx_value_encode(&b, &s);
        assert_int_equal(b.len, widths[i].hdr + widths[i].len);
        assert_int_equal(b.data[0], widths[i].str0);
        mdx_buf_fini(&b);
        mdx_buf_init(&b);
        mdx_value_encode(&b, &bn);
        size_t bhdr = widths[i].len < 256 ? 2 : widths[i].len < 65536 ? 3 : 5;
        assert_int_equal(b.len, bhdr + widths[i].len);
        assert_int_equal(b.data[0], widths[i].bin0);
        mdx_buf_fini(&b);
    }
}

static void test_encode_decode_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < NTABLE; i++) {
        mdx_buf_t b;
        mdx_buf_init(&b);
        mdx_value_encode(&b, &table[i].v);
        assert_int_equal(b.err, 0);
        mdx_value_t v;
        uint8_t *copy;
        int rc = decode_exact(b.data, b.len, &v, &copy);
        if (rc != 0)
            fail_msg("round trip of %s: rc %d", table[i].name, rc);
        assert_same_value(&v, &table[i].v);
        assert_int_equal(mdx_value_cmp(&v, &table[i].v), 0);
        assert_true(mdx_value_hash(&v) == mdx_value_hash(&table[i].v));
        free(copy);
        mdx_buf_fini(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmp_orders_table_by_rank),
        cmocka_unit_test(test_cmp_is_antisymmetric_and_transitive),
        cmocka_unit_test(test_cmp_tricky_number_pairs),
        cmocka_unit_test(test_hash_equal_for_equal_values),
        cmocka_unit_test(test_hash_differs_for_different_values),
        cmocka_unit_test(test_from_tok_maps_each_type),
        cmocka_unit_test(test_from_tok_refuses_nan_and_containers),
        cmocka_unit_test(test_decode_every_scalar_encoding),
        cmocka_unit_test(test_decode_long_strings),
        cmocka_unit_test(test_decode_refuses_malformed_and_unindexable),
        cmocka_unit_test(test_encode_is_shortest),
        cmocka_unit_test(test_encode_decode_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
