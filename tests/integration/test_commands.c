/*
 * Every command against a real memdexd, with the exact reply expected (docs/protocol.md gives
 * the shapes). Each test gets a fresh server, so one test's collections never show up in
 * another's listing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "memdex/error.h"
#include "protocol/response.h"
#include "tests/integration/harness.h"

typedef struct {
    mdx_srv_t srv;
    mdx_cli_t cli;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    mdx_srv_start(&f->srv, NULL);
    assert_int_equal(mdx_cli_connect(&f->cli, f->srv.port), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    mdx_cli_close(&f->cli);
    int st = mdx_srv_stop(&f->srv, 0);
    free(f);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    return 0;
}

#define OK(op, args, want)  mdx_expect_ok(&f->cli, op, args, want)
#define ERR(op, args, code) free(mdx_expect_err(&f->cli, op, args, code))

static void hello_names_server_and_protocol(void **state)
{
    fx_t *f = *state;
    OK("hello", "{}",
       "{\"protocol\":1,\"server\":\"memdex\",\"version\":\"0.1.0\",\"max_frame\":33554432}");
    OK("hello", "{\"protocol\":1,\"client\":\"itest\"}",
       "{\"protocol\":1,\"server\":\"memdex\",\"version\":\"0.1.0\",\"max_frame\":33554432}");
    ERR("hello", "{\"protocol\":2}", MDX_EPROTO);
}

static void ping_answers_pong(void **state)
{
    fx_t *f = *state;
    OK("ping", "{}", "\"pong\"");
    ERR("ping", "{\"x\":1}", MDX_EBADARGS);
}

static void collections_create_list_drop(void **state)
{
    fx_t *f = *state;
    OK("list_collections", "{}", "[]");
    OK("create_collection", "{\"name\":\"users\"}", "null");
    OK("create_collection", "{\"name\":\"orders\"}", "null");
    char *m = mdx_expect_err(&f->cli, "create_collection", "{\"name\":\"users\"}", MDX_ECOLLEXISTS);
    assert_non_null(strstr(m, "users")); /* the message names the collection */
    free(m);
    ERR("create_collection", "{\"name\":\"bad name!\"}", MDX_EBADNAME);
    ERR("create_collection", "{\"name\":\"nul\\u0000byte\"}", MDX_EBADNAME);
    OK("put", "{\"coll\":\"users\",\"key\":1,\"body\":{\"a\":1}}", "null");
    OK("create_index", "{\"coll\":\"users\",\"name\":\"by_a\",\"field\":\"a\",\"kind\":\"hash\"}",
       "null");
    OK("list_collections", "{}",
       "[{\"name\":\"users\",\"records\":1,\"indexes\":[{\"name\":\"by_a\",\"field\":\"a\","
       "\"kind\":\"hash\",\"unique\":false,\"entries\":1}],"
       "\"capacity\":0,\"policy\":\"s3fifo\",\"default_ttl_ms\":0},"
       "{\"name\":\"orders\",\"records\":0,\"indexes\":[],\"capacity\":0,\"policy\":\"s3fifo\","
       "\"default_ttl_ms\":0}]");
    OK("drop_collection", "{\"name\":\"users\"}", "null");
    ERR("drop_collection", "{\"name\":\"users\"}", MDX_ENOCOLL);
    ERR("get", "{\"coll\":\"users\",\"key\":1}", MDX_ENOCOLL);
    OK("list_collections", "{}",
       "[{\"name\":\"orders\",\"records\":0,\"indexes\":[],\"capacity\":0,\"policy\":\"s3fifo\","
       "\"default_ttl_ms\":0}]");
}

