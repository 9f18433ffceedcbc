/*
 * Unit tests for the drivers of memdex-bench net: each request encoding against expected bytes
 * (written out from docs/protocol.md, the RESP spec and Tarantool's IPROTO spec, and checked
 * against live memdexd, redis-server 7.0 and Tarantool 2.6 by the compare runs), and each
 * reply decoder on replies given whole, cut at every byte, and wrong (an error status, a
 * missing record): the operation's result, its pending-reply count and its follow-up request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/net.h"

#define KEY0 "user6284781860667377211" /* bench_key_name(0): 23 bytes */
#define KEY1 "user8517097267634966620" /* bench_key_name(1) */

typedef struct {
    net_conn_t c;
    net_data_t data;
    mdx_buf_t out;
    char err[256];
} fx_t;

static void fx_init(fx_t *f, const net_driver_t *drv, uint32_t value_size)
{
    static const uint8_t value[] = "abcdefghijklmnopqrstuvwxyz";
    memset(f, 0, sizeof(*f));
    f->data.value = value;
    f->data.value_size = value_size;
    f->c.fd = -1;
    f->c.drv = drv;
    f->c.data = &f->data;
    f->c.next_id = 1;
    f->c.q_cap = 8;
    f->c.q = calloc(f->c.q_cap, sizeof(*f->c.q));
    f->c.in_cap = 1 << 16;
    f->c.in = malloc(f->c.in_cap);
    mdx_buf_init(&f->out);
    if (drv->conn_init)
        assert_int_equal(drv->conn_init(&f->c), 0);
}

static void fx_fini(fx_t *f)
{
    if (f->c.drv->conn_fini)
        f->c.drv->conn_fini(&f->c);
    free(f->c.q);
    free(f->c.in);
    mdx_buf_fini(&f->out);
}

static void expect_bytes(const mdx_buf_t *b, const void *want, size_t n)
{
    assert_int_equal(b->err, 0);
    if (b->len != n || memcmp(b->data, want, n) != 0) {
        for (size_t i = 0; i < b->len; i++)
            fprintf(stderr, "%02x%s", b->data[i], i + 1 < b->len ? " " : "\n");
        fail_msg("encoding differs (%zu bytes, %zu expected)", b->len, n);
    }
}

static void encode(fx_t *f, net_op_t *op, bench_opkind_t kind, int64_t keynum, uint32_t len)
{
    memset(op, 0, sizeof(*op));
    op->d.kind = kind;
    op->d.keynum = keynum;
    op->d.scan_len = len;
    op->d.acked = 1000;
    f->out.len = 0;
    f->c.drv->encode(&f->c, op, &f->out);
}

/* Pops the head of the reply queue (what the engine does after a reply was taken). */
static void pop(fx_t *f)
{
    f->c.q_head = (f->c.q_head + 1) % f->c.q_cap;
    f->c.q_len--;
}

/* Feeds reply bytes one at a time: the reply is taken exactly when its last byte arrives. */
static void feed_bytewise(fx_t *f, net_op_t *op, const void *bytes, size_t n)
{
    f->c.in_off = f->c.in_len = 0;
    for (size_t i = 0; i < n; i++) {
        f->c.in[f->c.in_len++] = ((const uint8_t *)bytes)[i];
        int rc = f->c.drv->reply(&f->c, op, &f->out, f->err, sizeof(f->err));
        assert_int_equal(rc, i + 1 == n ? 1 : 0);
    }
    assert_int_equal(f->c.in_off, f->c.in_len);
    pop(f);
}

static void feed(fx_t *f, net_op_t *op, const void *bytes, size_t n)
{
    memcpy(f->c.in, bytes, n);
    f->c.in_off = 0;
    f->c.in_len = n;
    assert_int_equal(f->c.drv->reply(&f->c, op, &f->out, f->err, sizeof(f->err)), 1);
    pop(f);
}

#define LIT(s) s, sizeof(s) - 1

/* ---- memdex ---- */

