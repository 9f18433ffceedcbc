/*
 * client/cli/json.c, the CLI's JSON <-> msgpack transcoder, with jansson as an independent
 * oracle: both must accept and refuse the same texts, agree on every value, and what the
 * renderer writes must be JSON that jansson reads. Also: every prefix of a valid text, the
 * documented tags, the bijection on random msgpack values (fixed seed; MDX_SEED overrides it),
 * and out-of-memory sweeps in builds with fault injection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli/json.h"
#include "common/alloc.h"
#include "memdex/error.h"

static char *hex(const uint8_t *p, size_t n)
{
    char *s = malloc(2 * n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        sprintf(s + 2 * i, "%02x", p[i]);
    s[2 * n] = '\0';
    return s;
}

/* JSON text -> msgpack hex, or NULL when refused. */
static char *to_mp_hex(const char *json)
{
    mdx_buf_t b;
    mdx_buf_init(&b);
    int rc = mdx__json_to_mp(json, strlen(json), &b, NULL);
    char *h = rc ? NULL : hex(b.data, b.len);
    if (rc)
        assert_int_equal(b.len, 0);
    mdx_buf_fini(&b);
    return h;
}

/* msgpack bytes -> JSON text (caller frees). */
static char *to_json(const uint8_t *p, size_t n)
{
    mdx_buf_t o;
    mdx_buf_init(&o);
    const uint8_t *q = p;
    assert_int_equal(mdx__mp_to_json(&q, p + n, &o), 0);
    assert_ptr_equal(q, p + n);
    mdx_buf_append(&o, "", 1);
    char *s = strdup((const char *)o.data);
    mdx_buf_fini(&o);
    return s;
}

static void expect_mp(const char *json, const char *want_hex)
{
    char *h = to_mp_hex(json);
    if (!h)
        fail_msg("refused: %s", json);
    if (strcmp(h, want_hex) != 0)
        fail_msg("%s -> %s, want %s", json, h, want_hex);
    free(h);
}

static void expect_refused(const char *json, size_t want_offset, const char *want_msg)
{
    mdx_buf_t b;
    mdx_buf_init(&b);
    mdx_buf_append(&b, "x", 1); /* what was there before must stay */
    mdx_json_err_t e;
    assert_int_equal(mdx__json_to_mp(json, strlen(json), &b, &e), MDX_EINVAL);
    assert_int_equal(b.len, 1);
    if (e.offset != want_offset || strcmp(e.msg, want_msg) != 0)
        fail_msg("%s: offset %zu '%s', want %zu '%s'", json, e.offset, e.msg, want_offset,
                 want_msg);
    mdx_buf_fini(&b);
}

/* Walks a msgpack value and a jansson value together; fails on any difference. */
static void same_value(const uint8_t **p, const uint8_t *e, json_t *j)
{
    mdx_mp_tok_t t;
    assert_int_equal(mdx_mp_read(p, e, &t), 0);
    switch (t.type) {
    case MDX_MP_NIL:
        assert_true(json_is_null(j));
        break;
    case MDX_MP_BOOL:
        assert_true(json_is_boolean(j));
        assert_int_equal(t.v.b, json_is_true(j));
        break;
    case MDX_MP_INT:
        assert_true(json_is_integer(j));
        assert_true(t.v.i == json_integer_value(j));
        break;
    case MDX_MP_FLOAT:
        /* jansson reads integer literals beyond int64 as errors, so floats are real. */
        assert_true(json_is_real(j));
        assert_true(t.v.f == json_real_value(j));
        break;
    case MDX_MP_STR:
        assert_true(json_is_string(j));
        assert_int_equal(t.len, json_string_length(j));
        assert_memory_equal(t.v.ptr, json_string_value(j), t.len);
        break;
    case MDX_MP_ARRAY:
        assert_true(json_is_array(j));
        assert_int_equal(t.len, json_array_size(j));
        for (uint32_t i = 0; i < t.len; i++)
            same_value(p, e, json_array_get(j, i));
        break;
    case MDX_MP_MAP: {
        assert_true(json_is_object(j));
        assert_int_equal(t.len, json_object_size(j));
        void *it = json_object_iter(j);
        for (uint32_t i = 0; i < t.len; i++, it = json_object_iter_next(j, it)) {
            mdx_mp_tok_t k;
            assert_non_null(it);
            assert_int_equal(mdx_mp_read(p, e, &k), 0);
            assert_int_equal(k.type, MDX_MP_STR);
            const char *jk = json_object_iter_key(it);
            assert_int_equal(k.len, strlen(jk));
            assert_memory_equal(k.v.ptr, jk, k.len);
            same_value(p, e, json_object_iter_value(it));
        }
        break;
    }
    default:
        fail_msg("unexpected msgpack type %d", (int)t.type);
    }
}