static void indexes_create_list_drop(void **state)
{
    fx_t *f = *state;
    OK("create_collection", "{\"name\":\"u\"}", "null");
    OK("put", "{\"coll\":\"u\",\"key\":\"k1\",\"body\":{\"age\":30,\"email\":\"a@x\"}}", "null");
    OK("put", "{\"coll\":\"u\",\"key\":\"k2\",\"body\":{\"age\":40}}", "null");
    OK("create_index",
       "{\"coll\":\"u\",\"name\":\"by_age\",\"field\":\"age\",\"kind\":\"skiplist\"}", "null");
    OK("create_index",
       "{\"coll\":\"u\",\"name\":\"by_email\",\"field\":\"email\",\"kind\":\"hash\",\"unique\":"
       "true}",
       "null");
    OK("list_indexes", "{\"coll\":\"u\"}",
       "[{\"name\":\"by_age\",\"field\":\"age\",\"kind\":\"skiplist\",\"unique\":false,"
       "\"entries\":2},"
       "{\"name\":\"by_email\",\"field\":\"email\",\"kind\":\"hash\",\"unique\":true,"
       "\"entries\":1}]");
    ERR("create_index", "{\"coll\":\"u\",\"name\":\"by_age\",\"field\":\"age\",\"kind\":\"hash\"}",
        MDX_EINDEXEXISTS);
    ERR("create_index", "{\"coll\":\"u\",\"name\":\"x\",\"field\":\"age\",\"kind\":\"btree\"}",
        MDX_EBADARGS);
    ERR("create_index", "{\"coll\":\"nope\",\"name\":\"x\",\"field\":\"age\",\"kind\":\"hash\"}",
        MDX_ENOCOLL);
    /* The unique index refuses a duplicate and nothing changes. */
    ERR("put", "{\"coll\":\"u\",\"key\":\"k3\",\"body\":{\"email\":\"a@x\"}}", MDX_EUNIQUE);
    OK("get", "{\"coll\":\"u\",\"key\":\"k3\"}", "null");
    OK("drop_index", "{\"coll\":\"u\",\"name\":\"by_email\"}", "null");
    ERR("drop_index", "{\"coll\":\"u\",\"name\":\"by_email\"}", MDX_ENOINDEX);
    OK("list_indexes", "{\"coll\":\"u\"}",
       "[{\"name\":\"by_age\",\"field\":\"age\",\"kind\":\"skiplist\",\"unique\":false,"
       "\"entries\":2}]");
}

static void put_get_modes_and_bodies_verbatim(void **state)
{
    fx_t *f = *state;
    OK("create_collection", "{\"name\":\"c\"}", "null");
    OK("put", "{\"coll\":\"c\",\"key\":1,\"body\":{\"n\":\"one\",\"f\":1.5,\"l\":[1,2]}}", "null");
    OK("get", "{\"coll\":\"c\",\"key\":1}", "{\"n\":\"one\",\"f\":1.5,\"l\":[1,2]}");
    OK("get", "{\"coll\":\"c\",\"key\":2}", "null");
    /* 1 and "1" are different keys; binary keys work too. */
    OK("get", "{\"coll\":\"c\",\"key\":\"1\"}", "null");
    OK("put", "{\"coll\":\"c\",\"key\":<bin:00ff>,\"body\":{}}", "null");
    OK("get", "{\"coll\":\"c\",\"key\":<bin:00ff>}", "{}");

    OK("put", "{\"coll\":\"c\",\"key\":1,\"body\":{\"v\":2},\"mode\":\"replace\"}", "null");
    OK("get", "{\"coll\":\"c\",\"key\":1}", "{\"v\":2}");
    ERR("put", "{\"coll\":\"c\",\"key\":1,\"body\":{\"v\":3},\"mode\":\"insert\"}", MDX_EEXISTS);
    ERR("put", "{\"coll\":\"c\",\"key\":9,\"body\":{\"v\":3},\"mode\":\"replace\"}", MDX_ENOTFOUND);
    OK("put", "{\"coll\":\"c\",\"key\":9,\"body\":{\"v\":3},\"mode\":\"insert\"}", "null");
    OK("put", "{\"coll\":\"c\",\"key\":9,\"body\":{\"v\":4},\"mode\":\"upsert\"}", "null");
    OK("get", "{\"coll\":\"c\",\"key\":9}", "{\"v\":4}");
    ERR("put", "{\"coll\":\"c\",\"key\":9,\"body\":{\"v\":4},\"mode\":\"merge\"}", MDX_EBADARGS);

    /* Wrong argument types are the decoder's; bad bodies and keys the engine's. */
    ERR("put", "{\"coll\":\"c\",\"key\":1,\"body\":[1]}", MDX_EBADARGS);
    ERR("put", "{\"coll\":\"c\",\"key\":[1],\"body\":{}}", MDX_EBADARGS);
    ERR("put", "{\"coll\":\"c\",\"key\":1,\"body\":{\"1\":1, \"x\":{\"y\":1}},\"ttl_ms\":-1}",
        MDX_EBADARGS);
    ERR("get", "{\"coll\":\"c\"}", MDX_EBADARGS);

    /* Body bytes come back exactly as sent, even in a non-shortest encoding. */
    static const uint8_t body[] = {0x81, 0xd9, 0x01, 'k', 0xcd, 0x00, 0x05}; /* {"k": uint16 5} */
    mdx_buf_t b;
    mdx_buf_init(&b);
    size_t mark;
    mdx_req_begin(&b, &mark, 77, "put", 3);
    mdx_req_arg(&b, MDX_ARG_COLL);
    mdx_mp_put_str(&b, "c", 1);
    mdx_req_arg(&b, MDX_ARG_KEY);
    mdx_mp_put_uint(&b, 5);
    mdx_req_arg(&b, MDX_ARG_BODY);
    mdx_buf_append(&b, body, sizeof(body));
    mdx_req_end(&b, mark);
    mdx_req_json(&b, 78, "get", "{\"coll\":\"c\",\"key\":5}");
    mdx_cli_send(&f->cli, b.data, b.len);
    mdx_buf_fini(&b);
    mdx_reply_t r;
    assert_int_equal(mdx_cli_recv(&f->cli, &r, 0), 0);
    assert_int_equal(r.id, 77);
    assert_int_equal(r.status, 0);
    mdx_reply_free(&r);
    assert_int_equal(mdx_cli_recv(&f->cli, &r, 0), 0);
    assert_int_equal(r.id, 78);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.body_len, sizeof(body));
    assert_memory_equal(r.body, body, sizeof(body));
    mdx_reply_free(&r);
}

