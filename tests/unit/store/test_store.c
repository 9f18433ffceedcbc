/*
 * The engine's API with exact expected values: collections, indexes, the three put modes,
 * canonical keys, delete, partial update (exact resulting bytes), TTL under a fake clock and
 * the bounded expiry step, indexes built on existing records (the same as indexes kept by
 * writes; MDX_SEED sets the seed, printed), find (bounds, order, limit, offset, cursors across
 * writes, equality on both index kinds, the order across types), count, scan, statistics and error
 * messages. After most steps state_check (state.h) verifies every index against the records, the
 * expiry heap, and that the memory statistics equal the allocator wrapper's count.
 */
#include <math.h>

#include "tests/unit/store/state.h"

static mdx_store_t *st;

static int setup(void **state)
{
    (void)state;
    fake_now = 1700000000000;
    mdx_store_opts_t o = {.clock = fake_clock, .max_limit = 1000};
    assert_int_equal(mdx_store_new(&o, &st), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mdx_store_free(st);
    st = NULL;
    assert_int_equal(mdx_alloc_used(), 0);
    return 0;
}

static mdx_coll_t *coll(const char *name)
{
    mdx_coll_t *c;
    assert_int_equal(mdx_coll_create(st, name, &c), 0);
    return c;
}

/* ---- result collection ---- */

#define GOT_MAX 1024

typedef struct {
    tkey_t k[GOT_MAX];
    size_t n;
} got_t;

static int got_cb(void *data, const mdx_rec_view_t *v)
{
    got_t *g = data;
    assert_true(g->n < GOT_MAX);
    g->k[g->n++] = rawkey(v->key, v->key_len);
    return 0;
}

static int64_t key_int(const tkey_t *k)
{
    mdx_value_t v;
    assert_int_equal(mdx_value_decode(k->d, k->n, &v), 0);
    assert_int_equal(v.type, MDX_V_INT);
    return v.v.i;
}

/* The results are exactly the integer keys exp[0..n). */
static void expect_ints(const got_t *g, const int64_t *exp, size_t n)
{
    if (g->n != n) {
        print_error("got %zu records:", g->n);
        for (size_t i = 0; i < g->n; i++)
            print_error(" %lld", (long long)key_int(&g->k[i]));
        print_error("\nexpected %zu:", n);
        for (size_t i = 0; i < n; i++)
            print_error(" %lld", (long long)exp[i]);
        print_error("\n");
    }
    assert_int_equal(g->n, n);
    for (size_t i = 0; i < n; i++) {
        tkey_t e = ik(exp[i]);
        if (g->k[i].n != e.n || memcmp(g->k[i].d, e.d, e.n) != 0)
            print_error("result %zu: key %lld, expected %lld\n", i, (long long)key_int(&g->k[i]),
                        (long long)exp[i]);
        assert_int_equal(g->k[i].n, e.n);
        assert_memory_equal(g->k[i].d, e.d, e.n);
    }
}
#define EXPECT_INTS(g, ...)                                                                        \
    do {                                                                                           \
        const int64_t e_[] = {__VA_ARGS__};                                                        \
        expect_ints((g), e_, sizeof(e_) / sizeof(e_[0]));                                          \
    } while (0)
#define EXPECT_NONE(g) assert_int_equal((g)->n, 0)

static void find_ok(mdx_coll_t *c, const mdx_query_t *q, got_t *g, mdx_find_result_t *res)
{
    g->n = 0;
    int rc = mdx_find(c, q, got_cb, g, res);
    if (rc)
        print_error("find: %s (%s)\n", mdx_err_name(rc), mdx_store_errmsg(st));
    assert_int_equal(rc, 0);
    assert_int_equal(res->returned, g->n);
}

static uint64_t count_ok(mdx_coll_t *c, const mdx_query_t *q)
{
    uint64_t n = UINT64_MAX;
    int rc = mdx_count(c, q, &n);
    if (rc)
        print_error("count: %s (%s)\n", mdx_err_name(rc), mdx_store_errmsg(st));
    assert_int_equal(rc, 0);
    return n;
}

/* A one-value msgpack buffer. */
static mb_t *ival(mb_t *m, int64_t v)
{
    mb_int(mb_reset(m), v);
    return m;
}
static mb_t *sval(mb_t *m, const char *s)
{
    mb_str(mb_reset(m), s);
    return m;
}

static void put_ok(mdx_coll_t *c, tkey_t k, const mb_t *body, int64_t ttl)
{
    mdx_put_opts_t o = {.mode = MDX_PUT_UPSERT, .ttl_ms = ttl, .keep_ttl = 0};
    int rc = mdx_put(c, k.d, k.n, body->d, body->n, &o);
    if (rc)
        print_error("put: %s (%s)\n", mdx_err_name(rc), mdx_store_errmsg(st));
    assert_int_equal(rc, 0);
}

/* {"<field>": v} */
static void put_int_field(mdx_coll_t *c, int64_t key, const char *field, int64_t v)
{
    mb_t b;
    mb_reset(&b);
    mb_map(&b, 1);
    mb_kv_int(&b, field, v);
    put_ok(c, ik(key), &b, 0);
}

static void expect_body(mdx_coll_t *c, tkey_t k, const mb_t *body)
{
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(c, k.d, k.n, &v), 0);
    assert_int_equal(v.body_len, body->n);
    assert_memory_equal(v.body, body->d, body->n);
}

static void expect_bytes(mdx_coll_t *c, tkey_t k, const uint8_t *want, size_t n)
{
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(c, k.d, k.n, &v), 0);
    assert_int_equal(v.body_len, n);
    assert_memory_equal(v.body, want, n);
}

/* ---- collections ---- */

static void test_collections_create_find_drop(void **state)
{
    (void)state;
    assert_int_equal(mdx_coll_count(st), 0);
    assert_null(mdx_coll_at(st, 0));
    mdx_coll_t *u = coll("users"), *o = coll("orders"), *f;
    assert_int_equal(mdx_coll_create(st, "x.y-Z_09", NULL), 0);
    char n64[MDX_NAME_MAX + 1], n65[MDX_NAME_MAX + 2];
    memset(n64, 'a', MDX_NAME_MAX);
    n64[MDX_NAME_MAX] = '\0';
    memset(n65, 'a', MDX_NAME_MAX + 1);
    n65[MDX_NAME_MAX + 1] = '\0';
    assert_int_equal(mdx_coll_create(st, n64, NULL), 0);
    assert_int_equal(mdx_coll_count(st), 4);
    assert_ptr_equal(mdx_coll_at(st, 0), u);
    assert_ptr_equal(mdx_coll_at(st, 1), o);
    assert_string_equal(mdx_coll_name(mdx_coll_at(st, 2)), "x.y-Z_09");
    assert_string_equal(mdx_coll_name(mdx_coll_at(st, 3)), n64);
    assert_null(mdx_coll_at(st, 4));
    assert_string_equal(mdx_coll_name(u), "users");

    f = NULL;
    assert_int_equal(mdx_coll_find(st, "users", 5, &f), 0);
    assert_ptr_equal(f, u);
    assert_int_equal(mdx_coll_find(st, "usersXYZ", 5, &f), 0); /* len, not NUL, ends it */
    assert_ptr_equal(f, u);
    assert_int_equal(mdx_coll_find(st, "orders", 6, &f), 0);
    assert_ptr_equal(f, o);
    assert_int_equal(mdx_coll_find(st, n64, MDX_NAME_MAX, &f), 0);
    assert_int_equal(mdx_coll_find(st, "order", 5, &f), MDX_ENOCOLL);
    assert_non_null(strstr(mdx_store_errmsg(st), "'order'"));
    assert_int_equal(mdx_coll_find(st, n65, MDX_NAME_MAX + 1, &f), MDX_ENOCOLL);

    assert_int_equal(mdx_coll_create(st, "users", NULL), MDX_ECOLLEXISTS);
    assert_non_null(strstr(mdx_store_errmsg(st), "users"));
    assert_int_equal(mdx_coll_create(st, n65, NULL), MDX_EBADNAME);
    assert_int_equal(mdx_coll_create(st, "", NULL), MDX_EBADNAME);
    assert_int_equal(mdx_coll_create(st, "two words", NULL), MDX_EBADNAME);
    assert_int_equal(mdx_coll_create(st, "tab\t", NULL), MDX_EBADNAME);
    assert_int_equal(mdx_coll_count(st), 4);

    /* Records and an index, then drops. */
    for (int i = 0; i < 3; i++)
        put_int_field(u, i, "v", i);
    assert_int_equal(mdx_coll_records(u), 3);
    assert_int_equal(mdx_coll_records(o), 0);
    assert_int_equal(mdx_index_create(u, "by_v", "v", MDX_INDEX_SKIPLIST, 0), 0);
    put_int_field(o, 1, "w", 1);
    state_check(st);

    assert_int_equal(mdx_coll_drop(st, "orders"), 0);
    assert_int_equal(mdx_coll_count(st), 3);
    assert_ptr_equal(mdx_coll_at(st, 0), u); /* creation order is kept */
    assert_string_equal(mdx_coll_name(mdx_coll_at(st, 1)), "x.y-Z_09");
    assert_int_equal(mdx_coll_find(st, "orders", 6, &f), MDX_ENOCOLL);
    assert_int_equal(mdx_coll_drop(st, "orders"), MDX_ENOCOLL);
    assert_non_null(strstr(mdx_store_errmsg(st), "orders"));
    state_check(st);

    assert_int_equal(mdx_coll_drop(st, "users"), 0);
    assert_int_equal(mdx_coll_drop(st, "x.y-Z_09"), 0);
    assert_int_equal(mdx_coll_drop(st, n64), 0);
    assert_int_equal(mdx_coll_count(st), 0);
    state_check(st);
    /* Nothing of the dropped collections is left: only the store and its array. */
    assert_int_equal(mdx_alloc_used(), mdx_alloc_size(st) + mdx_alloc_size(st->colls));
    mdx_store_stats_t ss;
    mdx_store_stats(st, &ss);
    assert_int_equal(ss.collections, 0);
    assert_int_equal(ss.records, 0);
    assert_int_equal(ss.memory, 0);

    /* A name can be reused; the new collection starts empty. */
    u = coll("users");
    assert_int_equal(mdx_coll_records(u), 0);
    assert_int_equal(mdx_index_count(u), 0);
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(u, K(ik(1)), &v), MDX_ENOTFOUND);
}

static void test_collection_limit(void **state)
{
    (void)state;
    char name[16];
    for (int i = 0; i < MDX_MAX_COLLECTIONS; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        assert_int_equal(mdx_coll_create(st, name, NULL), 0);
    }
    assert_int_equal(mdx_coll_create(st, "one-more", NULL), MDX_ETOOBIG);
    assert_int_equal(mdx_coll_count(st), MDX_MAX_COLLECTIONS);
    assert_int_equal(mdx_coll_drop(st, "c17"), 0);
    assert_int_equal(mdx_coll_create(st, "one-more", NULL), 0);
    assert_string_equal(mdx_coll_name(mdx_coll_at(st, MDX_MAX_COLLECTIONS - 1)), "one-more");
    state_check(st);
}

/* ---- indexes ---- */

static const char *const CITIES[3] = {"paris", "oslo", "lima"};

/* Records 0..9: {"city": CITIES[i % 3], "age": i}; record 8 has no city, record 9 a nil one. */
static mdx_coll_t *people(void)
{
    mdx_coll_t *c = coll("people");
    for (int i = 0; i < 10; i++) {
        mb_t b;
        mb_reset(&b);
        mb_map(&b, 2);
        mb_kv_int(&b, "age", i);
        if (i == 8) {
            mb_kv_int(&b, "shoe", 42);
        } else if (i == 9) {
            mb_str(&b, "city");
            mb_nil(&b);
        } else {
            mb_kv_str(&b, "city", CITIES[i % 3]);
        }
        put_ok(c, ik(i), &b, 0);
    }
    return c;
}

static void expect_info(mdx_coll_t *c, size_t i, const char *name, const char *field,
                        mdx_index_kind_t kind, int unique, uint64_t entries)
{
    mdx_index_info_t info;
    assert_int_equal(mdx_index_info(c, i, &info), 0);
    assert_string_equal(info.name, name);
    assert_string_equal(info.field, field);
    assert_int_equal(info.kind, kind);
    assert_int_equal(info.unique, unique);
    assert_int_equal(info.entries, entries);
}

