/*
 * Bad input to the engine: every case returns its documented error, sets an error message, and
 * leaves the store exactly as it was: the same records with the same bytes, expiries and
 * epochs, the same indexes with the same entries (each checked against the records), the same
 * epoch and exactly the same allocated bytes (see state.h).
 *
 * Fixture: collection "users" with a unique hash index on "email", a skiplist on "age", a
 * unique skiplist on "rank", 16 integer-keyed records (some with a TTL in the future, one
 * without an email, one holding an array in "tags" and one a NaN in "score", neither field
 * indexed) and one string-keyed record.
 */
#include <math.h>

#include "tests/unit/store/state.h"

#define NRECS 16

static mdx_store_t *st;
static mdx_coll_t *users;

static void user_body(mb_t *m, int i)
{
    mb_reset(m);
    int has_email = i != 7;
    int extra = (i == 3) + (i == 5);
    mb_map(m, (uint32_t)(4 + has_email + extra));
    if (has_email) {
        char e[32];
        snprintf(e, sizeof(e), "u%d@example.org", i);
        mb_kv_str(m, "email", e);
    }
    mb_kv_int(m, "age", 20 + i % 5);
    mb_kv_int(m, "rank", i * 10);
    mb_kv_str(m, "city", i % 2 ? "paris" : "oslo");
    mb_kv_str(m, "note", "unindexed");
    if (i == 3) {
        mb_str(m, "tags");
        mb_arr(m, 2);
        mb_str(m, "a");
        mb_str(m, "b");
    }
    if (i == 5) {
        mb_str(m, "score");
        mb_dbl(m, NAN);
    }
}