static void mget_returns_bodies_and_nils_in_order(void **state)
{
    fx_t *f = *state;
    OK("create_collection", "{\"name\":\"c\"}", "null");
    OK("put", "{\"coll\":\"c\",\"key\":1,\"body\":{\"v\":1}}", "null");
    OK("put", "{\"coll\":\"c\",\"key\":\"b\",\"body\":{\"v\":\"b\"}}", "null");
    OK("mget", "{\"coll\":\"c\",\"keys\":[1,2,\"b\",1]}",
       "[{\"v\":1},null,{\"v\":\"b\"},{\"v\":1}]");
    ERR("mget", "{\"coll\":\"c\",\"keys\":[]}", MDX_EBADARGS);
    ERR("mget", "{\"coll\":\"c\",\"keys\":[{}]}", MDX_EBADARGS);
}

static void delete_says_whether_it_deleted(void **state)
{
    fx_t *f = *state;
    OK("create_collection", "{\"name\":\"c\"}", "null");
    OK("put", "{\"coll\":\"c\",\"key\":1,\"body\":{}}", "null");
    OK("delete", "{\"coll\":\"c\",\"key\":1}", "1");
    OK("delete", "{\"coll\":\"c\",\"key\":1}", "0");
    OK("get", "{\"coll\":\"c\",\"key\":1}", "null");
}

static void update_sets_and_unsets_fields(void **state)
{
    fx_t *f = *state;
    OK("create_collection", "{\"name\":\"c\"}", "null");
    OK("put", "{\"coll\":\"c\",\"key\":1,\"body\":{\"a\":1,\"b\":2}}", "null");
    OK("update", "{\"coll\":\"c\",\"key\":1,\"set\":{\"b\":3,\"c\":4}}", "null");
    OK("get", "{\"coll\":\"c\",\"key\":1}", "{\"a\":1,\"b\":3,\"c\":4}");
    OK("update", "{\"coll\":\"c\",\"key\":1,\"unset\":[\"a\"]}", "null");
    OK("get", "{\"coll\":\"c\",\"key\":1}", "{\"b\":3,\"c\":4}");
    OK("update", "{\"coll\":\"c\",\"key\":1,\"set\":{\"d\":5},\"unset\":[\"b\",\"zz\"]}", "null");
    OK("get", "{\"coll\":\"c\",\"key\":1}", "{\"c\":4,\"d\":5}");
    ERR("update", "{\"coll\":\"c\",\"key\":2,\"set\":{\"d\":5}}", MDX_ENOTFOUND);
    ERR("update", "{\"coll\":\"c\",\"key\":1}", MDX_EBADARGS);
    ERR("update", "{\"coll\":\"c\",\"key\":1,\"unset\":[1]}", MDX_EBADARGS);
}

