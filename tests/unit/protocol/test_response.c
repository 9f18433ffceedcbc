/*
 * Unit tests for protocol/response.c: response and request frame encoding (checked byte for
 * byte against hand-assembled frames), rollback after a failed frame, out-of-memory sweeps
 * (MDX_FAULT_INJECTION builds), and the client-side response envelope decoder.
 */
#include "tests/unit/protocol/helpers.h"

/* Parses hex (spaces ignored) into out; returns the byte count. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (const char *h = hex; *h;) {
        if (*h == ' ') {
            h++;
            continue;
        }
        assert_true(n < cap);
        sscanf(h, "%2hhx", &out[n++]);
        h += 2;
    }
    return n;
}

static void expect_bytes(const mdx_buf_t *b, size_t from, const char *hex)
{
    uint8_t exp[512];
    size_t n = unhex(hex, exp, sizeof exp);
    char got[1100];
    hexdump(got, sizeof got, b->data + from, b->len - from);
    if (b->len - from != n || memcmp(b->data + from, exp, n) != 0) {
        print_error("%s: got %s\nexpected %s\n", ctx, got, hex);
        fail();
    }
}

static void response_frames_are_exact(void **state)
{
    (void)state;
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t m1, m2, m3;

    snprintf(ctx, sizeof ctx, "[7, 0, nil]");
    mdx_resp_begin(&b, &m1, 7, 0);
    mdx_mp_put_nil(&b);
    mdx_resp_end(&b, m1);
    CKI(m1, 0);
    expect_bytes(&b, 0, "00000004 93 07 00 c0");

    snprintf(ctx, sizeof ctx, "[2^40, 22, \"ok\"] after a frame");
    mdx_resp_begin(&b, &m2, UINT64_C(1) << 40, MDX_EBADARGS);
    put_cstr(&b, "ok");
    mdx_resp_end(&b, m2);
    CKI(m2, 8);
    expect_bytes(&b, m2, "0000000e 93 cf0000010000000000 16 a26f6b");
    expect_bytes(&b, 0, "00000004 93 07 00 c0 0000000e 93 cf0000010000000000 16 a26f6b");

    snprintf(ctx, sizeof ctx, "[300, 0, {\"records\": [[1, {}]], \"more\": false}]");
    mdx_resp_begin(&b, &m3, 300, 0);
    mdx_mp_put_map(&b, 2);
    put_cstr(&b, "records");
    mdx_mp_put_array(&b, 1);
    mdx_mp_put_array(&b, 2);
    mdx_mp_put_uint(&b, 1);
    mdx_mp_put_map(&b, 0);
    put_cstr(&b, "more");
    mdx_mp_put_bool(&b, 0);
    mdx_resp_end(&b, m3);
    expect_bytes(&b, m3, "00000018 93 cd012c 00 82 a77265636f726473 91 92 01 80 a46d6f7265 c2");

    /* A body of 70,000 bytes: the length uses all of the low three header bytes. */
    snprintf(ctx, sizeof ctx, "large body");
    b.len = 0;
    mdx_resp_begin(&b, &m1, 1, 0);
    char *big = calloc(1, 70000);
    assert_non_null(big);
    mdx_mp_put_bin(&b, big, 70000);
    mdx_resp_end(&b, m1);
    CKI(b.len, 4 + 3 + 5 + 70000);
    CK(memcmp(b.data, "\x00\x01\x11\x78\x93\x01\x00\xc6\x00\x01\x11\x70", 12) == 0);
    free(big);
    mdx_buf_fini(&b);
}

static void error_frames_are_exact(void **state)
{
    (void)state;
    mdx_buf_t b;
    mdx_buf_init(&b);
    snprintf(ctx, sizeof ctx, "error with a message");
    mdx_resp_error(&b, 5, MDX_EBADARGS, "bad");
    CKI(b.err, 0);
    /* [5, 22, {"code": "BADARGS", "message": "bad"}] */
    expect_bytes(&b, 0,
                 "0000001d 93 05 16 82 a4636f6465 a7424144415247 53 a76d657373616765 a3626164");

    snprintf(ctx, sizeof ctx, "error with the default message, id 0");
    b.len = 0;
    mdx_resp_error(&b, 0, MDX_EFRAMETOOBIG, NULL);
    /* "frame exceeds the size limit" is 28 bytes: a fixstr */
    expect_bytes(&b, 0,
                 "0000003a 93 00 14 82 a4636f6465 ab4652414d45544f4f424947 a76d657373616765 "
                 "bc6672616d652065786365656473207468652073697a65206c696d6974");

    snprintf(ctx, sizeof ctx, "a message of 37 bytes takes str8");
    b.len = 0;
    mdx_resp_error(&b, 1, MDX_EBADARGS, NULL);
    CKI(b.len, 4 + 3 + 1 + 5 + 8 + 8 + 2 + 37);
    CK(b.data[4 + 3 + 1 + 5 + 8 + 8] == 0xd9 && b.data[4 + 3 + 1 + 5 + 8 + 8 + 1] == 37);
    mdx_buf_fini(&b);
}

