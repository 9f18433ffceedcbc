/*
 * Out-of-memory sweeps (SQLite style): for N = 0, 1, 2, ... the N-th allocation of a call and
 * every one after it fail (mdx_alloc_fail_after), until the call succeeds. Every failing run
 * must return MDX_ENOMEM with a message, and leave the store as it was (state.h: records,
 * bytes, expiries, epochs, indexes checked against the records, the heap, and the memory
 * statistics against the allocator's count). The successful run must take full effect.
 *
 * Memory after a failure. Most calls (ttl_set, index creation, find's cursor, a replace whose
 * only fallible steps come first, a collection created while the collection array has room)
 * must leave exactly the bytes they found. A put or an update that grows an array before a
 * later step fails, and a collection creation that grows the collection array, keep the grown
 * *capacity*: the store does not give it back (the expiry heap's array, a hash-index group's
 * record array that went from one inline pointer to an array or doubled, a group table's new
 * bucket array, the collection array). That is no leak: the capacity belongs to the structure,
 * is reused by the next write and freed with it. So for those calls every block outside the
 * growable arrays must be exactly as before, and the arrays may not grow by more than the
 * successful call grows them (measured on a fresh copy of the fixture): capacity is reserved,
 * never accumulated. (Each ARRAYS case below does keep capacity at some failing allocation;
 * EXACT would fail there.)
 *
 * Needs a build with MDX_FAULT_INJECTION=1 (Debug); elsewhere the tests are skipped.
 */
#include "tests/unit/store/state.h"

static mdx_store_t *st;
static mdx_coll_t *coll;

static const char *const CITIES[4] = {"paris", "oslo", "lima", "rome"};

/* {"city": city, "age": age, "note": note} (fields left out when NULL / negative) */
static void body3(mb_t *m, const char *city, int64_t age, const char *note)
{
    mb_reset(m);
    mb_map(m, (uint32_t)((city != NULL) + (age >= 0) + (note != NULL)));
    if (city)
        mb_kv_str(m, "city", city);
    if (age >= 0)
        mb_kv_int(m, "age", age);
    if (note)
        mb_kv_str(m, "note", note);
}

/*
 * Collection "c": hash index "by_city" on "city" (non-unique), skiplist "by_age" on "age",
 * records 0..15 with city CITIES[i % 4] (four groups of four: their arrays are full) and age i,
 * each with a TTL (the expiry heap's 16 slots are full), and records 50, 51 without a TTL.
 */
static void build_main(void)
{
    mdx_store_opts_t o = {.clock = fake_clock, .max_limit = 100};
    assert_int_equal(mdx_store_new(&o, &st), 0);
    assert_int_equal(mdx_coll_create(st, "c", &coll), 0);
    assert_int_equal(mdx_index_create(coll, "by_city", "city", MDX_INDEX_HASH, 0), 0);
    assert_int_equal(mdx_index_create(coll, "by_age", "age", MDX_INDEX_SKIPLIST, 0), 0);
    mb_t b;
    for (int i = 0; i < 16; i++) {
        body3(&b, CITIES[i % 4], i, "n");
        mdx_put_opts_t po = {.mode = MDX_PUT_INSERT, .ttl_ms = 100000 + i, .keep_ttl = 0};
        assert_int_equal(mdx_put(coll, K(ik(i)), b.d, b.n, &po), 0);
    }
    for (int i = 50; i < 52; i++) {
        body3(&b, "oslo", i, NULL);
        assert_int_equal(mdx_put(coll, K(ik(i)), b.d, b.n, NULL), 0);
    }
    assert_int_equal(coll->heap_len, coll->heap_cap);
}

static void expect_record(tkey_t k, const mb_t *body, int64_t expires_at)
{
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(coll, k.d, k.n, &v), 0);
    assert_int_equal(v.body_len, body->n);
    assert_memory_equal(v.body, body->d, body->n);
    assert_int_equal(v.expires_at, expires_at);
}

