/*
 * The cache tier over the wire: maxmemory with noeviction (OOM, nothing stored is lost) and
 * with s3fifo (memory stays within the limit under a write load), collection capacities and
 * policies, TTL classes (built-in and configured), tags and invalidate (counts, reads and
 * queries no longer return the records, the reclaim step frees them, tags survive a restart),
 * and the cache counters of stats (hits + misses = gets, per collection and in total).
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
#include <unistd.h>

#include "memdex/error.h"
#include "tests/integration/harness.h"

#define OK(op, args, want)  mdx_expect_ok(c, op, args, want)
#define ERR(op, args, code) free(mdx_expect_err(c, op, args, code))

typedef struct {
    mdx_srv_t srv;
    mdx_cli_t cli;
} fx_t;

static fx_t *start(const char *const *extra)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    mdx_srv_start(&f->srv, extra);
    assert_int_equal(mdx_cli_connect(&f->cli, f->srv.port), 0);
    return f;
}

static void stop(fx_t *f)
{
    mdx_cli_close(&f->cli);
    int st = mdx_srv_stop(&f->srv, 0);
    free(f);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* The number after "key": in json, searching from `from` (a prefix that must be present, such
 * as "\"collections\":{\"c\":" for a collection's counters; "" for the totals). */
static double num_at(const char *json, const char *from, const char *key)
{
    const char *p = json;
    if (*from) {
        p = strstr(json, from);
        if (!p)
            fail_msg("no %s in %s", from, json);
    }
    char k[64];
    snprintf(k, sizeof(k), "\"%s\":", key);
    const char *q = strstr(p, k);
    if (!q)
        fail_msg("no %s after '%s' in %s", k, from, json);
    return strtod(q + strlen(k), NULL);
}

static char *stats(mdx_cli_t *c)
{
    int st;
    char *s = mdx_call(c, "stats", "{}", &st);
    assert_int_equal(st, 0);
    return s;
}

static uint64_t unum(const char *json, const char *from, const char *key)
{
    return (uint64_t)num_at(json, from, key);
}

/* put {"s": n bytes} at key k of coll, with extra JSON args (", ..." or ""); returns the
 * status. */
static int put_sized(mdx_cli_t *c, const char *coll, uint64_t k, size_t n, const char *extra)
{
    char *args = malloc(n + 256);
    assert_non_null(args);
    int len = snprintf(args, 256, "{\"coll\":\"%s\",\"key\":%llu%s,\"body\":{\"s\":\"", coll,
                       (unsigned long long)k, extra);
    memset(args + len, 'x', n);
    strcpy(args + len + n, "\"}}");
    int st;
    free(mdx_call(c, "put", args, &st));
    free(args);
    return st;
}

static int64_t int_reply(mdx_cli_t *c, const char *op, const char *args)
{
    int st;
    char *s = mdx_call(c, op, args, &st);
    assert_int_equal(st, 0);
    int64_t v = strtoll(s, NULL, 10);
    free(s);
    return v;
}

static void noeviction_refuses_with_oom_and_loses_nothing(void **state)
{
    (void)state;
    const char *const flags[] = {"--maxmemory", "1mb", "--maxmemory-policy", "noeviction", NULL};
    fx_t *f = start(flags);
    mdx_cli_t *c = &f->cli;
    OK("create_collection", "{\"name\":\"n\"}", "null");
    uint64_t stored = 0;
    int st = 0;
    while (stored < 5000 && (st = put_sized(c, "n", stored, 1000, "")) == 0)
        stored++;
    assert_int_equal(st, MDX_EOOM); /* 5 MB of bodies cannot fit in 1 MiB */
    assert_true(stored > 100);
    /* Refused again, and a replace that grows is refused too; the old body stays. */
    assert_int_equal(put_sized(c, "n", stored, 1000, ""), MDX_EOOM);
    assert_int_equal(put_sized(c, "n", 0, 4000, ""), MDX_EOOM);
    char *s = stats(c);
    assert_int_equal(unum(s, "", "records"), stored);
    /* noeviction admits a write while below the limit: the last one may pass it a little */
    assert_true(unum(s, "", "memory") <= 1024 * 1024 + 1024 * 1024 / 20);
    assert_int_equal(unum(s, "", "maxmemory"), 1024 * 1024);
    assert_int_equal(unum(s, "", "oom"), 3);
    assert_int_equal(unum(s, "", "evicted_memory"), 0);
    assert_non_null(strstr(s, "\"policy\":\"noeviction\""));
    free(s);
    for (uint64_t k = 0; k < stored; k++) {
        char args[64];
        snprintf(args, sizeof(args), "{\"coll\":\"n\",\"key\":%llu}", (unsigned long long)k);
        int gst;
        char *body = mdx_call(c, "get", args, &gst);
        assert_int_equal(gst, 0);
        if (strlen(body) != 1000 + 8) /* {"s":"x...x"} */
            fail_msg("key %llu lost: %.40s", (unsigned long long)k, body);
        free(body);
    }
    /* Deleting makes room again. */
    OK("delete", "{\"coll\":\"n\",\"key\":0}", "1");
    OK("delete", "{\"coll\":\"n\",\"key\":1}", "1");
    assert_int_equal(put_sized(c, "n", stored, 1000, ""), 0);
    stop(f);
}