static void find_and_count_on_skiplist_and_hash(void **state)
{
    fx_t *f = *state;
    OK("create_collection", "{\"name\":\"p\"}", "null");
    OK("create_index", "{\"coll\":\"p\",\"name\":\"age\",\"field\":\"age\",\"kind\":\"skiplist\"}",
       "null");
    OK("create_index", "{\"coll\":\"p\",\"name\":\"city\",\"field\":\"city\",\"kind\":\"hash\"}",
       "null");
    OK("put", "{\"coll\":\"p\",\"key\":1,\"body\":{\"age\":30,\"city\":\"Oslo\"}}", "null");
    OK("put", "{\"coll\":\"p\",\"key\":2,\"body\":{\"age\":20,\"city\":\"Rome\"}}", "null");
    OK("put", "{\"coll\":\"p\",\"key\":3,\"body\":{\"age\":40,\"city\":\"Oslo\"}}", "null");
    OK("put", "{\"coll\":\"p\",\"key\":4,\"body\":{\"age\":30}}", "null");
    OK("put", "{\"coll\":\"p\",\"key\":5,\"body\":{\"city\":\"Oslo\"}}", "null");

    OK("find", "{\"coll\":\"p\",\"index\":\"age\"}",
       "{\"records\":[[2,{\"age\":20,\"city\":\"Rome\"}],[1,{\"age\":30,\"city\":\"Oslo\"}],"
       "[4,{\"age\":30}],[3,{\"age\":40,\"city\":\"Oslo\"}]],\"more\":false,\"cursor\":null}");
    OK("find", "{\"coll\":\"p\",\"index\":\"age\",\"ge\":25,\"limit\":2}",
       "{\"records\":[[1,{\"age\":30,\"city\":\"Oslo\"}],[4,{\"age\":30}]],\"more\":true,"
       "\"cursor\":[30,4]}");
    OK("find", "{\"coll\":\"p\",\"index\":\"age\",\"ge\":25,\"limit\":2,\"after\":[30,4]}",
       "{\"records\":[[3,{\"age\":40,\"city\":\"Oslo\"}]],\"more\":false,\"cursor\":null}");
    OK("find", "{\"coll\":\"p\",\"index\":\"age\",\"gt\":20,\"lt\":40,\"desc\":true}",
       "{\"records\":[[4,{\"age\":30}],[1,{\"age\":30,\"city\":\"Oslo\"}]],\"more\":false,"
       "\"cursor\":null}");
    OK("find", "{\"coll\":\"p\",\"index\":\"age\",\"eq\":30,\"offset\":1}",
       "{\"records\":[[4,{\"age\":30}]],\"more\":false,\"cursor\":null}");
    OK("find", "{\"coll\":\"p\",\"index\":\"age\",\"eq\":99}",
       "{\"records\":[],\"more\":false,\"cursor\":null}");
    OK("find", "{\"coll\":\"p\",\"index\":\"city\",\"eq\":\"Oslo\",\"limit\":2}",
       "{\"records\":[[1,{\"age\":30,\"city\":\"Oslo\"}],[3,{\"age\":40,\"city\":\"Oslo\"}]],"
       "\"more\":true,\"cursor\":[\"Oslo\",3]}");
    OK("count", "{\"coll\":\"p\",\"index\":\"age\",\"ge\":25}", "3");
    OK("count", "{\"coll\":\"p\",\"index\":\"city\",\"eq\":\"Oslo\"}", "3");
    OK("count", "{\"coll\":\"p\",\"index\":\"age\"}", "4");

    ERR("find", "{\"coll\":\"p\",\"index\":\"city\",\"ge\":\"A\"}", MDX_ENOTRANGE);
    ERR("find", "{\"coll\":\"p\",\"index\":\"nope\"}", MDX_ENOINDEX);
    ERR("find", "{\"coll\":\"p\",\"index\":\"age\",\"limit\":0}", MDX_EBADLIMIT);
    ERR("find", "{\"coll\":\"p\",\"index\":\"age\",\"limit\":10001}", MDX_EBADLIMIT);
    ERR("find", "{\"coll\":\"p\",\"index\":\"age\",\"after\":[1]}", MDX_EBADCURSOR);
    ERR("find", "{\"coll\":\"p\",\"index\":\"age\",\"eq\":1,\"ge\":1}", MDX_EBADARGS);
    ERR("find", "{\"coll\":\"p\",\"index\":\"age\",\"ge\":1,\"gt\":1}", MDX_EBADARGS);
    ERR("count", "{\"coll\":\"p\",\"index\":\"age\",\"limit\":1}", MDX_EBADARGS);
}