/* Records with this city (hash index) and with this age (skiplist), counted by the store. */
static uint64_t count_city(const char *city)
{
    mb_t e;
    mb_str(mb_reset(&e), city);
    mdx_query_t q = {.index = "by_city", .limit = 10, .eq = e.d, .eq_len = e.n};
    uint64_t n = 0;
    assert_int_equal(mdx_count(coll, &q, &n), 0);
    return n;
}
static uint64_t count_age(int64_t age)
{
    mb_t e;
    mb_int(mb_reset(&e), age);
    mdx_query_t q = {.index = "by_age", .limit = 10, .eq = e.d, .eq_len = e.n};
    uint64_t n = 0;
    assert_int_equal(mdx_count(coll, &q, &n), 0);
    return n;
}

/* ---- the sweep ---- */

typedef struct {
    const char *what;
    void (*build)(void);
    int (*op)(void);
    void (*check)(void); /* after the successful run */
    state_mem_t mem;
} oom_case_t;

static void teardown_store(void)
{
    mdx_store_free(st);
    st = NULL;
    coll = NULL;
    assert_int_equal(mdx_alloc_used(), 0);
}

/* One run with the n-th allocation (and all after it) failing, on the store as it is.
 * Returns the call's result; a failure has been checked. growth: see the file comment. */
static int run_once(const oom_case_t *k, long n, size_t growth, const char *sweep)
{
    state_t before, after;
    if (getenv("MDX_OOM_TRACE"))
        print_message("%s (%s): allocation %ld\n", k->what, sweep, n);
    state_settle(st);
    state_take(st, &before);
    st->errmsg[0] = '\0';
    mdx_alloc_fail_after(n);
    int rc = k->op();
    int injected = mdx_alloc_fail_triggered();
    mdx_alloc_fail_reset();
    if (rc == 0) {
        state_free(&before);
        return 0;
    }
    char ctx[200];
    snprintf(ctx, sizeof(ctx), "%s (%s), allocation %ld failing", k->what, sweep, n);
    if (rc != MDX_ENOMEM)
        print_error("%s: %s (%s)\n", ctx, mdx_err_name(rc), mdx_store_errmsg(st));
    assert_int_equal(rc, MDX_ENOMEM);
    assert_true(injected);
    assert_non_null(strstr(mdx_store_errmsg(st), "out of memory"));
    /* Settling the tables does not change what is stored; it makes the bucket arrays
     * comparable (a failed call may have started a resize and left both arrays). */
    state_settle(st);
    state_take(st, &after);
    state_compare(&before, &after, k->mem, ctx);
    if (k->mem == STATE_MEM_ARRAYS && after.arrays > before.arrays + growth) {
        print_error("%s: arrays grew by %zu, the successful call grows them by %zu\n", ctx,
                    after.arrays - before.arrays, growth);
        fail();
    }
    state_free(&before);
    state_free(&after);
    return rc;
}

/*
 * Two sweeps. Fresh: every n starts from a newly built fixture, so each allocation of the
 * call's full sequence fails once. Retried: one fixture, the call retried with n + 1 after
 * each failure, as an application would; capacity kept by earlier failures is reused.
 * Returns the number of failing runs of the fresh sweep.
 */
static long run_case(const oom_case_t *k)
{
    /* Reference: the call on a fresh fixture, no injection. */
    state_t r0, r1;
    k->build();
    state_settle(st);
    state_take(st, &r0);
    int rc = k->op();
    if (rc)
        print_error("%s: %s (%s) without injection\n", k->what, mdx_err_name(rc),
                    mdx_store_errmsg(st));
    assert_int_equal(rc, 0);
    k->check();
    state_settle(st);
    state_take(st, &r1);
    const size_t growth = r1.arrays > r0.arrays ? r1.arrays - r0.arrays : 0;
    state_free(&r0);
    state_free(&r1);
    teardown_store();

    long fresh;
    for (fresh = 0; fresh < 500; fresh++) {
        k->build();
        rc = run_once(k, fresh, growth, "fresh");
        if (rc == 0) {
            k->check();
            state_check(st);
        }
        teardown_store();
        if (rc == 0)
            break;
    }
    assert_true(fresh < 500);
    assert_true(fresh >= 1); /* the call allocates, so at least one run failed */

    k->build();
    long retried;
    for (retried = 0; retried < 500; retried++)
        if (run_once(k, retried, growth, "retried") == 0)
            break;
    assert_true(retried >= 1 && retried <= fresh);
    k->check();
    state_check(st);
    teardown_store();
    return fresh;
}

