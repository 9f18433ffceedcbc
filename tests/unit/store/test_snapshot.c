/*
 * Snapshots: round trip of every value and key type, collections, index definitions and TTLs;
 * point-in-time consistency with writes, replaces, deletes, TTL changes and a collection drop
 * running while the snapshot walks; corruption (truncation, bit flips in header, blocks and
 * trailer); write failure (RLIMIT_FSIZE) keeping the previous snapshot; rotation; index
 * rebuild at load when records expire while the file is read; out of memory at every
 * allocation of a load.
 *
 * MDX_SEED sets the seed of the randomized writes (printed).
 */
#include <setjmp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "memdex/snapshot.h"
#include "tests/unit/store/state.h"

/* ---- a canonical dump of a store, in libc memory ---- */

typedef struct {
    char *p;
    size_t n, cap;
} dump_t;

static void d_raw(dump_t *d, const void *p, size_t n)
{
    if (d->n + n > d->cap) {
        d->cap = (d->n + n) * 2 + 1024;
        d->p = realloc(d->p, d->cap);
        assert_non_null(d->p);
    }
    memcpy(d->p + d->n, p, n);
    d->n += n;
}

typedef struct {
    uint8_t *key;
    size_t key_len;
    uint8_t *body;
    size_t body_len;
    int64_t exp;
} drec_t;

typedef struct {
    drec_t *v;
    size_t n, cap;
} drecs_t;

static int collect(void *data, const mdx_rec_view_t *r)
{
    drecs_t *a = data;
    if (a->n == a->cap) {
        a->cap = a->cap * 2 + 64;
        a->v = realloc(a->v, a->cap * sizeof(*a->v));
    }
    drec_t *x = &a->v[a->n++];
    x->key = malloc(r->key_len);
    memcpy(x->key, r->key, r->key_len);
    x->key_len = r->key_len;
    x->body = malloc(r->body_len ? r->body_len : 1);
    memcpy(x->body, r->body, r->body_len);
    x->body_len = r->body_len;
    x->exp = r->expires_at;
    return 0;
}