static void find_pages_default_to_100(void **state)
{
    fx_t *f = *state;
    OK("create_collection", "{\"name\":\"n\"}", "null");
    OK("create_index", "{\"coll\":\"n\",\"name\":\"v\",\"field\":\"v\",\"kind\":\"skiplist\"}",
       "null");
    mdx_buf_t b;
    mdx_buf_init(&b);
    char args[128];
    for (int i = 0; i < 150; i++) {
        snprintf(args, sizeof(args), "{\"coll\":\"n\",\"key\":%d,\"body\":{\"v\":%d}}", i, i);
        mdx_req_json(&b, 1000 + (uint64_t)i, "put", args);
    }
    mdx_cli_send(&f->cli, b.data, b.len);
    mdx_buf_fini(&b);
    for (int i = 0; i < 150; i++) {
        mdx_reply_t r;
        assert_int_equal(mdx_cli_recv(&f->cli, &r, 0), 0);
        assert_int_equal(r.id, 1000 + (uint64_t)i);
        assert_int_equal(r.status, 0);
        mdx_reply_free(&r);
    }
    int st;
    char *got = mdx_call(&f->cli, "find", "{\"coll\":\"n\",\"index\":\"v\"}", &st);
    assert_int_equal(st, 0);
    /* 100 records: the last is [99,{"v":99}], then more and the cursor after it. */
    assert_non_null(strstr(got, "[98,{\"v\":98}],[99,{\"v\":99}]],\"more\":true,"
                                "\"cursor\":[99,99]}"));
    assert_null(strstr(got, "[100,"));
    free(got);
}

static void scan_walks_the_collection(void **state)
{
    fx_t *f = *state;
    OK("create_collection", "{\"name\":\"s\"}", "null");
    OK("scan", "{\"coll\":\"s\"}", "{\"records\":[],\"cursor\":0}");
    OK("put", "{\"coll\":\"s\",\"key\":\"only\",\"body\":{\"x\":true}}", "null");
    OK("scan", "{\"coll\":\"s\"}", "{\"records\":[[\"only\",{\"x\":true}]],\"cursor\":0}");
    char args[128];
    for (int i = 0; i < 299; i++) {
        snprintf(args, sizeof(args), "{\"coll\":\"s\",\"key\":%d,\"body\":{}}", i);
        OK("put", args, "null");
    }
    /* Page through with limit 50 and count what comes back: all 300, each at least once. */
    uint64_t cursor = 0, seen = 0;
    int pages = 0;
    do {
        snprintf(args, sizeof(args), "{\"coll\":\"s\",\"cursor\":%llu,\"limit\":50}",
                 (unsigned long long)cursor);
        int st;
        char *got = mdx_call(&f->cli, "scan", args, &st);
        assert_int_equal(st, 0);
        for (const char *p = got; (p = strstr(p, "],[")); p++)
            seen++;
        if (strstr(got, "\"records\":[[")) /* n records have n-1 separators */
            seen++;
        const char *c = strstr(got, "\"cursor\":");
        assert_non_null(c);
        cursor = strtoull(c + 9, NULL, 10);
        free(got);
        pages++;
    } while (cursor != 0 && pages < 100);
    assert_int_equal(cursor, 0);
    assert_true(pages >= 6);
    assert_true(seen >= 300);
    ERR("scan", "{\"coll\":\"s\",\"limit\":0}", MDX_EBADLIMIT);
}

static int64_t int_reply(fx_t *f, const char *op, const char *args)
{
    int st;
    char *got = mdx_call(&f->cli, op, args, &st);
    assert_int_equal(st, 0);
    int64_t v = strtoll(got, NULL, 10);
    free(got);
    return v;
}