static int injection_available(void)
{
    mdx_alloc_fail_after(0);
    void *p = mdx_malloc(8);
    mdx_alloc_fail_reset();
    mdx_free(p);
    return p == NULL;
}

#define RUN(...)                                                                                   \
    do {                                                                                           \
        if (!injection_available())                                                                \
            skip();                                                                                \
        const oom_case_t k_ = {__VA_ARGS__};                                                       \
        long failed_ = run_case(&k_);                                                              \
        print_message("%s: %ld failing runs\n", k_.what, failed_);                                 \
    } while (0)

/* ---- put ---- */

static mb_t put_body;
static int64_t put_exp;

/* A new key that joins a full group (its array doubles), with a TTL (the heap grows). */
static int op_put_new_join(void)
{
    body3(&put_body, "paris", 100, "new");
    mdx_put_opts_t po = {.mode = MDX_PUT_INSERT, .ttl_ms = 5000, .keep_ttl = 0};
    put_exp = fake_now + 5000;
    return mdx_put(coll, K(ik(100)), put_body.d, put_body.n, &po);
}
static void check_put_new_join(void)
{
    expect_record(ik(100), &put_body, put_exp);
    assert_int_equal(mdx_coll_records(coll), 19);
    assert_int_equal(count_city("paris"), 5);
    assert_int_equal(count_age(100), 1);
    assert_int_equal(coll->heap_len, 17);
}
static void test_oom_put_new_key_joining_a_group(void **state)
{
    (void)state;
    RUN("put new key into a full group, with ttl", build_main, op_put_new_join, check_put_new_join,
        STATE_MEM_ARRAYS);
}

/* A new key with a new city (a new group) and a new age, no TTL. */
static int op_put_new_values(void)
{
    body3(&put_body, "tokyo", 200, NULL);
    return mdx_put(coll, K(sk("new")), put_body.d, put_body.n, NULL);
}
static void check_put_new_values(void)
{
    expect_record(sk("new"), &put_body, 0);
    assert_int_equal(mdx_coll_records(coll), 19);
    assert_int_equal(count_city("tokyo"), 1);
    assert_int_equal(count_age(200), 1);
    assert_int_equal(coll->heap_len, 16);
}
static void test_oom_put_new_key_new_values(void **state)
{
    (void)state;
    RUN("put new key with new values", build_main, op_put_new_values, check_put_new_values,
        STATE_MEM_ARRAYS);
}

/* Replacing record 3 (rome, 3, ttl) with other values, keeping its TTL. */
static int op_put_replace_changed(void)
{
    body3(&put_body, "paris", 300, "replaced");
    mdx_put_opts_t po = {.mode = MDX_PUT_REPLACE, .ttl_ms = 0, .keep_ttl = 1};
    put_exp = fake_now + 100003;
    return mdx_put(coll, K(ik(3)), put_body.d, put_body.n, &po);
}
static void check_put_replace_changed(void)
{
    expect_record(ik(3), &put_body, put_exp);
    assert_int_equal(mdx_coll_records(coll), 18);
    assert_int_equal(count_city("rome"), 3);
    assert_int_equal(count_city("paris"), 5);
    assert_int_equal(count_age(3), 0);
    assert_int_equal(count_age(300), 1);
}
static void test_oom_put_replace_changed_values(void **state)
{
    (void)state;
    RUN("replace with changed values", build_main, op_put_replace_changed,
        check_put_replace_changed, STATE_MEM_ARRAYS);
}

/* Replacing record 50 (no TTL) with the same indexed values and a TTL: the entries are
 * repointed, the heap grows. */