static int drec_cmp(const void *a, const void *b)
{
    const drec_t *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static int dump_entries = 1;

static void dump_tag(void *data, const char *tag, size_t len)
{
    d_raw(data, tag, len);
    d_raw(data, "", 1);
}

/* Everything observable: collections in order with their options, their index definitions
 * and all records sorted by key, each with its tags and eviction state (scan may return a
 * record twice across resizes: duplicates are dropped). */
static dump_t dump_store(mdx_store_t *st)
{
    dump_t d = {0};
    for (size_t i = 0; i < mdx_coll_count(st); i++) {
        mdx_coll_t *c = mdx_coll_at(st, i);
        d_raw(&d, mdx_coll_name(c), strlen(mdx_coll_name(c)) + 1);
        mdx_coll_opts_t co;
        mdx_coll_options(c, &co);
        d_raw(&d, &co, sizeof(co));
        for (size_t j = 0; j < mdx_index_count(c); j++) {
            mdx_index_info_t ii;
            assert_int_equal(mdx_index_info(c, j, &ii), 0);
            d_raw(&d, ii.name, strlen(ii.name) + 1);
            d_raw(&d, ii.field, strlen(ii.field) + 1);
            d_raw(&d, &ii.kind, sizeof(ii.kind));
            d_raw(&d, &ii.unique, sizeof(ii.unique));
            if (dump_entries) /* off while invalidated records wait to be freed */
                d_raw(&d, &ii.entries, sizeof(ii.entries));
            assert_int_equal(mdx__index_verify(c, c->indexes[j]), 0);
        }
        drecs_t a = {0};
        uint64_t cur = 0;
        do {
            assert_int_equal(mdx_scan(c, cur, 1000, collect, &a, &cur), 0);
        } while (cur);
        qsort(a.v, a.n, sizeof(*a.v), drec_cmp);
        for (size_t k = 0; k < a.n; k++) {
            if (k && drec_cmp(&a.v[k], &a.v[k - 1]) == 0)
                continue;
            d_raw(&d, a.v[k].key, a.v[k].key_len);
            d_raw(&d, a.v[k].body, a.v[k].body_len);
            d_raw(&d, &a.v[k].exp, sizeof(a.v[k].exp));
            assert_int_equal(mdx_tags_get(c, a.v[k].key, a.v[k].key_len, dump_tag, &d), 0);
            /* A lookup may take a step of a resize (and free the old bucket array): charge it
             * to the collection as the store does. */
            size_t m0 = mdx_alloc_used();
            const mdx_rec_t *r = mdx__rec_lookup(c, a.v[k].key, a.v[k].key_len,
                                                 mdx__key_hash(a.v[k].key, a.v[k].key_len));
            c->mem += mdx_alloc_used() - m0;
            st->mem += mdx_alloc_used() - m0;
            assert_non_null(r);
            uint8_t ev = r->evict & (EV_FREQ | EV_MAIN);
            d_raw(&d, &ev, 1);
        }
        for (size_t k = 0; k < a.n; k++) {
            free(a.v[k].key);
            free(a.v[k].body);
        }
        free(a.v);
        d_raw(&d, "\n", 1);
    }
    return d;
}

static void assert_dump_equal(dump_t *a, dump_t *b)
{
    assert_int_equal(a->n, b->n);
    assert_memory_equal(a->p, b->p, a->n);
    free(a->p);
    free(b->p);
}

/* ---- fixtures ---- */

static char dir[256];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "%s/mdx-snap-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static mdx_store_t *new_store(void)
{
    mdx_store_opts_t o = {.clock = fake_clock};
    mdx_store_t *st;
    assert_int_equal(mdx_store_new(&o, &st), 0);
    return st;
}

static void put_body(mdx_coll_t *c, tkey_t k, int64_t age, const char *city, int64_t ttl)
{
    mb_t m;
    mb_reset(&m);
    mb_map(&m, 3);
    mb_kv_int(&m, "age", age);
    mb_kv_str(&m, "city", city);
    mb_str(&m, "pad");
    mb_str(&m, "some padding to make the body about sixty bytes long");
    mdx_put_opts_t o = {.mode = MDX_PUT_UPSERT, .ttl_ms = ttl, .keep_ttl = 0};
    assert_int_equal(mdx_put(c, K(k), m.d, m.n, &o), 0);
}

/* Two collections, four indexes, every key type and value type, some TTLs. */
static mdx_store_t *populated(void)
{
    mdx_store_t *st = new_store();
    mdx_coll_t *u, *v;
    assert_int_equal(mdx_coll_create(st, "users", &u), 0);
    assert_int_equal(mdx_coll_create(st, "values", &v), 0);
    assert_int_equal(mdx_index_create(u, "by_age", "age", MDX_INDEX_SKIPLIST, 0), 0);
    assert_int_equal(mdx_index_create(u, "by_city", "city", MDX_INDEX_HASH, 0), 0);
    assert_int_equal(mdx_index_create(v, "by_x", "x", MDX_INDEX_SKIPLIST, 1), 0);
    assert_int_equal(mdx_index_create(v, "by_y", "y", MDX_INDEX_HASH, 1), 0);
    for (int i = 0; i < 300; i++)
        put_body(u, ik(i * 3 - 100), i % 70, i % 2 ? "paris" : "lima", i % 5 == 0 ? 60000 : 0);
    put_body(u, sk("ann"), 31, "oslo", 0);
    put_body(u, rawkey("\xc4\x03\x00\x01\x02", 5), 40, "rome", 1000);
    put_body(u, rawkey("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9), 41, "rome", 0);
    put_body(u, ik(INT64_MIN), 42, "rome", 0);
    /* every value type in the second collection */
    mb_t m;
    for (int i = 0; i < 12; i++) {
        mb_reset(&m);
        mb_map(&m, 3);
        mb_str(&m, "x");
        switch (i) {
        case 0:
            mb_nil(&m);
            break;
        case 1:
            mb_bool(&m, 0);
            break;
        case 2:
            mb_bool(&m, 1);
            break;
        case 3:
            mb_int(&m, -5);
            break;
        case 4:
            mb_uint(&m, UINT64_MAX);
            break;
        case 5:
            mb_dbl(&m, 2.5);
            break;
        case 6:
            mb_f32(&m, -0.25f);
            break;
        case 7:
            mb_str(&m, "text");
            break;
        case 8:
            mb_bin(&m, "\x00\xff", 2);
            break;
        case 9:
            mb_str(&m, "");
            break;
        case 10:
            mb_int(&m, INT64_MIN);
            break;
        default:
            mb_dbl(&m, 1e300);
            break;
        }
        mb_kv_int(&m, "y", i);
        mb_str(&m, "nested");
        mb_map(&m, 2);
        mb_str(&m, "arr");
        mb_arr(&m, 3);
        mb_int(&m, 1);
        mb_str(&m, "two");
        mb_map(&m, 0);
        mb_str(&m, "ext");
        mb_byte(&m, 0xd4); /* fixext1 */
        mb_byte(&m, 7);
        mb_byte(&m, 9);
        tkey_t k = ik(i);
        assert_int_equal(mdx_put(v, K(k), m.d, m.n, NULL), 0);
    }
    return st;
}

static void latest(char *path, size_t len)
{
    char names[4][MDX_SNAPSHOT_PATH_MAX];
    int n = mdx_snapshot_list(dir, names, 4);
    assert_true(n >= 1);
    snprintf(path, len, "%s/%s", dir, names[0]);
}

/* ---- tests ---- */

static void test_round_trip_keeps_everything(void **state)
{
    (void)state;
    make_dir();
    mdx_store_t *st = populated();
    mdx_snapshot_info_t info;
    assert_int_equal(mdx_store_save(st, dir, NULL, &info), 0);
    assert_int_equal(info.result, 0);
    assert_int_equal(info.records, 316);
    assert_true(info.bytes > 316 * 60);
    char path[2048];
    latest(path, sizeof(path));
    assert_string_equal(path, info.path);

    mdx_snapshot_check_t chk;
    char err[256];
    assert_int_equal(mdx_snapshot_check(path, &chk, err, sizeof(err)), 0);
    assert_int_equal(chk.records, 316);
    assert_int_equal(chk.collections, 2);
    assert_int_equal(chk.version, 1);
    assert_int_equal(chk.bytes, info.bytes);

    mdx_store_t *st2 = new_store();
    mdx_load_info_t li;
    assert_int_equal(mdx_store_load(st2, path, &li), 0);
    assert_int_equal(li.records, 316);
    assert_int_equal(li.expired, 0);
    dump_t a = dump_store(st), b = dump_store(st2);
    assert_dump_equal(&a, &b);

    /* loading into a non-empty store is refused */
    assert_int_equal(mdx_store_load(st2, path, NULL), MDX_EINVAL);
    mdx_store_free(st2);

    /* records whose expiry passed are dropped at load */
    fake_now += 5000; /* the 1000 ms TTL has passed, the 60 s ones have not */
    st2 = new_store();
    assert_int_equal(mdx_store_load(st2, path, &li), 0);
    assert_int_equal(li.expired, 1);
    assert_int_equal(li.records, 315);
    mdx_store_free(st2);
    mdx_store_free(st);
    remove_dir();
}

static void put_tagged(mdx_coll_t *c, int64_t k, const char *t1, const char *t2)
{
    mb_t m, t;
    mb_reset(&m);
    mb_map(&m, 2);
    mb_kv_int(&m, "age", k % 50);
    mb_kv_str(&m, "city", "tagged");
    mb_reset(&t);
    mb_arr(&t, (uint32_t)((t1 != NULL) + (t2 != NULL)));
    if (t1)
        mb_str(&t, t1);
    if (t2)
        mb_str(&t, t2);
    mdx_put_opts_t o = {.tags = t.d, .tags_len = t.n};
    tkey_t key = ik(k);
    assert_int_equal(mdx_put(c, K(key), m.d, m.n, &o), 0);
}

static uint64_t invalidate1(mdx_coll_t *c, const char *tag)
{
    mb_t t;
    mb_reset(&t);
    mb_arr(&t, 1);
    mb_str(&t, tag);
    uint64_t removed;
    assert_int_equal(mdx_invalidate(c, t.d, t.n, &removed), 0);
    return removed;
}

/* The cache tier's state survives a snapshot: collection options, tags (invalidation works
 * after the load), each record's eviction state (S3-FIFO's queue and frequency). And a
 * snapshot is point-in-time for invalidations: records invalidated before it began (still
 * waiting to be freed) are not in it, those invalidated while it runs are. */
static void test_cache_state_and_invalidation(void **state)
{
    (void)state;
    make_dir();
    mdx_store_t *st = new_store();
    mdx_coll_t *t, *s, *f;
    assert_int_equal(mdx_coll_create(st, "tagged", &t), 0);
    assert_int_equal(mdx_coll_create(st, "sieve", &s), 0);
    assert_int_equal(mdx_coll_create(st, "fifo", &f), 0);
    assert_int_equal(mdx_index_create(t, "by_age", "age", MDX_INDEX_SKIPLIST, 0), 0);
    mdx_coll_opts_t so = {.capacity = 1000, .policy = MDX_EVICT_SIEVE, .default_ttl_ms = 60000};
    assert_int_equal(mdx_coll_configure(s, &so), 0);
    mdx_coll_opts_t fo = {.capacity = 100};
    assert_int_equal(mdx_coll_configure(f, &fo), 0);
    for (int k = 0; k < 2000; k++)
        put_tagged(t, k,
                   k < 1000   ? "big"
                   : k < 1600 ? "pre"
                   : k < 1610 ? "small"
                              : NULL,
                   k % 2 ? "odd" : NULL);
    for (int k = 0; k < 50; k++)
        put_tagged(s, k, NULL, NULL);
    /* S3-FIFO: hits, then evictions that promote the hit records to main. */
    for (int k = 0; k < 300; k++) {
        put_tagged(f, k, NULL, NULL);
        if (k % 3 == 0) {
            mdx_rec_view_t v;
            tkey_t key = ik(k);
            assert_int_equal(mdx_get(f, K(key), &v), 0);
        }
    }
    assert_true(f->q[1].len > 0 && f->q[0].len > 0);
    assert_int_equal(invalidate1(t, "pre"), 600);
    assert_true(t->pending > 0);

    dump_entries = 0;
    dump_t expect = dump_store(st); /* the "pre" records are not in it */
    mdx_snapshot_t *snap;
    assert_int_equal(mdx_snapshot_begin(st, dir, NULL, &snap), 0);
    int done = 0, steps = 0;
    while (!done) {
        assert_int_equal(mdx_snapshot_step(snap, 50, &done), 0);
        if (steps == 3) {
            assert_int_equal(invalidate1(t, "big"), 1000); /* lazy */
            assert_int_equal(invalidate1(t, "small"), 10); /* eager */
            put_tagged(t, 5000, "big", NULL);              /* after the start: not saved */
        }
        if (steps > 3)
            (void)mdx_store_expire(st, 100, 0, NULL);
        steps++;
    }
    mdx_snapshot_info_t info;
    assert_int_equal(mdx_snapshot_finish(snap, &info), 0);
    assert_int_equal(info.result, 0);

    mdx_store_t *st2 = new_store();
    assert_int_equal(mdx_store_load(st2, info.path, NULL), 0);
    dump_t got = dump_store(st2);
    dump_entries = 1;
    assert_dump_equal(&expect, &got);
    mdx_coll_t *t2;
    assert_int_equal(mdx_coll_find(st2, "tagged", 6, &t2), 0);
    assert_int_equal(invalidate1(t2, "big"), 1000);
    assert_int_equal(invalidate1(t2, "small"), 10);
    assert_int_equal(invalidate1(t2, "pre"), 0);
    /* Until "big" is freed, "odd" would count its odd records again (docs/cache.md). */
    while (mdx_store_expire(st2, 0, 0, NULL))
        ;
    assert_int_equal(invalidate1(t2, "odd"), 195); /* odd keys among 1610..1999 */
    mdx_store_free(st);
    state_check(st2); /* alone now: its memory is all the allocator holds */
    mdx_store_free(st2);
    remove_dir();
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_point_in_time_under_writes(void **state)
{
    (void)state;
    const char *s = getenv("MDX_SEED");
    rng = s ? strtoull(s, NULL, 0) : 88172645463325252ULL;
    if (!rng)
        rng = 1;
    printf("point-in-time: seed %llu\n", (unsigned long long)rng);
    make_dir();
    mdx_store_t *st = populated();
    mdx_coll_t *u, *v;
    assert_int_equal(mdx_coll_find(st, "users", 5, &u), 0);
    assert_int_equal(mdx_coll_find(st, "values", 6, &v), 0);
    for (int i = 0; i < 3000; i++)
        put_body(u, ik(1000 + i), i % 90, i % 3 ? "kyiv" : "quito", 0);
    mdx_coll_t *tmp;
    assert_int_equal(mdx_coll_create(st, "doomed", &tmp), 0);
    for (int i = 0; i < 200; i++)
        put_body(tmp, ik(i), i, "x", 0);

    dump_t expect = dump_store(st); /* the state at the moment the snapshot starts */
    mdx_snapshot_t *snap;
    assert_int_equal(mdx_snapshot_begin(st, dir, NULL, &snap), 0);
    mdx_snapshot_t *other;
    assert_int_equal(mdx_snapshot_begin(st, dir, NULL, &other), MDX_EBUSY);

    int done = 0, steps = 0, dropped = 0;
    while (!done) {
        assert_int_equal(mdx_snapshot_step(snap, 37, &done), 0);
        steps++;
        for (int w = 0; w < 20; w++) {
            int64_t k = (int64_t)(rnd() % 4400) - 100;
            tkey_t key = ik(k);
            switch (rnd() % 6) {
            case 0:
            case 1:
                put_body(u, key, (int64_t)(rnd() % 100), "new", 0);
                break;
            case 2:
                (void)mdx_del(u, K(key));
                break;
            case 3:
                (void)mdx_ttl_set(u, K(key), 1 + (int64_t)(rnd() % 100000));
                break;
            case 4: {
                mb_t m;
                mb_reset(&m);
                mb_map(&m, 1);
                mb_kv_int(&m, "age", 7);
                (void)mdx_update(u, K(key), m.d, m.n, NULL, 0);
                break;
            }
            default:
                (void)mdx_ttl_clear(u, K(key));
                break;
            }
        }
        if (steps == 5 && !dropped) {
            assert_int_equal(mdx_coll_drop(st, "doomed"), 0);
            assert_int_equal(mdx_index_drop(v, "by_y"), 0);
            dropped = 1;
        }
        if (!done)
            nanosleep(&(struct timespec){0, 100000}, NULL);
    }
    assert_true(steps > 20);
    mdx_snapshot_info_t info;
    assert_int_equal(mdx_snapshot_finish(snap, &info), 0);

    mdx_store_t *st2 = new_store();
    assert_int_equal(mdx_store_load(st2, info.path, NULL), 0);
    dump_t got = dump_store(st2);
    assert_dump_equal(&expect, &got);
    mdx_store_free(st2);
    mdx_store_free(st);
    remove_dir();
}

static void test_corruption_is_detected(void **state)
{
    (void)state;
    make_dir();
    mdx_store_t *st = populated();
    mdx_snapshot_info_t info;
    assert_int_equal(mdx_store_save(st, dir, NULL, &info), 0);
    mdx_store_free(st);

    FILE *f = fopen(info.path, "rb");
    assert_non_null(f);
    size_t size = (size_t)info.bytes;
    uint8_t *orig = malloc(size);
    assert_int_equal(fread(orig, 1, size, f), size);
    fclose(f);
    char bad[2100];
    snprintf(bad, sizeof(bad), "%s/bad.bin", dir);

    /* offsets: magic, version, header length, header map, header checksum, first block
     * header, block payload, block checksum, trailer, trailer checksum */
    size_t hlen =
        (size_t)orig[12] << 24 | (size_t)orig[13] << 16 | (size_t)orig[14] << 8 | orig[15];
    size_t blk = 16 + hlen + 8;
    size_t offs[] = {0,        9,         14,        20,        16 + hlen + 3, blk,     blk + 3,
                     blk + 20, blk + 500, size - 33, size - 30, size - 12,     size - 1};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            uint8_t *m = malloc(size);
            memcpy(m, orig, size);
            m[offs[i]] ^= (uint8_t)(1u << bit);
            f = fopen(bad, "wb");
            fwrite(m, 1, size, f);
            fclose(f);
            free(m);
            char err[256];
            mdx_snapshot_check_t chk;
            int rc = mdx_snapshot_check(bad, &chk, err, sizeof(err));
            if (rc != MDX_ECORRUPT)
                print_error("bit %d at offset %zu not detected\n", bit, offs[i]);
            assert_int_equal(rc, MDX_ECORRUPT);
            assert_non_null(strstr(err, "offset"));
            mdx_store_t *s2 = new_store();
            assert_int_equal(mdx_store_load(s2, bad, NULL), MDX_ECORRUPT);
            assert_int_equal(mdx_coll_count(s2), 0); /* nothing half-loaded */
            assert_non_null(strstr(mdx_store_errmsg(s2), "bad.bin"));
            mdx_store_free(s2);
        }
    }
    /* truncation at several offsets, and an extra byte */
    size_t cuts[] = {0, 5, 16, blk - 1, blk, blk + 9, size / 2, size - 33, size - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        f = fopen(bad, "wb");
        fwrite(orig, 1, cuts[i], f);
        fclose(f);
        mdx_snapshot_check_t chk;
        char err[256];
        assert_int_equal(mdx_snapshot_check(bad, &chk, err, sizeof(err)), MDX_ECORRUPT);
        assert_true(chk.error_offset <= cuts[i]);
    }
    f = fopen(bad, "wb");
    fwrite(orig, 1, size, f);
    fputc(0, f);
    fclose(f);
    assert_int_equal(mdx_snapshot_check(bad, NULL, NULL, 0), MDX_ECORRUPT);
    assert_int_equal(mdx_snapshot_check(info.path, NULL, NULL, 0), 0);
    free(orig);
    remove_dir();
}

static void test_write_failure_keeps_previous_snapshot(void **state)
{
    (void)state;
    make_dir();
    mdx_store_t *st = populated();
    mdx_snapshot_info_t first, second;
    assert_int_equal(mdx_store_save(st, dir, NULL, &first), 0);
    mdx_coll_t *u;
    assert_int_equal(mdx_coll_find(st, "users", 5, &u), 0);
    for (int i = 0; i < 2000; i++)
        put_body(u, ik(5000 + i), i, "more", 0);

    struct rlimit old, small = {4096, 0};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small.rlim_max = old.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = mdx_store_save(st, dir, NULL, &second);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(rc, MDX_EIO);
    assert_int_equal(second.result, MDX_EIO);
    assert_non_null(strstr(second.error, "write"));

    /* the old snapshot is still the newest and complete; no temporary file is left */
    char names[4][MDX_SNAPSHOT_PATH_MAX];
    assert_int_equal(mdx_snapshot_list(dir, names, 4), 1);
    char path[2048];
    latest(path, sizeof(path));
    assert_string_equal(path, first.path);
    assert_int_equal(mdx_snapshot_check(path, NULL, NULL, 0), 0);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c tmp > /dev/null", dir);
    assert_int_not_equal(system(cmd), 0);
    /* and the store goes on: a later save works */
    assert_int_equal(mdx_store_save(st, dir, NULL, &second), 0);
    mdx_store_free(st);
    remove_dir();
}

static void test_keeps_the_last_k(void **state)
{
    (void)state;
    make_dir();
    mdx_store_t *st = populated();
    mdx_coll_t *u;
    assert_int_equal(mdx_coll_find(st, "users", 5, &u), 0);
    mdx_snapshot_opts_t o = {.keep = 2};
    char first[2048] = "";
    for (int i = 0; i < 4; i++) {
        fake_now += 10;
        put_body(u, ik(9000 + i), i, "k", 0);
        mdx_snapshot_info_t info;
        assert_int_equal(mdx_store_save(st, dir, &o, &info), 0);
        if (i == 0)
            snprintf(first, sizeof(first), "%s", info.path);
    }
    char names[8][MDX_SNAPSHOT_PATH_MAX];
    assert_int_equal(mdx_snapshot_list(dir, names, 8), 2);
    assert_int_not_equal(access(first, F_OK), 0);
    mdx_store_free(st);
    remove_dir();
}

static void test_abandoned_snapshot_leaves_no_file(void **state)
{
    (void)state;
    make_dir();
    mdx_store_t *st = populated();
    mdx_snapshot_t *s;
    assert_int_equal(mdx_snapshot_begin(st, dir, NULL, &s), 0);
    int done;
    assert_int_equal(mdx_snapshot_step(s, 10, &done), 0);
    assert_int_equal(done, 0);
    mdx_snapshot_info_t info;
    assert_int_not_equal(mdx_snapshot_finish(s, &info), 0);
    char names[4][MDX_SNAPSHOT_PATH_MAX];
    assert_int_equal(mdx_snapshot_list(dir, names, 4), 0);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", dir);
    assert_int_equal(system(cmd), 0);
    /* a new snapshot can start and complete after an abandoned one */
    assert_int_equal(mdx_store_save(st, dir, NULL, &info), 0);
    mdx_store_free(st);
    remove_dir();
}

/* A step is bounded by the records it visits, not only by those it saves: records written
 * after the start (skipped) can be most of a table, and walking them all in one step would
 * stall the owner's loop. */
static void test_step_visits_at_most_max_records(void **state)
{
    (void)state;
    make_dir();
    mdx_store_t *st = new_store();
    mdx_coll_t *c;
    assert_int_equal(mdx_coll_create(st, "c", &c), 0);
    for (int i = 0; i < 10; i++)
        put_body(c, ik(i), i, "old", 0);
    mdx_snapshot_t *s;
    assert_int_equal(mdx_snapshot_begin(st, dir, NULL, &s), 0);
    for (int i = 10; i < 20000; i++)
        put_body(c, ik(i), i, "new", 0);
    int done = 0, working = 0;
    mdx_snapshot_info_t info;
    /* The first 100 records visited are (almost) all new: the 10 old ones are not all saved. */
    assert_int_equal(mdx_snapshot_step(s, 100, &done), 0);
    mdx_snapshot_info(s, &info);
    assert_int_equal(done, 0);
    assert_true(info.records < 10);
    while (!done) {
        assert_int_equal(mdx_snapshot_step(s, 100, &done), 0);
        mdx_snapshot_info(s, &info);
        if (done)
            break;
        if (info.waiting)
            sched_yield(); /* the writer is finishing the file */
        else
            working++;
    }
    /* 20,000 records visited 100 at a time (whole buckets, so a little more per step). */
    assert_true(working >= 150);
    assert_int_equal(mdx_snapshot_finish(s, &info), 0);
    assert_int_equal(info.records, 10);
    mdx_store_free(st);
    st = new_store();
    mdx_load_info_t li;
    assert_int_equal(mdx_store_load(st, info.path, &li), 0);
    assert_int_equal(li.records, 10);
    mdx_store_free(st);
    remove_dir();
}

/* A clock that moves 1 s forward at every reading after the first. */
static int64_t ticks;
static int64_t ticking_clock(void *data)
{
    (void)data;
    return fake_now + 100 + 1000 * ticks++;
}

static void test_load_rebuilds_indexes_when_records_expire_during_the_load(void **state)
{
    (void)state;
    make_dir();
    mdx_store_t *st = new_store();
    mdx_coll_t *c;
    assert_int_equal(mdx_coll_create(st, "c", &c), 0);
    assert_int_equal(mdx_index_create(c, "by_age", "age", MDX_INDEX_SKIPLIST, 0), 0);
    assert_int_equal(mdx_index_create(c, "by_city", "city", MDX_INDEX_HASH, 0), 0);
    for (int i = 0; i < 500; i++)
        put_body(c, ik(i), i % 50, i % 3 ? "oslo" : "lima", i % 4 == 0 ? 500 : 0);
    mdx_snapshot_info_t info;
    assert_int_equal(mdx_store_save(st, dir, NULL, &info), 0);
    mdx_store_free(st);

    /* The load reads the clock first (100 ms after the save: no record has expired), and the
     * index rebuild reads it again later, when the 500 ms TTLs have passed and the rebuild
     * reclaims those records: it must not visit them. */
    ticks = 0;
    mdx_store_opts_t o = {.clock = ticking_clock};
    assert_int_equal(mdx_store_new(&o, &st), 0);
    mdx_load_info_t li;
    assert_int_equal(mdx_store_load(st, info.path, &li), 0);
    assert_int_equal(li.records, 500);
    assert_int_equal(li.expired, 0);
    assert_true(ticks >= 2);
    c = mdx_coll_at(st, 0);
    assert_int_equal(mdx_coll_records(c), 375);
    for (size_t j = 0; j < 2; j++) {
        mdx_index_info_t ii;
        assert_int_equal(mdx_index_info(c, j, &ii), 0);
        assert_int_equal(ii.entries, 375);
        assert_int_equal(mdx__index_verify(c, c->indexes[j]), 0);
    }
    mdx_store_free(st);
    remove_dir();
}

/* Every allocation of a load can fail: the load returns MDX_ENOMEM, leaves the store empty
 * and leaks nothing; the first attempt with no failure loads everything. */
static void test_load_out_of_memory_leaves_store_empty(void **state)
{
    (void)state;
#if MDX_FAULT_INJECTION
    make_dir();
    mdx_store_t *st = populated();
    mdx_snapshot_info_t info;
    assert_int_equal(mdx_store_save(st, dir, NULL, &info), 0);
    dump_t want = dump_store(st);
    mdx_store_free(st);
    size_t used = mdx_alloc_used();
    long n;
    for (n = 0;; n++) {
        mdx_store_t *s2 = new_store();
        mdx_alloc_fail_after(n);
        int rc = mdx_store_load(s2, info.path, NULL);
        int injected = mdx_alloc_fail_triggered();
        mdx_alloc_fail_reset();
        if (rc == 0) {
            dump_t got = dump_store(s2);
            assert_dump_equal(&want, &got);
            mdx_store_free(s2);
            break;
        }
        assert_true(injected);
        assert_int_equal(rc, MDX_ENOMEM);
        assert_int_equal(mdx_coll_count(s2), 0);
        mdx_store_free(s2);
        assert_int_equal(mdx_alloc_used(), used);
    }
    assert_true(n > 316); /* at least one allocation per record */
    assert_int_equal(mdx_alloc_used(), used);
    remove_dir();
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_keeps_everything),
        cmocka_unit_test(test_point_in_time_under_writes),
        cmocka_unit_test(test_corruption_is_detected),
        cmocka_unit_test(test_write_failure_keeps_previous_snapshot),
        cmocka_unit_test(test_keeps_the_last_k),
        cmocka_unit_test(test_abandoned_snapshot_leaves_no_file),
        cmocka_unit_test(test_step_visits_at_most_max_records),
        cmocka_unit_test(test_cache_state_and_invalidation),
        cmocka_unit_test(test_load_rebuilds_indexes_when_records_expire_during_the_load),
        cmocka_unit_test(test_load_out_of_memory_leaves_store_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