/* Both parsers accept text or both refuse it; when accepted, the values agree. */
static void agree_with_jansson(const char *text, size_t n)
{
    json_error_t je;
    json_t *j = json_loadb(text, n, JSON_DECODE_ANY, &je);
    mdx_buf_t b;
    mdx_buf_init(&b);
    int rc = mdx__json_to_mp(text, n, &b, NULL);
    if ((rc == 0) != (j != NULL))
        fail_msg("'%.*s': memdex %s, jansson %s (%s)", (int)n, text, rc ? "refuses" : "accepts",
                 j ? "accepts" : "refuses", j ? "" : je.text);
    if (j) {
        const uint8_t *p = b.data;
        same_value(&p, b.data + b.len, j);
        assert_ptr_equal(p, b.data + b.len);
        json_decref(j);
    }
    mdx_buf_fini(&b);
}

/* Texts both parsers must treat alike (no tags, no integers beyond int64, no \u0000: those
 * are where memdex deliberately differs, tested separately). */
static const char *const corpus[] = {
    "0",
    "-0",
    "1",
    "-1",
    "42",
    "127",
    "128",
    "255",
    "256",
    "65535",
    "65536",
    "-32",
    "-33",
    "-128",
    "-129",
    "-32768",
    "-32769",
    "4294967295",
    "4294967296",
    "-2147483648",
    "9223372036854775807",
    "-9223372036854775808",
    "1.5",
    "-0.0",
    "0.1",
    "1e3",
    "1E-3",
    "2.5e+10",
    "123.456e-7",
    "true",
    "false",
    "null",
    "\"\"",
    "\"abc\"",
    "\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t\"",
    "\"\\u00e9\\u4e2d\\ud83d\\ude00\"",
    "\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\"",
    "[]",
    "{}",
    "[1,[2,[3,[4]]]]",
    "{\"a\":{\"b\":{\"c\":[true,false,null]}}}",
    " { \"k\" : [ 1 , 2 ] } ",
    "{\"name\":\"ann\",\"age\":31,\"tags\":[\"x\",\"y\"],\"score\":99.5}",
    "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19]",
    "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,"
    "\"k\":11,\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":16,\"q\":17}",
    "\"a string longer than thirty-one bytes, so str8\"",
    /* refused by both */
    "",
    " ",
    "[",
    "]",
    "{",
    "}",
    "[1,]",
    "[,1]",
    "{\"a\"}",
    "{\"a\":}",
    "{\"a\":1,}",
    "{1:2}",
    "01",
    "-",
    "+1",
    ".5",
    "1.",
    "1e",
    "1e+",
    "0x10",
    "NaN",
    "Infinity",
    "tru",
    "nul",
    "\"",
    "\"abc",
    "\"\\x\"",
    "\"\\u12\"",
    "\"\\ud800\"",
    "\"\\udc00\"",
    "\"\\ud800\\u0041\"",
    "\"\x01\"",
    "\"\xc3\"",
    "\"\xc0\x80\"",
    "\"\xed\xa0\x80\"",
    "\"\xf4\x90\x80\x80\"",
    "\"\xff\"",
    "[1 2]",
    "{\"a\":1 \"b\":2}",
    "1 2",
    "[1]x",
    "'a'",
};