static int op_put_replace_same(void)
{
    body3(&put_body, "oslo", 50, "same values, longer body");
    mdx_put_opts_t po = {.mode = MDX_PUT_UPSERT, .ttl_ms = 70, .keep_ttl = 0};
    put_exp = fake_now + 70;
    return mdx_put(coll, K(ik(50)), put_body.d, put_body.n, &po);
}
static void check_put_replace_same(void)
{
    expect_record(ik(50), &put_body, put_exp);
    assert_int_equal(mdx_coll_records(coll), 18);
    assert_int_equal(count_city("oslo"), 6);
    assert_int_equal(count_age(50), 1);
    assert_int_equal(coll->heap_len, 17);
}
static void test_oom_put_replace_same_values(void **state)
{
    (void)state;
    RUN("replace with the same indexed values, adding a ttl", build_main, op_put_replace_same,
        check_put_replace_same, STATE_MEM_EXACT);
}

/* Replacing record 5 (with TTL) without a TTL and without the indexed fields. */
static int op_put_replace_drop(void)
{
    body3(&put_body, NULL, -1, "bare");
    mdx_put_opts_t po = {.mode = MDX_PUT_REPLACE, .ttl_ms = 0, .keep_ttl = 0};
    return mdx_put(coll, K(ik(5)), put_body.d, put_body.n, &po);
}
static void check_put_replace_drop(void)
{
    expect_record(ik(5), &put_body, 0);
    assert_int_equal(count_city("oslo"), 5);
    assert_int_equal(count_age(5), 0);
    assert_int_equal(coll->heap_len, 15);
}
static void test_oom_put_replace_dropping_fields_and_ttl(void **state)
{
    (void)state;
    RUN("replace dropping indexed fields and ttl", build_main, op_put_replace_drop,
        check_put_replace_drop, STATE_MEM_EXACT);
}

/* ---- tags ---- */

static void tags3(mb_t *m, const char *a, const char *b, const char *c)
{
    mb_reset(m);
    mb_arr(m, (uint32_t)((a != NULL) + (b != NULL) + (c != NULL)));
    if (a)
        mb_str(m, a);
    if (b)
        mb_str(m, b);
    if (c)
        mb_str(m, c);
}

/* build_main, and records 0..3 tagged "old". */
static void build_tagged(void)
{
    build_main();
    mb_t b, t;
    tags3(&t, "old", NULL, NULL);
    for (int i = 0; i < 4; i++) {
        body3(&b, CITIES[i % 4], i, "n");
        mdx_put_opts_t po = {.keep_ttl = 1, .tags = t.d, .tags_len = t.n};
        assert_int_equal(mdx_put(coll, K(ik(i)), b.d, b.n, &po), 0);
    }
}

typedef struct {
    char names[4][16];
    int n;
} tag_list_t;

static void collect_tag(void *data, const char *tag, size_t len)
{
    tag_list_t *l = data;
    assert_true(l->n < 4 && len < 16);
    memcpy(l->names[l->n], tag, len);
    l->names[l->n++][len] = '\0';
}

static void expect_tags(tkey_t k, const char *a, const char *b, const char *c)
{
    tag_list_t l = {.n = 0};
    assert_int_equal(mdx_tags_get(coll, k.d, k.n, collect_tag, &l), 0);
    const char *want[3] = {a, b, c};
    int n = 0;
    for (int i = 0; i < 3; i++)
        if (want[i])
            assert_string_equal(l.names[n++], want[i]);
    assert_int_equal(l.n, n);
}

/* A new key with an existing tag and two new ones. */
static int op_put_tags_new(void)
{
    mb_t t;
    body3(&put_body, "lima", 101, NULL);
    tags3(&t, "old", "new1", "new2");
    mdx_put_opts_t po = {.tags = t.d, .tags_len = t.n};
    return mdx_put(coll, K(ik(101)), put_body.d, put_body.n, &po);
}
static void check_put_tags_new(void)
{
    expect_record(ik(101), &put_body, 0);
    expect_tags(ik(101), "old", "new1", "new2");
    assert_int_equal(mdx_coll_records(coll), 19);
}
static void test_oom_put_with_new_tags(void **state)
{
    (void)state;
    RUN("put new key with an existing and two new tags", build_tagged, op_put_tags_new,
        check_put_tags_new, STATE_MEM_ARRAYS);
}