static void memdex_requests_encode_as_documented(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, &net_drv_memdex, 4);
    net_op_t op;
    encode(&f, &op, BENCH_OP_READ, 0, 0);
    expect_bytes(&f.out, LIT("\x00\x00\x00\x2e"
                             "\x93\x01\xa3get\x82"
                             "\xa4"
                             "coll\xa5"
                             "bench\xa3key\xb7" KEY0));
    assert_int_equal(op.id, 1);
    assert_int_equal(op.left, 1);
    assert_int_equal(f.c.q_len, 1);
    encode(&f, &op, BENCH_OP_UPDATE, 1, 0);
    expect_bytes(&f.out, LIT("\x00\x00\x00\x3e"
                             "\x93\x02\xa3put\x83"
                             "\xa4"
                             "coll\xa5"
                             "bench\xa3key\xb7" KEY1 "\xa4"
                             "body\x82\xa1s\x01\xa1v\xa4"
                             "abcd"));
    encode(&f, &op, BENCH_OP_SCAN, 300, 10);
    expect_bytes(&f.out, LIT("\x00\x00\x00\x2f"
                             "\x93\x03\xa4"
                             "find\x84"
                             "\xa4"
                             "coll\xa5"
                             "bench\xa5index\xa8"
                             "by_score\xa2ge\xcd\x01\x2c\xa5limit\x0a"));
    fx_fini(&f);
}

static void memdex_replies_decode_bytewise_and_rmw_follows_up(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, &net_drv_memdex, 4);
    net_op_t op;
    /* get: a record {"s": 0, "v": "abcd"} */
    encode(&f, &op, BENCH_OP_READ, 0, 0);
    feed_bytewise(&f, &op,
                  LIT("\x00\x00\x00\x0e\x93\x01\x00\x82\xa1s\x00\xa1v\xa4"
                      "abcd"));
    assert_int_equal(op.left, 0);
    assert_false(op.failed);
    /* get of a missing record: nil is a failure for the benchmark */
    encode(&f, &op, BENCH_OP_READ, 0, 0);
    feed(&f, &op, LIT("\x00\x00\x00\x04\x93\x02\x00\xc0"));
    assert_true(op.failed);
    /* an error status (NOCOLL) */
    encode(&f, &op, BENCH_OP_UPDATE, 0, 0);
    feed(&f, &op,
         LIT("\x00\x00\x00\x1c\x93\x03\x03\x82\xa4"
             "code\xa6NOCOLL\xa7message\xa3xyz"));
    assert_true(op.failed);
    /* find: 2 records */
    encode(&f, &op, BENCH_OP_SCAN, 5, 10);
    feed_bytewise(&f, &op,
                  LIT("\x00\x00\x00\x1d\x93\x04\x00\x83\xa7records\x92\x90\x90\xa4more"
                      "\xc2\xa6"
                      "cursor\xc0"));
    assert_false(op.failed);
    assert_int_equal(op.got, 2);
    /* read-modify-write: the get's reply appends the put and awaits one more reply */
    encode(&f, &op, BENCH_OP_RMW, 0, 0);
    f.out.len = 0;
    feed(&f, &op,
         LIT("\x00\x00\x00\x0e\x93\x05\x00\x82\xa1s\x00\xa1v\xa4"
             "abcd"));
    assert_int_equal(op.left, 1);
    assert_int_equal(op.step, 1);
    assert_int_equal(f.c.q_len, 1);
    assert_true(f.out.len > 8 && memcmp(f.out.data + 5, "\x06\xa3put", 5) == 0);
    feed(&f, &op, LIT("\x00\x00\x00\x04\x93\x06\x00\xc0"));
    assert_int_equal(op.left, 0);
    assert_false(op.failed);
    /* a reply to another id breaks the stream */
    encode(&f, &op, BENCH_OP_READ, 0, 0);
    memcpy(f.c.in, "\x00\x00\x00\x04\x93\x63\x00\xc0", 8);
    f.c.in_off = 0;
    f.c.in_len = 8;
    assert_int_equal(net_drv_memdex.reply(&f.c, &op, &f.out, f.err, sizeof(f.err)), -1);
    fx_fini(&f);
}

