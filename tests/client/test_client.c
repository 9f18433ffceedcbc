/*
 * libmemdex-client against the real memdexd: every command with its typed result, server
 * errors told from local ones, the raw call, a Unix socket, pipelining (10,000 requests, one
 * write per flush for a small batch, errors in the middle of a pipeline), and reconnecting
 * after the server restarts, where even a put goes through because the dead connection is
 * noticed before anything is sent on it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "memdex/client.h"
#include "tests/client/srv.h"
#include "tests/integration/harness.h"

/* ---- helpers ---- */

static mdx_client_t *client_at(const char *addr)
{
    mdx_client_opts_t o;
    mdx_client_opts_init(&o);
    o.addr = addr;
    o.retry.backoff_ms = 5;
    o.retry.backoff_max_ms = 20;
    o.retry.deadline_ms = 5000;
    mdx_client_t *c = NULL;
    assert_int_equal(mdx_client_new(&o, &c), 0);
    return c;
}

static mdx_client_t *client_port(int port)
{
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    return client_at(addr);
}

/* JSON text to msgpack bytes (the caller frees b). */
static void mp(mdx_buf_t *b, const char *json)
{
    mdx_buf_init(b);
    mdx_json_to_mp(b, json);
}

/* Asserts that msgpack bytes render as want (JSON normalized through msgpack). */
#define assert_mp(p, n, want) assert_mp_at(__LINE__, p, n, want)
static void assert_mp_at(int line, const void *p, size_t n, const char *want)
{
    mdx_buf_t w;
    mp(&w, want);
    char *ws = mdx_mp_to_json(w.data, w.len);
    char *gs = mdx_mp_to_json(p, n);
    if (strcmp(ws, gs) != 0)
        fail_msg("line %d:\n  want %s\n  got  %s", line, ws, gs);
    free(ws);
    free(gs);
    mdx_buf_fini(&w);
}

static void ok(mdx_client_t *c, int rc, int line)
{
    if (rc)
        fail_msg("line %d: rc %d (%s, kind %d): %s", line, rc, mdx_client_err_name(c),
                 (int)mdx_client_err_kind(c), mdx_client_errmsg(c));
}
#define OK(c, call) ok(c, call, __LINE__)

static void put_json(mdx_client_t *c, const char *coll, mdx_val_t key, const char *json)
{
    mdx_buf_t b;
    mp(&b, json);
    OK(c, mdx_client_put(c, coll, key, b.data, b.len, NULL));
    mdx_buf_fini(&b);
}

/* ---- every command ---- */