static void test_index_create_list_drop(void **state)
{
    (void)state;
    mdx_coll_t *c = people();
    assert_int_equal(mdx_index_count(c), 0);
    assert_int_equal(mdx_index_create(c, "by_city", "city", MDX_INDEX_HASH, 0), 0);
    assert_int_equal(mdx_index_create(c, "by_age", "age", MDX_INDEX_SKIPLIST, 7), 0);
    assert_int_equal(mdx_index_count(c), 2);
    /* Sparse: record 8 (no city) and record 9 (nil city) are not in by_city. */
    expect_info(c, 0, "by_city", "city", MDX_INDEX_HASH, 0, 8);
    expect_info(c, 1, "by_age", "age", MDX_INDEX_SKIPLIST, 1, 10);
    mdx_index_info_t info;
    assert_int_equal(mdx_index_info(c, 2, &info), MDX_ENOINDEX);
    state_check(st);

    /* The existing records were indexed. */
    mb_t v;
    got_t g;
    mdx_find_result_t res;
    mdx_query_t q = {.index = "by_city", .limit = 100};
    q.eq = sval(&v, "oslo")->d;
    q.eq_len = v.n;
    find_ok(c, &q, &g, &res);
    EXPECT_INTS(&g, 1, 4, 7);
    mb_t v7;
    mdx_query_t r = {.index = "by_age", .limit = 100, .lo_kind = MDX_BOUND_INCL};
    r.lo = ival(&v7, 7)->d;
    r.lo_len = v7.n;
    find_ok(c, &r, &g, &res);
    EXPECT_INTS(&g, 7, 8, 9);

    /* A unique index created by a nonzero flag is enforced. */
    mb_t b;
    mb_reset(&b);
    mb_map(&b, 1);
    mb_kv_int(&b, "age", 3);
    assert_int_equal(mdx_put(c, K(ik(50)), b.d, b.n, NULL), MDX_EUNIQUE);

    assert_int_equal(mdx_index_create(c, "by_city", "age", MDX_INDEX_SKIPLIST, 0),
                     MDX_EINDEXEXISTS);
    assert_non_null(strstr(mdx_store_errmsg(st), "by_city"));
    assert_non_null(strstr(mdx_store_errmsg(st), "people"));

    /* Field names: 1..255 bytes. */
    char f255[MDX_FIELD_MAX + 1], f256[MDX_FIELD_MAX + 2];
    memset(f255, 'f', MDX_FIELD_MAX);
    f255[MDX_FIELD_MAX] = '\0';
    memset(f256, 'f', MDX_FIELD_MAX + 1);
    f256[MDX_FIELD_MAX + 1] = '\0';
    assert_int_equal(mdx_index_create(c, "long", f255, MDX_INDEX_HASH, 0), 0);
    expect_info(c, 2, "long", f255, MDX_INDEX_HASH, 0, 0);
    assert_int_equal(mdx_index_create(c, "longer", f256, MDX_INDEX_HASH, 0), MDX_EBADNAME);

    /* New writes keep the indexes; a record gaining a city enters by_city. */
    mb_reset(&b);
    mb_map(&b, 2);
    mb_kv_int(&b, "age", 8);
    mb_kv_str(&b, "city", "oslo");
    put_ok(c, ik(8), &b, 0);
    expect_info(c, 0, "by_city", "city", MDX_INDEX_HASH, 0, 9);
    find_ok(c, &q, &g, &res);
    EXPECT_INTS(&g, 1, 4, 7, 8);

    /* Drop: the others keep their order and contents. */
    assert_int_equal(mdx_index_drop(c, "by_city"), 0);
    assert_int_equal(mdx_index_count(c), 2);
    expect_info(c, 0, "by_age", "age", MDX_INDEX_SKIPLIST, 1, 10);
    expect_info(c, 1, "long", f255, MDX_INDEX_HASH, 0, 0);
    assert_int_equal(mdx_find(c, &q, NULL, NULL, &res), MDX_ENOINDEX);
    assert_int_equal(mdx_index_drop(c, "by_city"), MDX_ENOINDEX);
    assert_non_null(strstr(mdx_store_errmsg(st), "by_city"));
    put_int_field(c, 20, "age", 20);
    expect_info(c, 0, "by_age", "age", MDX_INDEX_SKIPLIST, 1, 11);
    state_check(st);

    /* Recreating a dropped name works and indexes the current records. */
    assert_int_equal(mdx_index_create(c, "by_city", "city", MDX_INDEX_SKIPLIST, 0), 0);
    expect_info(c, 2, "by_city", "city", MDX_INDEX_SKIPLIST, 0, 9);
    state_check(st);
}

static void test_index_limit(void **state)
{
    (void)state;
    mdx_coll_t *c = people();
    char name[16];
    for (int i = 0; i < MDX_MAX_INDEXES; i++) {
        snprintf(name, sizeof(name), "ix%d", i);
        assert_int_equal(
            mdx_index_create(c, name, i % 2 ? "age" : "city", (mdx_index_kind_t)(i % 2), 0), 0);
    }
    assert_int_equal(mdx_index_create(c, "ix99", "age", MDX_INDEX_HASH, 0), MDX_ETOOBIG);
    assert_int_equal(mdx_index_count(c), MDX_MAX_INDEXES);
    /* Every one of them is kept by a write. */
    put_int_field(c, 3, "age", 33);
    state_check(st);
}

/* ---- indexes built on existing records ---- */