/* Replacing record 1 (tag "old") with other values and tag "fresh". */
static int op_put_tags_replace(void)
{
    mb_t t;
    body3(&put_body, "tokyo", 301, "replaced");
    tags3(&t, "fresh", NULL, NULL);
    mdx_put_opts_t po = {.mode = MDX_PUT_REPLACE, .tags = t.d, .tags_len = t.n};
    return mdx_put(coll, K(ik(1)), put_body.d, put_body.n, &po);
}
static void check_put_tags_replace(void)
{
    expect_record(ik(1), &put_body, 0);
    expect_tags(ik(1), "fresh", NULL, NULL);
    mb_t t;
    tags3(&t, "old", NULL, NULL);
    uint64_t removed;
    assert_int_equal(mdx_invalidate(coll, t.d, t.n, &removed), 0);
    assert_int_equal(removed, 3);
}
static void test_oom_put_replacing_tags(void **state)
{
    (void)state;
    RUN("replace changing the tags", build_tagged, op_put_tags_replace, check_put_tags_replace,
        STATE_MEM_ARRAYS);
}

/* ---- update ---- */

static mb_t upd_want;

/* Record 2 (lima, 2, "n", ttl): set city to paris (a full group) and age to 250, unset note. */
static int op_update(void)
{
    mb_t set, unset;
    mb_reset(&set);
    mb_map(&set, 2);
    mb_kv_str(&set, "city", "paris");
    mb_kv_int(&set, "age", 250);
    mb_reset(&unset);
    mb_arr(&unset, 1);
    mb_str(&unset, "note");
    put_exp = fake_now + 100002;
    return mdx_update(coll, K(ik(2)), set.d, set.n, unset.d, unset.n);
}
static void check_update(void)
{
    mb_reset(&upd_want);
    mb_map(&upd_want, 2);
    mb_kv_str(&upd_want, "city", "paris");
    mb_kv_int(&upd_want, "age", 250);
    expect_record(ik(2), &upd_want, put_exp);
    assert_int_equal(count_city("lima"), 3);
    assert_int_equal(count_city("paris"), 5);
    assert_int_equal(count_age(2), 0);
    assert_int_equal(count_age(250), 1);
}
static void test_oom_update(void **state)
{
    (void)state;
    RUN("update", build_main, op_update, check_update, STATE_MEM_ARRAYS);
}

/* ---- TTL ---- */

/* Record 50 has no TTL and the heap is full: its array must grow. */
static int op_ttl_set(void)
{
    put_exp = fake_now + 1234;
    return mdx_ttl_set(coll, K(ik(50)), 1234);
}
static void check_ttl_set(void)
{
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(coll, K(ik(50)), &v), 0);
    assert_int_equal(v.expires_at, put_exp);
    assert_int_equal(coll->heap_len, 17);
}
static void test_oom_ttl_set_growing_the_heap(void **state)
{
    (void)state;
    RUN("ttl_set growing the heap", build_main, op_ttl_set, check_ttl_set, STATE_MEM_EXACT);
}

/* A collection that never had a TTL: the heap's first allocation. */
static void build_plain(void)
{
    mdx_store_opts_t o = {.clock = fake_clock};
    assert_int_equal(mdx_store_new(&o, &st), 0);
    assert_int_equal(mdx_coll_create(st, "plain", &coll), 0);
    mb_t b;
    body3(&b, "oslo", 1, NULL);
    assert_int_equal(mdx_put(coll, K(ik(1)), b.d, b.n, NULL), 0);
}
static int op_ttl_set_first(void)
{
    put_exp = fake_now + 10;
    return mdx_ttl_set(coll, K(ik(1)), 10);
}
static void check_ttl_set_first(void)
{
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(coll, K(ik(1)), &v), 0);
    assert_int_equal(v.expires_at, put_exp);
    assert_int_equal(coll->heap_len, 1);
}
static void test_oom_ttl_set_first_expiry(void **state)
{
    (void)state;
    RUN("ttl_set, first expiry of the collection", build_plain, op_ttl_set_first,
        check_ttl_set_first, STATE_MEM_EXACT);
}