static void every_command_returns_its_typed_result(void **state)
{
    (void)state;
    srv_t srv;
    srv_start(&srv, NULL);
    mdx_client_t *c = client_port(srv.srv.port);

    mdx_client_hello_t h;
    OK(c, mdx_client_hello(c, &h));
    assert_int_equal(h.protocol, 1);
    assert_int_equal(h.server.len, 6);
    assert_memory_equal(h.server.ptr, "memdex", 6);
    assert_true(h.version.len > 0);
    assert_int_equal(h.max_frame, 32u << 20);
    OK(c, mdx_client_ping(c));

    OK(c, mdx_client_create_collection(c, "users"));
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_NONE);
    assert_string_equal(mdx_client_err_name(c), "OK");
    OK(c, mdx_client_create_index(c, "users", "by_age", "age", MDX_CLIENT_SKIPLIST, 0));
    OK(c, mdx_client_create_index(c, "users", "by_name", "name", MDX_CLIENT_HASH, 1));

    put_json(c, "users", mdx_val_str("u1"), "{\"name\":\"ann\",\"age\":31,\"nick\":\"a\"}");
    put_json(c, "users", mdx_val_str("u2"), "{\"name\":\"bob\",\"age\":25}");
    put_json(c, "users", mdx_val_int(7), "{\"name\":\"cy\",\"age\":40,\"w\":1.5,\"ok\":true}");

    /* put modes and options */
    mdx_buf_t b;
    mp(&b, "{\"name\":\"dup\"}");
    mdx_client_put_opts_t po = {.mode = MDX_CLIENT_INSERT};
    assert_int_equal(mdx_client_put(c, "users", mdx_val_str("u1"), b.data, b.len, &po),
                     MDX_EEXISTS);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_SERVER);
    assert_string_equal(mdx_client_err_name(c), "EXISTS");
    po.mode = MDX_CLIENT_REPLACE;
    assert_int_equal(mdx_client_put(c, "users", mdx_val_str("zz"), b.data, b.len, &po),
                     MDX_ENOTFOUND);
    mdx_buf_fini(&b);
    mp(&b, "{\"name\":\"tmp\"}");
    po.mode = MDX_CLIENT_UPSERT;
    po.ttl_ms = 60000;
    OK(c, mdx_client_put(c, "users", mdx_val_bin("\x01\x02", 2), b.data, b.len, &po));
    mdx_buf_fini(&b);

    /* get, and the field helpers on its body */
    const uint8_t *body;
    size_t blen;
    OK(c, mdx_client_get(c, "users", mdx_val_int(7), &body, &blen));
    assert_mp(body, blen, "{\"name\":\"cy\",\"age\":40,\"w\":1.5,\"ok\":true}");
    mdx_str_t s;
    int64_t i64;
    uint64_t u64;
    double d;
    int bl;
    mdx_bytes_t raw;
    assert_int_equal(mdx_field_str(body, blen, "name", &s), 0);
    assert_int_equal(s.len, 2);
    assert_memory_equal(s.ptr, "cy", 2);
    assert_int_equal(mdx_field_int(body, blen, "age", &i64), 0);
    assert_int_equal(i64, 40);
    assert_int_equal(mdx_field_uint(body, blen, "age", &u64), 0);
    assert_int_equal(u64, 40);
    assert_int_equal(mdx_field_double(body, blen, "w", &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(mdx_field_double(body, blen, "age", &d), 0);
    assert_true(d == 40.0);
    assert_int_equal(mdx_field_bool(body, blen, "ok", &bl), 0);
    assert_int_equal(bl, 1);
    assert_int_equal(mdx_field_str(body, blen, "age", &s), MDX_EINVAL);
    assert_int_equal(mdx_field_str(body, blen, "missing", &s), MDX_ENOTFOUND);
    assert_int_equal(mdx_field_raw(body, blen, "w", &raw), 0);
    assert_mp(raw.ptr, raw.len, "1.5");
    assert_int_equal(mdx_field_str("\x91\x01", 2, "x", &s), MDX_EPROTO);
    assert_int_equal(mdx_field_str(NULL, 0, "x", &s), MDX_ENOTFOUND);

    OK(c, mdx_client_get(c, "users", mdx_val_str("nobody"), &body, &blen));
    assert_null(body);
    assert_int_equal(blen, 0);

    /* mget: in key order, absent ones NULL */
    mdx_val_t keys[3] = {mdx_val_str("u2"), mdx_val_str("none"), mdx_val_mp("\x07", 1)};
    mdx_client_mget_t mg;
    OK(c, mdx_client_mget(c, "users", keys, 3, &mg));
    assert_int_equal(mg.n, 3);
    assert_mp(mg.bodies[0].ptr, mg.bodies[0].len, "{\"name\":\"bob\",\"age\":25}");
    assert_null(mg.bodies[1].ptr);
    assert_int_equal(mdx_field_str(mg.bodies[2].ptr, mg.bodies[2].len, "name", &s), 0);
    assert_memory_equal(s.ptr, "cy", 2);

    /* update: set and unset */
    mp(&b, "{\"age\":32}");
    const char *unset[] = {"nick"};
    OK(c, mdx_client_update(c, "users", mdx_val_str("u1"), b.data, b.len, unset, 1));
    mdx_buf_fini(&b);
    OK(c, mdx_client_get(c, "users", mdx_val_str("u1"), &body, &blen));
    assert_mp(body, blen, "{\"name\":\"ann\",\"age\":32}");
    assert_int_equal(mdx_client_update(c, "users", mdx_val_str("nope"), NULL, 0, unset, 1),
                     MDX_ENOTFOUND);

    /* find: a page, then the next one through the cursor */
    mdx_client_find_opts_t fo;
    memset(&fo, 0, sizeof(fo));
    fo.cond.ge = mdx_val_int(18);
    fo.cond.lt = mdx_val_int(65);
    fo.limit = 2;
    mdx_client_find_t f;
    OK(c, mdx_client_find(c, "users", "by_age", &fo, &f));
    assert_int_equal(f.n, 2);
    assert_mp(f.records[0].key.ptr, f.records[0].key.len, "\"u2\"");
    assert_mp(f.records[1].key.ptr, f.records[1].key.len, "\"u1\"");
    assert_mp(f.records[1].body.ptr, f.records[1].body.len, "{\"name\":\"ann\",\"age\":32}");
    assert_true(f.more);
    assert_mp(f.cursor.ptr, f.cursor.len, "[32,\"u1\"]");
    /* The cursor is a view into the last result; passing it straight back is allowed. */
    fo.after = mdx_val_mp(f.cursor.ptr, f.cursor.len);
    OK(c, mdx_client_find(c, "users", "by_age", &fo, &f));
    assert_int_equal(f.n, 1);
    mdx_val_t k;
    assert_int_equal(mdx_val_parse(f.records[0].key.ptr, f.records[0].key.len, &k), 0);
    assert_int_equal(k.type, MDX_VAL_INT);
    assert_int_equal(k.v.i, 7);
    assert_false(f.more);
    assert_null(f.cursor.ptr);
    /* descending, equality, offset */
    memset(&fo, 0, sizeof(fo));
    fo.desc = 1;
    fo.offset = 1;
    OK(c, mdx_client_find(c, "users", "by_age", &fo, &f));
    assert_int_equal(f.n, 2);
    assert_mp(f.records[0].key.ptr, f.records[0].key.len, "\"u1\"");
    memset(&fo, 0, sizeof(fo));
    fo.cond.eq = mdx_val_str("bob");
    OK(c, mdx_client_find(c, "users", "by_name", &fo, &f));
    assert_int_equal(f.n, 1);
    assert_mp(f.records[0].key.ptr, f.records[0].key.len, "\"u2\"");
    fo.cond.eq.type = MDX_VAL_NONE;
    fo.cond.ge = mdx_val_str("a");
    assert_int_equal(mdx_client_find(c, "users", "by_name", &fo, &f), MDX_ENOTRANGE);
    assert_int_equal(mdx_client_find(c, "users", "nope", NULL, &f), MDX_ENOINDEX);

    /* count */
    mdx_client_cond_t cd;
    memset(&cd, 0, sizeof(cd));
    cd.ge = mdx_val_int(30);
    uint64_t n;
    OK(c, mdx_client_count(c, "users", "by_age", &cd, &n));
    assert_int_equal(n, 2);
    OK(c, mdx_client_count(c, "users", "by_age", NULL, &n));
    assert_int_equal(n, 3);
    cd.ge.type = MDX_VAL_NONE;
    cd.eq = mdx_val_double(25.0);
    OK(c, mdx_client_count(c, "users", "by_age", &cd, &n));
    assert_int_equal(n, 1);

    /* scan: page through everything */
    size_t seen = 0;
    uint64_t cursor = 0;
    int pages = 0;
    do {
        mdx_client_scan_t sc;
        OK(c, mdx_client_scan(c, "users", cursor, 1, &sc));
        seen += sc.n;
        cursor = sc.cursor;
        pages++;
        assert_true(pages < 100);
    } while (cursor != 0);
    assert_true(seen >= 4);

    /* TTL */
    int64_t ms;
    OK(c, mdx_client_ttl_get(c, "users", mdx_val_str("u1"), &ms));
    assert_int_equal(ms, -1);
    OK(c, mdx_client_ttl_set(c, "users", mdx_val_str("u1"), 50000));
    OK(c, mdx_client_ttl_get(c, "users", mdx_val_str("u1"), &ms));
    assert_true(ms > 40000 && ms <= 50000);
    OK(c, mdx_client_ttl_clear(c, "users", mdx_val_str("u1")));
    OK(c, mdx_client_ttl_get(c, "users", mdx_val_str("u1"), &ms));
    assert_int_equal(ms, -1);
    assert_int_equal(mdx_client_ttl_get(c, "users", mdx_val_str("zz"), &ms), MDX_ENOTFOUND);

    /* delete */
    int del = -1;
    OK(c, mdx_client_delete(c, "users", mdx_val_str("u2"), &del));
    assert_int_equal(del, 1);
    OK(c, mdx_client_delete(c, "users", mdx_val_str("u2"), &del));
    assert_int_equal(del, 0);

    /* list_indexes, list_collections */
    mdx_client_indexes_t ix;
    OK(c, mdx_client_list_indexes(c, "users", &ix));
    assert_int_equal(ix.n, 2);
    assert_int_equal(ix.indexes[0].name.len, 6);
    assert_memory_equal(ix.indexes[0].name.ptr, "by_age", 6);
    assert_memory_equal(ix.indexes[0].field.ptr, "age", 3);
    assert_int_equal(ix.indexes[0].kind, MDX_CLIENT_SKIPLIST);
    assert_int_equal(ix.indexes[0].unique, 0);
    assert_int_equal(ix.indexes[0].entries, 2);
    assert_int_equal(ix.indexes[1].kind, MDX_CLIENT_HASH);
    assert_int_equal(ix.indexes[1].unique, 1);
    OK(c, mdx_client_create_collection(c, "empty"));
    mdx_client_colls_t cl;
    OK(c, mdx_client_list_collections(c, &cl));
    assert_int_equal(cl.n, 2);
    assert_memory_equal(cl.colls[0].name.ptr, "users", 5);
    assert_int_equal(cl.colls[0].records, 3);
    assert_int_equal(cl.colls[0].n_indexes, 2);
    assert_memory_equal(cl.colls[0].indexes[1].name.ptr, "by_name", 7);
    assert_memory_equal(cl.colls[1].name.ptr, "empty", 5);
    assert_int_equal(cl.colls[1].n_indexes, 0);

    /* stats */
    mdx_client_stats_t st;
    OK(c, mdx_client_stats(c, &st));
    assert_int_equal(st.records, 3);
    assert_true(st.conn_current >= 1);
    assert_true(st.conn_total >= 1);
    mdx_bytes_t cmds;
    assert_int_equal(mdx_field_raw(st.raw.ptr, st.raw.len, "commands", &cmds), 0);
    assert_int_equal(mdx_field_uint(cmds.ptr, cmds.len, "put", &u64), 0);
    assert_int_equal(u64, 6);

    /* drop_index, drop_collection, then the errors that follow */
    OK(c, mdx_client_drop_index(c, "users", "by_name"));
    assert_int_equal(mdx_client_drop_index(c, "users", "by_name"), MDX_ENOINDEX);
    OK(c, mdx_client_drop_collection(c, "users"));
    assert_int_equal(mdx_client_get(c, "users", mdx_val_str("u1"), &body, &blen), MDX_ENOCOLL);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_SERVER);
    assert_int_equal(mdx_client_err_code(c), MDX_ENOCOLL);
    assert_string_equal(mdx_client_err_name(c), "NOCOLL");
    assert_non_null(strstr(mdx_client_errmsg(c), "users"));
    assert_int_equal(mdx_client_create_collection(c, "empty"), MDX_ECOLLEXISTS);
    assert_int_equal(mdx_client_create_collection(c, "bad name!"), MDX_EBADNAME);

    /* the connection went on through all those errors */
    mdx_client_counters_t cnt;
    mdx_client_counters(c, &cnt);
    assert_int_equal(cnt.connects, 1);
    assert_int_equal(cnt.retries, 0);
    assert_int_equal(cnt.requests, cnt.replies);

    mdx_client_free(c);
    srv_stop(&srv);
}