static uint64_t bulk_rng;
static uint64_t bulk_rnd(void)
{
    uint64_t z = (bulk_rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Keys: ints, short strings, and long strings sharing their first 8 bytes (so the build's
 * order keys tie and the records decide). */
static tkey_t bulk_key(uint64_t i)
{
    char s[64];
    switch (i % 3) {
    case 0:
        return ik((int64_t)(i * 2654435761u % 100003) - 50000);
    case 1:
        snprintf(s, sizeof(s), "k%llu", (unsigned long long)i);
        return sk(s);
    default:
        snprintf(s, sizeof(s), "a-long-common-prefix-%llu", (unsigned long long)(i * 7919 % 1009));
        return sk(s);
    }
}

/* A random indexable value with many ties: numbers that are equal across types (1, 1.0,
 * -0.0, 0), numbers that round to the same double, strings short and long with a shared
 * 8-byte prefix, binaries, booleans. */
static void bulk_value(mb_t *m)
{
    static const char *strs[] = {"",
                                 "a",
                                 "ab",
                                 "ab\x01",
                                 "abcdefgh",
                                 "abcdefghi",
                                 "abcdefghij",
                                 "abcdefgh-long-1",
                                 "abcdefgh-long-2",
                                 "zz"};
    uint64_t r = bulk_rnd() % 100;
    if (r < 30)
        mb_int(m, (int64_t)(bulk_rnd() % 21) - 10);
    else if (r < 40)
        mb_dbl(m, ((double)(bulk_rnd() % 21) - 10) / 2);
    else if (r < 44)
        mb_dbl(m, bulk_rnd() % 2 ? -0.0 : 0.0);
    else if (r < 50) {
        static const int64_t big[] = {9007199254740992, 9007199254740993, 9007199254740994,
                                      INT64_MAX, INT64_MIN};
        uint64_t k = bulk_rnd() % 7;
        if (k < 5)
            mb_int(m, big[k]);
        else if (k == 5)
            mb_dbl(m, 9007199254740992.0);
        else
            mb_uint(m, UINT64_MAX);
    } else if (r < 80)
        mb_str(m, strs[bulk_rnd() % (sizeof strs / sizeof strs[0])]);
    else if (r < 88) {
        const char *b = strs[bulk_rnd() % 8];
        mb_bin(m, b, strlen(b));
    } else
        mb_bool(m, (int)(bulk_rnd() & 1));
}

/* {"v": random or absent or nil, "u": i (unique), "pad": ...} */
static void bulk_put(mdx_coll_t *a, mdx_coll_t *b, uint64_t i)
{
    mb_t m;
    mb_reset(&m);
    uint64_t shape = bulk_rnd() % 10;
    mb_map(&m, shape == 0 ? 2 : 3);
    if (shape != 0) {
        mb_str(&m, "v");
        if (shape == 1)
            mb_nil(&m);
        else
            bulk_value(&m);
    }
    mb_kv_int(&m, "u", (int64_t)(i * 40503 % 65537)); /* distinct for i < 65537 */
    mb_kv_str(&m, "pad", "x");
    tkey_t k = bulk_key(i);
    put_ok(a, k, &m, 0);
    put_ok(b, k, &m, 0);
}

/* The indexes named ix of a and b hold the same records (by key) in the same order. */
static void assert_same_index(mdx_coll_t *a, mdx_coll_t *b, const char *ix)
{
    mdx_index_t *x = mdx__index_by_name(a, ix), *y = mdx__index_by_name(b, ix);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(mdx__index_verify(a, x), 0);
    assert_int_equal(mdx__index_verify(b, y), 0);
    assert_int_equal(x->entries, y->entries);
    if (x->kind == MDX_INDEX_SKIPLIST) {
        assert_int_equal(x->sl.length, y->sl.length);
        const mdx_slnode_t *p = mdx_skiplist_at(&x->sl, 0), *q = mdx_skiplist_at(&y->sl, 0);
        for (size_t r = 0; r < x->sl.length; r++) {
            const mdx_rec_t *pr = p->rec, *qr = q->rec;
            assert_int_equal(mdx_value_cmp(&p->value, &q->value), 0);
            assert_int_equal(pr->key_len, qr->key_len);
            assert_memory_equal(rec_key(pr), rec_key(qr), pr->key_len);
            p = mdx_skiplist_next(p);
            q = mdx_skiplist_next(q);
        }
        return;
    }
    assert_int_equal(mdx_htab_count(&x->groups), mdx_htab_count(&y->groups));
    mdx_htab_iter_t it = {0};
    mdx_hnode_t *n;
    while ((n = mdx_htab_iter_next(&x->groups, &it))) {
        const mdx_hgroup_t *g = (const mdx_hgroup_t *)n;
        uint32_t cx, cy;
        mdx_rec_t **rx = mdx__index_group(x, &g->value, &cx);
        mdx_rec_t **ry = mdx__index_group(y, &g->value, &cy);
        assert_int_equal(cx, cy);
        for (uint32_t i = 0; i < cx; i++) {
            assert_int_equal(rx[i]->key_len, ry[i]->key_len);
            assert_memory_equal(rec_key(rx[i]), rec_key(ry[i]), rx[i]->key_len);
        }
    }
}

static void test_index_built_on_records_matches_index_kept_by_writes(void **state)
{
    (void)state;
    const char *env = getenv("MDX_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 0) : 20251129;
    print_message("seed=%llu (set MDX_SEED to reproduce)\n", (unsigned long long)seed);
    bulk_rng = seed;
    /* "kept" has its indexes before any record arrives, so every entry went in by a write;
     * "built" gets the same records first and its indexes after, built in bulk. */
    mdx_coll_t *kept = coll("kept"), *built = coll("built");
    assert_int_equal(mdx_index_create(kept, "s", "v", MDX_INDEX_SKIPLIST, 0), 0);
    assert_int_equal(mdx_index_create(kept, "h", "v", MDX_INDEX_HASH, 0), 0);
    assert_int_equal(mdx_index_create(kept, "su", "u", MDX_INDEX_SKIPLIST, 1), 0);
    assert_int_equal(mdx_index_create(kept, "hu", "u", MDX_INDEX_HASH, 1), 0);
    enum { N = 3000 };
    for (uint64_t i = 0; i < N; i++)
        bulk_put(kept, built, i);
    /* Some deletes, so the tables hold what is left. */
    for (uint64_t i = 0; i < N; i += 7) {
        tkey_t k = bulk_key(i);
        int rk = mdx_del(kept, K(k)), rb = mdx_del(built, K(k));
        assert_int_equal(rk, rb);
    }
    assert_int_equal(mdx_coll_records(kept), mdx_coll_records(built));
    assert_int_equal(mdx_index_create(built, "s", "v", MDX_INDEX_SKIPLIST, 0), 0);
    assert_int_equal(mdx_index_create(built, "h", "v", MDX_INDEX_HASH, 0), 0);
    assert_int_equal(mdx_index_create(built, "su", "u", MDX_INDEX_SKIPLIST, 1), 0);
    assert_int_equal(mdx_index_create(built, "hu", "u", MDX_INDEX_HASH, 1), 0);
    state_check(st);
    /* Records without "v" or with nil there are not indexed. */
    mdx_index_info_t info;
    assert_int_equal(mdx_index_info(built, 0, &info), 0);
    assert_true(info.entries > 0 && info.entries < mdx_coll_records(built));
    assert_int_equal(mdx_index_info(built, 2, &info), 0);
    assert_int_equal(info.entries, mdx_coll_records(built));
    assert_same_index(kept, built, "s");
    assert_same_index(kept, built, "h");
    assert_same_index(kept, built, "su");
    assert_same_index(kept, built, "hu");

    /* The built indexes keep working under writes like the others. */
    for (uint64_t i = 0; i < N; i += 3)
        bulk_put(kept, built, i + (i % 2 ? N : 0));
    state_check(st);
    assert_same_index(kept, built, "s");
    assert_same_index(kept, built, "h");
    assert_same_index(kept, built, "su");
    assert_same_index(kept, built, "hu");
}

/* {"<field>": <value written by fn>} */
static void put_field(mdx_coll_t *c, int64_t key, const char *field, void (*fn)(mb_t *))
{
    mb_t b;
    mb_reset(&b);
    mb_map(&b, 2);
    mb_str(&b, field);
    fn(&b);
    mb_kv_int(&b, "n", key);
    put_ok(c, ik(key), &b, 0);
}
static void w_one(mb_t *m)
{
    mb_int(m, 1);
}
static void w_one_dbl(mb_t *m)
{
    mb_dbl(m, 1.0);
}
static void w_zero(mb_t *m)
{
    mb_int(m, 0);
}
static void w_neg_zero(mb_t *m)
{
    mb_dbl(m, -0.0);
}
static void w_long_a(mb_t *m)
{
    mb_str(m, "same-first-8-bytes-a");
}
static void w_long_b(mb_t *m)
{
    mb_str(m, "same-first-8-bytes-b");
}
static void w_nil(mb_t *m)
{
    mb_nil(m);
}
static void w_array(mb_t *m)
{
    mb_arr(m, 1);
    mb_int(m, 1);
}
static void w_nan(mb_t *m)
{
    mb_dbl(m, NAN);
}

/* mdx_index_create on c fails with rc and leaves the store exactly as it was. */
static void expect_create_fails(mdx_coll_t *c, const char *field, mdx_index_kind_t kind, int unique,
                                int rc, const char *msg)
{
    state_settle(st);
    state_t before, after;
    state_take(st, &before);
    assert_int_equal(mdx_index_create(c, "ix", field, kind, unique), rc);
    assert_non_null(strstr(mdx_store_errmsg(st), msg));
    state_take(st, &after);
    state_compare(&before, &after, STATE_MEM_EXACT, "failed index create");
    state_free(&before);
    state_free(&after);
    assert_null(mdx__index_by_name(c, "ix"));
}

static void test_index_create_on_records_refuses_bad_data_and_changes_nothing(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    for (int64_t i = 0; i < 40; i++) {
        mb_t b;
        mb_reset(&b);
        mb_map(&b, 1);
        mb_kv_int(&b, "n", i);
        put_ok(c, ik(i), &b, 0);
    }
    assert_int_equal(mdx_index_create(c, "keep", "n", MDX_INDEX_SKIPLIST, 1), 0);
    /* 1 and 1.0 are one value; -0.0 and 0 too: a unique index refuses either pair. */
    put_field(c, 100, "d", w_one);
    put_field(c, 101, "d", w_one_dbl);
    put_field(c, 102, "z", w_zero);
    put_field(c, 103, "z", w_neg_zero);
    /* Distinct long strings sharing their first 8 bytes, and several nils (not indexed). */
    put_field(c, 104, "s", w_long_a);
    put_field(c, 105, "s", w_long_b);
    put_field(c, 106, "s", w_nil);
    put_field(c, 107, "s", w_nil);
    for (int kind = MDX_INDEX_HASH; kind <= MDX_INDEX_SKIPLIST; kind++) {
        expect_create_fails(c, "d", (mdx_index_kind_t)kind, 1, MDX_EUNIQUE, "share a value");
        expect_create_fails(c, "z", (mdx_index_kind_t)kind, 1, MDX_EUNIQUE, "share a value");
        /* Not unique: both records are in one group / adjacent in value order. */
        assert_int_equal(mdx_index_create(c, "ix", "d", (mdx_index_kind_t)kind, 0), 0);
        expect_info(c, 1, "ix", "d", (mdx_index_kind_t)kind, 0, 2);
        mb_t v;
        mdx_query_t q = {.index = "ix", .limit = 10};
        q.eq = ival(&v, 1)->d;
        q.eq_len = v.n;
        got_t g;
        mdx_find_result_t res;
        find_ok(c, &q, &g, &res);
        EXPECT_INTS(&g, 100, 101);
        assert_int_equal(mdx_index_drop(c, "ix"), 0);
        assert_int_equal(mdx_index_create(c, "ix", "s", (mdx_index_kind_t)kind, 1), 0);
        expect_info(c, 1, "ix", "s", (mdx_index_kind_t)kind, 1, 2);
        state_check(st);
        assert_int_equal(mdx_index_drop(c, "ix"), 0);
    }
    /* A field holding an array, or NaN, cannot be indexed: the documented errors. */
    put_field(c, 200, "bad", w_array);
    put_field(c, 201, "nan", w_nan);
    for (int kind = MDX_INDEX_HASH; kind <= MDX_INDEX_SKIPLIST; kind++) {
        for (int unique = 0; unique <= 1; unique++) {
            expect_create_fails(c, "bad", (mdx_index_kind_t)kind, unique, MDX_EBADFIELD,
                                "array, map or extension");
            expect_create_fails(c, "nan", (mdx_index_kind_t)kind, unique, MDX_ENAN, "NaN");
        }
    }
    assert_int_equal(mdx_index_count(c), 1);
    state_check(st);
}

/* ---- records ---- */

static void test_put_modes(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    mb_t b1, b2, b3;
    mb_reset(&b1);
    mb_map(&b1, 1);
    mb_kv_int(&b1, "v", 1);
    mb_reset(&b2);
    mb_map(&b2, 1);
    mb_kv_int(&b2, "v", 2);
    mb_reset(&b3);
    mb_map(&b3, 0);
    mdx_put_opts_t up = {.mode = MDX_PUT_UPSERT, .ttl_ms = 0, .keep_ttl = 0},
                   ins = {.mode = MDX_PUT_INSERT, .ttl_ms = 0, .keep_ttl = 0},
                   rep = {.mode = MDX_PUT_REPLACE, .ttl_ms = 0, .keep_ttl = 0};

    assert_int_equal(mdx_put(c, K(ik(1)), b1.d, b1.n, &up), 0);
    assert_int_equal(mdx_coll_records(c), 1);
    expect_body(c, ik(1), &b1);
    assert_int_equal(mdx_put(c, K(ik(1)), b2.d, b2.n, &up), 0);
    assert_int_equal(mdx_coll_records(c), 1);
    expect_body(c, ik(1), &b2);

    assert_int_equal(mdx_put(c, K(ik(1)), b3.d, b3.n, &ins), MDX_EEXISTS);
    expect_body(c, ik(1), &b2);
    assert_int_equal(mdx_put(c, K(ik(2)), b3.d, b3.n, &ins), 0);
    expect_body(c, ik(2), &b3); /* an empty map is a valid body */
    assert_int_equal(mdx_coll_records(c), 2);

    assert_int_equal(mdx_put(c, K(ik(3)), b1.d, b1.n, &rep), MDX_ENOTFOUND);
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(c, K(ik(3)), &v), MDX_ENOTFOUND);
    assert_int_equal(mdx_put(c, K(ik(2)), b1.d, b1.n, &rep), 0);
    expect_body(c, ik(2), &b1);
    assert_int_equal(mdx_coll_records(c), 2);

    assert_int_equal(mdx_put(c, K(ik(4)), b2.d, b2.n, NULL), 0); /* NULL opts: upsert */
    assert_int_equal(mdx_put(c, K(ik(4)), b1.d, b1.n, NULL), 0);
    expect_body(c, ik(4), &b1);
    assert_int_equal(mdx_coll_records(c), 3);

    /* The stored body is a copy: changing the caller's buffer changes nothing. */
    b1.d[b1.n - 1] = 0x7f;
    assert_int_equal(mdx_get(c, K(ik(4)), &v), 0);
    assert_int_equal(v.body[v.body_len - 1], 0x01);
    state_check(st);
}

static void test_keys_are_canonical(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    mb_t a, b, s, i;
    mb_reset(&a);
    mb_map(&a, 1);
    mb_kv_str(&a, "v", "a");
    mb_reset(&b);
    mb_map(&b, 1);
    mb_kv_str(&b, "v", "b");
    mb_reset(&s);
    mb_map(&s, 1);
    mb_kv_str(&s, "v", "str");
    mb_reset(&i);
    mb_map(&i, 1);
    mb_kv_str(&i, "v", "int");

    static const uint8_t five_u8[] = {0xcc, 0x05};
    assert_int_equal(mdx_put(c, five_u8, sizeof(five_u8), a.d, a.n, NULL), 0);
    static const uint8_t five[][9] = {
        {0x05},
        {0xcc, 0x05},
        {0xcd, 0x00, 0x05},
        {0xce, 0x00, 0x00, 0x00, 0x05},
        {0xcf, 0, 0, 0, 0, 0, 0, 0, 0x05},
        {0xd0, 0x05},
        {0xd1, 0x00, 0x05},
        {0xd2, 0x00, 0x00, 0x00, 0x05},
        {0xd3, 0, 0, 0, 0, 0, 0, 0, 0x05},
    };
    static const size_t five_len[] = {1, 2, 3, 5, 9, 2, 3, 5, 9};
    for (size_t k = 0; k < 9; k++) {
        mdx_rec_view_t v;
        assert_int_equal(mdx_get(c, five[k], five_len[k], &v), 0);
        assert_int_equal(v.key_len, 1); /* the view holds the canonical key: fixint 5 */
        assert_int_equal(v.key[0], 0x05);
        assert_int_equal(v.body_len, a.n);
        assert_memory_equal(v.body, a.d, a.n);
    }
    /* The fixint form replaces the same record. */
    assert_int_equal(mdx_put(c, K(ik(5)), b.d, b.n, NULL), 0);
    assert_int_equal(mdx_coll_records(c), 1);
    expect_body(c, rawkey(five_u8, 2), &b);

    /* "42" and 42 are different keys; str8 "42" is the same as fixstr "42"; bin "42" differs. */
    assert_int_equal(mdx_put(c, K(sk("42")), s.d, s.n, NULL), 0);
    assert_int_equal(mdx_put(c, K(ik(42)), i.d, i.n, NULL), 0);
    assert_int_equal(mdx_coll_records(c), 3);
    expect_body(c, sk("42"), &s);
    expect_body(c, ik(42), &i);
    static const uint8_t str8[] = {0xd9, 0x02, '4', '2'};
    static const uint8_t str16[] = {0xda, 0x00, 0x02, '4', '2'};
    static const uint8_t bin[] = {0xc4, 0x02, '4', '2'};
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(c, str8, sizeof(str8), &v), 0);
    assert_int_equal(v.key_len, 3);
    assert_memory_equal(v.key,
                        "\xa2"
                        "42",
                        3);
    expect_body(c, rawkey(str16, sizeof(str16)), &s);
    assert_int_equal(mdx_get(c, bin, sizeof(bin), &v), MDX_ENOTFOUND);
    assert_int_equal(mdx_put(c, bin, sizeof(bin), a.d, a.n, NULL), 0);
    assert_int_equal(mdx_coll_records(c), 4);
    expect_body(c, rawkey(bin, sizeof(bin)), &a);
    expect_body(c, sk("42"), &s);

    /* Negative and extreme integers. */
    static const uint8_t m1_i8[] = {0xd0, 0xff}, m1[] = {0xff};
    assert_int_equal(mdx_put(c, m1_i8, 2, a.d, a.n, NULL), 0);
    assert_int_equal(mdx_get(c, m1, 1, &v), 0);
    assert_int_equal(v.key_len, 1);
    assert_int_equal(v.key[0], 0xff);
    static const uint8_t umax[] = {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t imin[] = {0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(mdx_put(c, umax, 9, b.d, b.n, NULL), 0);
    assert_int_equal(mdx_put(c, imin, 9, s.d, s.n, NULL), 0);
    expect_body(c, rawkey(umax, 9), &b);
    expect_body(c, rawkey(imin, 9), &s);
    assert_int_equal(mdx_coll_records(c), 7);
    /* 2^63 as uint64 and INT64_MIN are different keys. */
    static const uint8_t two63[] = {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(mdx_get(c, two63, 9, &v), MDX_ENOTFOUND);

    /* The key helpers produce the canonical forms. */
    uint8_t kb[16];
    assert_int_equal(mdx_key_int(kb, 5), 1);
    assert_int_equal(mdx_key_int(kb, -33), 2);
    assert_int_equal(kb[0], 0xd0);
    assert_int_equal(mdx_key_str(kb, "ab", 2), 3);
    assert_memory_equal(kb,
                        "\xa2"
                        "ab",
                        3);
    state_check(st);
}

static void test_delete(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    assert_int_equal(mdx_index_create(c, "by_v", "v", MDX_INDEX_HASH, 0), 0);
    for (int i = 0; i < 3; i++)
        put_int_field(c, i, "v", 7);
    assert_int_equal(mdx_del(c, K(ik(2))), 0);
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(c, K(ik(2)), &v), MDX_ENOTFOUND);
    assert_int_equal(mdx_coll_records(c), 2);
    expect_info(c, 0, "by_v", "v", MDX_INDEX_HASH, 0, 2);
    assert_int_equal(mdx_del(c, K(ik(2))), MDX_ENOTFOUND);
    static const uint8_t one_u16[] = {0xcd, 0x00, 0x01};
    assert_int_equal(mdx_del(c, one_u16, sizeof(one_u16)), 0);
    assert_int_equal(mdx_get(c, K(ik(1)), &v), MDX_ENOTFOUND);
    assert_int_equal(mdx_get(c, K(ik(0)), &v), 0);
    mb_t e;
    mdx_query_t q = {.index = "by_v", .limit = 10, .eq = ival(&e, 7)->d, .eq_len = e.n};
    assert_int_equal(count_ok(c, &q), 1);
    state_check(st);
}

static void test_update_set_and_unset(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    assert_int_equal(mdx_index_create(c, "by_b", "b", MDX_INDEX_SKIPLIST, 0), 0);
    mb_t b, set, unset;
    mb_reset(&b);
    mb_map(&b, 3);
    mb_kv_int(&b, "a", 1);
    mb_kv_str(&b, "b", "x");
    mb_str(&b, "c");
    mb_bool(&b, 1);
    put_ok(c, ik(1), &b, 500);
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(c, K(ik(1)), &v), 0);
    int64_t exp = v.expires_at;
    assert_int_equal(exp, fake_now + 500);
    uint64_t epoch = st->epoch;

    /* set {b: 2, d: nil}, unset ["c"]: the kept pairs in order, then set's pairs. */
    mb_reset(&set);
    mb_map(&set, 2);
    mb_kv_int(&set, "b", 2);
    mb_str(&set, "d");
    mb_nil(&set);
    mb_reset(&unset);
    mb_arr(&unset, 1);
    mb_str(&unset, "c");
    fake_now += 100;
    assert_int_equal(mdx_update(c, K(ik(1)), set.d, set.n, unset.d, unset.n), 0);
    static const uint8_t want1[] = {0x83, 0xa1, 'a', 0x01, 0xa1, 'b', 0x02, 0xa1, 'd', 0xc0};
    assert_int_equal(mdx_get(c, K(ik(1)), &v), 0);
    assert_int_equal(v.body_len, sizeof(want1));
    assert_memory_equal(v.body, want1, sizeof(want1));
    assert_int_equal(v.expires_at, exp); /* the expiry is kept, not restarted */
    int64_t rem;
    assert_int_equal(mdx_ttl_get(c, K(ik(1)), &rem), 0);
    assert_int_equal(rem, 400);
    assert_int_equal(st->epoch, epoch + 1);
    assert_int_equal(mdx_coll_records(c), 1);

    /* The index followed: "x" is gone, 2 is there. */
    mb_t e;
    mdx_query_t q = {.index = "by_b", .limit = 10};
    q.eq = sval(&e, "x")->d;
    q.eq_len = e.n;
    assert_int_equal(count_ok(c, &q), 0);
    q.eq = ival(&e, 2)->d;
    q.eq_len = e.n;
    assert_int_equal(count_ok(c, &q), 1);

    /* Setting an existing field moves it to the end; its index entry stays. */
    mb_reset(&set);
    mb_map(&set, 1);
    mb_kv_int(&set, "a", 9);
    assert_int_equal(mdx_update(c, K(ik(1)), set.d, set.n, NULL, 0), 0);
    static const uint8_t want2[] = {0x83, 0xa1, 'b', 0x02, 0xa1, 'd', 0xc0, 0xa1, 'a', 0x09};
    expect_bytes(c, ik(1), want2, sizeof(want2));
    assert_int_equal(count_ok(c, &q), 1);

    /* Only unset: a present field and an absent one. */
    mb_reset(&unset);
    mb_arr(&unset, 2);
    mb_str(&unset, "d");
    mb_str(&unset, "zz");
    assert_int_equal(mdx_update(c, K(ik(1)), NULL, 0, unset.d, unset.n), 0);
    static const uint8_t want3[] = {0x82, 0xa1, 'b', 0x02, 0xa1, 'a', 0x09};
    expect_bytes(c, ik(1), want3, sizeof(want3));

    /* Unsetting the indexed field takes the record out of the index. */
    mb_reset(&unset);
    mb_arr(&unset, 1);
    mb_str(&unset, "b");
    assert_int_equal(mdx_update(c, K(ik(1)), NULL, 0, unset.d, unset.n), 0);
    static const uint8_t want4[] = {0x81, 0xa1, 'a', 0x09};
    expect_bytes(c, ik(1), want4, sizeof(want4));
    assert_int_equal(count_ok(c, &q), 0);
    expect_info(c, 0, "by_b", "b", MDX_INDEX_SKIPLIST, 0, 0);

    /* Nothing to set or unset (absent, or empty containers): the body stays. */
    assert_int_equal(mdx_update(c, K(ik(1)), NULL, 0, NULL, 0), 0);
    expect_bytes(c, ik(1), want4, sizeof(want4));
    static const uint8_t empty_map[] = {0x80}, empty_arr[] = {0x90};
    assert_int_equal(mdx_update(c, K(ik(1)), empty_map, 1, empty_arr, 1), 0);
    expect_bytes(c, ik(1), want4, sizeof(want4));

    assert_int_equal(mdx_update(c, K(ik(2)), set.d, set.n, NULL, 0), MDX_ENOTFOUND);
    fake_now = exp; /* expired: an update cannot revive it */
    assert_int_equal(mdx_update(c, K(ik(1)), set.d, set.n, NULL, 0), MDX_ENOTFOUND);
    assert_int_equal(mdx_get(c, K(ik(1)), &v), MDX_ENOTFOUND);
    state_check(st);
}

/* The map header is rewritten to the shortest form: fixmap up to 15 pairs, map16 beyond. */
static void test_update_rewrites_map_header(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    mb_t b, set, unset, want;
    char f[16];
    mb_reset(&b);
    mb_map(&b, 15);
    for (int i = 0; i < 15; i++) {
        snprintf(f, sizeof(f), "f%02d", i);
        mb_kv_int(&b, f, i);
    }
    assert_int_equal(b.d[0], 0x8f);
    put_ok(c, ik(1), &b, 0);

    mb_reset(&set);
    mb_map(&set, 1);
    mb_kv_int(&set, "f15", 15);
    assert_int_equal(mdx_update(c, K(ik(1)), set.d, set.n, NULL, 0), 0);
    mb_reset(&want);
    mb_map(&want, 16);
    for (int i = 0; i < 16; i++) {
        snprintf(f, sizeof(f), "f%02d", i);
        mb_kv_int(&want, f, i);
    }
    assert_memory_equal(want.d, "\xde\x00\x10", 3);
    expect_bytes(c, ik(1), want.d, want.n);

    mb_reset(&unset);
    mb_arr(&unset, 1);
    mb_str(&unset, "f00");
    assert_int_equal(mdx_update(c, K(ik(1)), NULL, 0, unset.d, unset.n), 0);
    mb_reset(&want);
    mb_map(&want, 15);
    for (int i = 1; i < 16; i++) {
        snprintf(f, sizeof(f), "f%02d", i);
        mb_kv_int(&want, f, i);
    }
    expect_bytes(c, ik(1), want.d, want.n);
    state_check(st);
}

/* ---- TTL ---- */

static int64_t ttl_of(mdx_coll_t *c, tkey_t k)
{
    int64_t rem = INT64_MIN;
    assert_int_equal(mdx_ttl_get(c, k.d, k.n, &rem), 0);
    return rem;
}

static void test_ttl_set_get_clear(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    const int64_t t0 = fake_now;
    mb_t b;
    mb_reset(&b);
    mb_map(&b, 0);
    put_ok(c, ik(1), &b, 100);
    put_ok(c, ik(2), &b, 0);
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(c, K(ik(1)), &v), 0);
    assert_int_equal(v.expires_at, t0 + 100);
    assert_int_equal(mdx_get(c, K(ik(2)), &v), 0);
    assert_int_equal(v.expires_at, 0);
    assert_int_equal(ttl_of(c, ik(1)), 100);
    assert_int_equal(ttl_of(c, ik(2)), -1);

    fake_now = t0 + 40;
    assert_int_equal(ttl_of(c, ik(1)), 60);
    assert_int_equal(mdx_ttl_set(c, K(ik(2)), 1000), 0);
    assert_int_equal(ttl_of(c, ik(2)), 1000);
    assert_int_equal(mdx_get(c, K(ik(2)), &v), 0);
    assert_int_equal(v.expires_at, t0 + 1040);
    assert_int_equal(mdx_ttl_set(c, K(ik(1)), 5), 0); /* shortens */
    assert_int_equal(ttl_of(c, ik(1)), 5);
    assert_int_equal(mdx_ttl_clear(c, K(ik(2))), 0);
    assert_int_equal(ttl_of(c, ik(2)), -1);
    assert_int_equal(mdx_get(c, K(ik(2)), &v), 0);
    assert_int_equal(v.expires_at, 0);
    assert_int_equal(mdx_ttl_clear(c, K(ik(2))), 0); /* clearing no expiry is fine */
    state_check(st);

    /* Key 1 expires at t0 + 45: visible at t0 + 44, gone at t0 + 45. */
    fake_now = t0 + 44;
    assert_int_equal(ttl_of(c, ik(1)), 1);
    fake_now = t0 + 45;
    assert_int_equal(mdx_get(c, K(ik(1)), &v), MDX_ENOTFOUND);
    int64_t rem;
    assert_int_equal(mdx_ttl_get(c, K(ik(1)), &rem), MDX_ENOTFOUND);
    assert_int_equal(mdx_ttl_set(c, K(ik(1)), 100), MDX_ENOTFOUND);
    assert_int_equal(mdx_ttl_clear(c, K(ik(1))), MDX_ENOTFOUND);
    assert_int_equal(mdx_ttl_set(c, K(ik(3)), 100), MDX_ENOTFOUND);
    fake_now = t0 + 1000000;
    assert_int_equal(mdx_get(c, K(ik(2)), &v), 0); /* no expiry after the clear */
    state_check(st);
}

static void test_expired_records_are_invisible(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    assert_int_equal(mdx_index_create(c, "by_v", "v", MDX_INDEX_SKIPLIST, 0), 0);
    assert_int_equal(mdx_index_create(c, "by_h", "h", MDX_INDEX_HASH, 0), 0);
    const int64_t t0 = fake_now;
    for (int i = 1; i <= 4; i++) {
        mb_t b;
        mb_reset(&b);
        mb_map(&b, 2);
        mb_kv_int(&b, "v", i);
        mb_kv_str(&b, "h", "same");
        put_ok(c, ik(i), &b, i == 3 ? 60 : i == 1 ? 100 : 0);
    }
    mb_t e;
    got_t g;
    mdx_find_result_t res;
    mdx_query_t all = {.index = "by_v", .limit = 100};
    mdx_query_t same = {.index = "by_h", .limit = 100, .eq = sval(&e, "same")->d, .eq_len = e.n};

    fake_now = t0 + 59;
    find_ok(c, &all, &g, &res);
    EXPECT_INTS(&g, 1, 2, 3, 4);
    assert_int_equal(count_ok(c, &all), 4);

    fake_now = t0 + 60; /* key 3 expires (expires_at <= now) */
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(c, K(ik(3)), &v), MDX_ENOTFOUND);
    assert_int_equal(count_ok(c, &all), 3);
    assert_int_equal(count_ok(c, &same), 3);
    find_ok(c, &all, &g, &res);
    EXPECT_INTS(&g, 1, 2, 4);
    find_ok(c, &same, &g, &res);
    EXPECT_INTS(&g, 1, 2, 4);
    /* Queries reclaimed it. */
    assert_int_equal(mdx_coll_records(c), 3);
    expect_info(c, 0, "by_v", "v", MDX_INDEX_SKIPLIST, 0, 3);

    fake_now = t0 + 100;
    assert_int_equal(mdx_get(c, K(ik(1)), &v), MDX_ENOTFOUND);
    find_ok(c, &same, &g, &res);
    EXPECT_INTS(&g, 2, 4);
    assert_int_equal(count_ok(c, &all), 2);
    uint64_t next;
    g.n = 0;
    assert_int_equal(mdx_scan(c, 0, 100, got_cb, &g, &next), 0);
    assert_int_equal(next, 0);
    assert_int_equal(g.n, 2);
    mdx_coll_stats_t cs;
    mdx_coll_stats(c, &cs);
    assert_int_equal(cs.ops.expired, 2);
    assert_int_equal(cs.records, 2);
    state_check(st);
}