static void agrees_with_jansson_on_a_corpus(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++)
        agree_with_jansson(corpus[i], strlen(corpus[i]));
}

static void every_prefix_is_judged_like_jansson(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
        size_t n = strlen(corpus[i]);
        /* Each prefix in its own allocation, so reading one byte past it is an ASan error. */
        for (size_t k = 0; k < n; k++) {
            char *c = malloc(k ? k : 1);
            assert_non_null(c);
            memcpy(c, corpus[i], k);
            agree_with_jansson(c, k);
            free(c);
        }
    }
}

static void numbers_become_the_shortest_int_or_a_float64(void **state)
{
    (void)state;
    expect_mp("0", "00");
    expect_mp("127", "7f");
    expect_mp("128", "cc80");
    expect_mp("-1", "ff");
    expect_mp("-33", "d0df");
    expect_mp("18446744073709551615", "cfffffffffffffffff");
    expect_mp("-9223372036854775808", "d38000000000000000");
    expect_mp("1.0", "cb3ff0000000000000");
    expect_mp("1e0", "cb3ff0000000000000");
    /* Integer literals beyond both ranges are floats. */
    expect_mp("18446744073709551616", "cb43f0000000000000");
    expect_mp("-9223372036854775809", "cbc3e0000000000000");
    expect_mp("[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]", "dc0010"
                                                          "0102030405060708090a0b0c0d0e0f10");
}

static void tags_stand_for_what_json_cannot_hold(void **state)
{
    (void)state;
    expect_mp("{\"$bin\":\"00ff\"}", "c40200ff");
    expect_mp("{\"$bin\":\"\"}", "c400");
    expect_mp("{\"$str\":\"ff\"}", "a1ff");
    expect_mp("{\"$ext\":[5,\"0102\"]}", "d5050102");
    expect_mp("{\"$ext\":[-1,\"010203\"]}", "c703ff010203");
    expect_mp("{\"$float\":\"NaN\"}", "cb7ff8000000000000");
    expect_mp("{\"$float\":\"-Infinity\"}", "cbfff0000000000000");
    expect_mp("{\"$map\":[[1,2],[\"a\",null]]}", "820102a161c0");
    expect_mp("{\"$map\":{\"$bin\":\"zz\"}}", "81a42462696ea27a7a");
    expect_mp("{\"$map\":{\"a\":{\"$bin\":\"01\"}}}", "81a161c40101");
    /* With a second member, an object is a plain map whatever its keys. */
    expect_mp("{\"$bin\":\"00\",\"x\":1}", "82a42462696ea23030a17801");
    expect_mp("{\"x\":1,\"$bin\":\"00\"}", "82a17801a42462696ea23030");
    /* Escapes in the key name the same tag. */
    expect_mp("{\"\\u0024bin\":\"01\"}", "c40101");
    /* Keys that merely start with '$' are plain. */
    expect_mp("{\"$other\":1}", "81a6246f7468657201");
    expect_refused("{\"$bin\":\"0\"}", 8, "hex string of odd length");
    expect_refused("{\"$bin\":\"0g\"}", 8, "bad hex digit");
    expect_refused("{\"$bin\":1}", 8, "$bin needs a hex string");
    expect_refused("{\"$float\":\"nan\"}", 10,
                   "$float must be \"NaN\", \"Infinity\" or \"-Infinity\"");
    expect_refused("{\"$ext\":[200,\"00\"]}", 8, "$ext needs [type (-128..127), \"hex\"]");
    expect_refused("{\"$map\":[[1]]}", 8, "$map pairs must be [key, value] arrays");
    expect_refused("{\"$map\":3}", 8, "$map needs an object or an array of [key, value] pairs");
}