/* get_lease: one client fills, another waits, a stale token is refused. */
static void leases_from_two_clients(void **state)
{
    (void)state;
    srv_t srv;
    srv_start(&srv, NULL);
    mdx_client_t *a = client_port(srv.srv.port), *b2 = client_port(srv.srv.port);
    OK(a, mdx_client_create_collection(a, "l"));
    mdx_client_lease_t st;
    uint64_t tok, tok2;
    const uint8_t *rec;
    size_t len;
    OK(a, mdx_client_get_lease(a, "l", mdx_val_str("k"), 5000, &st, &tok, &rec, &len));
    assert_int_equal(st, MDX_CLIENT_LEASE_FILL);
    assert_true(tok > 0);
    assert_null(rec);
    OK(b2, mdx_client_get_lease(b2, "l", mdx_val_str("k"), 5000, &st, &tok2, &rec, &len));
    assert_int_equal(st, MDX_CLIENT_LEASE_WAIT);
    assert_int_equal(tok2, 0);
    mdx_buf_t b;
    mp(&b, "{\"v\":1}");
    mdx_client_put_opts_t po = {.lease = tok + 1};
    assert_int_equal(mdx_client_put(b2, "l", mdx_val_str("k"), b.data, b.len, &po), MDX_ELEASE);
    po.lease = tok;
    OK(a, mdx_client_put(a, "l", mdx_val_str("k"), b.data, b.len, &po));
    OK(b2, mdx_client_get_lease(b2, "l", mdx_val_str("k"), 5000, &st, &tok2, &rec, &len));
    assert_int_equal(st, MDX_CLIENT_LEASE_HIT);
    assert_int_equal(len, b.len);
    assert_memory_equal(rec, b.data, len);
    assert_int_equal(mdx_client_get_lease(a, "l", mdx_val_str("k"), 0, &st, &tok, &rec, &len),
                     MDX_EINVAL);
    mdx_buf_fini(&b);
    mdx_client_free(a);
    mdx_client_free(b2);
    srv_stop(&srv);
}