/* ---- index creation on a populated collection ---- */

static int op_index_hash(void)
{
    return mdx_index_create(coll, "age_h", "age", MDX_INDEX_HASH, 1);
}
static void check_index(const char *name, const char *field, mdx_index_kind_t kind, int unique,
                        uint64_t entries)
{
    assert_int_equal(mdx_index_count(coll), 3);
    mdx_index_info_t info;
    assert_int_equal(mdx_index_info(coll, 2, &info), 0);
    assert_string_equal(info.name, name);
    assert_string_equal(info.field, field);
    assert_int_equal(info.kind, kind);
    assert_int_equal(info.unique, unique);
    assert_int_equal(info.entries, entries);
    state_check(st); /* verifies the new index against the records */
}
static void check_index_hash(void)
{
    check_index("age_h", "age", MDX_INDEX_HASH, 1, 18);
}
static void test_oom_index_create_hash(void **state)
{
    (void)state;
    RUN("unique hash index on a populated collection", build_main, op_index_hash, check_index_hash,
        STATE_MEM_EXACT);
}

static int op_index_hash_groups(void)
{
    return mdx_index_create(coll, "city_h", "city", MDX_INDEX_HASH, 0);
}
static void check_index_hash_groups(void)
{
    check_index("city_h", "city", MDX_INDEX_HASH, 0, 18);
}
static void test_oom_index_create_hash_with_groups(void **state)
{
    (void)state;
    RUN("hash index with shared values", build_main, op_index_hash_groups, check_index_hash_groups,
        STATE_MEM_EXACT);
}

static int op_index_skiplist(void)
{
    return mdx_index_create(coll, "city_s", "city", MDX_INDEX_SKIPLIST, 0);
}
static void check_index_skiplist(void)
{
    check_index("city_s", "city", MDX_INDEX_SKIPLIST, 0, 18);
}
static void test_oom_index_create_skiplist(void **state)
{
    (void)state;
    RUN("skiplist index on a populated collection", build_main, op_index_skiplist,
        check_index_skiplist, STATE_MEM_EXACT);
}

static int op_index_skiplist_unique(void)
{
    return mdx_index_create(coll, "note_s", "note", MDX_INDEX_SKIPLIST, 0);
}
static void check_index_skiplist_sparse(void)
{
    check_index("note_s", "note", MDX_INDEX_SKIPLIST, 0, 16); /* 50 and 51 have no note */
}
static void test_oom_index_create_sparse_skiplist(void **state)
{
    (void)state;
    RUN("sparse skiplist index", build_main, op_index_skiplist_unique, check_index_skiplist_sparse,
        STATE_MEM_EXACT);
}

/* ---- collection creation ---- */

/* n collections already: 8 fill the collection array, 5 leave room. */
static void build_colls(int n)
{
    assert_int_equal(mdx_store_new(NULL, &st), 0);
    char name[16];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        assert_int_equal(mdx_coll_create(st, name, NULL), 0);
    }
    assert_int_equal(mdx_coll_count(st), (size_t)n);
}
static void build_colls_full(void)
{
    build_colls(8);
    assert_int_equal(st->colls_cap, 8);
}
static void build_colls_room(void)
{
    build_colls(5);
}
static int op_coll_create(void)
{
    return mdx_coll_create(st, "new.one", &coll);
}
static void check_coll_create(void)
{
    size_t n = mdx_coll_count(st);
    assert_ptr_equal(mdx_coll_at(st, n - 1), coll);
    assert_string_equal(mdx_coll_name(coll), "new.one");
    mdx_coll_t *f;
    assert_int_equal(mdx_coll_find(st, "new.one", 7, &f), 0);
    assert_ptr_equal(f, coll);
    assert_int_equal(mdx_coll_records(coll), 0);
    mb_t b;
    body3(&b, "x", 1, NULL);
    assert_int_equal(mdx_put(coll, K(ik(1)), b.d, b.n, NULL), 0); /* usable */
}
static void test_oom_coll_create_growing_the_array(void **state)
{
    (void)state;
    RUN("collection creation growing the collection array", build_colls_full, op_coll_create,
        check_coll_create, STATE_MEM_ARRAYS);
}
static void test_oom_coll_create_with_room(void **state)
{
    (void)state;
    RUN("collection creation with room in the array", build_colls_room, op_coll_create,
        check_coll_create, STATE_MEM_EXACT);
}