static void errors_say_where_and_why(void **state)
{
    (void)state;
    expect_refused("{\"a\":}", 5, "unexpected character");
    expect_refused("[1,2", 4, "unexpected end of input");
    expect_refused("{\"a\" 1}", 5, "expected ':'");
    expect_refused("[1 2]", 3, "expected ',' or ']'");
    expect_refused("{\"a\":1 \"b\":2}", 7, "expected ',' or '}'");
    expect_refused("\"abc", 4, "unterminated string");
    expect_refused("\"\\q\"", 1, "bad escape in string");
    expect_refused("\"\\ud800x\"", 1, "unpaired surrogate in \\u escape");
    expect_refused("1 2", 2, "unexpected text after the value");
    expect_refused("\"\xc3(\"", 1, "invalid UTF-8 in string");
    expect_refused("-x", 1, "bad number");
    expect_refused("1.e5", 2, "bad number: digit expected after '.'");
}

static void rendering_is_json_that_reads_back_as_the_same_bytes(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "{\"name\":\"ann\",\"age\":31}",
        "[1.5,-0.0,1e+300,5e-324,0.1,100.0,1.7976931348623157e+308]",
        "\"ctl \\u0001\\u001f \\b\\f\\n\\r\\t \\\" \\\\ / \xc3\xa9\"",
        "{\"$bin\":\"00ff\"}",
        "{\"$str\":\"ff\"}",
        "{\"$ext\":[5,\"0102\"]}",
        "{\"$float\":\"Infinity\"}",
        "{\"$map\":[[1,2],[{\"$bin\":\"01\"},null]]}",
        "{\"$map\":{\"$map\":{\"a\":1}}}",
        "[18446744073709551615,-9223372036854775808,0,-1]",
        "{}",
        "[]",
        "[[],{},[{}]]"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        mdx_buf_t b;
        mdx_buf_init(&b);
        assert_int_equal(mdx__json_to_mp(texts[i], strlen(texts[i]), &b, NULL), 0);
        char *out = to_json(b.data, b.len);
        if (strcmp(out, texts[i]) != 0)
            fail_msg("%s rendered as %s", texts[i], out);
        json_error_t je;
        json_t *j = json_loads(out, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        /* jansson refuses only integers beyond int64 */
        if (!j && !strstr(texts[i], "18446744073709551615"))
            fail_msg("jansson refuses %s: %s", out, je.text);
        json_decref(j);
        free(out);
        mdx_buf_fini(&b);
    }
}

/* ---- random msgpack values: render, parse, same bytes ---- */

static uint64_t rng;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void rand_value(mdx_buf_t *b, int depth)
{
    int k = (int)(rnd() % (depth > 4 ? 8 : 11));
    uint8_t bytes[40];
    size_t n = rnd() % sizeof(bytes);
    for (size_t i = 0; i < n; i++)
        bytes[i] = (uint8_t)(rnd() % 4 == 0 ? rnd() : 'a' + rnd() % 26);
    switch (k) {
    case 0:
        mdx_mp_put_nil(b);
        break;
    case 1:
        mdx_mp_put_bool(b, (int)(rnd() & 1));
        break;
    case 2:
        mdx_mp_put_int(b, (int64_t)rnd() >> (rnd() % 64));
        break;
    case 3:
        mdx_mp_put_uint(b, rnd() >> (rnd() % 64));
        break;
    case 4: {
        uint64_t u = rnd();
        double d;
        memcpy(&d, &u, 8);
        if (isnan(d))
            d = 0.5; /* NaN payloads are not kept: {"$float": "NaN"} is one NaN */
        mdx_mp_put_double(b, rnd() % 2 ? d : (double)(int64_t)(rnd() % 1000) / 8);
        break;
    }
    case 5:
        mdx_mp_put_str(b, bytes, n); /* often not UTF-8: {"$str": ...} */
        break;
    case 6:
        mdx_mp_put_bin(b, bytes, n);
        break;
    case 7: {
        /* ext: fixext or ext8, depending on the size */
        static const uint8_t fix[] = {0xd4, 0xd5, 0xd6, 0xd7, 0xd8};
        static const size_t fixn[] = {1, 2, 4, 8, 16};
        size_t f = rnd() % 6;
        if (f < 5) {
            uint8_t h[2] = {fix[f], (uint8_t)rnd()};
            mdx_buf_append(b, h, 2);
            mdx_buf_append(b, bytes, fixn[f] <= n ? fixn[f] : 0);
            if (fixn[f] > n)
                for (size_t i = 0; i < fixn[f]; i++)
                    mdx_buf_append(b, "z", 1);
        } else {
            uint8_t h[3] = {0xc7,
                            (uint8_t)(n == 1 || n == 2 || n == 4 || n == 8 || n == 16 ? 0 : n),
                            (uint8_t)rnd()};
            mdx_buf_append(b, h, 3);
            mdx_buf_append(b, bytes, h[1]);
        }
        break;
    }
    case 8:
    case 9: {
        uint32_t m = (uint32_t)(rnd() % 20);
        mdx_mp_put_array(b, m);
        for (uint32_t i = 0; i < m; i++)
            rand_value(b, depth + 1);
        break;
    }
    default: {
        uint32_t m = (uint32_t)(rnd() % 18);
        mdx_mp_put_map(b, m);
        for (uint32_t i = 0; i < m; i++) {
            if (rnd() % 8 == 0)
                rand_value(b, depth + 1); /* any key: {"$map": [[k, v], ...]} */
            else if (rnd() % 4 == 0) {
                static const char *const tags[] = {"$bin", "$str", "$ext", "$map", "$float"};
                const char *t = tags[rnd() % 5];
                mdx_mp_put_str(b, t, strlen(t));
            } else
                mdx_mp_put_str(b, bytes, n % 6);
            rand_value(b, depth + 1);
        }
        break;
    }
    }
}