static void cache_commands_and_stats_fields(void **state)
{
    (void)state;
    srv_t srv;
    srv_start(&srv, (const char *const[]){"--maxmemory", "64m", "--maxmemory-policy", "lru", NULL});
    mdx_client_t *c = client_port(srv.srv.port);

    mdx_client_coll_opts_t co = {.capacity = 3, .policy = "sieve", .default_ttl = "long"};
    OK(c, mdx_client_create_collection_opts(c, "k", &co));
    assert_int_equal(
        mdx_client_create_collection_opts(c, "bad", &(mdx_client_coll_opts_t){.policy = "fifo"}),
        MDX_EINVAL);
    mdx_buf_t b;
    mp(&b, "{\"v\":1}");
    static const char *const t1[] = {"red", "blue"}, *const t2[] = {"blue"};
    mdx_client_put_opts_t po = {.tags = t1, .n_tags = 2};
    OK(c, mdx_client_put(c, "k", mdx_val_int(1), b.data, b.len, &po));
    po = (mdx_client_put_opts_t){.ttl_class = "short", .tags = t2, .n_tags = 1};
    OK(c, mdx_client_put(c, "k", mdx_val_int(2), b.data, b.len, &po));
    OK(c, mdx_client_put(c, "k", mdx_val_int(3), b.data, b.len, NULL));
    int64_t ms;
    OK(c, mdx_client_ttl_get(c, "k", mdx_val_int(2), &ms));
    assert_true(ms > 55000 && ms <= 60000);
    OK(c, mdx_client_ttl_get(c, "k", mdx_val_int(3), &ms)); /* the collection's default */
    assert_true(ms > 3590000 && ms <= 3600000);
    po = (mdx_client_put_opts_t){.ttl_class = "fortnight"};
    assert_int_equal(mdx_client_put(c, "k", mdx_val_int(4), b.data, b.len, &po), MDX_EINVAL);
    static const char *const many[17] = {"a", "b", "c", "d", "e", "f", "g", "h", "i",
                                         "j", "k", "l", "m", "n", "o", "p", "q"};
    po = (mdx_client_put_opts_t){.tags = many, .n_tags = 17};
    assert_int_equal(mdx_client_put(c, "k", mdx_val_int(4), b.data, b.len, &po), MDX_EINVAL);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_LOCAL);

    /* configure: capacity 2 evicts one now */
    assert_int_equal(mdx_client_configure_collection(c, "k", &(mdx_client_coll_opts_t){0}),
                     MDX_EINVAL);
    OK(c, mdx_client_configure_collection(c, "k", &(mdx_client_coll_opts_t){.capacity = 2}));
    OK(c, mdx_client_configure_collection(
              c, "k", &(mdx_client_coll_opts_t){.capacity = 0, .set_capacity = 1}));
    mdx_client_colls_t cl;
    OK(c, mdx_client_list_collections(c, &cl));
    assert_int_equal(cl.n, 1);
    assert_int_equal(cl.colls[0].records, 2);

    uint64_t removed = 99;
    OK(c, mdx_client_invalidate(c, "k", t2, 1, &removed));
    uint64_t left = 2 - removed;
    assert_true(removed >= 1);
    OK(c, mdx_client_invalidate(c, NULL, t1, 2, &removed));
    assert_int_equal(removed, 0);
    assert_int_equal(mdx_client_invalidate(c, "nope", t1, 1, NULL), MDX_ENOCOLL);
    assert_int_equal(mdx_client_invalidate(c, "k", t1, 0, NULL), MDX_EINVAL);

    const uint8_t *body;
    size_t blen;
    OK(c, mdx_client_get(c, "k", mdx_val_int(2), &body, &blen));
    assert_null(body);
    mdx_client_stats_t st;
    OK(c, mdx_client_stats(c, &st));
    assert_int_equal(st.maxmemory, 64u << 20);
    assert_int_equal(st.gets, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.hits, 0);
    assert_true(st.hit_ratio == 0.0);
    assert_int_equal(st.evicted_capacity, 1);
    assert_int_equal(st.invalidations, 2);
    assert_int_equal(st.invalidated, 2 - left);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.policy.len, 3);
    assert_memory_equal(st.policy.ptr, "lru", 3);

    OK(c, mdx_client_snapshot(c));
    mdx_buf_fini(&b);
    mdx_client_free(c);
    srv_stop(&srv);
}

static void local_errors_send_nothing(void **state)
{
    (void)state;
    srv_t srv;
    srv_start(&srv, (const char *const[]){"--max-frame", "1024", NULL});
    mdx_client_t *c = client_port(srv.srv.port);
    OK(c, mdx_client_create_collection(c, "t"));
    mdx_client_counters_t before, after;
    mdx_client_counters(c, &before);

    const uint8_t *body;
    size_t blen;
    assert_int_equal(mdx_client_get(c, NULL, mdx_val_str("k"), &body, &blen), MDX_EINVAL);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_LOCAL);
    assert_non_null(strstr(mdx_client_errmsg(c), "'coll'"));
    assert_int_equal(mdx_client_get(c, "t", mdx_val_double(1.0), &body, &blen), MDX_EINVAL);
    mdx_val_t none;
    memset(&none, 0, sizeof(none));
    assert_int_equal(mdx_client_get(c, "t", none, &body, &blen), MDX_EINVAL);
    assert_int_equal(mdx_client_get(c, "t", mdx_val_mp("\x92\x01", 2), &body, &blen),
                     MDX_EINVAL); /* truncated msgpack */
    assert_int_equal(mdx_client_put(c, "t", mdx_val_int(1), "\x81\xa1", 2, NULL), MDX_EINVAL);
    assert_int_equal(mdx_client_mget(c, "t", NULL, 0, NULL), MDX_EINVAL);
    assert_int_equal(mdx_client_call(c, "ping", "\x01", 1, NULL), MDX_EINVAL);
    /* larger than the server's max_frame (learnt at hello): refused before sending */
    static char big[2000];
    memset(big, 'x', sizeof(big));
    mdx_mpbuf_t b;
    mdx_mpbuf_init(&b);
    mdx_mpbuf_map(&b, 1);
    mdx_mpbuf_str(&b, "s");
    mdx_mpbuf_strn(&b, big, sizeof(big));
    assert_int_equal(b.err, 0);
    assert_int_equal(mdx_client_put(c, "t", mdx_val_int(1), b.data, b.len, NULL), MDX_ETOOBIG);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_LOCAL);
    assert_int_equal(mdx_client_queue_put(c, "t", mdx_val_int(1), b.data, b.len, NULL),
                     MDX_ETOOBIG);
    assert_int_equal(mdx_client_pending(c), 0);
    mdx_mpbuf_fini(&b);

    mdx_client_counters(c, &after);
    assert_int_equal(after.writes, before.writes);
    assert_int_equal(after.requests, before.requests);
    OK(c, mdx_client_ping(c));
    mdx_client_counters(c, &after);
    assert_int_equal(after.connects, 1);
    mdx_client_free(c);
    srv_stop(&srv);
}