static void s3fifo_keeps_memory_within_the_limit_under_writes(void **state)
{
    (void)state;
    const uint64_t max = 2u << 20;
    const char *const flags[] = {"--maxmemory", "2m", NULL}; /* s3fifo by default */
    fx_t *f = start(flags);
    mdx_cli_t *c = &f->cli;
    OK("create_collection", "{\"name\":\"w\"}", "null");
    OK("create_index", "{\"coll\":\"w\",\"name\":\"by_s\",\"field\":\"s\",\"kind\":\"hash\"}",
       "null");
    uint64_t peak = 0;
    for (uint64_t k = 0; k < 12000; k++) {
        int pst = put_sized(c, "w", k, 200 + k % 700, "");
        if (pst) {
            char *st = stats(c);
            fail_msg("put %llu: status %d; %s", (unsigned long long)k, pst, st);
        }
        if (k % 250 == 249) {
            char *s = stats(c);
            uint64_t mem = unum(s, "", "memory");
            if (mem > peak)
                peak = mem;
            if (mem > max + max / 20)
                fail_msg("memory %llu over the limit %llu + 5%% after %llu writes",
                         (unsigned long long)mem, (unsigned long long)max,
                         (unsigned long long)k + 1);
            free(s);
        }
    }
    char *s = stats(c);
    uint64_t mem = unum(s, "", "memory");
    print_message("memory %llu, peak %llu, limit %llu\n", (unsigned long long)mem,
                  (unsigned long long)peak, (unsigned long long)max);
    assert_true(mem >= max - max / 20); /* full: the policy evicts only what it must */
    assert_true(unum(s, "", "evicted_memory") > 0);
    assert_int_equal(unum(s, "", "oom"), 0); /* an evicting policy never refuses */
    assert_int_equal(unum(s, "", "evicted_memory"), 12000 - unum(s, "", "records"));
    assert_non_null(strstr(s, "\"policy\":\"s3fifo\""));
    free(s);
    stop(f);
}