static void frames_split_anywhere_and_large_frames_work(void **state)
{
    fx_t *f = *state;
    OK("create_collection", "{\"name\":\"big\"}", "null");
    /* Three pipelined requests, one byte per write. */
    mdx_buf_t b;
    mdx_buf_init(&b);
    mdx_req_json(&b, 201, "put", "{\"coll\":\"big\",\"key\":\"k\",\"body\":{\"a\":1}}");
    mdx_req_json(&b, 202, "get", "{\"coll\":\"big\",\"key\":\"k\"}");
    mdx_req_json(&b, 203, "ping", "{}");
    for (size_t i = 0; i < b.len; i++)
        mdx_cli_send(&f->cli, b.data + i, 1);
    mdx_buf_fini(&b);
    static const char *const want[] = {"null", "{\"a\":1}", "\"pong\""};
    for (int i = 0; i < 3; i++) {
        mdx_reply_t r;
        assert_int_equal(mdx_cli_recv(&f->cli, &r, 0), 0);
        assert_int_equal(r.id, 201 + (uint64_t)i);
        char *got = mdx_mp_to_json(r.body, r.body_len);
        assert_string_equal(got, want[i]);
        free(got);
        mdx_reply_free(&r);
    }

    /* A 5 MB body arrives over many reads, comes back byte for byte. */
    enum { N = 5 << 20 };
    mdx_put_big(&f->cli, "big", 7, N);
    mdx_buf_init(&b);
    mdx_req_json(&b, 204, "get", "{\"coll\":\"big\",\"key\":7}");
    mdx_cli_send(&f->cli, b.data, b.len);
    mdx_buf_fini(&b);
    mdx_reply_t r;
    assert_int_equal(mdx_cli_recv(&f->cli, &r, 0), 0);
    assert_int_equal(r.id, 204);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.body_len, 1 + 2 + 5 + N); /* {"s": str32} */
    static const uint8_t head[] = {0x81, 0xa1, 's', 0xdb, 0x00, 0x50, 0x00, 0x00};
    assert_memory_equal(r.body, head, sizeof(head));
    for (size_t i = sizeof(head); i < r.body_len; i++)
        if (r.body[i] != 'x')
            fail_msg("byte %zu of the body is %02x", i, r.body[i]);
    mdx_reply_free(&r);
}

static void ttl_set_get_clear_and_expiry(void **state)
{
    fx_t *f = *state;
    OK("create_collection", "{\"name\":\"t\"}", "null");
    OK("put", "{\"coll\":\"t\",\"key\":1,\"body\":{}}", "null");
    OK("ttl_get", "{\"coll\":\"t\",\"key\":1}", "-1");
    OK("ttl_set", "{\"coll\":\"t\",\"key\":1,\"ttl_ms\":600000}", "null");
    int64_t left = int_reply(f, "ttl_get", "{\"coll\":\"t\",\"key\":1}");
    assert_true(left > 590000 && left <= 600000);
    OK("ttl_clear", "{\"coll\":\"t\",\"key\":1}", "null");
    OK("ttl_get", "{\"coll\":\"t\",\"key\":1}", "-1");
    ERR("ttl_get", "{\"coll\":\"t\",\"key\":2}", MDX_ENOTFOUND);
    ERR("ttl_set", "{\"coll\":\"t\",\"key\":2,\"ttl_ms\":1000}", MDX_ENOTFOUND);
    ERR("ttl_clear", "{\"coll\":\"t\",\"key\":2}", MDX_ENOTFOUND);
    ERR("ttl_set", "{\"coll\":\"t\",\"key\":1,\"ttl_ms\":0}", MDX_EINVAL);
    ERR("ttl_set", "{\"coll\":\"t\",\"key\":1,\"ttl_ms\":9223372036854775807}", MDX_EINVAL);

    /* put with ttl_ms; a replace clears it unless keep_ttl. */
    OK("put", "{\"coll\":\"t\",\"key\":2,\"body\":{},\"ttl_ms\":600000}", "null");
    assert_true(int_reply(f, "ttl_get", "{\"coll\":\"t\",\"key\":2}") > 0);
    OK("put", "{\"coll\":\"t\",\"key\":2,\"body\":{\"v\":1},\"keep_ttl\":true}", "null");
    assert_true(int_reply(f, "ttl_get", "{\"coll\":\"t\",\"key\":2}") > 0);
    OK("put", "{\"coll\":\"t\",\"key\":2,\"body\":{\"v\":2}}", "null");
    OK("ttl_get", "{\"coll\":\"t\",\"key\":2}", "-1");

    /* A short TTL: the record disappears from reads, and the expiry step (run from the
     * loop's timer) frees it, which the stats' record count shows. */
    OK("put", "{\"coll\":\"t\",\"key\":3,\"body\":{},\"ttl_ms\":1}", "null");
    struct timespec ts = {0, 20 * 1000000};
    int gone = 0;
    for (int i = 0; i < 500 && !gone; i++) {
        nanosleep(&ts, NULL); /* waiting for time to pass, not for the server */
        int st;
        char *s = mdx_call(&f->cli, "stats", "{}", &st);
        gone = strstr(s, "\"t\":{\"records\":2,") != NULL;
        free(s);
    }
    assert_true(gone);
    OK("get", "{\"coll\":\"t\",\"key\":3}", "null");
}