static void raw_call_reports_server_errors_with_the_reply(void **state)
{
    (void)state;
    srv_t srv;
    srv_start(&srv, NULL);
    mdx_client_t *c = client_port(srv.srv.port);
    mdx_client_reply_t r;
    OK(c, mdx_client_call(c, "ping", NULL, 0, &r));
    assert_int_equal(r.op, MDX_OP_PING);
    assert_int_equal(r.status, 0);
    assert_mp(r.body.ptr, r.body.len, "\"pong\"");

    mdx_buf_t a;
    mp(&a, "{\"coll\":\"nope\",\"key\":1}");
    assert_int_equal(mdx_client_call(c, "get", a.data, a.len, &r), MDX_ENOCOLL);
    assert_int_equal(r.op, MDX_OP_GET);
    assert_int_equal(r.status, MDX_ENOCOLL);
    assert_int_equal(r.err_name.len, 6);
    assert_memory_equal(r.err_name.ptr, "NOCOLL", 6);
    assert_true(r.err_msg.len > 0);
    assert_int_equal(mdx_client_reply_body(&r, &(const uint8_t *){NULL}, &(size_t){0}),
                     MDX_ENOCOLL);
    mdx_buf_fini(&a);

    assert_int_equal(mdx_client_call(c, "gett", NULL, 0, &r), MDX_EUNKNOWNOP);
    assert_int_equal(r.op, MDX_OP__COUNT);
    assert_string_equal(mdx_client_err_name(c), "UNKNOWNOP");
    mp(&a, "{\"colection\":\"x\"}");
    assert_int_equal(mdx_client_call(c, "list_indexes", a.data, a.len, &r), MDX_EBADARGS);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_SERVER);
    mdx_buf_fini(&a);
    OK(c, mdx_client_ping(c));
    mdx_client_free(c);
    srv_stop(&srv);
}

static void unix_socket_works(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/mdx-client-%d.sock", (int)getpid());
    unlink(path);
    srv_t srv;
    srv_start(&srv, (const char *const[]){"--unix", path, NULL});
    char addr[80];
    snprintf(addr, sizeof(addr), "unix:%s", path);
    mdx_client_t *c = client_at(addr);
    OK(c, mdx_client_connect(c));
    assert_true(mdx_client_is_connected(c));
    OK(c, mdx_client_ping(c));
    OK(c, mdx_client_create_collection(c, "u"));
    put_json(c, "u", mdx_val_int(1), "{\"a\":1}");
    mdx_client_free(c);
    c = client_at(path); /* a bare absolute path works too */
    const uint8_t *body;
    size_t blen;
    OK(c, mdx_client_get(c, "u", mdx_val_int(1), &body, &blen));
    assert_mp(body, blen, "{\"a\":1}");
    mdx_client_free(c);
    srv_stop(&srv);
    unlink(path);
}

static void bad_addresses_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {"",        "localhost", "host:",     ":7711", "h:0",
                         "h:65536", "h:12x",     "[::1]7711", "unix:"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mdx_client_opts_t o;
        mdx_client_opts_init(&o);
        o.addr = bad[i];
        mdx_client_t *c = (mdx_client_t *)1;
        if (mdx_client_new(&o, &c) != MDX_EINVAL)
            fail_msg("address '%s' was accepted", bad[i]);
    }
    const char *good[] = {"127.0.0.1:1", "localhost:7711", "[::1]:7711",
                          "tcp://a:2",   "/tmp/x.sock",    "unix:rel.sock"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        mdx_client_opts_t o;
        mdx_client_opts_init(&o);
        o.addr = good[i];
        mdx_client_t *c = NULL;
        if (mdx_client_new(&o, &c) != 0)
            fail_msg("address '%s' was refused", good[i]);
        assert_false(mdx_client_is_connected(c));
        mdx_client_free(c);
    }
    mdx_client_free(NULL);
}

/* ---- pipelining ---- */