static void test_writes_meet_expired_records(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    assert_int_equal(mdx_index_create(c, "by_email", "email", MDX_INDEX_HASH, 1), 0);
    assert_int_equal(mdx_index_create(c, "by_n", "n", MDX_INDEX_SKIPLIST, 1), 0);
    const int64_t t0 = fake_now;
    mb_t a, b, empty;
    mb_reset(&a);
    mb_map(&a, 2);
    mb_kv_str(&a, "email", "e@x");
    mb_kv_int(&a, "n", 1);
    mb_reset(&b);
    mb_map(&b, 1);
    mb_kv_int(&b, "w", 2);
    mb_reset(&empty);
    mb_map(&empty, 0);
    mdx_put_opts_t ins = {.mode = MDX_PUT_INSERT, .ttl_ms = 0, .keep_ttl = 0},
                   rep = {.mode = MDX_PUT_REPLACE, .ttl_ms = 0, .keep_ttl = 0};

    put_ok(c, ik(1), &a, 10);
    for (int k = 2; k <= 5; k++)
        put_ok(c, ik(k), &b, 10);
    /* Unique values held by a live record block another key. */
    assert_int_equal(mdx_put(c, K(ik(9)), a.d, a.n, NULL), MDX_EUNIQUE);
    fake_now = t0 + 10;
    /* An expired holder of the unique values does not. */
    assert_int_equal(mdx_put(c, K(ik(9)), a.d, a.n, &ins), 0);
    /* An expired key is absent for insert, replace, update, delete. */
    assert_int_equal(mdx_put(c, K(ik(2)), empty.d, empty.n, &ins), 0);
    assert_int_equal(mdx_put(c, K(ik(3)), empty.d, empty.n, &rep), MDX_ENOTFOUND);
    assert_int_equal(mdx_update(c, K(ik(4)), empty.d, empty.n, NULL, 0), MDX_ENOTFOUND);
    assert_int_equal(mdx_del(c, K(ik(5))), MDX_ENOTFOUND);
    assert_int_equal(ttl_of(c, ik(2)), -1);
    expect_body(c, ik(9), &a);
    state_check(st);

    /* A replace without ttl clears the expiry; keep_ttl keeps it; a new ttl replaces it. */
    put_ok(c, ik(20), &b, 100);
    put_ok(c, ik(20), &b, 0);
    assert_int_equal(ttl_of(c, ik(20)), -1);
    put_ok(c, ik(21), &b, 100);
    mdx_put_opts_t keep = {.mode = MDX_PUT_UPSERT, .ttl_ms = 7, .keep_ttl = 1};
    assert_int_equal(mdx_put(c, K(ik(21)), empty.d, empty.n, &keep), 0);
    assert_int_equal(ttl_of(c, ik(21)), 100);
    expect_body(c, ik(21), &empty);
    put_ok(c, ik(21), &b, 50);
    assert_int_equal(ttl_of(c, ik(21)), 50);
    /* keep_ttl on a new key: there is nothing to keep, ttl_ms applies. */
    assert_int_equal(mdx_put(c, K(ik(22)), empty.d, empty.n, &keep), 0);
    assert_int_equal(ttl_of(c, ik(22)), 7);
    /* keep_ttl over a record without expiry keeps "none". */
    put_ok(c, ik(23), &b, 0);
    assert_int_equal(mdx_put(c, K(ik(23)), empty.d, empty.n, &keep), 0);
    assert_int_equal(ttl_of(c, ik(23)), -1);
    state_check(st);
}

