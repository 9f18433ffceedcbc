/*
 * Hostile bytes: garbage, truncated frames, empty and oversized frames, payloads that are not
 * msgpack or not the envelope, unknown ops, missing and extra arguments, 10,000-deep nesting,
 * headers claiming 4 billion elements or strings longer than the frame. Each gets the
 * documented reply (PROTO/UNKNOWNOP/BADARGS and the connection goes on; FRAMETOOBIG and the
 * connection is closed), the server never crashes, and what a well-behaved client stored
 * earlier is unchanged afterwards. Random inputs use a fixed seed (MDX_SEED overrides it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "memdex/error.h"
#include "protocol/response.h"
#include "tests/integration/harness.h"

typedef struct {
    mdx_srv_t srv;
    mdx_cli_t w; /* the witness: stores records first, checks them last */
    mdx_cli_t c; /* the client sending bad bytes */
} fx_t;

static const char *const witness_bodies[] = {
    "{\"name\":\"ada\",\"n\":1}",
    "{\"name\":\"bob\",\"n\":2,\"tags\":[\"x\"]}",
    "{\"name\":\"cy\",\"n\":3}",
};

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    const char *extra[] = {"--log-level", "debug", NULL};
    mdx_srv_start(&f->srv, extra);
    assert_int_equal(mdx_cli_connect(&f->w, f->srv.port), 0);
    mdx_expect_ok(&f->w, "create_collection", "{\"name\":\"w\"}", "null");
    mdx_expect_ok(&f->w, "create_index",
                  "{\"coll\":\"w\",\"name\":\"n\",\"field\":\"n\",\"kind\":\"skiplist\"}", "null");
    char args[256];
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof(args), "{\"coll\":\"w\",\"key\":%d,\"body\":%s}", i,
                 witness_bodies[i]);
        mdx_expect_ok(&f->w, "put", args, "null");
    }
    assert_int_equal(mdx_cli_connect(&f->c, f->srv.port), 0);
    *state = f;
    return 0;
}

static void witness_unchanged(fx_t *f)
{
    char args[256];
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof(args), "{\"coll\":\"w\",\"key\":%d}", i);
        mdx_expect_ok(&f->w, "get", args, witness_bodies[i]);
    }
    mdx_expect_ok(&f->w, "list_collections", "{}",
                  "[{\"name\":\"w\",\"records\":3,\"indexes\":[{\"name\":\"n\",\"field\":"
                  "\"n\",\"kind\":\"skiplist\",\"unique\":false,\"entries\":3}],"
                  "\"capacity\":0,\"policy\":\"s3fifo\",\"default_ttl_ms\":0}]");
    mdx_expect_ok(&f->w, "count", "{\"coll\":\"w\",\"index\":\"n\",\"ge\":1}", "3");
}

static int teardown(void **state)
{
    fx_t *f = *state;
    witness_unchanged(f);
    mdx_cli_close(&f->c);
    mdx_cli_close(&f->w);
    int st = mdx_srv_stop(&f->srv, 0);
    free(f);
    assert_true(WIFEXITED(st)); /* not killed by a signal (ASan aborts would show here) */
    assert_int_equal(WEXITSTATUS(st), 0);
    return 0;
}

/* Sends one frame around payload and expects the error reply (id, code) with the connection
 * still usable. */
static void expect_frame_err(mdx_cli_t *c, const void *payload, size_t n, uint64_t id, int code)
{
    mdx_buf_t b;
    mdx_buf_init(&b);
    mdx_frame_raw(&b, payload, n);
    mdx_cli_send(c, b.data, b.len);
    mdx_buf_fini(&b);
    mdx_reply_t r;
    assert_int_equal(mdx_cli_recv(c, &r, 0), 0);
    char *body = mdx_mp_to_json(r.body, r.body_len);
    if (r.id != id || r.status != code)
        fail_msg("want [%llu, %s], got [%llu, %d, %s]", (unsigned long long)id, mdx_err_name(code),
                 (unsigned long long)r.id, r.status, body);
    char want[64];
    snprintf(want, sizeof(want), "{\"code\":\"%s\",\"message\":\"", mdx_err_name(code));
    assert_true(strncmp(body, want, strlen(want)) == 0);
    free(body);
    mdx_reply_free(&r);
    mdx_expect_ok(c, "ping", "{}", "\"pong\""); /* framing intact: the connection goes on */
}