static void pipelined_10000_requests_come_back_in_order(void **state)
{
    (void)state;
    srv_t srv;
    srv_start(&srv, NULL);
    mdx_client_t *c = client_port(srv.srv.port);
    OK(c, mdx_client_create_collection(c, "p"));

    /* Request i: a put of key i/3 when i%3 == 0, a get of that key when i%3 == 1, and when
     * i%3 == 2 a ping, except every 300th of those, which is a get from a missing
     * collection. */
    enum { N = 10000 };
    int want_errors = 0;
    mdx_mpbuf_t b;
    mdx_mpbuf_init(&b);
    for (int i = 0; i < N; i++) {
        int key = i / 3;
        if (i % 3 == 0) {
            mdx_mpbuf_reset(&b);
            mdx_mpbuf_map(&b, 1);
            mdx_mpbuf_str(&b, "v");
            mdx_mpbuf_int(&b, key * 10);
            OK(c, mdx_client_queue_put(c, "p", mdx_val_int(key), b.data, b.len, NULL));
        } else if (i % 3 == 1) {
            OK(c, mdx_client_queue_get(c, "p", mdx_val_int(key)));
        } else if (key % 300 == 0) {
            OK(c, mdx_client_queue_get(c, "missing", mdx_val_int(key)));
            want_errors++;
        } else {
            OK(c, mdx_client_queue_ping(c));
        }
    }
    mdx_mpbuf_fini(&b);
    assert_int_equal(mdx_client_pending(c), N);
    mdx_client_counters_t before, after;
    mdx_client_counters(c, &before);
    OK(c, mdx_client_flush(c));
    mdx_client_counters(c, &after);
    /* Batched: ~400 KB go out in a handful of writes (the socket buffer decides), never one
     * per request. */
    assert_true(after.writes - before.writes >= 1);
    assert_true(after.writes - before.writes < 50);
    assert_int_equal(mdx_client_pending(c), N);

    int errors = 0;
    for (int i = 0; i < N; i++) {
        mdx_client_reply_t r;
        int rc = mdx_client_read_reply(c, &r);
        int key = i / 3;
        if (i % 3 == 0) {
            OK(c, rc);
            assert_int_equal(r.op, MDX_OP_PUT);
        } else if (i % 3 == 1) {
            OK(c, rc);
            assert_int_equal(r.op, MDX_OP_GET);
            const uint8_t *body;
            size_t blen;
            OK(c, mdx_client_reply_body(&r, &body, &blen));
            int64_t v;
            assert_int_equal(mdx_field_int(body, blen, "v", &v), 0);
            assert_int_equal(v, key * 10);
        } else if (key % 300 == 0) {
            assert_int_equal(rc, MDX_ENOCOLL);
            assert_int_equal(r.status, MDX_ENOCOLL);
            assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_SERVER);
            errors++;
        } else {
            OK(c, rc);
            assert_int_equal(r.op, MDX_OP_PING);
        }
        assert_int_equal(mdx_client_pending(c), (size_t)(N - i - 1));
    }
    assert_int_equal(errors, want_errors);
    assert_int_equal(errors, 12);
    mdx_client_reply_t r;
    assert_int_equal(mdx_client_read_reply(c, &r), MDX_EINVAL);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_LOCAL);

    uint64_t n = 0;
    OK(c, mdx_client_create_index(c, "p", "by_v", "v", MDX_CLIENT_SKIPLIST, 0));
    OK(c, mdx_client_count(c, "p", "by_v", NULL, &n));
    assert_int_equal(n, (N + 2) / 3);
    mdx_client_counters(c, &after);
    assert_int_equal(after.connects, 1);
    mdx_client_free(c);
    srv_stop(&srv);
}

static void small_batch_goes_out_in_one_write(void **state)
{
    (void)state;
    srv_t srv;
    srv_start(&srv, NULL);
    mdx_client_t *c = client_port(srv.srv.port);
    OK(c, mdx_client_connect(c));
    OK(c, mdx_client_create_collection(c, "w"));
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 200; i++)
            OK(c, mdx_client_queue_put(c, "w", mdx_val_int(i), "\x81\xa1v\x01", 4, NULL));
        mdx_client_counters_t before, after;
        mdx_client_counters(c, &before);
        OK(c, mdx_client_flush(c));
        mdx_client_counters(c, &after);
        assert_int_equal(after.writes - before.writes, 1);
        OK(c, mdx_client_flush(c)); /* nothing queued: no write */
        mdx_client_counters(c, &after);
        assert_int_equal(after.writes - before.writes, 1);
        for (int i = 0; i < 200; i++) {
            mdx_client_reply_t r;
            OK(c, mdx_client_read_reply(c, &r));
        }
    }
    /* read_reply flushes by itself */
    OK(c, mdx_client_queue_ping(c));
    mdx_client_reply_t r;
    OK(c, mdx_client_read_reply(c, &r));
    assert_int_equal(r.op, MDX_OP_PING);
    mdx_client_free(c);
    srv_stop(&srv);
}