static void put_ttl_records(mdx_coll_t *c, int first, int n, int64_t ttl)
{
    mb_t b;
    mb_reset(&b);
    mb_map(&b, 1);
    mb_kv_int(&b, "x", 0);
    for (int i = first; i < first + n; i++)
        put_ok(c, ik(i), &b, ttl);
}

static void test_expire_step_is_bounded(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    put_ttl_records(c, 0, 10, 100);
    put_ttl_records(c, 100, 5, 0);
    put_ttl_records(c, 200, 3, 500);
    uint64_t freed = 99;
    assert_int_equal(mdx_store_expire(st, 3, 0, &freed), 0); /* nothing due yet */
    assert_int_equal(freed, 0);

    fake_now += 100;
    assert_int_equal(mdx_store_expire(st, 3, 0, &freed), 1);
    assert_int_equal(freed, 3);
    assert_int_equal(mdx_coll_records(c), 15);
    assert_int_equal(mdx_store_expire(st, 3, 0, &freed), 1);
    assert_int_equal(freed, 3);
    assert_int_equal(mdx_store_expire(st, 3, 0, &freed), 1);
    assert_int_equal(freed, 3);
    assert_int_equal(mdx_coll_records(c), 9);
    assert_int_equal(mdx_store_expire(st, 3, 0, &freed), 0);
    assert_int_equal(freed, 1);
    assert_int_equal(mdx_coll_records(c), 8);
    assert_int_equal(mdx_store_expire(st, 3, 0, NULL), 0);
    state_check(st);

    /* A budget that exactly fits says nothing remains. */
    fake_now += 400;
    assert_int_equal(mdx_store_expire(st, 3, 0, &freed), 0);
    assert_int_equal(freed, 3);
    assert_int_equal(mdx_coll_records(c), 5);
    mdx_coll_stats_t cs;
    mdx_coll_stats(c, &cs);
    assert_int_equal(cs.ops.expired, 13);

    /* Across collections; 0 means no limit. */
    mdx_coll_t *d = coll("d");
    put_ttl_records(c, 300, 4, 10);
    put_ttl_records(d, 300, 4, 10);
    fake_now += 10;
    assert_int_equal(mdx_store_expire(st, 5, 0, &freed), 1);
    assert_int_equal(freed, 5);
    assert_int_equal(mdx_coll_records(c) + mdx_coll_records(d), 5 + 3);
    assert_int_equal(mdx_store_expire(st, 5, 0, &freed), 0);
    assert_int_equal(freed, 3);
    assert_int_equal(mdx_coll_records(c), 5);
    assert_int_equal(mdx_coll_records(d), 0);
    put_ttl_records(d, 400, 50, 1);
    fake_now += 1;
    assert_int_equal(mdx_store_expire(st, 0, 0, &freed), 0);
    assert_int_equal(freed, 50);
    assert_int_equal(mdx_coll_records(d), 0);
    /* A time budget alone still frees everything due when it is generous. */
    put_ttl_records(d, 500, 40, 1);
    fake_now += 1;
    assert_int_equal(mdx_store_expire(st, 0, 10000000, &freed), 0);
    assert_int_equal(freed, 40);
    mdx_store_stats_t ss;
    mdx_store_stats(st, &ss);
    assert_int_equal(ss.ops.expired, 13 + 8 + 50 + 40);
    state_check(st);
}

/* ---- find ---- */

/* Keys 0..19 with "age" 5 * key, skiplist "by_age". */
static mdx_coll_t *ages(void)
{
    mdx_coll_t *c = coll("ages");
    assert_int_equal(mdx_index_create(c, "by_age", "age", MDX_INDEX_SKIPLIST, 0), 0);
    for (int i = 0; i < 20; i++)
        put_int_field(c, i, "age", 5 * i);
    return c;
}

typedef struct {
    mdx_query_t q;
    mb_t lo, hi;
} range_t;

static mdx_query_t *range(range_t *r, mdx_bound_t lk, int64_t lo, mdx_bound_t hk, int64_t hi)
{
    memset(&r->q, 0, sizeof(r->q));
    r->q.index = "by_age";
    r->q.limit = 100;
    r->q.lo_kind = lk;
    r->q.hi_kind = hk;
    if (lk) {
        r->q.lo = ival(&r->lo, lo)->d;
        r->q.lo_len = r->lo.n;
    }
    if (hk) {
        r->q.hi = ival(&r->hi, hi)->d;
        r->q.hi_len = r->hi.n;
    }
    return &r->q;
}

static void test_find_range_bounds(void **state)
{
    (void)state;
    mdx_coll_t *c = ages();
    range_t r;
    got_t g;
    mdx_find_result_t res;
    const mdx_bound_t I = MDX_BOUND_INCL, X = MDX_BOUND_EXCL, O = MDX_BOUND_OPEN;

    find_ok(c, range(&r, I, 10, I, 30), &g, &res);
    EXPECT_INTS(&g, 2, 3, 4, 5, 6);
    assert_int_equal(res.more, 0);
    assert_null(res.cursor);
    assert_int_equal(count_ok(c, &r.q), 5);
    find_ok(c, range(&r, X, 10, X, 30), &g, &res);
    EXPECT_INTS(&g, 3, 4, 5);
    assert_int_equal(count_ok(c, &r.q), 3);
    find_ok(c, range(&r, I, 10, X, 30), &g, &res);
    EXPECT_INTS(&g, 2, 3, 4, 5);
    find_ok(c, range(&r, X, 10, I, 30), &g, &res);
    EXPECT_INTS(&g, 3, 4, 5, 6);
    find_ok(c, range(&r, O, 0, I, 12), &g, &res);
    EXPECT_INTS(&g, 0, 1, 2);
    find_ok(c, range(&r, X, 90, O, 0), &g, &res);
    EXPECT_INTS(&g, 19);
    find_ok(c, range(&r, O, 0, O, 0), &g, &res);
    assert_int_equal(g.n, 20);
    assert_int_equal(count_ok(c, &r.q), 20);
    /* Bounds between stored values. */
    find_ok(c, range(&r, I, 12, I, 24), &g, &res);
    EXPECT_INTS(&g, 3, 4);
    find_ok(c, range(&r, X, 12, X, 24), &g, &res);
    EXPECT_INTS(&g, 3, 4);
    /* Empty ranges. */
    find_ok(c, range(&r, I, 30, I, 10), &g, &res);
    EXPECT_NONE(&g);
    assert_int_equal(count_ok(c, &r.q), 0);
    find_ok(c, range(&r, X, 10, X, 15), &g, &res);
    EXPECT_NONE(&g);
    find_ok(c, range(&r, I, 10, X, 10), &g, &res);
    EXPECT_NONE(&g);
    find_ok(c, range(&r, I, 10, I, 10), &g, &res);
    EXPECT_INTS(&g, 2);
    find_ok(c, range(&r, I, 96, O, 0), &g, &res);
    EXPECT_NONE(&g);
    find_ok(c, range(&r, O, 0, X, 0), &g, &res);
    EXPECT_NONE(&g);

    /* Descending. */
    range(&r, I, 10, I, 30);
    r.q.desc = 1;
    find_ok(c, &r.q, &g, &res);
    EXPECT_INTS(&g, 6, 5, 4, 3, 2);
    range(&r, O, 0, X, 15);
    r.q.desc = 1;
    find_ok(c, &r.q, &g, &res);
    EXPECT_INTS(&g, 2, 1, 0);

    /* Limit and offset. */
    range(&r, I, 10, I, 30);
    r.q.limit = 2;
    find_ok(c, &r.q, &g, &res);
    EXPECT_INTS(&g, 2, 3);
    assert_int_equal(res.more, 1);
    assert_non_null(res.cursor);
    r.q.offset = 3;
    r.q.limit = 10;
    find_ok(c, &r.q, &g, &res);
    EXPECT_INTS(&g, 5, 6);
    assert_int_equal(res.more, 0);
    r.q.offset = 5;
    find_ok(c, &r.q, &g, &res);
    EXPECT_NONE(&g);
    assert_int_equal(res.more, 0);
    r.q.offset = UINT64_MAX;
    find_ok(c, &r.q, &g, &res);
    EXPECT_NONE(&g);
    r.q.offset = 1;
    r.q.limit = 2;
    r.q.desc = 1;
    find_ok(c, &r.q, &g, &res);
    EXPECT_INTS(&g, 5, 4);
    assert_int_equal(res.more, 1);
    r.q.limit = 3;
    find_ok(c, &r.q, &g, &res);
    EXPECT_INTS(&g, 5, 4, 3);
    assert_int_equal(res.more, 1);
    r.q.limit = 4;
    find_ok(c, &r.q, &g, &res);
    EXPECT_INTS(&g, 5, 4, 3, 2);
    assert_int_equal(res.more, 0);
    /* count ignores limit, offset and after. */
    r.q.limit = 0;
    r.q.offset = 3;
    r.q.after = (const uint8_t *)"\xc1";
    r.q.after_len = 1;
    assert_int_equal(count_ok(c, &r.q), 5);

    /* Bounds of other types: booleans sort before numbers, strings after. */
    mb_t lo, hi;
    mdx_query_t t = {.index = "by_age", .limit = 100, .lo_kind = I, .hi_kind = I};
    mb_bool(mb_reset(&lo), 1);
    t.lo = lo.d;
    t.lo_len = lo.n;
    t.hi = ival(&hi, 7)->d;
    t.hi_len = hi.n;
    find_ok(c, &t, &g, &res);
    EXPECT_INTS(&g, 0, 1);
    t.lo = ival(&lo, 88)->d;
    t.lo_len = lo.n;
    t.hi = sval(&hi, "")->d;
    t.hi_len = hi.n;
    find_ok(c, &t, &g, &res);
    EXPECT_INTS(&g, 18, 19);
    mb_dbl(mb_reset(&lo), 7.5);
    t.lo = lo.d;
    t.lo_len = lo.n;
    mb_dbl(mb_reset(&hi), 15.0);
    t.hi = hi.d;
    t.hi_len = hi.n;
    find_ok(c, &t, &g, &res);
    EXPECT_INTS(&g, 2, 3);
    /* A nil lower bound is the lowest value: everything. */
    mb_nil(mb_reset(&lo));
    t.lo = lo.d;
    t.lo_len = lo.n;
    t.hi_kind = O;
    assert_int_equal(count_ok(c, &t), 20);
    state_check(st);
}