static void capacity_and_policy_per_collection(void **state)
{
    (void)state;
    fx_t *f = start(NULL);
    mdx_cli_t *c = &f->cli;
    OK("create_collection", "{\"name\":\"l\",\"capacity\":10,\"policy\":\"lru\"}", "null");
    OK("list_collections", "{}",
       "[{\"name\":\"l\",\"records\":0,\"indexes\":[],\"capacity\":10,\"policy\":\"lru\","
       "\"default_ttl_ms\":0}]");
    for (int k = 0; k < 20; k++)
        assert_int_equal(put_sized(c, "l", (uint64_t)k, 10, ""), 0);
    char *s = stats(c);
    const char *l = "\"collections\":{\"l\":";
    assert_int_equal(unum(s, l, "records"), 10);
    assert_int_equal(unum(s, l, "capacity"), 10);
    assert_int_equal(unum(s, l, "evicted_capacity"), 10);
    assert_int_equal(unum(s, "", "evicted_capacity"), 10);
    free(s);
    /* lru: the 10 newest remain */
    OK("get", "{\"coll\":\"l\",\"key\":9}", "null");
    OK("get", "{\"coll\":\"l\",\"key\":19}", "{\"s\":\"xxxxxxxxxx\"}");

    /* Lowering the capacity evicts now; noeviction refuses and changes nothing. */
    OK("configure_collection", "{\"name\":\"l\",\"capacity\":4}", "null");
    s = stats(c);
    assert_int_equal(unum(s, l, "records"), 4);
    free(s);
    OK("configure_collection", "{\"name\":\"l\",\"policy\":\"noeviction\"}", "null");
    ERR("configure_collection", "{\"name\":\"l\",\"capacity\":2}", MDX_EOOM);
    assert_int_equal(put_sized(c, "l", 100, 10, ""), MDX_EOOM);
    OK("list_collections", "{}",
       "[{\"name\":\"l\",\"records\":4,\"indexes\":[],\"capacity\":4,\"policy\":\"noeviction\","
       "\"default_ttl_ms\":0}]");

    /* Bad options: INVAL or BADARGS, and nothing changes (no collection left behind). */
    char *msg = mdx_expect_err(c, "configure_collection", "{\"name\":\"l\",\"policy\":\"fifo\"}",
                               MDX_EINVAL);
    assert_non_null(strstr(msg, "unknown policy 'fifo'"));
    free(msg);
    msg = mdx_expect_err(c, "create_collection", "{\"name\":\"x\",\"default_ttl\":\"forever\"}",
                         MDX_EINVAL);
    assert_non_null(strstr(msg, "forever"));
    free(msg);
    ERR("create_collection", "{\"name\":\"x\",\"policy\":\"mru\"}", MDX_EINVAL);
    ERR("create_collection", "{\"name\":\"x\",\"capacity\":-1}", MDX_EBADARGS);
    ERR("create_collection", "{\"name\":\"x\",\"default_ttl_ms\":1,\"default_ttl\":\"short\"}",
        MDX_EBADARGS);
    ERR("configure_collection", "{\"name\":\"l\"}", MDX_EBADARGS);
    ERR("configure_collection", "{\"name\":\"nope\",\"capacity\":1}", MDX_ENOCOLL);
    OK("list_collections", "{}",
       "[{\"name\":\"l\",\"records\":4,\"indexes\":[],\"capacity\":4,\"policy\":\"noeviction\","
       "\"default_ttl_ms\":0}]");
    /* "default" follows the server's policy again */
    OK("configure_collection", "{\"name\":\"l\",\"policy\":\"default\",\"capacity\":0}", "null");
    OK("list_collections", "{}",
       "[{\"name\":\"l\",\"records\":4,\"indexes\":[],\"capacity\":0,\"policy\":\"s3fifo\","
       "\"default_ttl_ms\":0}]");
    stop(f);
}

static void ttl_classes_resolve_to_their_ttl(void **state)
{
    (void)state;
    const char *const flags[] = {"--ttl-class", "tiny=5000", "--ttl-class", "long=7200000", NULL};
    fx_t *f = start(flags);
    mdx_cli_t *c = &f->cli;
    OK("create_collection", "{\"name\":\"t\"}", "null");
    static const struct {
        const char *cls;
        int64_t ms;
    } cases[] = {
        {"short", 60000}, {"medium", 600000}, {"very_long", 86400000},
        {"tiny", 5000},   {"long", 7200000}, /* configured; long redefined */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char args[128];
        snprintf(args, sizeof(args),
                 "{\"coll\":\"t\",\"key\":%zu,\"body\":{},\"ttl_class\":\"%s\"}", i, cases[i].cls);
        OK("put", args, "null");
        snprintf(args, sizeof(args), "{\"coll\":\"t\",\"key\":%zu}", i);
        int64_t left = int_reply(c, "ttl_get", args);
        if (left > cases[i].ms || left < cases[i].ms - 2000)
            fail_msg("class %s: ttl_get %lld", cases[i].cls, (long long)left);
    }
    /* ttl_set by class; "none" removes the expiry */
    OK("ttl_set", "{\"coll\":\"t\",\"key\":0,\"ttl_class\":\"very_long\"}", "null");
    assert_true(int_reply(c, "ttl_get", "{\"coll\":\"t\",\"key\":0}") > 86400000 - 2000);
    OK("ttl_set", "{\"coll\":\"t\",\"key\":0,\"ttl_class\":\"none\"}", "null");
    OK("ttl_get", "{\"coll\":\"t\",\"key\":0}", "-1");
    /* unknown classes are INVAL and change nothing */
    char *msg = mdx_expect_err(c, "ttl_set", "{\"coll\":\"t\",\"key\":1,\"ttl_class\":\"weekly\"}",
                               MDX_EINVAL);
    assert_non_null(strstr(msg, "weekly"));
    free(msg);
    ERR("put", "{\"coll\":\"t\",\"key\":1,\"body\":{\"v\":2},\"ttl_class\":\"weekly\"}",
        MDX_EINVAL);
    ERR("put", "{\"coll\":\"t\",\"key\":1,\"body\":{\"v\":2},\"ttl_class\":\"short\",\"ttl_ms\":5}",
        MDX_EBADARGS);
    ERR("ttl_set", "{\"coll\":\"t\",\"key\":1}", MDX_EBADARGS);
    OK("get", "{\"coll\":\"t\",\"key\":1}", "{}");
    assert_true(int_reply(c, "ttl_get", "{\"coll\":\"t\",\"key\":1}") > 55000);

    /* a collection's default TTL, by class or in ms; ttl_class none overrides it */
    OK("create_collection", "{\"name\":\"d\",\"default_ttl\":\"medium\"}", "null");
    OK("put", "{\"coll\":\"d\",\"key\":1,\"body\":{}}", "null");
    assert_true(int_reply(c, "ttl_get", "{\"coll\":\"d\",\"key\":1}") > 600000 - 2000);
    OK("put", "{\"coll\":\"d\",\"key\":2,\"body\":{},\"ttl_class\":\"none\"}", "null");
    OK("ttl_get", "{\"coll\":\"d\",\"key\":2}", "-1");
    OK("configure_collection", "{\"name\":\"d\",\"default_ttl_ms\":30000}", "null");
    OK("put", "{\"coll\":\"d\",\"key\":3,\"body\":{}}", "null");
    int64_t left = int_reply(c, "ttl_get", "{\"coll\":\"d\",\"key\":3}");
    assert_true(left <= 30000 && left > 28000);
    stop(f);
}