static void pipelined_typed_decoders_and_busy(void **state)
{
    (void)state;
    srv_t srv;
    srv_start(&srv, NULL);
    mdx_client_t *c = client_port(srv.srv.port);
    OK(c, mdx_client_queue_create_collection(c, "q"));
    OK(c, mdx_client_queue_create_index(c, "q", "by_n", "n", MDX_CLIENT_SKIPLIST, 0));
    OK(c, mdx_client_queue_put(c, "q", mdx_val_str("a"), "\x81\xa1n\x01", 4, NULL));
    OK(c, mdx_client_queue_put(c, "q", mdx_val_str("b"), "\x81\xa1n\x02", 4, NULL));
    OK(c, mdx_client_queue_count(c, "q", "by_n", NULL));
    OK(c, mdx_client_queue_find(c, "q", "by_n", NULL));
    mdx_val_t keys[2] = {mdx_val_str("b"), mdx_val_str("x")};
    OK(c, mdx_client_queue_mget(c, "q", keys, 2));
    OK(c, mdx_client_queue_scan(c, "q", 0, 0));
    OK(c, mdx_client_queue_ttl_get(c, "q", mdx_val_str("a")));
    OK(c, mdx_client_queue_list_indexes(c, "q"));
    OK(c, mdx_client_queue_list_collections(c));
    OK(c, mdx_client_queue_stats(c));
    OK(c, mdx_client_queue_hello(c));
    OK(c, mdx_client_queue_delete(c, "q", mdx_val_str("a")));
    /* a blocking call while replies are pending is refused */
    assert_int_equal(mdx_client_ping(c), MDX_EBUSY);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_LOCAL);
    assert_int_equal(mdx_client_pending(c), 14);

    mdx_client_reply_t r;
    for (int i = 0; i < 4; i++)
        OK(c, mdx_client_read_reply(c, &r));
    uint64_t u;
    OK(c, mdx_client_read_reply(c, &r));
    OK(c, mdx_client_reply_uint(&r, &u));
    assert_int_equal(u, 2);
    mdx_client_find_t f;
    OK(c, mdx_client_read_reply(c, &r));
    OK(c, mdx_client_reply_find(c, &r, &f));
    assert_int_equal(f.n, 2);
    assert_false(f.more);
    mdx_client_mget_t mg;
    OK(c, mdx_client_read_reply(c, &r));
    OK(c, mdx_client_reply_mget(c, &r, &mg));
    assert_int_equal(mg.n, 2);
    assert_non_null(mg.bodies[0].ptr);
    assert_null(mg.bodies[1].ptr);
    mdx_client_scan_t sc;
    OK(c, mdx_client_read_reply(c, &r));
    OK(c, mdx_client_reply_scan(c, &r, &sc));
    assert_int_equal(sc.n, 2);
    assert_int_equal(sc.cursor, 0);
    int64_t ms;
    OK(c, mdx_client_read_reply(c, &r));
    OK(c, mdx_client_reply_int(&r, &ms));
    assert_int_equal(ms, -1);
    mdx_client_indexes_t ix;
    OK(c, mdx_client_read_reply(c, &r));
    OK(c, mdx_client_reply_indexes(c, &r, &ix));
    assert_int_equal(ix.n, 1);
    mdx_client_colls_t cl;
    OK(c, mdx_client_read_reply(c, &r));
    OK(c, mdx_client_reply_colls(c, &r, &cl));
    assert_int_equal(cl.n, 1);
    assert_int_equal(cl.colls[0].records, 2);
    mdx_client_stats_t st;
    OK(c, mdx_client_read_reply(c, &r));
    OK(c, mdx_client_reply_stats(&r, &st));
    assert_int_equal(st.records, 2);
    mdx_client_hello_t h;
    OK(c, mdx_client_read_reply(c, &r));
    OK(c, mdx_client_reply_hello(&r, &h));
    assert_int_equal(h.protocol, 1);
    OK(c, mdx_client_read_reply(c, &r));
    /* a decoder of the wrong shape says so */
    assert_int_equal(mdx_client_reply_find(c, &r, &f), MDX_EPROTO);
    OK(c, mdx_client_reply_uint(&r, &u));
    assert_int_equal(u, 1);
    assert_int_equal(mdx_client_pending(c), 0);
    OK(c, mdx_client_ping(c));

    /* close drops what is queued */
    OK(c, mdx_client_queue_ping(c));
    mdx_client_close(c);
    assert_int_equal(mdx_client_pending(c), 0);
    assert_false(mdx_client_is_connected(c));
    OK(c, mdx_client_ping(c));
    mdx_client_free(c);
    srv_stop(&srv);
}

/* ---- memory ---- */

/* One round of blocking calls and a pipeline; returns 0 or the first error. */
static int some_calls(mdx_client_t *c, int round)
{
    const uint8_t *body;
    size_t blen;
    mdx_client_find_t f;
    int rc = mdx_client_put(c, "m", mdx_val_int(round), "\x81\xa1n\x01", 4, NULL);
    if (!rc)
        rc = mdx_client_get(c, "m", mdx_val_int(round), &body, &blen);
    if (!rc)
        rc = mdx_client_find(c, "m", "by_n", NULL, &f);
    for (int i = 0; i < 300 && !rc; i++)
        rc = mdx_client_queue_put(c, "m", mdx_val_int(1000 + i), "\x81\xa1n\x02", 4, NULL);
    if (!rc)
        rc = mdx_client_flush(c);
    while (!rc && mdx_client_pending(c) > 0) {
        mdx_client_reply_t r;
        rc = mdx_client_read_reply(c, &r);
    }
    return rc;
}

static void steady_state_does_not_allocate(void **state)
{
    (void)state;
    srv_t srv;
    srv_start(&srv, NULL);
    mdx_client_t *c = client_port(srv.srv.port);
    OK(c, mdx_client_create_collection(c, "m"));
    OK(c, mdx_client_create_index(c, "m", "by_n", "n", MDX_CLIENT_SKIPLIST, 0));
    OK(c, some_calls(c, 0)); /* buffers grow to size */
    OK(c, some_calls(c, 1));
    uint64_t before = mdx_alloc_count();
    for (int round = 2; round < 10; round++)
        OK(c, some_calls(c, round));
    assert_int_equal(mdx_alloc_count(), before);
    mdx_client_free(c);
    srv_stop(&srv);
}

/* Every allocation the client makes may fail: the call returns MDX_ENOMEM (a local error),
 * leaks nothing (ASan checks at exit), and the client works again afterwards. */
static void out_of_memory_anywhere_is_reported_and_recovered(void **state)
{
    (void)state;
#if MDX_FAULT_INJECTION
    srv_t srv;
    srv_start(&srv, NULL);
    mdx_client_t *admin = client_port(srv.srv.port);
    OK(admin, mdx_client_create_collection(admin, "m"));
    OK(admin, mdx_client_create_index(admin, "m", "by_n", "n", MDX_CLIENT_SKIPLIST, 0));
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", srv.srv.port);
    mdx_client_opts_t o;
    mdx_client_opts_init(&o);
    o.addr = addr;
    int failures = 0;
    for (long n = 0;; n++) {
        assert_true(n < 1000);
        mdx_client_t *c = NULL;
        mdx_alloc_fail_after(n);
        int rc = mdx_client_new(&o, &c);
        if (!rc)
            rc = some_calls(c, (int)n);
        int injected = mdx_alloc_fail_triggered();
        mdx_alloc_fail_reset();
        if (!injected) {
            OK(c, rc);
            mdx_client_free(c);
            break;
        }
        failures++;
        if (rc != MDX_ENOMEM)
            fail_msg("allocation %ld failed: rc %d (%s)", n, rc, c ? mdx_client_errmsg(c) : "");
        if (c) {
            assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_LOCAL);
            /* the same client recovers */
            if (mdx_client_pending(c) == 0)
                OK(c, mdx_client_ping(c));
            mdx_client_close(c);
            OK(c, some_calls(c, (int)n));
            mdx_client_free(c);
        }
    }
    assert_true(failures >= 5);
    mdx_client_free(admin);
    srv_stop(&srv);