/*
 * Cursor pagination across writes, checked against a model: the records of the range in
 * (value, key) order; each page must be exactly the first `limit` model entries after the
 * cursor. Between pages the test deletes a record it has seen, inserts records behind the
 * cursor (never to be seen), at the cursor's value with a smaller key (behind) and a larger
 * key (ahead), and ahead in the range, and rewrites a record ahead without moving it.
 */
#define WALK_MAX 256

typedef struct {
    int64_t g, key;
    int present;
} went_t;

typedef struct {
    went_t e[WALK_MAX];
    int n;
} wmodel_t;

static int went_cmp(const void *a, const void *b)
{
    const went_t *x = a, *y = b;
    if (x->g != y->g)
        return x->g < y->g ? -1 : 1;
    return (x->key > y->key) - (x->key < y->key);
}

static void wput(mdx_coll_t *c, wmodel_t *m, int64_t key, int64_t g, int64_t n)
{
    mb_t b;
    mb_reset(&b);
    mb_map(&b, 2);
    mb_kv_int(&b, "g", g);
    mb_kv_int(&b, "n", n);
    put_ok(c, ik(key), &b, 0);
    for (int i = 0; i < m->n; i++)
        if (m->e[i].key == key) {
            assert_int_equal(m->e[i].g, g); /* the walk never moves a record */
            return;
        }
    assert_true(m->n < WALK_MAX);
    m->e[m->n++] = (went_t){g, key, 1};
}

static void wdel(mdx_coll_t *c, wmodel_t *m, int64_t key)
{
    assert_int_equal(mdx_del(c, K(ik(key))), 0);
    for (int i = 0; i < m->n; i++)
        if (m->e[i].key == key)
            m->e[i].present = 0;
}

/* The next page the model predicts after cursor (cg, ck) (has_cur 0: from the start). */
static int model_page(wmodel_t *m, int64_t lo, int64_t hi, int desc, int has_cur, int64_t cg,
                      int64_t ck, int limit, int64_t *out, int *more)
{
    qsort(m->e, (size_t)m->n, sizeof(m->e[0]), went_cmp);
    went_t cur = {cg, ck, 1};
    int n = 0, avail = 0;
    for (int j = 0; j < m->n; j++) {
        const went_t *e = &m->e[desc ? m->n - 1 - j : j];
        if (!e->present || e->g < lo || e->g > hi)
            continue;
        if (has_cur && (desc ? went_cmp(e, &cur) >= 0 : went_cmp(e, &cur) <= 0))
            continue;
        avail++;
        if (n < limit)
            out[n++] = e->key;
    }
    *more = avail > n;
    return n;
}

static void walk(mdx_coll_t *c, wmodel_t *m, const char *index, int desc, int limit,
                 int with_writes, int64_t *seen, int *nseen)
{
    const int64_t lo = 2, hi = 15;
    mb_t lob, hib;
    mdx_query_t q = {.index = index, .limit = (uint32_t)limit, .desc = desc};
    q.lo_kind = q.hi_kind = MDX_BOUND_INCL;
    q.lo = ival(&lob, lo)->d;
    q.lo_len = lob.n;
    q.hi = ival(&hib, hi)->d;
    q.hi_len = hib.n;
    uint8_t cursor[64];
    int has_cur = 0, page = 0;
    int64_t cg = 0, ck = 0;
    *nseen = 0;
    for (;;) {
        int64_t want[64];
        int more_want;
        int nw = model_page(m, lo, hi, desc, has_cur, cg, ck, limit, want, &more_want);
        got_t g;
        mdx_find_result_t res;
        find_ok(c, &q, &g, &res);
        expect_ints(&g, want, (size_t)nw);
        assert_int_equal(res.more, more_want);
        for (int i = 0; i < nw; i++)
            seen[(*nseen)++] = want[i];
        if (!res.more) {
            assert_null(res.cursor);
            break;
        }
        /* The cursor is [value, key] of the last record returned. */
        assert_true(res.cursor_len <= sizeof(cursor));
        memcpy(cursor, res.cursor, res.cursor_len);
        mdx_value_t cv, ckv;
        const uint8_t *p = cursor, *end = cursor + res.cursor_len;
        mdx_mp_tok_t t;
        assert_int_equal(mdx_mp_read(&p, end, &t), 0);
        assert_int_equal(t.type, MDX_MP_ARRAY);
        assert_int_equal(t.len, 2);
        assert_int_equal(mdx_mp_read(&p, end, &t), 0);
        assert_int_equal(mdx_value_from_tok(&t, &cv), 0);
        assert_int_equal(mdx_mp_read(&p, end, &t), 0);
        assert_int_equal(mdx_value_from_tok(&t, &ckv), 0);
        assert_ptr_equal(p, end);
        ck = want[nw - 1];
        assert_int_equal(ckv.v.i, ck);
        for (int i = 0; i < m->n; i++)
            if (m->e[i].key == ck)
                cg = m->e[i].g;
        assert_int_equal(cv.v.i, cg);
        has_cur = 1;
        if (with_writes) {
            int64_t ahead = desc ? lo : hi, behind = desc ? hi : lo;
            wdel(c, m, want[0]);                       /* seen */
            wput(c, m, 1000 + page, behind, 0);        /* behind: never seen */
            wput(c, m, -1 - page, cg, 0);              /* same value, smaller key */
            wput(c, m, 3000 + page, cg, 0);            /* same value, larger key */
            wput(c, m, 2000 + page, ahead, 0);         /* ahead */
            wput(c, m, 6000 + page, hi + 1 + page, 0); /* outside the range */
            for (int i = 0; i < m->n; i++)             /* rewrite one ahead, same value */
                if (m->e[i].present && m->e[i].g == ahead && m->e[i].key < 1000)
                    wput(c, m, m->e[i].key, ahead, page + 1);
            /* Behind and ahead depend on the direction: in a descending walk a smaller key
             * at the cursor's value is ahead. The model decides; the store must agree. */
        }
        q.after = cursor;
        q.after_len = res.cursor_len;
        page++;
        assert_true(page < 100);
    }
}

static void test_find_cursor_walks_ranges_across_writes(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        for (int desc = 0; desc < 2; desc++) {
            for (int writes = 0; writes < 2; writes++) {
                mdx_coll_t *c = coll("walk");
                assert_int_equal(mdx_index_create(c, "by_g", "g", MDX_INDEX_SKIPLIST, 0), 0);
                if (kind) /* a second index kept in step, to exercise more upkeep */
                    assert_int_equal(mdx_index_create(c, "by_n", "n", MDX_INDEX_HASH, 0), 0);
                static wmodel_t m;
                m.n = 0;
                /* keys 0..59 with g = key / 3: three records per value, ties broken by key */
                for (int64_t k = 59; k >= 0; k--)
                    wput(c, &m, k, k / 3, 0);
                int64_t seen[WALK_MAX];
                int nseen;
                walk(c, &m, "by_g", desc, 7, writes, seen, &nseen);
                /* Every record of the range present from start to end was seen exactly once. */
                for (int i = 0; i < m.n; i++) {
                    if (m.e[i].key < 0 || m.e[i].key >= 60 || m.e[i].g < 2 || m.e[i].g > 15)
                        continue;
                    int times = 0;
                    for (int j = 0; j < nseen; j++)
                        times += seen[j] == m.e[i].key;
                    if (times != 1)
                        print_error("key %lld seen %d times (desc %d writes %d)\n",
                                    (long long)m.e[i].key, times, desc, writes);
                    assert_int_equal(times, 1);
                }
                if (!writes)
                    assert_int_equal(nseen, 42);
                state_check(st);
                assert_int_equal(mdx_coll_drop(st, "walk"), 0);
            }
        }
    }
}

/* Pages over a hash index's equality group, with writes in between. */
static void test_find_cursor_walks_hash_group(void **state)
{
    (void)state;
    for (int desc = 0; desc < 2; desc++) {
        mdx_coll_t *c = coll("h");
        assert_int_equal(mdx_index_create(c, "by_h", "h", MDX_INDEX_HASH, 0), 0);
        mb_t x, y;
        mb_reset(&x);
        mb_map(&x, 1);
        mb_kv_str(&x, "h", "x");
        mb_reset(&y);
        mb_map(&y, 1);
        mb_kv_str(&y, "h", "y");
        int present[200] = {0};
        for (int k = 0; k < 50; k += 2) { /* even keys 0..48 hold "x" */
            put_ok(c, ik(k), &x, 0);
            present[k] = 1;
        }
        for (int k = 1; k < 50; k += 2)
            put_ok(c, ik(k), &y, 0);
        mb_t e;
        mdx_query_t q = {.index = "by_h", .limit = 4, .desc = desc};
        q.eq = sval(&e, "x")->d;
        q.eq_len = e.n;
        uint8_t cursor[64];
        int64_t last = desc ? 1000 : -1000;
        int seen[200] = {0}, pages = 0;
        for (;;) {
            got_t g;
            mdx_find_result_t res;
            find_ok(c, &q, &g, &res);
            /* The page: the next 4 present "x" keys beyond the last one seen. */
            int64_t want[4];
            int nw = 0, avail = 0;
            for (int j = 0; j < 200; j++) {
                int k = desc ? 199 - j : j;
                if (!present[k] || (desc ? k >= last : k <= last))
                    continue;
                avail++;
                if (nw < 4)
                    want[nw++] = k;
            }
            expect_ints(&g, want, (size_t)nw);
            assert_int_equal(res.more, avail > nw);
            for (int i = 0; i < nw; i++)
                seen[want[i]]++;
            if (!res.more)
                break;
            last = want[nw - 1];
            memcpy(cursor, res.cursor, res.cursor_len);
            q.after = cursor;
            q.after_len = res.cursor_len;
            /* Writes: delete a seen record, add one behind and one ahead, and turn an
             * unseen "y" ahead into "x" (it joins the group ahead of the cursor). */
            assert_int_equal(mdx_del(c, K(ik(want[0]))), 0);
            present[want[0]] = 0;
            int64_t behind = desc ? 100 + pages : -1;
            if (behind >= 0 && behind < 200) {
                put_ok(c, ik(behind), &x, 0);
                present[behind] = 1;
                seen[behind] = -1000; /* must never be seen */
            }
            int64_t ahead = desc ? -1 : 150 + pages;
            if (ahead >= 0) {
                put_ok(c, ik(ahead), &x, 0);
                present[ahead] = 1;
            }
            pages++;
            assert_true(pages < 100);
        }
        for (int k = 0; k < 200; k++)
            if (k < 50 && k % 2 == 0)
                assert_int_equal(seen[k], 1);
        assert_true(pages >= 5);
        state_check(st);
        assert_int_equal(mdx_coll_drop(st, "h"), 0);
    }
}

/* The store's own cursor view can be passed straight back. */
static void test_find_cursor_view_passed_back(void **state)
{
    (void)state;
    mdx_coll_t *c = ages();
    range_t r;
    got_t g, all = {.n = 0};
    mdx_find_result_t res;
    range(&r, MDX_BOUND_OPEN, 0, MDX_BOUND_OPEN, 0);
    r.q.limit = 3;
    for (int pages = 0;; pages++) {
        find_ok(c, &r.q, &g, &res);
        for (size_t i = 0; i < g.n; i++)
            all.k[all.n++] = g.k[i];
        if (!res.more)
            break;
        r.q.after = res.cursor;
        r.q.after_len = res.cursor_len;
        assert_true(pages < 20);
    }
    EXPECT_INTS(&all, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19);
}