/* ---- redis ---- */

static void redis_requests_encode_as_resp(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, &net_drv_redis, 4);
    net_op_t op;
    encode(&f, &op, BENCH_OP_READ, 0, 0);
    expect_bytes(&f.out, LIT("*2\r\n$3\r\nGET\r\n$23\r\n" KEY0 "\r\n"));
    encode(&f, &op, BENCH_OP_UPDATE, 0, 0);
    expect_bytes(&f.out, LIT("*3\r\n$3\r\nSET\r\n$23\r\n" KEY0 "\r\n$4\r\nabcd\r\n"));
    encode(&f, &op, BENCH_OP_INSERT, 1, 0);
    expect_bytes(&f.out, LIT("*3\r\n$3\r\nSET\r\n$23\r\n" KEY1 "\r\n$4\r\nabcd\r\n"
                             "*4\r\n$4\r\nZADD\r\n$14\r\nbench:by_score\r\n$1\r\n1\r\n$23\r\n" KEY1
                             "\r\n"));
    assert_int_equal(op.left, 2);
    encode(&f, &op, BENCH_OP_SCAN, 300, 10);
    expect_bytes(&f.out, LIT("*7\r\n$13\r\nZRANGEBYSCORE\r\n$14\r\nbench:by_score\r\n$3\r\n300\r\n"
                             "$4\r\n+inf\r\n$5\r\nLIMIT\r\n$1\r\n0\r\n$2\r\n10\r\n"));
    fx_fini(&f);
}

static void redis_range_fetches_the_keys_with_mget(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, &net_drv_redis, 4);
    net_op_t op;
    encode(&f, &op, BENCH_OP_SCAN, 0, 2);
    f.out.len = 0;
    feed_bytewise(&f, &op, LIT("*2\r\n$23\r\n" KEY0 "\r\n$23\r\n" KEY1 "\r\n"));
    assert_int_equal(op.got, 2);
    assert_int_equal(op.left, 1);
    assert_int_equal(op.step, 1);
    expect_bytes(&f.out, LIT("*3\r\n$4\r\nMGET\r\n$23\r\n" KEY0 "\r\n$23\r\n" KEY1 "\r\n"));
    feed(&f, &op, LIT("*2\r\n$4\r\nabcd\r\n$4\r\nabcd\r\n"));
    assert_int_equal(op.left, 0);
    assert_false(op.failed);
    /* a nil in the MGET reply (a record vanished) fails the operation */
    encode(&f, &op, BENCH_OP_SCAN, 0, 2);
    feed(&f, &op, LIT("*1\r\n$23\r\n" KEY0 "\r\n"));
    feed(&f, &op, LIT("*1\r\n$-1\r\n"));
    assert_true(op.failed);
    /* insert: +OK then :1 */
    encode(&f, &op, BENCH_OP_INSERT, 0, 0);
    feed(&f, &op, LIT("+OK\r\n"));
    assert_int_equal(op.left, 1);
    feed(&f, &op, LIT(":1\r\n"));
    assert_int_equal(op.left, 0);
    assert_false(op.failed);
    /* get: a value of the wrong size, then an error reply */
    encode(&f, &op, BENCH_OP_READ, 0, 0);
    feed(&f, &op, LIT("$3\r\nabc\r\n"));
    assert_true(op.failed);
    encode(&f, &op, BENCH_OP_UPDATE, 0, 0);
    feed(&f, &op, LIT("-ERR wrong\r\n"));
    assert_true(op.failed);
    assert_int_equal(op.left, 0);
    fx_fini(&f);
}

/* ---- tarantool ---- */