static int setup(void **state)
{
    (void)state;
    mdx_store_opts_t o = {.clock = fake_clock, .max_body = 2048, .max_limit = 100};
    assert_int_equal(mdx_store_new(&o, &st), 0);
    assert_int_equal(mdx_coll_create(st, "users", &users), 0);
    assert_int_equal(mdx_index_create(users, "by_email", "email", MDX_INDEX_HASH, 1), 0);
    assert_int_equal(mdx_index_create(users, "by_age", "age", MDX_INDEX_SKIPLIST, 0), 0);
    assert_int_equal(mdx_index_create(users, "by_rank", "rank", MDX_INDEX_SKIPLIST, 1), 0);
    mb_t b;
    for (int i = 0; i < NRECS; i++) {
        user_body(&b, i);
        mdx_put_opts_t po = {
            .mode = MDX_PUT_INSERT, .ttl_ms = i % 4 == 0 ? 60000 : 0, .keep_ttl = 0};
        assert_int_equal(mdx_put(users, K(ik(i)), b.d, b.n, &po), 0);
    }
    mb_reset(&b);
    mb_map(&b, 1);
    mb_kv_str(&b, "email", "s@example.org");
    assert_int_equal(mdx_put(users, K(sk("skey")), b.d, b.n, NULL), 0);
    state_settle(st);
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

/* Runs one bad call: it must return `expect`, leave a message, and change nothing. */
#define BAD(expect, call)                                                                          \
    do {                                                                                           \
        state_t b_, a_;                                                                            \
        state_take(st, &b_);                                                                       \
        st->errmsg[0] = '\0';                                                                      \
        int rc_ = (call);                                                                          \
        if (rc_ != (expect))                                                                       \
            print_error("%s: returned %s (%s), expected %s\n", #call, mdx_err_name(rc_),           \
                        mdx_store_errmsg(st), mdx_err_name(expect));                               \
        assert_int_equal(rc_, (expect));                                                           \
        assert_true(strlen(mdx_store_errmsg(st)) > 0);                                             \
        state_take(st, &a_);                                                                       \
        state_compare(&b_, &a_, STATE_MEM_EXACT, #call);                                           \
        state_free(&b_);                                                                           \
        state_free(&a_);                                                                           \
    } while (0)

static int put_raw(const void *body, size_t len)
{
    return mdx_put(users, K(ik(100)), body, len, NULL);
}

static void test_body_not_a_map_is_refused(void **state)
{
    (void)state;
    static const uint8_t array[] = {0x92, 0x01, 0x02};
    static const uint8_t integer[] = {0x07};
    static const uint8_t nil[] = {0xc0};
    static const uint8_t truncated[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'b'}; /* 2nd value missing */
    static const uint8_t short_str[] = {0x81, 0xa1, 'a', 0xa5, 'x'};       /* str runs past end */
    static const uint8_t trailing[] = {0x81, 0xa1, 'a', 0x01, 0xc0};       /* one map, then nil */
    static const uint8_t reserved[] = {0x81, 0xa1, 'a', 0xc1};             /* 0xc1 never valid */
    static const uint8_t empty_map_count[] = {0xde, 0xff, 0xff};           /* 65535 pairs, none */
    BAD(MDX_EBADBODY, put_raw(array, sizeof(array)));
    BAD(MDX_EBADBODY, put_raw(integer, sizeof(integer)));
    BAD(MDX_EBADBODY, put_raw(nil, sizeof(nil)));
    BAD(MDX_EBADBODY, put_raw(truncated, sizeof(truncated)));
    BAD(MDX_EBADBODY, put_raw(short_str, sizeof(short_str)));
    BAD(MDX_EBADBODY, put_raw(trailing, sizeof(trailing)));
    BAD(MDX_EBADBODY, put_raw(reserved, sizeof(reserved)));
    BAD(MDX_EBADBODY, put_raw(empty_map_count, sizeof(empty_map_count)));
    BAD(MDX_EBADBODY, put_raw(NULL, 0));
    BAD(MDX_EBADBODY, put_raw(array, 0));
    /* The same bodies replacing an existing record. */
    BAD(MDX_EBADBODY, mdx_put(users, K(ik(1)), array, sizeof(array), NULL));
    BAD(MDX_EBADBODY, mdx_put(users, K(ik(1)), trailing, sizeof(trailing), NULL));
}

static void test_body_with_non_string_field_names_is_refused(void **state)
{
    (void)state;
    static const uint8_t int_key[] = {0x81, 0x01, 0x02};
    static const uint8_t bin_key[] = {0x81, 0xc4, 0x01, 'a', 0x02};
    static const uint8_t nil_key[] = {0x81, 0xc0, 0x02};
    static const uint8_t second_bad[] = {0x82, 0xa1, 'a', 0x01, 0x92, 0x01, 0x02, 0x03};
    BAD(MDX_EBADBODY, put_raw(int_key, sizeof(int_key)));
    BAD(MDX_EBADBODY, put_raw(bin_key, sizeof(bin_key)));
    BAD(MDX_EBADBODY, put_raw(nil_key, sizeof(nil_key)));
    BAD(MDX_EBADBODY, put_raw(second_bad, sizeof(second_bad)));
}

/* A body whose "age" (indexed by the skiplist) or "email" (unique hash) holds `bad`. */
static void body_with(mb_t *m, const char *field, const uint8_t *bad, size_t bad_len)
{
    mb_reset(m);
    mb_map(m, 3);
    mb_kv_str(m, "email", "new@example.org");
    mb_kv_int(m, "rank", 5000);
    mb_str(m, field);
    mb_raw(m, bad, bad_len);
}

static void test_indexed_field_holding_array_map_ext_or_nan_is_refused(void **state)
{
    (void)state;
    static const uint8_t array[] = {0x91, 0x01};
    static const uint8_t map[] = {0x81, 0xa1, 'x', 0x01};
    static const uint8_t ext[] = {0xd4, 0x01, 0x00}; /* fixext1 */
    static const uint8_t nan64[] = {0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    static const uint8_t nan32[] = {0xca, 0x7f, 0xc0, 0, 0};
    mb_t b;
    body_with(&b, "age", array, sizeof(array));
    BAD(MDX_EBADFIELD, put_raw(b.d, b.n));
    BAD(MDX_EBADFIELD, mdx_put(users, K(ik(2)), b.d, b.n, NULL));
    body_with(&b, "age", map, sizeof(map));
    BAD(MDX_EBADFIELD, put_raw(b.d, b.n));
    body_with(&b, "age", ext, sizeof(ext));
    BAD(MDX_EBADFIELD, put_raw(b.d, b.n));
    body_with(&b, "age", nan64, sizeof(nan64));
    BAD(MDX_ENAN, put_raw(b.d, b.n));
    BAD(MDX_ENAN, mdx_put(users, K(ik(2)), b.d, b.n, NULL));
    body_with(&b, "age", nan32, sizeof(nan32));
    BAD(MDX_ENAN, put_raw(b.d, b.n));

    /* The unique hash index's field, holding a container. */
    mb_reset(&b);
    mb_map(&b, 1);
    mb_str(&b, "email");
    mb_raw(&b, array, sizeof(array));
    BAD(MDX_EBADFIELD, put_raw(b.d, b.n));

    /* The same through update's set. */
    body_with(&b, "age", array, sizeof(array));
    BAD(MDX_EBADFIELD, mdx_update(users, K(ik(2)), b.d, b.n, NULL, 0));
    body_with(&b, "age", nan64, sizeof(nan64));
    BAD(MDX_ENAN, mdx_update(users, K(ik(2)), b.d, b.n, NULL, 0));
}

static void test_unique_violation_changes_nothing(void **state)
{
    (void)state;
    mb_t b;
    /* New key, email of record 3. */
    mb_reset(&b);
    mb_map(&b, 2);
    mb_kv_str(&b, "email", "u3@example.org");
    mb_kv_int(&b, "age", 30);
    BAD(MDX_EUNIQUE, put_raw(b.d, b.n));
    /* Replacing record 4 with record 3's email (record 4 must keep its body and entries). */
    BAD(MDX_EUNIQUE, mdx_put(users, K(ik(4)), b.d, b.n, NULL));
    /* Unique skiplist: rank of record 2, email free. */
    mb_reset(&b);
    mb_map(&b, 2);
    mb_kv_str(&b, "email", "free@example.org");
    mb_kv_int(&b, "rank", 20);
    BAD(MDX_EUNIQUE, put_raw(b.d, b.n));
    /* 20.0 equals 20 in the order, so it collides too. */
    mb_reset(&b);
    mb_map(&b, 1);
    mb_str(&b, "rank");
    mb_dbl(&b, 20.0);
    BAD(MDX_EUNIQUE, mdx_put(users, K(ik(6)), b.d, b.n, NULL));

    /* Update: set record 6's email to record 3's, and its rank to record 2's. */
    mb_reset(&b);
    mb_map(&b, 1);
    mb_kv_str(&b, "email", "u3@example.org");
    BAD(MDX_EUNIQUE, mdx_update(users, K(ik(6)), b.d, b.n, NULL, 0));
    mb_reset(&b);
    mb_map(&b, 1);
    mb_kv_int(&b, "rank", 20);
    BAD(MDX_EUNIQUE, mdx_update(users, K(ik(6)), b.d, b.n, NULL, 0));
    /* The string-keyed record's email, put by record 7 (which has none). */
    mb_reset(&b);
    mb_map(&b, 1);
    mb_kv_str(&b, "email", "s@example.org");
    BAD(MDX_EUNIQUE, mdx_update(users, K(ik(7)), b.d, b.n, NULL, 0));
}

static void test_unknown_collection_and_index(void **state)
{
    (void)state;
    mdx_coll_t *c = NULL;
    BAD(MDX_ENOCOLL, mdx_coll_find(st, "nope", 4, &c));
    BAD(MDX_ENOCOLL, mdx_coll_find(st, "user", 4, &c)); /* a prefix of "users" */
    BAD(MDX_ENOCOLL, mdx_coll_find(st, "userss", 6, &c));
    BAD(MDX_ENOCOLL, mdx_coll_drop(st, "nope"));
    assert_null(c);

    mdx_query_t q = {.index = "nope", .limit = 10};
    mdx_find_result_t res;
    uint64_t n;
    mb_t v;
    mb_reset(&v);
    mb_int(&v, 1);
    q.eq = v.d;
    q.eq_len = v.n;
    BAD(MDX_ENOINDEX, mdx_find(users, &q, NULL, NULL, &res));
    BAD(MDX_ENOINDEX, mdx_count(users, &q, &n));
    q.index = NULL;
    BAD(MDX_ENOINDEX, mdx_find(users, &q, NULL, NULL, &res));
    q.index = "by_emai";
    BAD(MDX_ENOINDEX, mdx_find(users, &q, NULL, NULL, &res));
    BAD(MDX_ENOINDEX, mdx_index_drop(users, "nope"));
    BAD(MDX_ENOINDEX, mdx_index_drop(users, "by_ag"));

    mdx_index_info_t info;
    state_t b, a;
    state_take(st, &b);
    assert_int_equal(mdx_index_info(users, 3, &info), MDX_ENOINDEX);
    assert_int_equal(mdx_index_info(users, SIZE_MAX, &info), MDX_ENOINDEX);
    state_take(st, &a);
    state_compare(&b, &a, STATE_MEM_EXACT, "mdx_index_info out of range");
    state_free(&b);
    state_free(&a);
}

static void test_bad_queries(void **state)
{
    (void)state;
    mdx_find_result_t res;
    uint64_t n;
    mb_t lo, hi, eq, bad;
    mb_reset(&lo);
    mb_int(&lo, 20);
    mb_reset(&hi);
    mb_int(&hi, 22);
    mb_reset(&eq);
    mb_int(&eq, 21);

    /* Range on a hash index. */
    mdx_query_t q = {.index = "by_email", .limit = 10};
    q.lo = lo.d;
    q.lo_len = lo.n;
    q.lo_kind = MDX_BOUND_INCL;
    BAD(MDX_ENOTRANGE, mdx_find(users, &q, NULL, NULL, &res));
    BAD(MDX_ENOTRANGE, mdx_count(users, &q, &n));
    q.lo = NULL;
    q.lo_len = 0;
    q.lo_kind = MDX_BOUND_OPEN; /* fully open: still a range */
    BAD(MDX_ENOTRANGE, mdx_find(users, &q, NULL, NULL, &res));

    /* Limits. */
    mdx_query_t r = {.index = "by_age", .lo = lo.d, .lo_len = lo.n, .lo_kind = MDX_BOUND_INCL};
    r.limit = 0;
    BAD(MDX_EBADLIMIT, mdx_find(users, &r, NULL, NULL, &res));
    r.limit = 101;
    BAD(MDX_EBADLIMIT, mdx_find(users, &r, NULL, NULL, &res));
    r.limit = UINT32_MAX;
    BAD(MDX_EBADLIMIT, mdx_find(users, &r, NULL, NULL, &res));
    uint64_t next;
    BAD(MDX_EBADLIMIT, mdx_scan(users, 0, 0, NULL, NULL, &next));
    BAD(MDX_EBADLIMIT, mdx_scan(users, 0, 101, NULL, NULL, &next));

    /* Both eq and bounds. */
    r.limit = 10;
    r.eq = eq.d;
    r.eq_len = eq.n;
    BAD(MDX_EINVAL, mdx_find(users, &r, NULL, NULL, &res));
    BAD(MDX_EINVAL, mdx_count(users, &r, &n));
    r.lo = NULL;
    r.lo_len = 0;
    r.lo_kind = MDX_BOUND_OPEN;
    r.hi = hi.d;
    r.hi_len = hi.n;
    r.hi_kind = MDX_BOUND_EXCL;
    BAD(MDX_EINVAL, mdx_find(users, &r, NULL, NULL, &res));
    r.hi = NULL; /* a bound kind alone also counts as a bound */
    r.hi_len = 0;
    BAD(MDX_EINVAL, mdx_find(users, &r, NULL, NULL, &res));

    /* Bound values that are not one scalar, a bound kind without a value, a bad kind. */
    mdx_query_t s = {.index = "by_age", .limit = 10, .lo_kind = MDX_BOUND_INCL};
    mb_reset(&bad);
    mb_arr(&bad, 1);
    mb_int(&bad, 1);
    s.lo = bad.d;
    s.lo_len = bad.n;
    BAD(MDX_EINVAL, mdx_find(users, &s, NULL, NULL, &res));
    s.lo_len = 0;
    BAD(MDX_EINVAL, mdx_find(users, &s, NULL, NULL, &res));
    s.lo = NULL;
    BAD(MDX_EINVAL, mdx_find(users, &s, NULL, NULL, &res));
    s.lo = lo.d;
    s.lo_len = lo.n;
    s.hi_kind = (mdx_bound_t)3;
    BAD(MDX_EINVAL, mdx_find(users, &s, NULL, NULL, &res));
    static const uint8_t two_values[] = {0x01, 0x02};
    mdx_query_t t = {.index = "by_age", .limit = 10, .eq = two_values, .eq_len = 2};
    BAD(MDX_EINVAL, mdx_find(users, &t, NULL, NULL, &res));
    static const uint8_t nan64[] = {0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    t.eq = nan64;
    t.eq_len = sizeof(nan64);
    BAD(MDX_ENAN, mdx_find(users, &t, NULL, NULL, &res));
    BAD(MDX_ENAN, mdx_count(users, &t, &n));
    t.index = "by_email";
    BAD(MDX_ENAN, mdx_find(users, &t, NULL, NULL, &res));
}

static void test_garbage_cursor_is_refused(void **state)
{
    (void)state;
    static const uint8_t reserved[] = {0xc1};
    static const uint8_t one[] = {0x91, 0x15};
    static const uint8_t three[] = {0x93, 0x15, 0x01, 0x02};
    static const uint8_t nil_pk[] = {0x92, 0x15, 0xc0};
    static const uint8_t float_pk[] = {0x92, 0x15, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0};
    static const uint8_t bool_pk[] = {0x92, 0x15, 0xc3};
    static const uint8_t array_value[] = {0x92, 0x91, 0x15, 0x01};
    static const uint8_t nan_value[] = {0x92, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0, 0x01};
    static const uint8_t trailing[] = {0x92, 0x15, 0x01, 0x00};
    static const uint8_t truncated[] = {0x92, 0x15};
    static const uint8_t map[] = {0x81, 0xa1, 'a', 0x01};
    static const uint8_t scalar[] = {0x15};
    const struct {
        const uint8_t *p;
        size_t n;
    } cases[] = {
        {reserved, sizeof(reserved)},
        {one, sizeof(one)},
        {three, sizeof(three)},
        {nil_pk, sizeof(nil_pk)},
        {float_pk, sizeof(float_pk)},
        {bool_pk, sizeof(bool_pk)},
        {array_value, sizeof(array_value)},
        {nan_value, sizeof(nan_value)},
        {trailing, sizeof(trailing)},
        {truncated, sizeof(truncated)},
        {map, sizeof(map)},
        {scalar, sizeof(scalar)},
        {one, 0},
    };
    mb_t eq;
    mb_reset(&eq);
    mb_str(&eq, "u1@example.org");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mdx_find_result_t res;
        mdx_query_t q = {.index = "by_age", .limit = 5, .after = cases[i].p};
        q.after_len = cases[i].n;
        BAD(MDX_EBADCURSOR, mdx_find(users, &q, NULL, NULL, &res));
        mdx_query_t h = {.index = "by_email", .limit = 5, .eq = eq.d, .eq_len = eq.n};
        h.after = cases[i].p;
        h.after_len = cases[i].n;
        BAD(MDX_EBADCURSOR, mdx_find(users, &h, NULL, NULL, &res));
    }
}

static void test_bad_keys(void **state)
{
    (void)state;
    static const uint8_t nil[] = {0xc0};
    static const uint8_t array[] = {0x91, 0x01};
    static const uint8_t map[] = {0x80};
    static const uint8_t dbl[] = {0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0};
    static const uint8_t f32[] = {0xca, 0x3f, 0x80, 0, 0};
    static const uint8_t boolean[] = {0xc3};
    static const uint8_t ext[] = {0xd4, 0x01, 0x00};
    static const uint8_t trailing[] = {0x01, 0x02};
    static const uint8_t truncated[] = {0xa3, 'a', 'b'};
    static const uint8_t reserved[] = {0xc1};
    const struct {
        const uint8_t *p;
        size_t n;
    } cases[] = {
        {nil, sizeof(nil)},
        {array, sizeof(array)},
        {map, sizeof(map)},
        {dbl, sizeof(dbl)},
        {f32, sizeof(f32)},
        {boolean, sizeof(boolean)},
        {ext, sizeof(ext)},
        {trailing, sizeof(trailing)},
        {truncated, sizeof(truncated)},
        {reserved, sizeof(reserved)},
        {nil, 0},
        {NULL, 0},
    };
    mb_t b, set;
    user_body(&b, 50);
    mb_reset(&set);
    mb_map(&set, 1);
    mb_kv_str(&set, "note", "x");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const uint8_t *k = cases[i].p;
        size_t n = cases[i].n;
        mdx_rec_view_t v;
        int64_t rem;
        BAD(MDX_EBADKEY, mdx_put(users, k, n, b.d, b.n, NULL));
        BAD(MDX_EBADKEY, mdx_get(users, k, n, &v));
        BAD(MDX_EBADKEY, mdx_del(users, k, n));
        BAD(MDX_EBADKEY, mdx_update(users, k, n, set.d, set.n, NULL, 0));
        BAD(MDX_EBADKEY, mdx_ttl_set(users, k, n, 1000));
        BAD(MDX_EBADKEY, mdx_ttl_get(users, k, n, &rem));
        BAD(MDX_EBADKEY, mdx_ttl_clear(users, k, n));
    }
}

static void test_oversized_key(void **state)
{
    (void)state;
    static char big[MDX_DEFAULT_MAX_KEY + 1];
    memset(big, 'k', sizeof(big));
    mb_t k, b, set;
    user_body(&b, 50);
    mb_reset(&set);
    mb_map(&set, 1);
    mb_kv_str(&set, "note", "x");
    mdx_rec_view_t v;
    int64_t rem;
    for (int bin = 0; bin < 2; bin++) {
        mb_reset(&k);
        if (bin)
            mb_bin(&k, big, sizeof(big));
        else
            mb_strn(&k, big, sizeof(big));
        BAD(MDX_ETOOBIG, mdx_put(users, k.d, k.n, b.d, b.n, NULL));
        BAD(MDX_ETOOBIG, mdx_get(users, k.d, k.n, &v));
        BAD(MDX_ETOOBIG, mdx_del(users, k.d, k.n));
        BAD(MDX_ETOOBIG, mdx_update(users, k.d, k.n, set.d, set.n, NULL, 0));
        BAD(MDX_ETOOBIG, mdx_ttl_set(users, k.d, k.n, 1000));
        BAD(MDX_ETOOBIG, mdx_ttl_get(users, k.d, k.n, &rem));
    }
    /* The limit itself is accepted (and then simply absent). */
    mb_reset(&k);
    mb_strn(&k, big, MDX_DEFAULT_MAX_KEY);
    BAD(MDX_ENOTFOUND, mdx_get(users, k.d, k.n, &v));
}

static void test_bad_index_creation_creates_nothing(void **state)
{
    (void)state;
    /* Two records share each city: a unique index cannot hold them. */
    BAD(MDX_EUNIQUE, mdx_index_create(users, "by_city", "city", MDX_INDEX_HASH, 1));
    BAD(MDX_EUNIQUE, mdx_index_create(users, "by_city", "city", MDX_INDEX_SKIPLIST, 1));
    /* Ages repeat too (20 + i % 5). */
    BAD(MDX_EUNIQUE, mdx_index_create(users, "by_age2", "age", MDX_INDEX_SKIPLIST, 1));
    /* Record 3 holds an array in "tags", record 5 a NaN in "score". */
    BAD(MDX_EBADFIELD, mdx_index_create(users, "by_tags", "tags", MDX_INDEX_HASH, 0));
    BAD(MDX_EBADFIELD, mdx_index_create(users, "by_tags", "tags", MDX_INDEX_SKIPLIST, 0));
    BAD(MDX_ENAN, mdx_index_create(users, "by_score", "score", MDX_INDEX_HASH, 0));
    BAD(MDX_ENAN, mdx_index_create(users, "by_score", "score", MDX_INDEX_SKIPLIST, 1));
    /* Names, fields, kinds, duplicates. */
    BAD(MDX_EBADNAME, mdx_index_create(users, "", "city", MDX_INDEX_HASH, 0));
    BAD(MDX_EBADNAME, mdx_index_create(users, "by city", "city", MDX_INDEX_HASH, 0));
    BAD(MDX_EBADNAME, mdx_index_create(users, "by_city", "", MDX_INDEX_HASH, 0));
    char longname[MDX_NAME_MAX + 2], longfield[MDX_FIELD_MAX + 2];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    memset(longfield, 'f', sizeof(longfield) - 1);
    longfield[sizeof(longfield) - 1] = '\0';
    BAD(MDX_EBADNAME, mdx_index_create(users, longname, "city", MDX_INDEX_HASH, 0));
    BAD(MDX_EBADNAME, mdx_index_create(users, "by_city", longfield, MDX_INDEX_HASH, 0));
    BAD(MDX_EINVAL, mdx_index_create(users, "by_city", "city", (mdx_index_kind_t)2, 0));
    BAD(MDX_EINDEXEXISTS, mdx_index_create(users, "by_age", "city", MDX_INDEX_HASH, 0));
}

static void test_bad_update_arguments(void **state)
{
    (void)state;
    mb_t b;
    mb_reset(&b);
    mb_arr(&b, 2);
    mb_str(&b, "note");
    mb_str(&b, "x");
    BAD(MDX_EINVAL, mdx_update(users, K(ik(1)), b.d, b.n, NULL, 0)); /* set is an array */
    static const uint8_t int_key_map[] = {0x81, 0x01, 0x02};
    BAD(MDX_EINVAL, mdx_update(users, K(ik(1)), int_key_map, sizeof(int_key_map), NULL, 0));
    static const uint8_t map_trailing[] = {0x81, 0xa1, 'a', 0x01, 0x01};
    BAD(MDX_EINVAL, mdx_update(users, K(ik(1)), map_trailing, sizeof(map_trailing), NULL, 0));
    static const uint8_t scalar[] = {0x05};
    BAD(MDX_EINVAL, mdx_update(users, K(ik(1)), scalar, sizeof(scalar), NULL, 0));

    static const uint8_t unset_ints[] = {0x92, 0x01, 0x02};
    static const uint8_t unset_mixed[] = {0x92, 0xa1, 'a', 0x02};
    static const uint8_t unset_str[] = {0xa4, 'n', 'o', 't', 'e'};
    static const uint8_t unset_map[] = {0x81, 0xa1, 'a', 0x01};
    static const uint8_t unset_trailing[] = {0x91, 0xa1, 'a', 0xc0};
    static const uint8_t unset_truncated[] = {0x92, 0xa1, 'a'};
    static const uint8_t unset_nested[] = {0x91, 0x91, 0xa1, 'a'};
    const struct {
        const uint8_t *p;
        size_t n;
    } cases[] = {
        {unset_ints, sizeof(unset_ints)},         {unset_mixed, sizeof(unset_mixed)},
        {unset_str, sizeof(unset_str)},           {unset_map, sizeof(unset_map)},
        {unset_trailing, sizeof(unset_trailing)}, {unset_truncated, sizeof(unset_truncated)},
        {unset_nested, sizeof(unset_nested)},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        BAD(MDX_EINVAL, mdx_update(users, K(ik(1)), NULL, 0, cases[i].p, cases[i].n));

    /* Valid arguments, absent record. */
    mb_reset(&b);
    mb_map(&b, 1);
    mb_kv_str(&b, "note", "x");
    BAD(MDX_ENOTFOUND, mdx_update(users, K(ik(999)), b.d, b.n, NULL, 0));
}

static void test_bad_ttl_and_put_options(void **state)
{
    (void)state;
    mb_t b;
    user_body(&b, 50);
    mdx_put_opts_t neg = {.mode = MDX_PUT_UPSERT, .ttl_ms = -1, .keep_ttl = 0};
    BAD(MDX_EINVAL, mdx_put(users, K(ik(100)), b.d, b.n, &neg));
    BAD(MDX_EINVAL, mdx_put(users, K(ik(1)), b.d, b.n, &neg));
    mdx_put_opts_t mode = {.mode = (mdx_put_mode_t)3, .ttl_ms = 0, .keep_ttl = 0};
    BAD(MDX_EINVAL, mdx_put(users, K(ik(100)), b.d, b.n, &mode));
    BAD(MDX_EINVAL, mdx_ttl_set(users, K(ik(1)), -5));
    BAD(MDX_EINVAL, mdx_ttl_set(users, K(ik(1)), 0));
    BAD(MDX_EINVAL, mdx_ttl_set(users, K(ik(1)), INT64_MIN));
    /* now + ttl would overflow an int64: refused rather than wrapped into the past. */
    BAD(MDX_EINVAL, mdx_ttl_set(users, K(ik(1)), INT64_MAX));
    mdx_put_opts_t huge = {.mode = MDX_PUT_UPSERT, .ttl_ms = INT64_MAX, .keep_ttl = 0};
    BAD(MDX_EINVAL, mdx_put(users, K(ik(1)), b.d, b.n, &huge));

    /* Modes against the record's presence. */
    mdx_put_opts_t ins = {.mode = MDX_PUT_INSERT, .ttl_ms = 0, .keep_ttl = 0},
                   rep = {.mode = MDX_PUT_REPLACE, .ttl_ms = 0, .keep_ttl = 0};
    BAD(MDX_EEXISTS, mdx_put(users, K(ik(1)), b.d, b.n, &ins));
    BAD(MDX_ENOTFOUND, mdx_put(users, K(ik(100)), b.d, b.n, &rep));
    BAD(MDX_ENOTFOUND, mdx_ttl_set(users, K(ik(100)), 1000));
    BAD(MDX_ENOTFOUND, mdx_ttl_clear(users, K(ik(100))));
    BAD(MDX_ENOTFOUND, mdx_del(users, K(ik(100))));
    int64_t rem;
    BAD(MDX_ENOTFOUND, mdx_ttl_get(users, K(ik(100)), &rem));
}

static void test_body_over_max_body(void **state)
{
    (void)state;
    static char filler[2100];
    memset(filler, 'x', sizeof(filler));
    mb_t b;
    mb_reset(&b);
    mb_map(&b, 1);
    mb_str(&b, "note");
    mb_strn(&b, filler, 2048 - 9); /* 1 + 5 + 3 + 2039 = 2048 bytes: the limit, accepted below */
    assert_int_equal(b.n, 2048);
    mb_t over;
    mb_reset(&over);
    mb_map(&over, 1);
    mb_str(&over, "note");
    mb_strn(&over, filler, 2048 - 8);
    assert_int_equal(over.n, 2049);
    BAD(MDX_ETOOBIG, put_raw(over.d, over.n));
    BAD(MDX_ETOOBIG, mdx_put(users, K(ik(1)), over.d, over.n, NULL));
    /* An update whose result would pass the limit (record 1's other fields plus 2039 bytes). */
    BAD(MDX_ETOOBIG, mdx_update(users, K(ik(1)), b.d, b.n, NULL, 0));

    /* Exactly the limit is fine. */
    assert_int_equal(put_raw(b.d, b.n), 0);
    mdx_rec_view_t v;
    assert_int_equal(mdx_get(users, K(ik(100)), &v), 0);
    assert_int_equal(v.body_len, 2048);
    state_check(st);
}

static void test_bad_collection_names(void **state)
{
    (void)state;
    char longname[MDX_NAME_MAX + 2];
    memset(longname, 'c', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    BAD(MDX_EBADNAME, mdx_coll_create(st, "", NULL));
    BAD(MDX_EBADNAME, mdx_coll_create(st, "a b", NULL));
    BAD(MDX_EBADNAME, mdx_coll_create(st, "a/b", NULL));
    BAD(MDX_EBADNAME, mdx_coll_create(st, "caf\xc3\xa9", NULL));
    BAD(MDX_EBADNAME, mdx_coll_create(st, longname, NULL));
    BAD(MDX_ECOLLEXISTS, mdx_coll_create(st, "users", NULL));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_body_not_a_map_is_refused),
        T(test_body_with_non_string_field_names_is_refused),
        T(test_indexed_field_holding_array_map_ext_or_nan_is_refused),
        T(test_unique_violation_changes_nothing),
        T(test_unknown_collection_and_index),
        T(test_bad_queries),
        T(test_garbage_cursor_is_refused),
        T(test_bad_keys),
        T(test_oversized_key),
        T(test_bad_index_creation_creates_nothing),
        T(test_bad_update_arguments),
        T(test_bad_ttl_and_put_options),
        T(test_body_over_max_body),
        T(test_bad_collection_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