static void test_find_equality(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    assert_int_equal(mdx_index_create(c, "h_city", "city", MDX_INDEX_HASH, 0), 0);
    assert_int_equal(mdx_index_create(c, "s_city", "city", MDX_INDEX_SKIPLIST, 0), 0);
    mb_t p, o;
    mb_reset(&p);
    mb_map(&p, 1);
    mb_kv_str(&p, "city", "paris");
    mb_reset(&o);
    mb_map(&o, 1);
    mb_kv_str(&o, "city", "oslo");
    /* Mixed keys: integers order before strings. */
    put_ok(c, sk("b"), &p, 0);
    put_ok(c, ik(5), &p, 0);
    put_ok(c, sk("a"), &p, 0);
    put_ok(c, ik(-3), &p, 0);
    put_ok(c, ik(1), &p, 0);
    put_ok(c, ik(2), &o, 0);
    put_ok(c, sk("c"), &o, 0);
    const tkey_t asc[] = {ik(-3), ik(1), ik(5), sk("a"), sk("b")};

    mb_t e;
    for (int ix = 0; ix < 2; ix++) {
        mdx_query_t q = {.index = ix ? "s_city" : "h_city", .limit = 10};
        q.eq = sval(&e, "paris")->d;
        q.eq_len = e.n;
        got_t g;
        mdx_find_result_t res;
        find_ok(c, &q, &g, &res);
        assert_int_equal(g.n, 5);
        for (size_t i = 0; i < 5; i++) {
            assert_int_equal(g.k[i].n, asc[i].n);
            assert_memory_equal(g.k[i].d, asc[i].d, asc[i].n);
        }
        assert_int_equal(res.more, 0);
        assert_int_equal(count_ok(c, &q), 5);
        q.desc = 1;
        find_ok(c, &q, &g, &res);
        assert_int_equal(g.n, 5);
        for (size_t i = 0; i < 5; i++)
            assert_memory_equal(g.k[i].d, asc[4 - i].d, asc[4 - i].n);
        q.desc = 0;
        q.offset = 1;
        q.limit = 2;
        find_ok(c, &q, &g, &res);
        EXPECT_INTS(&g, 1, 5);
        assert_int_equal(res.more, 1);
        q.offset = 4;
        find_ok(c, &q, &g, &res);
        assert_int_equal(g.n, 1);
        assert_memory_equal(g.k[0].d, asc[4].d, asc[4].n);
        assert_int_equal(res.more, 0);
        q.offset = 0;
        q.eq = sval(&e, "rome")->d;
        q.eq_len = e.n;
        find_ok(c, &q, &g, &res);
        EXPECT_NONE(&g);
        assert_int_equal(count_ok(c, &q), 0);
        q.eq = sval(&e, "oslo")->d;
        q.eq_len = e.n;
        q.limit = 10;
        find_ok(c, &q, &g, &res);
        assert_int_equal(g.n, 2);
        assert_memory_equal(g.k[0].d, ik(2).d, ik(2).n);
        assert_memory_equal(g.k[1].d, sk("c").d, sk("c").n);
    }
    state_check(st);
}

/* A callback that stops after two results. */
static int stop_after_two(void *data, const mdx_rec_view_t *v)
{
    got_t *g = data;
    got_cb(g, v);
    return g->n == 2;
}

static void test_find_callback_can_stop(void **state)
{
    (void)state;
    mdx_coll_t *c = ages();
    range_t r;
    got_t g = {.n = 0};
    mdx_find_result_t res;
    range(&r, MDX_BOUND_INCL, 10, MDX_BOUND_OPEN, 0);
    assert_int_equal(mdx_find(c, &r.q, stop_after_two, &g, &res), 0);
    EXPECT_INTS(&g, 2, 3);
    assert_int_equal(res.returned, 2);
    assert_int_equal(res.more, 1);
    r.q.after = res.cursor;
    r.q.after_len = res.cursor_len;
    r.q.limit = 3;
    find_ok(c, &r.q, &g, &res);
    EXPECT_INTS(&g, 4, 5, 6);
    /* Without a callback the page is still counted. */
    r.q.after = NULL;
    r.q.after_len = 0;
    assert_int_equal(mdx_find(c, &r.q, NULL, NULL, &res), 0);
    assert_int_equal(res.returned, 3);
    assert_int_equal(res.more, 1);
}

/* nil < false < true < numbers (ints, floats and uint64 numerically; 1 == 1.0) < strings <
 * binary; ties by key. */
static void test_order_across_types(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    assert_int_equal(mdx_index_create(c, "s", "v", MDX_INDEX_SKIPLIST, 0), 0);
    assert_int_equal(mdx_index_create(c, "h", "v", MDX_INDEX_HASH, 0), 0);
    mb_t b;
#define PUTV(key, stmt)                                                                            \
    do {                                                                                           \
        mb_reset(&b);                                                                              \
        mb_map(&b, 1);                                                                             \
        mb_str(&b, "v");                                                                           \
        stmt;                                                                                      \
        put_ok(c, ik(key), &b, 0);                                                                 \
    } while (0)
    PUTV(1, mb_bin(&b, "a", 1));
    PUTV(2, mb_str(&b, "b"));
    PUTV(3, mb_str(&b, "ab"));
    PUTV(4, mb_str(&b, "a"));
    PUTV(5, mb_uint(&b, UINT64_MAX));
    PUTV(6, mb_dbl(&b, 1e10));
    PUTV(7, mb_int(&b, 2));
    PUTV(8, mb_dbl(&b, 1.0));
    PUTV(9, mb_int(&b, 1));
    PUTV(10, mb_dbl(&b, 0.5));
    PUTV(11, mb_int(&b, -3));
    PUTV(12, mb_bool(&b, 1));
    PUTV(13, mb_bool(&b, 0));
    PUTV(14, mb_nil(&b)); /* not indexed */
    PUTV(15, mb_dbl(&b, -0.0));
    PUTV(16, mb_int(&b, 0));
    PUTV(17, mb_f32(&b, 1.0f));
    PUTV(18, mb_int(&b, INT64_MIN));
    PUTV(19, mb_dbl(&b, -INFINITY));
    PUTV(20, mb_dbl(&b, INFINITY));
    PUTV(21, mb_uint(&b, (uint64_t)1 << 63));
    PUTV(22, mb_dbl(&b, 9223372036854775808.0)); /* 2^63 as a double */
#undef PUTV
    range_t r;
    got_t g;
    mdx_find_result_t res;
    range(&r, MDX_BOUND_OPEN, 0, MDX_BOUND_OPEN, 0);
    r.q.index = "s";
    find_ok(c, &r.q, &g, &res);
    EXPECT_INTS(&g, 13, 12, 19, 18, 11, 15, 16, 10, 8, 9, 17, 7, 6, 21, 22, 5, 20, 4, 3, 2, 1);
    expect_info(c, 0, "s", "v", MDX_INDEX_SKIPLIST, 0, 21);
    expect_info(c, 1, "h", "v", MDX_INDEX_HASH, 0, 21);

    /* Equality treats equal numbers as one value, on both kinds, whatever the encoding. */
    mb_t e;
    for (int ix = 0; ix < 2; ix++) {
        mdx_query_t q = {.index = ix ? "h" : "s", .limit = 100};
        q.eq = ival(&e, 1)->d;
        q.eq_len = e.n;
        find_ok(c, &q, &g, &res);
        EXPECT_INTS(&g, 8, 9, 17);
        mb_dbl(mb_reset(&e), 1.0);
        q.eq = e.d;
        q.eq_len = e.n;
        find_ok(c, &q, &g, &res);
        EXPECT_INTS(&g, 8, 9, 17);
        mb_f32(mb_reset(&e), 1.0f);
        q.eq = e.d;
        q.eq_len = e.n;
        assert_int_equal(count_ok(c, &q), 3);
        q.eq = ival(&e, 0)->d;
        q.eq_len = e.n;
        find_ok(c, &q, &g, &res);
        EXPECT_INTS(&g, 15, 16);
        mb_uint(mb_reset(&e), (uint64_t)1 << 63);
        q.eq = e.d;
        q.eq_len = e.n;
        find_ok(c, &q, &g, &res);
        EXPECT_INTS(&g, 21, 22);
        q.eq = sval(&e, "a")->d;
        q.eq_len = e.n;
        find_ok(c, &q, &g, &res);
        EXPECT_INTS(&g, 4); /* not the binary "a" */
        mb_bin(mb_reset(&e), "a", 1);
        q.eq = e.d;
        q.eq_len = e.n;
        find_ok(c, &q, &g, &res);
        EXPECT_INTS(&g, 1);
        mb_bool(mb_reset(&e), 0);
        q.eq = e.d;
        q.eq_len = e.n;
        find_ok(c, &q, &g, &res);
        EXPECT_INTS(&g, 13);
        mb_nil(mb_reset(&e)); /* nil is never indexed */
        q.eq = e.d;
        q.eq_len = e.n;
        assert_int_equal(count_ok(c, &q), 0);
    }
    /* A range over all numbers: [-inf, +inf]. */
    mb_t lo, hi;
    mdx_query_t q = {.index = "s", .limit = 100};
    q.lo_kind = q.hi_kind = MDX_BOUND_INCL;
    mb_dbl(mb_reset(&lo), -INFINITY);
    mb_dbl(mb_reset(&hi), INFINITY);
    q.lo = lo.d;
    q.lo_len = lo.n;
    q.hi = hi.d;
    q.hi_len = hi.n;
    assert_int_equal(count_ok(c, &q), 15);
    q.lo_kind = q.hi_kind = MDX_BOUND_EXCL;
    assert_int_equal(count_ok(c, &q), 13);
    /* (1, 2]: 1 and 1.0 are out, 2 is in. */
    q.lo = ival(&lo, 1)->d;
    q.lo_len = lo.n;
    q.hi = ival(&hi, 2)->d;
    q.hi_len = hi.n;
    q.hi_kind = MDX_BOUND_INCL;
    find_ok(c, &q, &g, &res);
    EXPECT_INTS(&g, 7);
    state_check(st);
}

/* ---- scan ---- */

static int scan_count_cb(void *data, const mdx_rec_view_t *v)
{
    int *seen = data;
    mdx_value_t kv;
    assert_int_equal(mdx_value_decode(v->key, v->key_len, &kv), 0);
    assert_true(kv.type == MDX_V_INT && kv.v.i >= 0 && kv.v.i < 4000);
    seen[kv.v.i]++;
    return 0;
}

static int scan_page_cb(void *data, const mdx_rec_view_t *v)
{
    int *seen = data;
    mdx_value_t kv;
    assert_int_equal(mdx_value_decode(v->key, v->key_len, &kv), 0);
    assert_true(kv.type == MDX_V_INT && kv.v.i >= 0 && kv.v.i < 4000);
    seen[kv.v.i]++;
    seen[4000]++; /* records in this page */
    return 0;
}

static void test_scan_covers_every_record(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    uint64_t next = 99;
    int *seen = calloc(4001, sizeof(int));
    assert_non_null(seen);
    assert_int_equal(mdx_scan(c, 0, 10, scan_page_cb, seen, &next), 0);
    assert_int_equal(next, 0);
    assert_int_equal(seen[4000], 0);

    for (int i = 0; i < 1000; i++)
        put_int_field(c, i, "v", i);
    /* Plain pages. */
    uint64_t cursor = 0;
    int pages = 0;
    do {
        seen[4000] = 0;
        assert_int_equal(mdx_scan(c, cursor, 37, scan_page_cb, seen, &next), 0);
        assert_true(seen[4000] >= 1);
        assert_true(seen[4000] <= 37 + 16); /* about limit: whole buckets */
        cursor = next;
        pages++;
    } while (cursor != 0);
    assert_true(pages >= 1000 / (37 + 16));
    for (int i = 0; i < 1000; i++)
        assert_int_equal(seen[i], 1); /* a table that did not change: each exactly once */

    /* Growing between pages (forces incremental resizes), then shrinking. */
    memset(seen, 0, 4001 * sizeof(int));
    cursor = 0;
    int added = 1000, removed = 1000;
    do {
        assert_int_equal(mdx_scan(c, cursor, 50, scan_count_cb, seen, &next), 0);
        cursor = next;
        for (int j = 0; j < 100 && added < 4000; j++, added++)
            put_int_field(c, added, "v", added);
    } while (cursor != 0);
    for (int i = 0; i < 1000; i++)
        assert_true(seen[i] >= 1);
    memset(seen, 0, 4001 * sizeof(int));
    cursor = 0;
    do {
        assert_int_equal(mdx_scan(c, cursor, 50, scan_count_cb, seen, &next), 0);
        cursor = next;
        for (int j = 0; j < 200 && removed < added; j++, removed++)
            assert_int_equal(mdx_del(c, K(ik(removed))), 0);
    } while (cursor != 0);
    for (int i = 0; i < 1000; i++)
        assert_true(seen[i] >= 1);
    assert_int_equal(mdx_coll_records(c), 1000 + added - removed);
    free(seen);
    state_check(st);
}

/* ---- stats ---- */