static void tarantool_requests_encode_as_iproto(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, &net_drv_tarantool, 4);
    net_op_t op;
    encode(&f, &op, BENCH_OP_READ, 0, 0);
    /* header {REQUEST_TYPE: SELECT, SYNC: 1}, body {SPACE_ID: 512, INDEX_ID: 0, LIMIT: 1,
     * OFFSET: 0, ITERATOR: EQ, KEY: [KEY0]} */
    expect_bytes(&f.out,
                 LIT("\xce\x00\x00\x00\x2c"
                     "\x82\x00\x01\x01\x01"
                     "\x86\x10\xcd\x02\x00\x11\x00\x12\x01\x13\x00\x14\x00\x20\x91\xb7" KEY0));
    assert_int_equal(op.id, 1);
    encode(&f, &op, BENCH_OP_UPDATE, 1, 0);
    /* {REQUEST_TYPE: REPLACE, SYNC: 2}, {SPACE_ID: 512, TUPLE: [KEY1, 1, "abcd"]} */
    expect_bytes(&f.out, LIT("\xce\x00\x00\x00\x2a"
                             "\x82\x00\x03\x01\x02"
                             "\x82\x10\xcd\x02\x00\x21\x93\xb7" KEY1 "\x01\xa4"
                             "abcd"));
    encode(&f, &op, BENCH_OP_SCAN, 300, 10);
    /* {SELECT, SYNC 3}, {512, INDEX_ID: 1, LIMIT: 10, OFFSET: 0, ITERATOR: GE, KEY: [300]} */
    expect_bytes(&f.out, LIT("\xce\x00\x00\x00\x17"
                             "\x82\x00\x01\x01\x03"
                             "\x86\x10\xcd\x02\x00\x11\x01\x12\x0a\x13\x00\x14\x05\x20\x91\xcd\x01"
                             "\x2c"));
    fx_fini(&f);
}

static void tarantool_replies_decode_bytewise(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, &net_drv_tarantool, 4);
    net_op_t op;
    /* {CODE: 0, SYNC: 1, SCHEMA_VERSION: 80}, {DATA: [[KEY0, 0, "abcd"]]} */
    encode(&f, &op, BENCH_OP_READ, 0, 0);
    feed_bytewise(&f, &op,
                  LIT("\xce\x00\x00\x00\x29"
                      "\x83\x00\x00\x01\x01\x05\x50"
                      "\x81\x30\x91\x93\xb7" KEY0 "\x00\xa4"
                      "abcd"));
    assert_int_equal(op.left, 0);
    assert_false(op.failed);
    /* no tuple: not found */
    encode(&f, &op, BENCH_OP_READ, 0, 0);
    feed(&f, &op, LIT("\xce\x00\x00\x00\x0a\x83\x00\x00\x01\x02\x05\x50\x81\x30\x90"));
    assert_true(op.failed);
    /* an error: CODE 0x8000 + 36, {ERROR: "x"} */
    encode(&f, &op, BENCH_OP_UPDATE, 0, 0);
    feed(&f, &op, LIT("\xce\x00\x00\x00\x0d\x83\x00\xcd\x80\x24\x01\x03\x05\x50\x81\x31\xa1x"));
    assert_true(op.failed);
    /* range: two tuples */
    encode(&f, &op, BENCH_OP_SCAN, 0, 10);
    feed(&f, &op, LIT("\xce\x00\x00\x00\x0c\x83\x00\x00\x01\x04\x05\x50\x81\x30\x92\x90\x90"));
    assert_false(op.failed);
    assert_int_equal(op.got, 2);
    /* the wrong sync breaks the stream */
    encode(&f, &op, BENCH_OP_SCAN, 0, 10);
    memcpy(f.c.in, "\xce\x00\x00\x00\x0a\x83\x00\x00\x01\x63\x05\x50\x81\x30\x90", 15);
    f.c.in_off = 0;
    f.c.in_len = 15;
    assert_int_equal(net_drv_tarantool.reply(&f.c, &op, &f.out, f.err, sizeof(f.err)), -1);
    fx_fini(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memdex_requests_encode_as_documented),
        cmocka_unit_test(memdex_replies_decode_bytewise_and_rmw_follows_up),
        cmocka_unit_test(redis_requests_encode_as_resp),
        cmocka_unit_test(redis_range_fetches_the_keys_with_mget),
        cmocka_unit_test(tarantool_requests_encode_as_iproto),
        cmocka_unit_test(tarantool_replies_decode_bytewise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