/* Expects [0, FRAMETOOBIG, ...] and then the end of the connection. */
static void expect_frametoobig_and_close(mdx_cli_t *c)
{
    mdx_reply_t r;
    assert_int_equal(mdx_cli_recv(c, &r, 0), 0);
    assert_int_equal(r.id, 0);
    assert_int_equal(r.status, MDX_EFRAMETOOBIG);
    char *body = mdx_mp_to_json(r.body, r.body_len);
    assert_non_null(strstr(body, "{\"code\":\"FRAMETOOBIG\",\"message\":\"frame of "));
    assert_non_null(strstr(body, " bytes exceeds the limit of 33554432\"}"));
    free(body);
    mdx_reply_free(&r);
    assert_true(mdx_cli_wait_closed(c, 0));
}

static uint32_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 11);
}

static uint64_t seed(void)
{
    const char *e = getenv("MDX_SEED");
    uint64_t s = e ? strtoull(e, NULL, 0) : 0x6d656d646578ull;
    print_message("seed %llu (set MDX_SEED to repeat)\n", (unsigned long long)s);
    return s ? s : 1;
}

static void random_payloads_in_frames_each_get_one_error(void **state)
{
    fx_t *f = *state;
    uint64_t s = seed();
    enum { N = 300 };
    mdx_buf_t b;
    mdx_buf_init(&b);
    uint8_t p[256];
    for (int i = 0; i < N; i++) {
        size_t n = rnd(&s) % sizeof(p);
        for (size_t j = 0; j < n; j++)
            p[j] = (uint8_t)rnd(&s);
        if (n && i % 2)
            p[0] = 0x93; /* half of them start like an envelope */
        mdx_frame_raw(&b, p, n);
    }
    mdx_req_json(&b, 4242, "ping", "{}");
    mdx_cli_send(&f->c, b.data, b.len);
    mdx_buf_fini(&b);
    for (int i = 0; i < N; i++) {
        mdx_reply_t r;
        assert_int_equal(mdx_cli_recv(&f->c, &r, 0), 0);
        if (r.status != MDX_EPROTO && r.status != MDX_EUNKNOWNOP && r.status != MDX_EBADARGS)
            fail_msg("frame %d: status %d", i, r.status);
        mdx_reply_free(&r);
    }
    mdx_reply_t r;
    assert_int_equal(mdx_cli_recv(&f->c, &r, 0), 0);
    assert_int_equal(r.id, 4242);
    assert_int_equal(r.status, 0);
    mdx_reply_free(&r);
}

static void random_garbage_stream_is_refused_and_closed(void **state)
{
    fx_t *f = *state;
    uint64_t s = seed();
    uint8_t g[65536];
    for (size_t i = 0; i < sizeof(g); i++)
        g[i] = (uint8_t)rnd(&s);
    g[0] = 0xa7; /* as a frame length: 2.8 GB, over max_frame */
    (void)mdx_cli_try_send(&f->c, g, sizeof(g));
    expect_frametoobig_and_close(&f->c);
}

static void truncated_frame_then_close_gets_nothing(void **state)
{
    fx_t *f = *state;
    mdx_buf_t b;
    mdx_buf_init(&b);
    mdx_req_json(&b, 9, "put", "{\"coll\":\"w\",\"key\":0,\"body\":{\"hacked\":true}}");
    mdx_cli_send(&f->c, b.data, b.len - 5); /* all but the last 5 bytes */
    mdx_buf_fini(&b);
    shutdown(f->c.fd, SHUT_WR);
    mdx_reply_t r;
    assert_int_not_equal(mdx_cli_recv(&f->c, &r, 0), 0); /* no reply: EOF */
}

static void empty_frame_is_proto_error(void **state)
{
    fx_t *f = *state;
    expect_frame_err(&f->c, "", 0, 0, MDX_EPROTO);
}