static void request_frames_are_exact_and_decode(void **state)
{
    (void)state;
    mdx_buf_t b;
    mdx_buf_init(&b);
    snprintf(ctx, sizeof ctx, "[1, \"get\", {\"coll\": \"c\", \"key\": 42}]");
    size_t mark;
    mdx_req_begin(&b, &mark, 1, mdx_op_name(MDX_OP_GET), 2);
    mdx_req_arg(&b, MDX_ARG_COLL);
    put_cstr(&b, "c");
    mdx_req_arg(&b, MDX_ARG_KEY);
    mdx_mp_put_int(&b, 42);
    mdx_req_end(&b, mark);
    expect_bytes(&b, 0, "00000013 93 01 a3676574 82 a4636f6c6c a163 a36b6579 2a");

    const uint8_t *pl;
    size_t plen;
    CKI(mdx_frame_next(b.data, b.len, MDX_DEFAULT_MAX_FRAME, &pl, &plen), b.len);
    mdx_request_t req;
    CKI(mdx_request_decode(pl, plen, &req, NULL, 0), 0);
    CKI(req.id, 1);
    CKI(req.op, MDX_OP_GET);
    CKI(req.args[MDX_ARG_KEY].raw_len, 1);
    CKI(req.args[MDX_ARG_KEY].raw[0], 42);

    snprintf(ctx, sizeof ctx, "[2^64-1, \"stats\", {}]");
    b.len = 0;
    mdx_req_begin(&b, &mark, UINT64_MAX, "stats", 0);
    mdx_req_end(&b, mark);
    expect_bytes(&b, 0, "00000011 93 cfffffffffffffffff a57374617473 80");
    mdx_buf_fini(&b);
}

static void rollback_removes_a_partial_frame(void **state)
{
    (void)state;
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t m1, m2;
    mdx_resp_begin(&b, &m1, 9, 0);
    mdx_mp_put_nil(&b);
    mdx_resp_end(&b, m1);
    mdx_resp_begin(&b, &m2, 10, 0);
    mdx_mp_put_array(&b, 2);
    mdx_mp_put_uint(&b, 1);
    b.err = MDX_ETOOBIG; /* as if the body had failed */
    mdx_resp_end(&b, m2);
    mdx_resp_rollback(&b, m2);
    snprintf(ctx, sizeof ctx, "rollback");
    CKI(b.err, 0);
    mdx_resp_error(&b, 10, MDX_ETOOBIG, "reply too large");
    CKI(b.err, 0);
    expect_bytes(&b, 0,
                 "00000004 93 09 00 c0 "
                 "00000028 93 0a 0e 82 a4636f6465 a6544f4f424947 a76d657373616765 "
                 "af7265706c7920746f6f206c61726765");
    mdx_buf_fini(&b);
}

static void allocation_failures_leave_earlier_frames_intact(void **state)
{
    (void)state;
#if MDX_FAULT_INJECTION
    char *big = calloc(1, 5000);
    assert_non_null(big);
    int done = 0;
    for (long n = 0; n < 64 && !done; n++) {
        mdx_buf_t b;
        mdx_buf_init(&b);
        size_t m0, m;
        mdx_resp_begin(&b, &m0, 1, 0);
        mdx_mp_put_nil(&b);
        mdx_resp_end(&b, m0);
        size_t first = b.len;
        snprintf(ctx, sizeof ctx, "allocation %ld fails", n);
        mdx_alloc_fail_after(n);
        mdx_resp_begin(&b, &m, 2, 0);
        mdx_mp_put_str(&b, big, 5000);
        mdx_resp_end(&b, m);
        mdx_resp_error(&b, 3, MDX_EINVAL, "x");
        int injected = mdx_alloc_fail_triggered();
        mdx_alloc_fail_reset();
        if (b.err) {
            CK(injected);
            CKI(b.err, MDX_ENOMEM);
            mdx_resp_rollback(&b, m);
            CKI(b.len, first);
            CKI(b.err, 0);
            expect_bytes(&b, 0, "00000004 93 01 00 c0");
        } else {
            done = 1;
            CKI(b.len, first + 4 + 3 + 3 + 5000 + 4 + 3 + 1 + 5 + 6 + 8 + 2);
        }
        mdx_buf_fini(&b);
    }
    CK(done);
    free(big);
#else
    skip();
#endif
}