#else
    skip();
#endif
}

/* ---- threads ---- */

typedef struct {
    int port;
    int thread;
    int ok;
} worker_t;

/* Each thread owns a client: pipelined puts of its own keys, then gets that check them. */
static void *worker(void *arg)
{
    worker_t *w = arg;
    mdx_client_t *c = client_port(w->port);
    enum { N = 2000 };
    uint8_t body[16];
    int ok = 1;
    for (int i = 0; i < N && ok; i++) {
        size_t n = 0;
        body[n++] = 0x81;
        body[n++] = 0xa1;
        body[n++] = 'v';
        body[n++] = 0xcd; /* uint16 */
        body[n++] = (uint8_t)(i >> 8);
        body[n++] = (uint8_t)i;
        ok = mdx_client_queue_put(c, "t", mdx_val_int((int64_t)w->thread * N + i), body, n, NULL) ==
             0;
    }
    for (int i = 0; i < N && ok; i++) {
        mdx_client_reply_t r;
        ok = mdx_client_read_reply(c, &r) == 0;
    }
    for (int i = 0; i < N && ok; i += 97) {
        const uint8_t *b;
        size_t blen;
        int64_t v = -1;
        ok = mdx_client_get(c, "t", mdx_val_int((int64_t)w->thread * N + i), &b, &blen) == 0 && b &&
             mdx_field_int(b, blen, "v", &v) == 0 && v == i;
    }
    mdx_client_free(c);
    w->ok = ok;
    return NULL;
}

static void one_client_per_thread(void **state)
{
    (void)state;
    srv_t srv;
    srv_start(&srv, NULL);
    mdx_client_t *c = client_port(srv.srv.port);
    OK(c, mdx_client_create_collection(c, "t"));
    enum { T = 4 };
    pthread_t th[T];
    worker_t w[T];
    for (int i = 0; i < T; i++) {
        w[i] = (worker_t){srv.srv.port, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_true(w[i].ok);
    }
    mdx_client_stats_t st;
    OK(c, mdx_client_stats(c, &st));
    assert_int_equal(st.records, T * 2000);
    mdx_client_free(c);
    srv_stop(&srv);
}

/* ---- reconnecting ---- */

static void reconnects_after_the_server_restarts(void **state)
{
    (void)state;
    srv_t srv;
    srv_start(&srv, NULL);
    int port = srv.srv.port;
    mdx_client_t *c = client_port(port);
    OK(c, mdx_client_create_collection(c, "r"));
    put_json(c, "r", mdx_val_int(1), "{\"a\":1}");
    srv_stop(&srv);

    /* Server down: an idempotent call retries, then reports the lost connection. */
    const uint8_t *body;
    size_t blen;
    assert_int_equal(mdx_client_get(c, "r", mdx_val_int(1), &body, &blen), MDX_ECONNLOST);
    assert_int_equal(mdx_client_err_kind(c), MDX_CLIENT_ERR_TRANSPORT);
    assert_false(mdx_client_is_connected(c));

    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    srv_start(&srv, (const char *const[]){"--listen", listen, NULL});
    assert_int_equal(srv.srv.port, port);
    OK(c, mdx_client_create_collection(c, "r"));
    mdx_client_counters_t cnt;
    mdx_client_counters(c, &cnt);
    assert_int_equal(cnt.connects, 2);

    /* Restart again with the client connected: the put (not idempotent) still goes through,
     * because the closed connection is noticed before the put is written. */
    srv_stop(&srv);
    srv_start(&srv, (const char *const[]){"--listen", listen, NULL});
    assert_true(mdx_client_is_connected(c));
    OK(c, mdx_client_create_collection(c, "r"));
    put_json(c, "r", mdx_val_int(2), "{\"b\":2}");
    OK(c, mdx_client_get(c, "r", mdx_val_int(2), &body, &blen));
    assert_mp(body, blen, "{\"b\":2}");
    mdx_client_counters(c, &cnt);
    assert_int_equal(cnt.connects, 3);

    /* And a pipeline after a restart. */
    srv_stop(&srv);
    srv_start(&srv, (const char *const[]){"--listen", listen, NULL});
    OK(c, mdx_client_queue_ping(c));
    OK(c, mdx_client_queue_ping(c));
    OK(c, mdx_client_flush(c));
    mdx_client_reply_t r;
    OK(c, mdx_client_read_reply(c, &r));
    OK(c, mdx_client_read_reply(c, &r));
    mdx_client_counters(c, &cnt);
    assert_int_equal(cnt.connects, 4);
    mdx_client_free(c);
    srv_stop(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_command_returns_its_typed_result),
        cmocka_unit_test(cache_commands_and_stats_fields),
        cmocka_unit_test(leases_from_two_clients),
        cmocka_unit_test(local_errors_send_nothing),
        cmocka_unit_test(raw_call_reports_server_errors_with_the_reply),
        cmocka_unit_test(unix_socket_works),
        cmocka_unit_test(bad_addresses_are_refused),
        cmocka_unit_test(pipelined_10000_requests_come_back_in_order),
        cmocka_unit_test(small_batch_goes_out_in_one_write),
        cmocka_unit_test(pipelined_typed_decoders_and_busy),
        cmocka_unit_test(steady_state_does_not_allocate),
        cmocka_unit_test(out_of_memory_anywhere_is_reported_and_recovered),
        cmocka_unit_test(one_client_per_thread),
        cmocka_unit_test(reconnects_after_the_server_restarts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