static void frame_over_max_frame_is_refused_and_closed(void **state)
{
    fx_t *f = *state;
    static const uint8_t h[] = {0x02, 0x00, 0x00, 0x01, 0x93, 0x01}; /* 32 MiB + 1 */
    mdx_cli_send(&f->c, h, sizeof(h));
    /* Exactly the reply docs/protocol.md shows, but for the length. */
    mdx_reply_t r;
    assert_int_equal(mdx_cli_recv(&f->c, &r, 0), 0);
    char *body = mdx_mp_to_json(r.body, r.body_len);
    assert_string_equal(body, "{\"code\":\"FRAMETOOBIG\",\"message\":\"frame of 33554433 bytes "
                              "exceeds the limit of 33554432\"}");
    free(body);
    assert_int_equal(r.id, 0);
    assert_int_equal(r.status, MDX_EFRAMETOOBIG);
    mdx_reply_free(&r);
    assert_true(mdx_cli_wait_closed(&f->c, 0));
    /* A second client is unaffected. */
    mdx_cli_t d;
    assert_int_equal(mdx_cli_connect(&d, f->srv.port), 0);
    mdx_expect_ok(&d, "ping", "{}", "\"pong\"");
    mdx_cli_close(&d);
}

static void non_msgpack_payloads_are_proto_errors(void **state)
{
    fx_t *f = *state;
    expect_frame_err(&f->c, "\xc1", 1, 0, MDX_EPROTO);                     /* reserved byte */
    expect_frame_err(&f->c, "\x93\x01", 2, 1, MDX_EPROTO);                 /* truncated envelope */
    expect_frame_err(&f->c, "hello world", 11, 0, MDX_EPROTO);             /* text */
    expect_frame_err(&f->c, "\x93\x07\xa4ping\x80\x00", 9, 7, MDX_EPROTO); /* trailing byte */
}

static void wrong_envelopes_are_proto_errors(void **state)
{
    fx_t *f = *state;
    mdx_buf_t b;
    static const char *const cases[] = {
        "{\"id\":1,\"op\":\"ping\"}", /* map, not array */
        "[1,\"ping\"]",               /* 2 elements */
        "[1,\"ping\",{},4]",          /* 4 elements */
        "[\"1\",\"ping\",{}]",        /* string id */
        "[-1,\"ping\",{}]",           /* negative id */
        "[1.5,\"ping\",{}]",          /* float id */
        "[3,7,{}]",                   /* op not a string */
        "[3,\"ping\",[]]",            /* args not a map */
        "[3,\"ping\",null]",          /* args nil */
        "\"ping\"",                   /* a bare string */
    };
    static const uint64_t ids[] = {0, 1, 1, 0, 0, 0, 3, 3, 3, 0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mdx_buf_init(&b);
        mdx_json_to_mp(&b, cases[i]);
        expect_frame_err(&f->c, b.data, b.len, ids[i], MDX_EPROTO);
        mdx_buf_fini(&b);
    }
}

static void unknown_ops_and_bad_arguments_keep_the_connection(void **state)
{
    fx_t *f = *state;
    free(mdx_expect_err(&f->c, "frobnicate", "{}", MDX_EUNKNOWNOP));
    free(mdx_expect_err(&f->c, "", "{}", MDX_EUNKNOWNOP));
    free(mdx_expect_err(&f->c, "get", "{\"coll\":\"w\"}", MDX_EBADARGS)); /* missing */
    free(mdx_expect_err(&f->c, "ping", "{\"extra\":1}", MDX_EBADARGS));   /* extra */
    free(mdx_expect_err(&f->c, "get", "{\"coll\":\"w\",\"key\":1,\"body\":{}}", MDX_EBADARGS));
    free(mdx_expect_err(&f->c, "get", "{\"coll\":\"w\",\"key\":1,\"key\":2}", MDX_EBADARGS));
    free(mdx_expect_err(&f->c, "get", "{\"coll\":7,\"key\":1}", MDX_EBADARGS)); /* wrong type */
    free(mdx_expect_err(&f->c, "put",
                        "{\"coll\":\"w\",\"key\":0,\"body\":{\"x\":1},\"ttl_ms\":\"1\"}",
                        MDX_EBADARGS));
    char *m = mdx_expect_err(&f->c, "get", "{\"coll\":\"w\"}", MDX_EBADARGS);
    assert_non_null(strstr(m, "key")); /* the message names the argument */
    free(m);
    mdx_expect_ok(&f->c, "ping", "{}", "\"pong\"");
}