/* Tagged records: n with tag "big" (more than the engine frees eagerly), a few "small". */
static void put_tagged(mdx_cli_t *c, const char *coll, int from, int n, const char *tags)
{
    for (int k = from; k < from + n; k++) {
        char args[256];
        snprintf(args, sizeof(args), "{\"coll\":\"%s\",\"key\":%d,\"body\":{\"g\":%d},\"tags\":%s}",
                 coll, k, k % 3, tags);
        mdx_expect_ok(c, "put", args, "null");
    }
}

static void invalidate_removes_tagged_records_at_once(void **state)
{
    (void)state;
    fx_t *f = start(NULL);
    mdx_cli_t *c = &f->cli;
    OK("create_collection", "{\"name\":\"a\"}", "null");
    OK("create_collection", "{\"name\":\"b\"}", "null");
    OK("create_index", "{\"coll\":\"a\",\"name\":\"g\",\"field\":\"g\",\"kind\":\"skiplist\"}",
       "null");
    put_tagged(c, "a", 0, 1000, "[\"big\",\"all\"]");
    put_tagged(c, "a", 1000, 5, "[\"small\",\"all\"]");
    put_tagged(c, "a", 2000, 5, "[]");
    put_tagged(c, "b", 0, 7, "[\"small\"]");
    OK("get", "{\"coll\":\"a\",\"key\":1001,\"with_tags\":true}",
       "{\"body\":{\"g\":2},\"tags\":[\"small\",\"all\"]}");
    OK("get", "{\"coll\":\"a\",\"key\":2001,\"with_tags\":true}",
       "{\"body\":{\"g\":0},\"tags\":[]}");
    OK("get", "{\"coll\":\"a\",\"key\":7777,\"with_tags\":true}", "null");
    OK("mget", "{\"coll\":\"b\",\"keys\":[1,99],\"with_tags\":true}",
       "[{\"body\":{\"g\":1},\"tags\":[\"small\"]},null]");

    /* one collection */
    OK("invalidate", "{\"coll\":\"a\",\"tags\":[\"big\"]}", "{\"removed\":1000}");
    OK("get", "{\"coll\":\"a\",\"key\":5}", "null");
    /* count includes invalidated records until the reclaim step frees them (docs/cache.md):
     * exact once pending is 0. Reads (get above, find below) never return them. */
    uint64_t left = 1;
    for (int i = 0; i < 100000 && left; i++) {
        char *st = stats(c);
        left = unum(st, "", "pending");
        free(st);
    }
    assert_int_equal(left, 0);
    OK("count", "{\"coll\":\"a\",\"index\":\"g\",\"ge\":0}", "10");
    OK("find", "{\"coll\":\"a\",\"index\":\"g\",\"eq\":1,\"limit\":10}",
       "{\"records\":[[1000,{\"g\":1}],[1003,{\"g\":1}],[2002,{\"g\":1}]],\"more\":false,"
       "\"cursor\":null}");
    OK("invalidate", "{\"coll\":\"a\",\"tags\":[\"big\"]}", "{\"removed\":0}");
    /* every collection */
    OK("invalidate", "{\"tags\":[\"small\",\"nothing\"]}", "{\"removed\":12}");
    OK("get", "{\"coll\":\"b\",\"key\":1}", "null");
    OK("get", "{\"coll\":\"a\",\"key\":2003}", "{\"g\":2}");
    /* bad tags: BADARGS or INVAL, and nothing is removed */
    ERR("invalidate", "{\"coll\":\"a\",\"tags\":\"all\"}", MDX_EBADARGS);
    ERR("invalidate", "{\"coll\":\"a\",\"tags\":[\"\"]}", MDX_EBADARGS);
    ERR("invalidate", "{\"coll\":\"a\",\"tags\":[\"x\",\"x\"]}", MDX_EINVAL);
    ERR("invalidate", "{\"coll\":\"zz\",\"tags\":[\"x\"]}", MDX_ENOCOLL);
    ERR("put", "{\"coll\":\"a\",\"key\":2003,\"body\":{},\"tags\":[1]}", MDX_EBADARGS);
    ERR("put", "{\"coll\":\"a\",\"key\":2003,\"body\":{},\"tags\":[\"d\",\"d\"]}", MDX_EINVAL);
    OK("get", "{\"coll\":\"a\",\"key\":2003}", "{\"g\":2}");

    /* the reclaim step frees what the lazy path left (stats shows pending drain to 0) */
    char *s = stats(c);
    const char *a = "\"collections\":{\"a\":";
    assert_int_equal(unum(s, a, "invalidated"), 1005);
    assert_int_equal(unum(s, "", "invalidated"), 1012);
    free(s);
    uint64_t pending = 1;
    for (int i = 0; i < 100000 && pending; i++) {
        s = stats(c);
        pending = unum(s, "", "pending");
        free(s);
    }
    assert_int_equal(pending, 0);
    s = stats(c);
    assert_int_equal(unum(s, a, "records"), 5);
    /* The lazily invalidated records were freed by reclaim runs, which stats accounts for. */
    assert_true(unum(s, "\"reclaim\"", "freed") >= 1000);
    assert_true(unum(s, "\"reclaim\"", "runs") >= 1);
    free(s);
    stop(f);
}