static void stats_counts_connections_commands_errors_records(void **state)
{
    fx_t *f = *state;
    OK("create_collection", "{\"name\":\"a\"}", "null");
    OK("put", "{\"coll\":\"a\",\"key\":1,\"body\":{\"x\":1}}", "null");
    OK("ping", "{}", "\"pong\"");
    OK("ping", "{}", "\"pong\"");
    ERR("get", "{\"coll\":\"zz\",\"key\":1}", MDX_ENOCOLL);
    ERR("nosuchop", "{}", MDX_EUNKNOWNOP);
    int st;
    char *s = mdx_call(&f->cli, "stats", "{}", &st);
    assert_int_equal(st, 0);
    assert_true(strncmp(s, "{\"uptime_s\":", 12) == 0);
    /* The harness's readiness probe was connection 1; this client is connection 2. */
    assert_non_null(strstr(s, "\"connections\":{\"current\":1,\"total\":2,\"rejected\":0}"));
    /* Only ops requested at least once, in op order; the failed get counts too. */
    assert_non_null(strstr(s, "\"commands\":{\"ping\":2,\"create_collection\":1,\"put\":1,"
                              "\"get\":1,\"stats\":1},"));
    assert_non_null(strstr(s, "\"errors\":{\"NOCOLL\":1,\"UNKNOWNOP\":1}"));
    assert_non_null(strstr(s, "\"records\":1,\"memory\":"));
    assert_non_null(strstr(s, "\"collections\":{\"a\":{\"records\":1,\"memory\":"));
    free(s);
}

static void unix_socket_serves_requests(void **state)
{
    (void)state;
    char path[108];
    snprintf(path, sizeof(path), "/tmp/memdexd-itest-%d.sock", (int)getpid());
    const char *extra[] = {"--unix", path, NULL};
    mdx_srv_t srv;
    mdx_srv_start(&srv, extra);
    mdx_cli_t c;
    assert_int_equal(mdx_cli_connect_unix(&c, path), 0);
    mdx_expect_ok(&c, "ping", "{}", "\"pong\"");
    mdx_expect_ok(&c, "create_collection", "{\"name\":\"x\"}", "null");
    mdx_cli_close(&c);
    int st = mdx_srv_stop(&srv, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_not_equal(access(path, F_OK), 0); /* removed at shutdown */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(hello_names_server_and_protocol, setup, teardown),
        cmocka_unit_test_setup_teardown(ping_answers_pong, setup, teardown),
        cmocka_unit_test_setup_teardown(collections_create_list_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(indexes_create_list_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(put_get_modes_and_bodies_verbatim, setup, teardown),
        cmocka_unit_test_setup_teardown(mget_returns_bodies_and_nils_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(delete_says_whether_it_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(update_sets_and_unsets_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(find_and_count_on_skiplist_and_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(find_pages_default_to_100, setup, teardown),
        cmocka_unit_test_setup_teardown(scan_walks_the_collection, setup, teardown),
        cmocka_unit_test_setup_teardown(frames_split_anywhere_and_large_frames_work, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(ttl_set_get_clear_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_counts_connections_commands_errors_records, setup,
                                        teardown),
        cmocka_unit_test(unix_socket_serves_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