static void random_values_survive_render_and_parse(void **state)
{
    (void)state;
    const char *env = getenv("MDX_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 0x6d656d646578ULL;
    rng = seed ? seed : 1;
    for (int it = 0; it < 3000; it++) {
        mdx_buf_t b, back;
        mdx_buf_init(&b);
        mdx_buf_init(&back);
        rand_value(&b, 0);
        assert_int_equal(b.err, 0);
        char *text = to_json(b.data, b.len);
        mdx_json_err_t e;
        int rc = mdx__json_to_mp(text, strlen(text), &back, &e);
        if (rc || back.len != b.len || memcmp(back.data, b.data, b.len) != 0) {
            char *h1 = hex(b.data, b.len), *h2 = hex(back.data, back.len);
            fail_msg("seed %llu iteration %d: %s\n-> %s\n-> %s (rc %d: %s)",
                     (unsigned long long)seed, it, h1, text, h2, rc, rc ? e.msg : "");
        }
        free(text);
        mdx_buf_fini(&b);
        mdx_buf_fini(&back);
    }
}

static void out_of_memory_fails_cleanly(void **state)
{
    (void)state;
#if MDX_FAULT_INJECTION
    const char *text = "{\"name\":\"a string longer than sixty-four bytes, to make the buffer grow "
                       "twice\",\"esc\":\"\\n\\t\",\"n\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,"
                       "17],\"f\":1.5e300,\"t\":{\"$bin\":\"00ff\"}}";
    for (long n = 0;; n++) {
        mdx_buf_t b;
        mdx_buf_init(&b);
        mdx_alloc_fail_after(n);
        mdx_json_err_t e;
        int rc = mdx__json_to_mp(text, strlen(text), &b, &e);
        int triggered = mdx_alloc_fail_triggered();
        mdx_alloc_fail_reset();
        mdx_buf_fini(&b);
        if (rc == 0) {
            assert_false(triggered);
            break;
        }
        assert_int_equal(rc, MDX_ENOMEM);
        assert_string_equal(e.msg, "out of memory");
        assert_true(n < 1000);
    }
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(agrees_with_jansson_on_a_corpus),
        cmocka_unit_test(every_prefix_is_judged_like_jansson),
        cmocka_unit_test(numbers_become_the_shortest_int_or_a_float64),
        cmocka_unit_test(tags_stand_for_what_json_cannot_hold),
        cmocka_unit_test(errors_say_where_and_why),
        cmocka_unit_test(rendering_is_json_that_reads_back_as_the_same_bytes),
        cmocka_unit_test(random_values_survive_render_and_parse),
        cmocka_unit_test(out_of_memory_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