static void tags_survive_a_restart(void **state)
{
    (void)state;
    char dir[] = "itest-cache-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *const flags[] = {"--data-dir", dir, NULL};
    fx_t *f = start(flags);
    mdx_cli_t *c = &f->cli;
    OK("create_collection", "{\"name\":\"r\",\"capacity\":100,\"policy\":\"sieve\"}", "null");
    put_tagged(c, "r", 0, 300, "[\"t1\"]");
    put_tagged(c, "r", 300, 3, "[\"t2\",\"t3\"]");
    stop(f); /* SIGTERM: the final snapshot */
    f = start(flags);
    c = &f->cli;
    OK("list_collections", "{}",
       "[{\"name\":\"r\",\"records\":100,\"indexes\":[],\"capacity\":100,\"policy\":\"sieve\","
       "\"default_ttl_ms\":0}]");
    OK("get", "{\"coll\":\"r\",\"key\":301,\"with_tags\":true}",
       "{\"body\":{\"g\":1},\"tags\":[\"t2\",\"t3\"]}");
    OK("invalidate", "{\"tags\":[\"t3\"]}", "{\"removed\":3}");
    OK("invalidate", "{\"tags\":[\"t1\"]}", "{\"removed\":97}");
    OK("list_collections", "{}",
       "[{\"name\":\"r\",\"records\":0,\"indexes\":[],\"capacity\":100,\"policy\":\"sieve\","
       "\"default_ttl_ms\":0}]");
    stop(f);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void stats_cache_counters_are_consistent(void **state)
{
    (void)state;
    fx_t *f = start(NULL);
    mdx_cli_t *c = &f->cli;
    OK("create_collection", "{\"name\":\"s\"}", "null");
    OK("create_collection", "{\"name\":\"u\"}", "null");
    OK("put", "{\"coll\":\"s\",\"key\":1,\"body\":{}}", "null");
    OK("put", "{\"coll\":\"s\",\"key\":2,\"body\":{}}", "null");
    OK("put", "{\"coll\":\"u\",\"key\":1,\"body\":{}}", "null");
    OK("get", "{\"coll\":\"s\",\"key\":1}", "{}");
    OK("get", "{\"coll\":\"s\",\"key\":3}", "null");
    OK("mget", "{\"coll\":\"s\",\"keys\":[1,2,3,4]}", "[{},{},null,null]");
    OK("get", "{\"coll\":\"u\",\"key\":1}", "{}");
    char *s = stats(c);
    const char *sc = "\"collections\":{\"s\":", *uc = "\"u\":{\"records\"";
    assert_int_equal(unum(s, sc, "gets"), 6);
    assert_int_equal(unum(s, sc, "hits"), 3);
    assert_int_equal(unum(s, sc, "misses"), 3);
    assert_true(num_at(s, sc, "hit_ratio") == 0.5);
    assert_int_equal(unum(s, uc, "gets"), 1);
    assert_true(num_at(s, uc, "hit_ratio") == 1.0);
    assert_int_equal(unum(s, "", "gets"), 7);
    assert_int_equal(unum(s, "", "hits") + unum(s, "", "misses"), unum(s, "", "gets"));
    assert_int_equal(unum(s, "", "hits"), 4);
    double ratio = num_at(s, "", "hit_ratio");
    assert_true(ratio > 0.5714 && ratio < 0.5715);
    assert_int_equal(unum(s, "", "maxmemory"), 0);
    assert_int_equal(unum(s, "", "pending"), 0);
    assert_int_equal(unum(s, "", "expired"), 0);
    assert_int_equal(unum(s, "", "memory"), unum(s, sc, "memory") + unum(s, uc, "memory"));
    free(s);
    stop(f);
}

/* get_lease over the wire, from two connections: one filler, the other waits, then both
 * see the record; a stale token is refused with LEASE and stores nothing. */
static void leases_one_filler_the_others_wait(void **state)
{
    (void)state;
    fx_t *f = start(NULL);
    mdx_cli_t *c = &f->cli, c2;
    assert_int_equal(mdx_cli_connect(&c2, f->srv.port), 0);
    OK("create_collection", "{\"name\":\"l\"}", "null");
    const char *req = "{\"coll\":\"l\",\"key\":\"k\",\"lease_ms\":10000}";
    int st;
    char *r1 = mdx_call(c, "get_lease", req, &st);
    assert_int_equal(st, 0);
    assert_non_null(strstr(r1, "\"state\":\"fill\""));
    uint64_t token = unum(r1, "", "token");
    free(r1);
    mdx_expect_ok(&c2, "get_lease", req, "{\"state\":\"wait\"}");
    char args[256];
    snprintf(args, sizeof(args), "{\"coll\":\"l\",\"key\":\"k\",\"body\":{\"v\":1},\"lease\":%llu}",
             (unsigned long long)token + 1);
    free(mdx_expect_err(&c2, "put", args, MDX_ELEASE));
    OK("get", "{\"coll\":\"l\",\"key\":\"k\"}", "null"); /* nothing stored */
    snprintf(args, sizeof(args), "{\"coll\":\"l\",\"key\":\"k\",\"body\":{\"v\":1},\"lease\":%llu}",
             (unsigned long long)token);
    OK("put", args, "null");
    mdx_expect_ok(&c2, "get_lease", req, "{\"state\":\"hit\",\"record\":{\"v\":1}}");
    free(mdx_expect_err(&c2, "put", args, MDX_ELEASE)); /* the lease ended with the fill */
    ERR("get_lease", "{\"coll\":\"l\",\"key\":\"k\",\"lease_ms\":0}", MDX_EINVAL);
    mdx_cli_close(&c2);
    stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(noeviction_refuses_with_oom_and_loses_nothing),
        cmocka_unit_test(leases_one_filler_the_others_wait),
        cmocka_unit_test(s3fifo_keeps_memory_within_the_limit_under_writes),
        cmocka_unit_test(capacity_and_policy_per_collection),
        cmocka_unit_test(ttl_classes_resolve_to_their_ttl),
        cmocka_unit_test(invalidate_removes_tagged_records_at_once),
        cmocka_unit_test(tags_survive_a_restart),
        cmocka_unit_test(stats_cache_counters_are_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