static void response_envelopes_decode(void **state)
{
    (void)state;
    static const struct {
        const char *hex; /* payload */
        int rc;
        uint64_t id;
        int status;
        size_t body_off;
    } cases[] = {
        {"93 07 00 c0", 0, 7, 0, 3},
        {"93 cfffffffffffffffff 16 82 a4636f6465 a742414441524753 a76d657373616765 a3626164", 0,
         UINT64_MAX, 22, 11},
        {"93 00 a56576656e74 80", 0, 0, -1, 8}, /* a push */
        {"93 01 a56576656e74 80", MDX_EPROTO, 0, 0, 0},
        {"93 01 ce7fffffff c0", 0, 1, INT32_MAX, 7},
        {"93 01 ce80000000 c0", MDX_EPROTO, 0, 0, 0},
        {"93 01 ff c0", MDX_EPROTO, 0, 0, 0},
        {"93 ff 00 c0", MDX_EPROTO, 0, 0, 0},
        {"92 01 00", MDX_EPROTO, 0, 0, 0},
        {"93 01 00 c0 c0", MDX_EPROTO, 0, 0, 0},
        {"93 01 00 c1", MDX_EPROTO, 0, 0, 0},
        {"", MDX_EPROTO, 0, 0, 0},
        {"dd ffffffff", MDX_EPROTO, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t raw[128];
        size_t n = unhex(cases[i].hex, raw, sizeof raw);
        snprintf(ctx, sizeof ctx, "response %s", cases[i].hex);
        for (size_t k = 0; k <= n; k++) {
            uint8_t *buf = tail_copy(raw, k);
            uint64_t id = 99;
            int status = 99;
            const uint8_t *body = NULL;
            size_t blen = 0;
            int rc = mdx_resp_decode(buf, k, &id, &status, &body, &blen);
            if (k < n) {
                if (cases[i].rc == 0)
                    CKI(rc, MDX_EPROTO); /* every proper prefix of a valid payload */
            } else {
                CKI(rc, cases[i].rc);
                if (rc == 0) {
                    CKI(id, cases[i].id);
                    CKI(status, cases[i].status);
                    CK(body == buf + cases[i].body_off);
                    CKI(blen, n - cases[i].body_off);
                }
            }
            tail_free(buf, k);
        }
    }
}

static void error_bodies_decode(void **state)
{
    (void)state;
    mdx_buf_t b;
    mdx_buf_init(&b);
    mdx_resp_error(&b, 5, MDX_ENOCOLL, "no collection 'users'");
    uint64_t id;
    int status, code;
    const uint8_t *body;
    size_t blen, mlen;
    const char *msg;
    snprintf(ctx, sizeof ctx, "error body");
    CKI(mdx_resp_decode(b.data + 4, b.len - 4, &id, &status, &body, &blen), 0);
    CKI(status, MDX_ENOCOLL);
    CKI(mdx_resp_error_decode(body, blen, &code, &msg, &mlen), 0);
    CKI(code, MDX_ENOCOLL);
    CKI(mlen, strlen("no collection 'users'"));
    CK(memcmp(msg, "no collection 'users'", mlen) == 0);

    static const struct {
        const char *hex;
        int rc, code;
    } cases[] = {
        {"81 a76d657373616765 a178", 0, 0},                     /* no code */
        {"82 a4636f6465 a3464f4f a76d657373616765 a178", 0, 0}, /* unknown name */
        {"81 a4636f6465 a3464f4f", MDX_EPROTO, 0},              /* no message */
        {"81 a76d657373616765 01", MDX_EPROTO, 0},              /* message not a string */
        {"91 a178", MDX_EPROTO, 0},
        {"81 a76d657373616765", MDX_EPROTO, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t raw[64];
        size_t n = unhex(cases[i].hex, raw, sizeof raw);
        uint8_t *buf = tail_copy(raw, n);
        snprintf(ctx, sizeof ctx, "error body %s", cases[i].hex);
        code = 99;
        CKI(mdx_resp_error_decode(buf, n, &code, &msg, &mlen), cases[i].rc);
        if (cases[i].rc == 0) {
            CKI(code, cases[i].code);
            CKI(mlen, 1);
            CK(msg[0] == 'x');
        }
        tail_free(buf, n);
    }
    mdx_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(response_frames_are_exact),
        cmocka_unit_test(error_frames_are_exact),
        cmocka_unit_test(request_frames_are_exact_and_decode),
        cmocka_unit_test(rollback_removes_a_partial_frame),
        cmocka_unit_test(allocation_failures_leave_earlier_frames_intact),
        cmocka_unit_test(response_envelopes_decode),
        cmocka_unit_test(error_bodies_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