static void nesting_10000_deep_is_refused(void **state)
{
    fx_t *f = *state;
    enum { DEPTH = 10000 };
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t mark;
    mdx_req_begin(&b, &mark, 11, "put", 3);
    mdx_req_arg(&b, MDX_ARG_COLL);
    mdx_mp_put_str(&b, "w", 1);
    mdx_req_arg(&b, MDX_ARG_KEY);
    mdx_mp_put_uint(&b, 0);
    mdx_req_arg(&b, MDX_ARG_BODY);
    mdx_mp_put_map(&b, 1);
    mdx_mp_put_str(&b, "a", 1);
    for (int i = 0; i < DEPTH; i++)
        mdx_mp_put_array(&b, 1);
    mdx_mp_put_nil(&b);
    mdx_req_end(&b, mark);
    /* The frame is sent as is; expect_frame_err wants a payload, so strip the header. */
    expect_frame_err(&f->c, b.data + 4, b.len - 4, 11, MDX_EPROTO);
    mdx_buf_fini(&b);

    /* Deep nesting as the whole payload, before any envelope check. */
    uint8_t deep[DEPTH];
    memset(deep, 0x91, sizeof(deep));
    deep[DEPTH - 1] = 0xc0;
    expect_frame_err(&f->c, deep, sizeof(deep), 0, MDX_EPROTO);
}

static void headers_claiming_more_than_the_frame_are_refused(void **state)
{
    fx_t *f = *state;
    /* array32 of 4,294,967,295 elements as the payload */
    expect_frame_err(&f->c, "\xdd\xff\xff\xff\xff", 5, 0, MDX_EPROTO);
    /* ... as the args map, and as mget's keys */
    expect_frame_err(&f->c, "\x93\x05\xa4ping\xdf\xff\xff\xff\xff", 11, 5, MDX_EPROTO);
    static const uint8_t mget[] = {0x93, 0x06, 0xa4, 'm',  'g',  'e',  't',  0x82, 0xa4,
                                   'c',  'o',  'l',  'l',  0xa1, 'w',  0xa4, 'k',  'e',
                                   'y',  's',  0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    expect_frame_err(&f->c, mget, sizeof(mget), 6, MDX_EPROTO);
    /* str32 op claiming 2 GiB, in a 12-byte frame */
    expect_frame_err(&f->c, "\x93\x08\xdb\x7f\xff\xff\xffping", 11, 8, MDX_EPROTO);
    /* bin and str as body values longer than what follows */
    static const uint8_t body[] = {0x93, 0x09, 0xa3, 'p',  'u', 't',  0x83, 0xa4, 'c',  'o', 'l',
                                   'l',  0xa1, 'w',  0xa3, 'k', 'e',  'y',  0x00, 0xa4, 'b', 'o',
                                   'd',  'y',  0x81, 0xa1, 'x', 0xc6, 0x10, 0x00, 0x00, 0x00};
    expect_frame_err(&f->c, body, sizeof(body), 9, MDX_EPROTO);
}

static void errors_are_counted_and_logged_with_the_peer(void **state)
{
    fx_t *f = *state;
    expect_frame_err(&f->c, "\xc1", 1, 0, MDX_EPROTO);
    free(mdx_expect_err(&f->c, "nope", "{}", MDX_EUNKNOWNOP));
    int st;
    char *s = mdx_call(&f->w, "stats", "{}", &st);
    assert_non_null(strstr(s, "\"errors\":{\"PROTO\":1,\"UNKNOWNOP\":1}"));
    free(s);
    assert_true(mdx_srv_log_wait(&f->srv, "debug 127.0.0.1:", MDX_TEST_TIMEOUT_MS));
    assert_true(mdx_srv_log_wait(&f->srv, ": request 0: PROTO: ", MDX_TEST_TIMEOUT_MS));
    assert_true(
        mdx_srv_log_wait(&f->srv, "UNKNOWNOP: unknown operation 'nope'", MDX_TEST_TIMEOUT_MS));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(random_payloads_in_frames_each_get_one_error),
        T(random_garbage_stream_is_refused_and_closed),
        T(truncated_frame_then_close_gets_nothing),
        T(empty_frame_is_proto_error),
        T(frame_over_max_frame_is_refused_and_closed),
        T(non_msgpack_payloads_are_proto_errors),
        T(wrong_envelopes_are_proto_errors),
        T(unknown_ops_and_bad_arguments_keep_the_connection),
        T(nesting_10000_deep_is_refused),
        T(headers_claiming_more_than_the_frame_are_refused),
        T(errors_are_counted_and_logged_with_the_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