/* ---- find: building the cursor ---- */

typedef struct {
    int64_t keys[32];
    int n;
} keys_t;

static keys_t found;

static int found_cb(void *data, const mdx_rec_view_t *v)
{
    keys_t *k = data;
    mdx_value_t kv;
    assert_int_equal(mdx_value_decode(v->key, v->key_len, &kv), 0);
    assert_true(k->n < 32);
    k->keys[k->n++] = kv.v.i;
    return 0;
}

static mdx_find_result_t find_res;

/* ages 4..9, 5 per page: the first page needs a cursor, the store's first. */
static int op_find_range(void)
{
    mb_t lo;
    mb_int(mb_reset(&lo), 4);
    mdx_query_t q = {.index = "by_age", .limit = 5, .lo = lo.d, .lo_len = lo.n};
    q.lo_kind = MDX_BOUND_INCL;
    q.hi_kind = MDX_BOUND_EXCL;
    mb_t hi;
    mb_int(mb_reset(&hi), 10);
    q.hi = hi.d;
    q.hi_len = hi.n;
    found.n = 0;
    return mdx_find(coll, &q, found_cb, &found, &find_res);
}
static void check_find_range(void)
{
    assert_int_equal(found.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(found.keys[i], 4 + i);
    assert_int_equal(find_res.returned, 5);
    assert_int_equal(find_res.more, 1);
    static const uint8_t want[] = {0x92, 0x08, 0x08}; /* [age 8, key 8] */
    assert_int_equal(find_res.cursor_len, sizeof(want));
    assert_memory_equal(find_res.cursor, want, sizeof(want));
}
static void test_oom_find_first_cursor(void **state)
{
    (void)state;
    RUN("find building the store's first cursor", build_main, op_find_range, check_find_range,
        STATE_MEM_EXACT);
}

/* The cursor buffer exists (64 bytes) and must grow for a long string value. */
static char long_city[200];

static void build_long_values(void)
{
    build_main();
    memset(long_city, 'z', sizeof(long_city) - 1);
    mb_t b;
    for (int i = 60; i < 63; i++) {
        body3(&b, long_city, i, NULL);
        assert_int_equal(mdx_put(coll, K(ik(i)), b.d, b.n, NULL), 0);
    }
    assert_int_equal(op_find_range(), 0);
    assert_non_null(st->cursor.data);
}
static int op_find_long_cursor(void)
{
    mb_t e;
    mb_str(mb_reset(&e), long_city);
    mdx_query_t q = {.index = "by_city", .limit = 2, .eq = e.d, .eq_len = e.n};
    found.n = 0;
    return mdx_find(coll, &q, found_cb, &found, &find_res);
}
static void check_find_long_cursor(void)
{
    assert_int_equal(found.n, 2);
    assert_int_equal(found.keys[0], 60);
    assert_int_equal(found.keys[1], 61);
    assert_int_equal(find_res.more, 1);
    mb_t want;
    mb_reset(&want);
    mb_arr(&want, 2);
    mb_str(&want, long_city);
    mb_int(&want, 61);
    assert_int_equal(find_res.cursor_len, want.n);
    assert_memory_equal(find_res.cursor, want.d, want.n);
}
static void test_oom_find_growing_the_cursor(void **state)
{
    (void)state;
    RUN("find growing the cursor buffer", build_long_values, op_find_long_cursor,
        check_find_long_cursor, STATE_MEM_EXACT);
}

/* ---- the store itself ---- */

static void test_oom_store_new(void **state)
{
    (void)state;
    if (!injection_available())
        skip();
    mdx_store_t *s = (mdx_store_t *)1;
    mdx_alloc_fail_after(0);
    assert_int_equal(mdx_store_new(NULL, &s), MDX_ENOMEM);
    mdx_alloc_fail_reset();
    assert_ptr_equal(s, (mdx_store_t *)1);
    assert_int_equal(mdx_alloc_used(), 0);
}

/* ---- calls that free must not need memory ---- */

static void test_oom_delete_and_expire_need_no_memory(void **state)
{
    (void)state;
    if (!injection_available())
        skip();
    build_main();
    /* Grow the tables, so that deleting shrinks them (a shrink that cannot allocate keeps the
     * bigger array). */
    mb_t b;
    for (int i = 100; i < 400; i++) {
        body3(&b, CITIES[i % 4], i, NULL);
        assert_int_equal(mdx_put(coll, K(ik(i)), b.d, b.n, NULL), 0);
    }
    mdx_alloc_fail_after(0);
    for (int i = 100; i < 400; i++)
        assert_int_equal(mdx_del(coll, K(ik(i))), 0);
    mdx_alloc_fail_reset();
    assert_int_equal(mdx_coll_records(coll), 18);
    assert_int_equal(count_city("paris"), 4);
    state_check(st);

    fake_now += 100000 + 8; /* records 0..8 expire */
    mdx_alloc_fail_after(0);
    uint64_t freed = 0;
    assert_int_equal(mdx_store_expire(st, 0, 0, &freed), 0);
    mdx_alloc_fail_reset();
    assert_int_equal(freed, 9);
    assert_int_equal(mdx_coll_records(coll), 9);
    assert_int_equal(count_age(8), 0);
    assert_int_equal(count_age(9), 1);
    state_check(st);
    fake_now -= 100000 + 8;
    teardown_store();
}

/* A failed test leaves its store behind: free it so the next test starts from zero bytes. */
static int teardown(void **state)
{
    (void)state;
    mdx_alloc_fail_reset();
    if (st)
        teardown_store();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_oom_put_new_key_joining_a_group, teardown),
        cmocka_unit_test_teardown(test_oom_put_new_key_new_values, teardown),
        cmocka_unit_test_teardown(test_oom_put_replace_changed_values, teardown),
        cmocka_unit_test_teardown(test_oom_put_replace_same_values, teardown),
        cmocka_unit_test_teardown(test_oom_put_replace_dropping_fields_and_ttl, teardown),
        cmocka_unit_test_teardown(test_oom_put_with_new_tags, teardown),
        cmocka_unit_test_teardown(test_oom_put_replacing_tags, teardown),
        cmocka_unit_test_teardown(test_oom_update, teardown),
        cmocka_unit_test_teardown(test_oom_ttl_set_growing_the_heap, teardown),
        cmocka_unit_test_teardown(test_oom_ttl_set_first_expiry, teardown),
        cmocka_unit_test_teardown(test_oom_index_create_hash, teardown),
        cmocka_unit_test_teardown(test_oom_index_create_hash_with_groups, teardown),
        cmocka_unit_test_teardown(test_oom_index_create_skiplist, teardown),
        cmocka_unit_test_teardown(test_oom_index_create_sparse_skiplist, teardown),
        cmocka_unit_test_teardown(test_oom_coll_create_growing_the_array, teardown),
        cmocka_unit_test_teardown(test_oom_coll_create_with_room, teardown),
        cmocka_unit_test_teardown(test_oom_find_first_cursor, teardown),
        cmocka_unit_test_teardown(test_oom_find_growing_the_cursor, teardown),
        cmocka_unit_test_teardown(test_oom_store_new, teardown),
        cmocka_unit_test_teardown(test_oom_delete_and_expire_need_no_memory, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