static void test_stats_counters(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    assert_int_equal(mdx_index_create(c, "by_v", "v", MDX_INDEX_SKIPLIST, 0), 0);
    static const uint8_t badkey[] = {0xc0};
    mb_t b;
    mb_reset(&b);
    mb_map(&b, 1);
    mb_kv_int(&b, "v", 1);
    for (int i = 0; i < 10; i++)
        put_ok(c, ik(i), &b, 0);
    assert_int_equal(mdx_put(c, badkey, 1, b.d, b.n, NULL), MDX_EBADKEY);
    mdx_rec_view_t v;
    for (int i = 0; i < 4; i++)
        assert_int_equal(mdx_get(c, K(ik(i)), &v), 0);
    assert_int_equal(mdx_get(c, K(ik(100)), &v), MDX_ENOTFOUND);
    assert_int_equal(mdx_get(c, K(ik(101)), &v), MDX_ENOTFOUND);
    assert_int_equal(mdx_get(c, badkey, 1, &v), MDX_EBADKEY);
    assert_int_equal(mdx_del(c, K(ik(8))), 0);
    assert_int_equal(mdx_del(c, K(ik(9))), 0);
    assert_int_equal(mdx_del(c, K(ik(9))), MDX_ENOTFOUND);
    assert_int_equal(mdx_update(c, K(ik(1)), b.d, b.n, NULL, 0), 0);
    assert_int_equal(mdx_update(c, K(ik(9)), b.d, b.n, NULL, 0), MDX_ENOTFOUND);
    range_t r;
    mdx_find_result_t res;
    range(&r, MDX_BOUND_OPEN, 0, MDX_BOUND_OPEN, 0);
    r.q.index = "by_v";
    assert_int_equal(mdx_find(c, &r.q, NULL, NULL, &res), 0);
    assert_int_equal(mdx_find(c, &r.q, NULL, NULL, &res), 0);
    r.q.index = "nope";
    assert_int_equal(mdx_find(c, &r.q, NULL, NULL, &res), MDX_ENOINDEX);
    r.q.index = "by_v";
    uint64_t n, next;
    assert_int_equal(mdx_count(c, &r.q, &n), 0);
    assert_int_equal(n, 8);
    assert_int_equal(mdx_scan(c, 0, 100, NULL, NULL, &next), 0);

    mdx_coll_stats_t cs;
    mdx_coll_stats(c, &cs);
    assert_int_equal(cs.records, 8);
    assert_int_equal(cs.ops.puts, 11);
    assert_int_equal(cs.ops.gets, 7);
    assert_int_equal(cs.ops.hits, 4);
    assert_int_equal(cs.ops.misses, 2); /* a miss is not an error; a bad key is */
    assert_int_equal(cs.ops.deletes, 3);
    assert_int_equal(cs.ops.updates, 2);
    assert_int_equal(cs.ops.finds, 3);
    assert_int_equal(cs.ops.counts, 1);
    assert_int_equal(cs.ops.scans, 1);
    assert_int_equal(cs.ops.expired, 0);
    assert_int_equal(cs.ops.errors, 5);

    /* Store totals include other collections and survive a drop. */
    mdx_coll_t *d = coll("d");
    put_ok(d, ik(1), &b, 0);
    mdx_store_stats_t ss;
    mdx_store_stats(st, &ss);
    assert_int_equal(ss.collections, 2);
    assert_int_equal(ss.records, 9);
    assert_int_equal(ss.ops.puts, 12);
    assert_int_equal(ss.ops.errors, 5);
    assert_int_equal(ss.allocated, mdx_alloc_used());
#if MDX_USE_JEMALLOC
    /* jemalloc's process-wide count includes cmocka's and libc's allocations. */
    assert_true(ss.allocator_bytes >= mdx_alloc_used());
#else
    assert_int_equal(ss.allocator_bytes, mdx_alloc_used()); /* libc: the wrapper's own count */
#endif
    assert_int_equal(mdx_coll_drop(st, "c"), 0);
    mdx_store_stats(st, &ss);
    assert_int_equal(ss.collections, 1);
    assert_int_equal(ss.records, 1);
    assert_int_equal(ss.ops.puts, 12);
    assert_int_equal(ss.ops.gets, 7);
    assert_int_equal(ss.ops.errors, 5);
    state_check(st);
}

static void test_stats_memory_returns_to_baseline(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    assert_int_equal(mdx_index_create(c, "by_v", "v", MDX_INDEX_SKIPLIST, 0), 0);
    assert_int_equal(mdx_index_create(c, "by_h", "h", MDX_INDEX_HASH, 0), 0);
    mdx_coll_stats_t cs;
    mdx_coll_stats(c, &cs);
    const size_t base = cs.memory;
    assert_true(base > sizeof(mdx_coll_t));
    assert_int_equal(state_coll_arrays(c), 0);

    mb_t b, set;
    for (int i = 0; i < 300; i++) {
        mb_reset(&b);
        mb_map(&b, 3);
        mb_kv_int(&b, "v", i);
        mb_kv_int(&b, "h", i % 7);
        mb_kv_str(&b, "pad", "0123456789012345678901234567890123456789");
        put_ok(c, ik(i), &b, 0);
    }
    mdx_coll_stats(c, &cs);
    assert_true(cs.memory > base + 300 * (sizeof(mdx_rec_t) + b.n));
    assert_int_equal(cs.records, 300);
    state_check(st);
    /* Updates and replaces do not leave anything behind. */
    mb_reset(&set);
    mb_map(&set, 1);
    mb_kv_int(&set, "h", 3);
    for (int i = 0; i < 300; i++)
        assert_int_equal(mdx_update(c, K(ik(i)), set.d, set.n, NULL, 0), 0);
    state_check(st);
    for (int i = 0; i < 300; i++)
        assert_int_equal(mdx_del(c, K(ik(i))), 0);
    mdx_coll_stats(c, &cs);
    assert_int_equal(cs.records, 0);
    /* Everything but the tables' minimal bucket arrays is back to the baseline. */
    size_t arrays = state_coll_arrays(c);
    assert_int_equal(cs.memory, base + arrays);
    assert_true(arrays <= 2 * mdx_alloc_size(c->primary.table[0]));
    assert_int_equal(c->primary.size[0], 4);
    state_check(st);
}

/* Lookups take steps of an incremental resize and may free the old bucket array: the
 * collection's memory must follow. */
static void test_stats_memory_follows_reads(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("c");
    assert_int_equal(mdx_index_create(c, "by_h", "h", MDX_INDEX_HASH, 0), 0);
    mb_t b;
    for (int i = 0; i < 25; i++) { /* the 25th insert starts growing 32 -> 64 buckets */
        mb_reset(&b);
        mb_map(&b, 1);
        mb_kv_int(&b, "h", i);
        put_ok(c, ik(i), &b, 0);
    }
    assert_non_null(c->primary.table[1]);
    assert_non_null(c->indexes[0]->groups.table[1]);
    mdx_rec_view_t v;
    for (int i = 0; i < 25; i++)
        assert_int_equal(mdx_get(c, K(ik(i)), &v), 0);
    assert_null(c->primary.table[1]);
    state_check(st);
    mb_t e;
    mdx_query_t q = {.index = "by_h", .limit = 10};
    for (int i = 0; i < 25; i++) {
        q.eq = ival(&e, i)->d;
        q.eq_len = e.n;
        assert_int_equal(count_ok(c, &q), 1);
    }
    assert_null(c->indexes[0]->groups.table[1]);
    state_check(st);
}

/* ---- error messages ---- */

static void expect_msg(const char *a, const char *b, const char *c)
{
    const char *m = mdx_store_errmsg(st);
    if ((a && !strstr(m, a)) || (b && !strstr(m, b)) || (c && !strstr(m, c)))
        print_error("message \"%s\" should name '%s', '%s', '%s'\n", m, a ? a : "", b ? b : "",
                    c ? c : "");
    assert_true(!a || strstr(m, a));
    assert_true(!b || strstr(m, b));
    assert_true(!c || strstr(m, c));
}

static void test_error_messages_name_the_culprit(void **state)
{
    (void)state;
    mdx_coll_t *c = coll("accounts");
    assert_int_equal(mdx_index_create(c, "by_mail", "email", MDX_INDEX_HASH, 1), 0);
    assert_int_equal(mdx_index_create(c, "by_age", "age", MDX_INDEX_SKIPLIST, 0), 0);
    mb_t b;
    mb_reset(&b);
    mb_map(&b, 2);
    mb_kv_str(&b, "email", "a@x");
    mb_kv_str(&b, "city", "rome");
    put_ok(c, ik(1), &b, 0);
    mb_t dupc;
    mb_reset(&dupc);
    mb_map(&dupc, 1);
    mb_kv_str(&dupc, "city", "rome");
    put_ok(c, ik(2), &dupc, 0);

    assert_int_equal(mdx_put(c, K(ik(3)), b.d, b.n, NULL), MDX_EUNIQUE);
    expect_msg("accounts", "by_mail", "email");

    mb_reset(&b);
    mb_map(&b, 1);
    mb_str(&b, "age");
    mb_arr(&b, 0);
    assert_int_equal(mdx_put(c, K(ik(3)), b.d, b.n, NULL), MDX_EBADFIELD);
    expect_msg("accounts", "by_age", "'age'");
    mb_reset(&b);
    mb_map(&b, 1);
    mb_str(&b, "age");
    mb_dbl(&b, NAN);
    assert_int_equal(mdx_put(c, K(ik(3)), b.d, b.n, NULL), MDX_ENAN);
    expect_msg("accounts", "by_age", "NaN");

    static const uint8_t notmap[] = {0x90};
    assert_int_equal(mdx_put(c, K(ik(3)), notmap, 1, NULL), MDX_EBADBODY);
    expect_msg("accounts", NULL, NULL);
    static const uint8_t nilkey[] = {0xc0};
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(c, nilkey, 1, &v), MDX_EBADKEY);
    expect_msg("accounts", NULL, NULL);
    assert_int_equal(mdx_del(c, K(ik(77))), MDX_ENOTFOUND);
    expect_msg("accounts", NULL, NULL);
    assert_int_equal(mdx_update(c, K(ik(77)), dupc.d, dupc.n, NULL, 0), MDX_ENOTFOUND);
    expect_msg("accounts", NULL, NULL);

    mdx_query_t q = {.index = "no_such", .limit = 10, .lo_kind = MDX_BOUND_OPEN};
    mdx_find_result_t res;
    assert_int_equal(mdx_find(c, &q, NULL, NULL, &res), MDX_ENOINDEX);
    expect_msg("no_such", "accounts", NULL);
    q.index = "by_mail";
    assert_int_equal(mdx_find(c, &q, NULL, NULL, &res), MDX_ENOTRANGE);
    expect_msg("by_mail", NULL, NULL);
    q.index = "by_age";
    q.limit = 0;
    assert_int_equal(mdx_find(c, &q, NULL, NULL, &res), MDX_EBADLIMIT);
    expect_msg("1000", NULL, NULL);
    mdx_coll_t *x;
    assert_int_equal(mdx_coll_find(st, "ghosts", 6, &x), MDX_ENOCOLL);
    expect_msg("ghosts", NULL, NULL);
    assert_int_equal(mdx_coll_create(st, "bad name", NULL), MDX_EBADNAME);
    expect_msg("bad name", NULL, NULL);
    assert_int_equal(mdx_index_create(c, "by city", "city", MDX_INDEX_HASH, 0), MDX_EBADNAME);
    expect_msg("by city", "accounts", NULL);
    assert_int_equal(mdx_index_create(c, "by_city", "city", MDX_INDEX_HASH, 1), MDX_EUNIQUE);
    expect_msg("by_city", "accounts", "'city'");
    assert_int_equal(mdx_index_drop(c, "by_city"), MDX_ENOINDEX);
    expect_msg("by_city", "accounts", NULL);
    char big[MDX_DEFAULT_MAX_KEY + 1];
    memset(big, 'k', sizeof(big));
    mb_t k;
    mb_reset(&k);
    mb_strn(&k, big, sizeof(big));
    assert_int_equal(mdx_get(c, k.d, k.n, &v), MDX_ETOOBIG);
    expect_msg("accounts", "1024", NULL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_collections_create_find_drop),
        T(test_collection_limit),
        T(test_index_create_list_drop),
        T(test_index_limit),
        T(test_index_built_on_records_matches_index_kept_by_writes),
        T(test_index_create_on_records_refuses_bad_data_and_changes_nothing),
        T(test_put_modes),
        T(test_keys_are_canonical),
        T(test_delete),
        T(test_update_set_and_unset),
        T(test_update_rewrites_map_header),
        T(test_ttl_set_get_clear),
        T(test_expired_records_are_invisible),
        T(test_writes_meet_expired_records),
        T(test_expire_step_is_bounded),
        T(test_find_range_bounds),
        T(test_find_cursor_walks_ranges_across_writes),
        T(test_find_cursor_walks_hash_group),
        T(test_find_cursor_view_passed_back),
        T(test_find_equality),
        T(test_find_callback_can_stop),
        T(test_order_across_types),
        T(test_scan_covers_every_record),
        T(test_stats_counters),
        T(test_stats_memory_returns_to_baseline),
        T(test_stats_memory_follows_reads),
        T(test_error_messages_name_the_culprit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
