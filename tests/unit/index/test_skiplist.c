/*
 * Tests for index/skiplist.c: order by (value, pk), find/delete, ranks and counts against brute
 * force, backward links, a long randomized run against a sorted-array model (seed printed;
 * MDX_SEED overrides it, MDX_MODEL_OPS the number of operations), bulk build against inserts
 * (same shape as inserts in sorted order, same behaviour as inserts in any order),
 * out-of-memory behaviour, and verify() itself catching corruption.
 *
 * Records are small structs holding an int64 primary key and their current index value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "index/skiplist.h"
#include "index/value.h"
#include "memdex/error.h"

typedef struct {
    int64_t key;
    mdx_value_t val;
    int in; /* currently in the list */
} rec_t;

static void rec_pk(const void *r, mdx_value_t *out)
{
    const rec_t *rec = r;
    memset(out, 0, sizeof *out);
    out->type = MDX_V_INT;
    out->v.i = rec->key;
}

static mdx_value_t vint(int64_t i)
{
    mdx_value_t v = {.type = MDX_V_INT, .v = {.i = i}};
    return v;
}
static mdx_value_t vuint(uint64_t u)
{
    mdx_value_t v = {.type = MDX_V_UINT, .v = {.u = u}};
    return v;
}
static mdx_value_t vdbl(double d)
{
    mdx_value_t v = {.type = MDX_V_DOUBLE, .v = {.d = d}};
    return v;
}
static mdx_value_t vstr(const char *s)
{
    mdx_value_t v = {.type = MDX_V_STR, .len = (uint32_t)strlen(s), .v = {.p = (const uint8_t *)s}};
    return v;
}
static mdx_value_t vbin(const char *s)
{
    mdx_value_t v = vstr(s);
    v.type = MDX_V_BIN;
    return v;
}
static mdx_value_t vtype(int type)
{
    mdx_value_t v = {.type = (uint8_t)type};
    return v;
}

static int64_t node_key(const mdx_slnode_t *n)
{
    return ((const rec_t *)n->rec)->key;
}

/* Asserts the list holds exactly keys[0..n) in order, forwards and backwards. */
static void assert_keys(const mdx_skiplist_t *sl, const int64_t *keys, size_t n)
{
    assert_int_equal(mdx_skiplist_verify(sl), 0);
    assert_int_equal(sl->length, n);
    size_t i = 0;
    for (mdx_slnode_t *x = mdx_skiplist_at(sl, 0); x; x = mdx_skiplist_next(x), i++) {
        assert_true(i < n);
        assert_int_equal(node_key(x), keys[i]);
    }
    assert_int_equal(i, n);
    for (mdx_slnode_t *x = sl->tail; x; x = mdx_skiplist_prev(x)) {
        assert_true(i > 0);
        assert_int_equal(node_key(x), keys[--i]);
    }
    assert_int_equal(i, 0);
}

static void test_empty_list_has_no_nodes(void **state)
{
    (void)state;
    mdx_skiplist_t sl;
    assert_int_equal(mdx_skiplist_init(&sl, rec_pk), 0);
    rec_t r = {1, vint(1), 0};
    mdx_value_t one = vint(1);
    assert_int_equal(sl.length, 0);
    assert_null(sl.tail);
    assert_int_equal(mdx_skiplist_verify(&sl), 0);
    assert_null(mdx_skiplist_at(&sl, 0));
    assert_null(mdx_skiplist_find(&sl, &one, &r));
    assert_int_equal(mdx_skiplist_delete(&sl, &one, &r), MDX_ENOTFOUND);
    assert_int_equal(mdx_skiplist_count_before(&sl, &one, NULL, 1), 0);
    assert_int_equal(mdx_skiplist_count_before(&sl, &one, &one, 0), 0);
    mdx_skiplist_fini(&sl);
    mdx_skiplist_fini(&sl); /* fini of a finished list is a no-op */
}

static void test_insert_find_delete(void **state)
{
    (void)state;
    mdx_skiplist_t sl;
    assert_int_equal(mdx_skiplist_init(&sl, rec_pk), 0);
    rec_t recs[5] = {{10, vint(30), 0},
                     {11, vint(10), 0},
                     {12, vint(20), 0},
                     {13, vint(50), 0},
                     {14, vint(40), 0}};
    for (int i = 0; i < 5; i++) {
        mdx_slnode_t *n = NULL;
        assert_int_equal(mdx_skiplist_insert(&sl, &recs[i].val, &recs[i], &n), 0);
        assert_non_null(n);
        assert_ptr_equal(n->rec, &recs[i]);
        assert_int_equal(mdx_value_cmp(&n->value, &recs[i].val), 0);
        assert_ptr_equal(mdx_skiplist_find(&sl, &recs[i].val, &recs[i]), n);
    }
    const int64_t order[] = {11, 12, 10, 14, 13};
    assert_keys(&sl, order, 5);

    /* out may be NULL */
    rec_t extra = {15, vint(5), 0};
    assert_int_equal(mdx_skiplist_insert(&sl, &extra.val, &extra, NULL), 0);
    const int64_t order2[] = {15, 11, 12, 10, 14, 13};
    assert_keys(&sl, order2, 6);

    /* delete the first, a middle and the last node */
    assert_int_equal(mdx_skiplist_delete(&sl, &extra.val, &extra), 0);
    assert_int_equal(mdx_skiplist_delete(&sl, &recs[0].val, &recs[0]), 0);
    assert_int_equal(mdx_skiplist_delete(&sl, &recs[3].val, &recs[3]), 0);
    const int64_t order3[] = {11, 12, 14};
    assert_keys(&sl, order3, 3);
    assert_null(mdx_skiplist_find(&sl, &recs[0].val, &recs[0]));
    assert_int_equal(mdx_skiplist_delete(&sl, &recs[0].val, &recs[0]), MDX_ENOTFOUND);
    assert_keys(&sl, order3, 3);

    for (int i = 0; i < 5; i++)
        mdx_skiplist_delete(&sl, &recs[i].val, &recs[i]);
    assert_keys(&sl, NULL, 0);
    assert_null(sl.tail);
    assert_int_equal(sl.level, 1);
    mdx_skiplist_fini(&sl);
}

static void test_delete_and_find_need_value_and_pk(void **state)
{
    (void)state;
    mdx_skiplist_t sl;
    assert_int_equal(mdx_skiplist_init(&sl, rec_pk), 0);
    rec_t a = {1, vint(5), 0}, b = {2, vint(5), 0}, absent = {3, vint(5), 0};
    assert_int_equal(mdx_skiplist_insert(&sl, &a.val, &a, NULL), 0);
    assert_int_equal(mdx_skiplist_insert(&sl, &b.val, &b, NULL), 0);

    mdx_value_t six = vint(6), five_str = vstr("5"), five_dbl = vdbl(5.0);
    assert_null(mdx_skiplist_find(&sl, &six, &a));
    assert_null(mdx_skiplist_find(&sl, &five_str, &a));
    assert_null(mdx_skiplist_find(&sl, &a.val, &absent));
    assert_int_equal(mdx_skiplist_delete(&sl, &six, &a), MDX_ENOTFOUND);
    assert_int_equal(mdx_skiplist_delete(&sl, &a.val, &absent), MDX_ENOTFOUND);
    const int64_t both[] = {1, 2};
    assert_keys(&sl, both, 2);

    /* 5.0 equals 5: the node is found and deleted through an equal value of another type. */
    mdx_slnode_t *n = mdx_skiplist_find(&sl, &five_dbl, &b);
    assert_non_null(n);
    assert_ptr_equal(n->rec, &b);
    assert_int_equal(mdx_skiplist_delete(&sl, &five_dbl, &b), 0);
    const int64_t one[] = {1};
    assert_keys(&sl, one, 1);
    mdx_skiplist_fini(&sl);
}

/* Values mixing every class, with ties on value broken by pk. */
static rec_t tie_recs[] = {
    {3, {.type = MDX_V_INT, .v = {.i = 5}}, 0},
    {1, {.type = MDX_V_INT, .v = {.i = 5}}, 0},
    {2, {.type = MDX_V_DOUBLE, .v = {.d = 5.0}}, 0},
    {9, {.type = MDX_V_INT, .v = {.i = 4}}, 0},
    {0, {.type = MDX_V_STR, .len = 1, .v = {.p = (const uint8_t *)"a"}}, 0},
    {7, {.type = MDX_V_NIL}, 0},
    {4, {.type = MDX_V_DOUBLE, .v = {.d = 4.5}}, 0},
    {8, {.type = MDX_V_UINT, .v = {.u = 9223372036854775808u}}, 0},
    {6, {.type = MDX_V_INT, .v = {.i = -1}}, 0},
    {5, {.type = MDX_V_TRUE}, 0},
};
#define NTIE (sizeof tie_recs / sizeof tie_recs[0])

static void build_tie_list(mdx_skiplist_t *sl)
{
    assert_int_equal(mdx_skiplist_init(sl, rec_pk), 0);
    for (size_t i = 0; i < NTIE; i++)
        assert_int_equal(mdx_skiplist_insert(sl, &tie_recs[i].val, &tie_recs[i], NULL), 0);
}

static void test_ties_on_value_order_by_pk(void **state)
{
    (void)state;
    mdx_skiplist_t sl;
    build_tie_list(&sl);
    const int64_t order[] = {7, 5, 6, 9, 4, 1, 2, 3, 8, 0};
    assert_keys(&sl, order, NTIE);
    assert_null(mdx_skiplist_prev(mdx_skiplist_at(&sl, 0)));
    assert_ptr_equal(sl.tail, mdx_skiplist_at(&sl, NTIE - 1));
    mdx_skiplist_fini(&sl);
}

static void test_count_before_each_bound_kind(void **state)
{
    (void)state;
    mdx_skiplist_t sl;
    build_tie_list(&sl);
    /* order: nil/7 true/5 -1/6 4/9 4.5/4 5/1 5.0/2 5/3 2^63/8 "a"/0 */
    mdx_value_t five = vint(5), pk0 = vint(0), pk2 = vint(2), pk3 = vint(3), pk100 = vint(100);
    mdx_value_t nil = vtype(MDX_V_NIL), fls = vtype(MDX_V_FALSE), mid = vdbl(4.75);
    mdx_value_t big = vuint(9223372036854775808u), zz = vstr("zz"), bin = vbin("");
    mdx_value_t neg = vdbl(-1e300), five_dbl = vdbl(5.0);
    static const struct {
        int which, pk, inclusive;
        size_t want;
    } cases[] = {
        {0, -1, 0, 5},  {0, -1, 1, 8},  {0, 2, 0, 6},   {0, 2, 1, 7},   {0, 0, 0, 5},
        {0, 0, 1, 5},   {0, 3, 1, 8},   {0, 3, 0, 7},   {0, 100, 0, 8}, {1, -1, 0, 0},
        {1, -1, 1, 1},  {1, 100, 0, 1}, {1, 0, 1, 0},   {2, -1, 0, 1},  {2, -1, 1, 1},
        {3, -1, 0, 5},  {3, -1, 1, 5},  {3, 2, 1, 5},   {4, -1, 1, 9},  {4, -1, 0, 8},
        {5, -1, 0, 10}, {5, -1, 1, 10}, {6, -1, 0, 10}, {7, -1, 1, 2},  {7, -1, 0, 2},
        {8, -1, 0, 5},  {8, -1, 1, 8},  {8, 2, 0, 6},
    };
    const mdx_value_t *vals[] = {&five, &nil, &fls, &mid, &big, &zz, &bin, &neg, &five_dbl};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const mdx_value_t *pk = cases[i].pk < 0    ? NULL
                                : cases[i].pk == 0 ? &pk0
                                : cases[i].pk == 2 ? &pk2
                                : cases[i].pk == 3 ? &pk3
                                                   : &pk100;
        size_t got = mdx_skiplist_count_before(&sl, vals[cases[i].which], pk, cases[i].inclusive);
        if (got != cases[i].want)
            fail_msg("case %zu: count_before = %zu, want %zu", i, got, cases[i].want);
    }
    mdx_skiplist_fini(&sl);
}

/* ---- randomized helpers ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* splitmix64: any seed, including 0, gives a good stream */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t seed_from_env(uint64_t fallback)
{
    const char *s = getenv("MDX_SEED");
    uint64_t seed = s && *s ? strtoull(s, NULL, 0) : fallback;
    print_message("seed=%llu (set MDX_SEED to reproduce)\n", (unsigned long long)seed);
    return seed;
}

static const char *const strs[] = {"", "a", "ab", "b", "ba", "c", "\xff"};

/* Small domains so that values tie often, across types. */
static mdx_value_t random_value(void)
{
    uint64_t r = rnd() % 100;
    if (r < 4)
        return vtype(MDX_V_NIL);
    if (r < 7)
        return vtype(MDX_V_FALSE);
    if (r < 10)
        return vtype(MDX_V_TRUE);
    if (r < 55)
        return vint((int64_t)(rnd() % 41) - 20);
    if (r < 68)
        return vdbl(((double)(rnd() % 81) - 40) / 2); /* halves: many equal ints */
    if (r < 75) {
        static const mdx_value_t big[] = {
            {.type = MDX_V_INT, .v = {.i = INT64_MIN}},
            {.type = MDX_V_INT, .v = {.i = INT64_MAX}},
            {.type = MDX_V_UINT, .v = {.u = 9223372036854775808u}},
            {.type = MDX_V_UINT, .v = {.u = UINT64_MAX}},
            {.type = MDX_V_DOUBLE, .v = {.d = 0x1p63}},
            {.type = MDX_V_DOUBLE, .v = {.d = -0x1p63}},
            {.type = MDX_V_DOUBLE, .v = {.d = 1e300}},
        };
        return big[rnd() % (sizeof big / sizeof big[0])];
    }
    if (r < 92)
        return vstr(strs[rnd() % (sizeof strs / sizeof strs[0])]);
    return vbin(strs[rnd() % (sizeof strs / sizeof strs[0])]);
}

/* Whether rec orders before the bound (value, pk) under count_before's rules. */
static int before_bound(const rec_t *r, const mdx_value_t *value, const mdx_value_t *pk,
                        int inclusive)
{
    int c = mdx_value_cmp(&r->val, value);
    if (c)
        return c < 0;
    if (!pk)
        return inclusive;
    mdx_value_t k;
    rec_pk(r, &k);
    c = mdx_value_cmp(&k, pk);
    return c < 0 || (inclusive && c == 0);
}

static void test_count_before_matches_brute_force(void **state)
{
    (void)state;
    rng_state = seed_from_env(1);
    enum { N = 1500, Q = 4000 };
    rec_t *recs = calloc(N, sizeof *recs);
    assert_non_null(recs);
    mdx_skiplist_t sl;
    assert_int_equal(mdx_skiplist_init(&sl, rec_pk), 0);
    for (int i = 0; i < N; i++) {
        recs[i].key = (int64_t)(rnd() % 100000) * N + i; /* unique, random order */
        recs[i].val = random_value();
        assert_int_equal(mdx_skiplist_insert(&sl, &recs[i].val, &recs[i], NULL), 0);
    }
    assert_int_equal(mdx_skiplist_verify(&sl), 0);
    for (int q = 0; q < Q; q++) {
        mdx_value_t value = random_value();
        mdx_value_t pkv = vint((int64_t)(rnd() % ((uint64_t)100000 * N)));
        /* Half the pk bounds hit an existing key exactly, so inclusive/exclusive differ. */
        if (rnd() % 2) {
            const rec_t *r = &recs[rnd() % N];
            pkv = vint(r->key);
            if (rnd() % 2)
                value = r->val;
        }
        const mdx_value_t *pk = rnd() % 3 == 0 ? NULL : &pkv;
        int inclusive = (int)(rnd() % 2);
        size_t want = 0;
        for (int i = 0; i < N; i++)
            want += (size_t)before_bound(&recs[i], &value, pk, inclusive);
        size_t got = mdx_skiplist_count_before(&sl, &value, pk, inclusive);
        if (got != want)
            fail_msg("query %d: count_before = %zu, brute force %zu", q, got, want);
    }
    mdx_skiplist_fini(&sl);
    free(recs);
}

/* mdx_skiplist_ranks gives the same ranks as two count_before calls, for bounds in either
 * order (an empty range included), open bounds, and returns the node at the lower rank. */
static void test_ranks_match_count_before(void **state)
{
    (void)state;
    rng_state = seed_from_env(7);
    enum { N = 1200, Q = 4000 };
    rec_t *recs = calloc(N, sizeof *recs);
    assert_non_null(recs);
    mdx_skiplist_t sl;
    assert_int_equal(mdx_skiplist_init(&sl, rec_pk), 0);
    for (int i = 0; i < N; i++) {
        recs[i].key = i;
        recs[i].val = random_value();
        assert_int_equal(mdx_skiplist_insert(&sl, &recs[i].val, &recs[i], NULL), 0);
    }
    for (int q = 0; q < Q; q++) {
        mdx_value_t lo = random_value(), hi = random_value();
        if (rnd() % 4 == 0)
            hi = lo;
        mdx_value_t lpk = vint((int64_t)(rnd() % N)), hpk = vint((int64_t)(rnd() % N));
        const mdx_value_t *lp = rnd() % 2 ? &lpk : NULL, *hp = rnd() % 2 ? &hpk : NULL;
        int li = (int)(rnd() % 2), hi_incl = (int)(rnd() % 2);
        int open_lo = rnd() % 5 == 0, open_hi = rnd() % 5 == 0;
        size_t a, b;
        mdx_slnode_t *first;
        mdx_skiplist_ranks(&sl, open_lo ? NULL : &lo, lp, li, open_hi ? NULL : &hi, hp, hi_incl, &a,
                           &b, &first);
        size_t wa = open_lo ? 0 : mdx_skiplist_count_before(&sl, &lo, lp, li);
        size_t wb = open_hi ? sl.length : mdx_skiplist_count_before(&sl, &hi, hp, hi_incl);
        if (a != wa || b != wb)
            fail_msg("query %d: ranks (%zu, %zu), expected (%zu, %zu)", q, a, b, wa, wb);
        assert_ptr_equal(first, mdx_skiplist_at(&sl, wa));
    }
    mdx_skiplist_fini(&sl);
    free(recs);
}

static void test_at_returns_node_of_each_rank(void **state)
{
    (void)state;
    rng_state = seed_from_env(2);
    enum { N = 3000 };
    rec_t *recs = calloc(N, sizeof *recs);
    assert_non_null(recs);
    mdx_skiplist_t sl;
    assert_int_equal(mdx_skiplist_init(&sl, rec_pk), 0);
    for (int i = 0; i < N; i++) {
        recs[i].key = i;
        recs[i].val = random_value();
        assert_int_equal(mdx_skiplist_insert(&sl, &recs[i].val, &recs[i], NULL), 0);
    }
    size_t r = 0;
    for (mdx_slnode_t *x = sl.header->level[0].forward; x; x = mdx_skiplist_next(x), r++) {
        assert_ptr_equal(mdx_skiplist_at(&sl, r), x);
        /* rank and count_before agree: r nodes order strictly before x */
        mdx_value_t pk;
        rec_pk(x->rec, &pk);
        assert_int_equal(mdx_skiplist_count_before(&sl, &x->value, &pk, 0), r);
        assert_int_equal(mdx_skiplist_count_before(&sl, &x->value, &pk, 1), r + 1);
    }
    assert_int_equal(r, N);
    assert_null(mdx_skiplist_at(&sl, N));
    assert_null(mdx_skiplist_at(&sl, SIZE_MAX));
    mdx_skiplist_fini(&sl);
    free(recs);
}

static void test_backward_links_walk_in_reverse(void **state)
{
    (void)state;
    enum { N = 500 };
    static rec_t recs[N];
    mdx_skiplist_t sl;
    assert_int_equal(mdx_skiplist_init(&sl, rec_pk), 0);
    /* values N-1 .. 0 inserted in that order: every insert goes to the front */
    for (int i = 0; i < N; i++) {
        recs[i].key = 1000 + i;
        recs[i].val = vint(N - 1 - i);
        assert_int_equal(mdx_skiplist_insert(&sl, &recs[i].val, &recs[i], NULL), 0);
    }
    int64_t want = 1000;
    size_t seen = 0;
    for (mdx_slnode_t *x = sl.tail; x; x = mdx_skiplist_prev(x), want++, seen++)
        assert_int_equal(node_key(x), want);
    assert_int_equal(seen, N);

    /* remove the first and the last: the new first's backward is NULL, tail moves back */
    assert_int_equal(mdx_skiplist_delete(&sl, &recs[N - 1].val, &recs[N - 1]), 0);
    assert_int_equal(mdx_skiplist_delete(&sl, &recs[0].val, &recs[0]), 0);
    mdx_slnode_t *first = mdx_skiplist_at(&sl, 0);
    assert_int_equal(node_key(first), 1000 + N - 2);
    assert_null(mdx_skiplist_prev(first));
    assert_int_equal(node_key(sl.tail), 1001);
    assert_int_equal(node_key(mdx_skiplist_prev(sl.tail)), 1002);
    assert_int_equal(mdx_skiplist_verify(&sl), 0);
    mdx_skiplist_fini(&sl);
}

/* ---- model test ---- */

typedef struct {
    rec_t **a;
    size_t n;
} model_t;

static int rec_cmp(const rec_t *x, const rec_t *y)
{
    int c = mdx_value_cmp(&x->val, &y->val);
    return c ? c : (x->key > y->key) - (x->key < y->key);
}

/* Number of model entries before the bound: entries are sorted, before_bound is monotone. */
static size_t model_count(const model_t *m, const mdx_value_t *value, const mdx_value_t *pk,
                          int inclusive)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (before_bound(m->a[mid], value, pk, inclusive))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void model_insert(model_t *m, rec_t *r)
{
    mdx_value_t pk;
    rec_pk(r, &pk);
    size_t pos = model_count(m, &r->val, &pk, 0);
    memmove(m->a + pos + 1, m->a + pos, (m->n - pos) * sizeof *m->a);
    m->a[pos] = r;
    m->n++;
}

static void model_delete(model_t *m, rec_t *r)
{
    mdx_value_t pk;
    rec_pk(r, &pk);
    size_t pos = model_count(m, &r->val, &pk, 0);
    assert_true(pos < m->n);
    assert_ptr_equal(m->a[pos], r);
    memmove(m->a + pos, m->a + pos + 1, (m->n - pos - 1) * sizeof *m->a);
    m->n--;
}

static void assert_matches_model(const mdx_skiplist_t *sl, const model_t *m)
{
    assert_int_equal(mdx_skiplist_verify(sl), 0);
    assert_int_equal(sl->length, m->n);
    size_t i = 0;
    for (mdx_slnode_t *x = sl->header->level[0].forward; x; x = mdx_skiplist_next(x), i++) {
        assert_ptr_equal(x->rec, m->a[i]);
        assert_int_equal(mdx_value_cmp(&x->value, &m->a[i]->val), 0);
    }
    for (size_t k = 1; k < m->n; k++)
        assert_true(rec_cmp(m->a[k - 1], m->a[k]) < 0);
}

static void test_random_ops_match_sorted_model(void **state)
{
    (void)state;
    rng_state = seed_from_env(20240601);
    const char *ops_env = getenv("MDX_MODEL_OPS");
    long nops = ops_env && *ops_env ? strtol(ops_env, NULL, 10) : 100000;
    enum { K = 4096 };
    rec_t *recs = calloc(K, sizeof *recs);
    model_t m = {calloc(K, sizeof(rec_t *)), 0};
    assert_non_null(recs);
    assert_non_null(m.a);
    for (int i = 0; i < K; i++)
        recs[i].key = (int64_t)(rnd() % 1000000) * K + i; /* unique, unordered */

    mdx_skiplist_t sl;
    assert_int_equal(mdx_skiplist_init(&sl, rec_pk), 0);
    long counts[6] = {0};
    for (long op = 0; op < nops; op++) {
        rec_t *r = &recs[rnd() % K];
        uint64_t kind = rnd() % 100;
        if (kind < 40) { /* toggle membership */
            counts[0]++;
            if (r->in) {
                assert_int_equal(mdx_skiplist_delete(&sl, &r->val, r), 0);
                model_delete(&m, r);
                r->in = 0;
            } else {
                r->val = random_value();
                mdx_slnode_t *n = NULL;
                assert_int_equal(mdx_skiplist_insert(&sl, &r->val, r, &n), 0);
                assert_ptr_equal(n->rec, r);
                model_insert(&m, r);
                r->in = 1;
            }
        } else if (kind < 50) { /* change the value of a present record */
            counts[1]++;
            if (!r->in)
                continue;
            assert_int_equal(mdx_skiplist_delete(&sl, &r->val, r), 0);
            model_delete(&m, r);
            r->val = random_value();
            assert_int_equal(mdx_skiplist_insert(&sl, &r->val, r, NULL), 0);
            model_insert(&m, r);
        } else if (kind < 58) { /* delete of something absent */
            counts[2]++;
            mdx_value_t v = random_value();
            if (r->in && mdx_value_cmp(&v, &r->val) == 0)
                continue;
            assert_int_equal(mdx_skiplist_delete(&sl, &v, r), MDX_ENOTFOUND);
            assert_int_equal(sl.length, m.n);
        } else if (kind < 72) { /* find */
            counts[3]++;
            mdx_value_t v = r->in && rnd() % 4 ? r->val : random_value();
            mdx_slnode_t *n = mdx_skiplist_find(&sl, &v, r);
            if (r->in && mdx_value_cmp(&v, &r->val) == 0) {
                assert_non_null(n);
                assert_ptr_equal(n->rec, r);
            } else {
                assert_null(n);
            }
        } else if (kind < 88) { /* count_before */
            counts[4]++;
            mdx_value_t v = r->in && rnd() % 2 ? r->val : random_value();
            mdx_value_t pkv;
            rec_pk(r, &pkv);
            const mdx_value_t *pk = rnd() % 3 ? &pkv : NULL;
            int inclusive = (int)(rnd() % 2);
            size_t got = mdx_skiplist_count_before(&sl, &v, pk, inclusive);
            size_t want = model_count(&m, &v, pk, inclusive);
            if (got != want)
                fail_msg("op %ld: count_before = %zu, model %zu", op, got, want);
        } else { /* at */
            counts[5]++;
            size_t rank = (size_t)(rnd() % (m.n + 2));
            mdx_slnode_t *n = mdx_skiplist_at(&sl, rank);
            if (rank < m.n) {
                assert_non_null(n);
                assert_ptr_equal(n->rec, m.a[rank]);
            } else {
                assert_null(n);
            }
        }
        if (op % 997 == 0)
            assert_matches_model(&sl, &m);
    }
    assert_matches_model(&sl, &m);
    print_message("ops=%ld toggle=%ld update=%ld delmiss=%ld find=%ld count=%ld at=%ld "
                  "final length=%zu level=%d\n",
                  nops, counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], m.n,
                  sl.level);
    /* Every kind of operation ran, and the list stayed populated. */
    for (int i = 0; i < 6; i++)
        assert_true(nops < 1000 || counts[i] > nops / 20);
    assert_true(nops < 1000 || m.n > K / 4);

    /* Empty it in random order, checking on the way. */
    for (int i = 0; i < K; i++) {
        rec_t *r = &recs[(size_t)(i * 2654435761u) % K];
        if (!r->in)
            continue;
        assert_int_equal(mdx_skiplist_delete(&sl, &r->val, r), 0);
        model_delete(&m, r);
        r->in = 0;
        if (i % 512 == 0)
            assert_matches_model(&sl, &m);
    }
    assert_matches_model(&sl, &m);
    assert_int_equal(sl.length, 0);
    assert_null(sl.tail);
    mdx_skiplist_fini(&sl);
    free(m.a);
    free(recs);
}

/* ---- bulk build ---- */

static int rec_ptr_cmp(const void *a, const void *b)
{
    return rec_cmp(*(rec_t *const *)a, *(rec_t *const *)b);
}

/* a and b have the same shape: generator state, levels, and at every level the same records
 * linked with the same spans; backward links and tail too. */
static void assert_same_shape(const mdx_skiplist_t *a, const mdx_skiplist_t *b)
{
    assert_true(a->rng == b->rng);
    assert_int_equal(a->level, b->level);
    assert_int_equal(a->length, b->length);
    for (int i = 0; i < a->level; i++) {
        const mdx_slnode_t *x = a->header, *y = b->header;
        for (;;) {
            assert_int_equal(x->level[i].span, y->level[i].span);
            x = x->level[i].forward;
            y = y->level[i].forward;
            assert_true((x == NULL) == (y == NULL));
            if (!x)
                break;
            assert_ptr_equal(x->rec, y->rec);
            assert_int_equal(mdx_value_cmp(&x->value, &y->value), 0);
            assert_true((x->backward == NULL) == (y->backward == NULL));
            if (x->backward)
                assert_ptr_equal(x->backward->rec, y->backward->rec);
        }
    }
    assert_true((a->tail == NULL) == (b->tail == NULL));
    if (a->tail)
        assert_ptr_equal(a->tail->rec, b->tail->rec);
}

/* Same records in the same order, same ranks and counts for random bounds. */
static void assert_same_behaviour(const mdx_skiplist_t *a, const mdx_skiplist_t *b)
{
    assert_int_equal(mdx_skiplist_verify(a), 0);
    assert_int_equal(mdx_skiplist_verify(b), 0);
    assert_int_equal(a->length, b->length);
    const mdx_slnode_t *x = mdx_skiplist_at(a, 0), *y = mdx_skiplist_at(b, 0);
    for (size_t r = 0; r < a->length; r++) {
        assert_non_null(x);
        assert_ptr_equal(x->rec, y->rec);
        assert_ptr_equal(mdx_skiplist_at(a, r)->rec, x->rec);
        assert_ptr_equal(mdx_skiplist_at(b, r)->rec, x->rec);
        mdx_value_t pk;
        rec_pk(x->rec, &pk);
        assert_int_equal(mdx_skiplist_count_before(a, &x->value, &pk, 0), r);
        assert_int_equal(mdx_skiplist_count_before(b, &x->value, &pk, 0), r);
        x = mdx_skiplist_next(x);
        y = mdx_skiplist_next(y);
    }
    assert_null(x);
    assert_null(y);
    for (int k = 0; k < 2000; k++) {
        mdx_value_t lo = random_value(), hi = random_value();
        int li = (int)(rnd() & 1), hi_incl = (int)(rnd() & 1);
        size_t alo, ahi, blo, bhi;
        mdx_skiplist_ranks(a, &lo, NULL, li, &hi, NULL, hi_incl, &alo, &ahi, NULL);
        mdx_skiplist_ranks(b, &lo, NULL, li, &hi, NULL, hi_incl, &blo, &bhi, NULL);
        assert_int_equal(alo, blo);
        assert_int_equal(ahi, bhi);
        assert_int_equal(mdx_skiplist_count_before(a, &lo, NULL, li),
                         mdx_skiplist_count_before(b, &lo, NULL, li));
    }
}

static void test_build_matches_inserts(void **state)
{
    (void)state;
    rng_state = seed_from_env(20250105);
    enum { K = 5000 };
    rec_t *recs = calloc(K, sizeof *recs);
    rec_t **sorted = calloc(K, sizeof *sorted);
    mdx_skiplist_item_t *items = calloc(K, sizeof *items);
    assert_non_null(recs);
    assert_non_null(sorted);
    assert_non_null(items);
    for (size_t n = 0; n <= K; n = n ? n * 5 : 1) {
        for (size_t i = 0; i < n; i++) {
            recs[i].key = (int64_t)(rnd() % 1000000) * K + (int64_t)i; /* unique, unordered */
            recs[i].val = random_value();
            sorted[i] = &recs[i];
        }
        qsort(sorted, n, sizeof *sorted, rec_ptr_cmp);
        for (size_t i = 0; i < n; i++) {
            items[i].value = sorted[i]->val;
            items[i].rec = sorted[i];
        }

        mdx_skiplist_t built, in_order, shuffled;
        assert_int_equal(mdx_skiplist_init(&built, rec_pk), 0);
        assert_int_equal(mdx_skiplist_init(&in_order, rec_pk), 0);
        assert_int_equal(mdx_skiplist_init(&shuffled, rec_pk), 0);
        assert_int_equal(mdx_skiplist_build(&built, items, n), 0);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(mdx_skiplist_insert(&in_order, &sorted[i]->val, sorted[i], NULL), 0);
            assert_int_equal(mdx_skiplist_insert(&shuffled, &recs[i].val, &recs[i], NULL), 0);
        }
        /* Bulk-built equals built by inserts in sorted order, node for node. */
        assert_same_shape(&built, &in_order);
        /* And behaves as a list built in any other order. */
        assert_same_behaviour(&built, &shuffled);

        /* It keeps working as a list: delete half, reinsert with new values. */
        for (size_t i = 0; i < n; i += 2) {
            assert_int_equal(mdx_skiplist_delete(&built, &recs[i].val, &recs[i]), 0);
            assert_int_equal(mdx_skiplist_delete(&shuffled, &recs[i].val, &recs[i]), 0);
        }
        for (size_t i = 0; i < n; i += 4) {
            recs[i].val = random_value();
            assert_int_equal(mdx_skiplist_insert(&built, &recs[i].val, &recs[i], NULL), 0);
            assert_int_equal(mdx_skiplist_insert(&shuffled, &recs[i].val, &recs[i], NULL), 0);
        }
        assert_same_behaviour(&built, &shuffled);
        mdx_skiplist_fini(&built);
        mdx_skiplist_fini(&in_order);
        mdx_skiplist_fini(&shuffled);
    }
    free(items);
    free(sorted);
    free(recs);
}

static void test_build_of_nothing_is_an_empty_list(void **state)
{
    (void)state;
    mdx_skiplist_t sl;
    assert_int_equal(mdx_skiplist_init(&sl, rec_pk), 0);
    uint64_t rng = sl.rng;
    assert_int_equal(mdx_skiplist_build(&sl, NULL, 0), 0);
    assert_int_equal(sl.length, 0);
    assert_int_equal(sl.level, 1);
    assert_null(sl.tail);
    assert_null(mdx_skiplist_at(&sl, 0));
    assert_true(sl.rng == rng);
    assert_int_equal(mdx_skiplist_verify(&sl), 0);
    mdx_skiplist_fini(&sl);
}

/* ---- memory ---- */

static void test_build_out_of_memory_leaves_list_empty(void **state)
{
    (void)state;
#if MDX_FAULT_INJECTION
    enum { N = 300 };
    static rec_t recs[N];
    static mdx_skiplist_item_t items[N];
    for (int i = 0; i < N; i++) {
        recs[i].key = i;
        recs[i].val = vint(i / 3); /* ties on the value, ordered by key */
        items[i].value = recs[i].val;
        items[i].rec = &recs[i];
    }
    size_t used0 = mdx_alloc_used();
    mdx_skiplist_t sl, control;
    assert_int_equal(mdx_skiplist_init(&sl, rec_pk), 0);
    assert_int_equal(mdx_skiplist_init(&control, rec_pk), 0);
    uint64_t rng = sl.rng;
    size_t used = mdx_alloc_used();
    long n;
    for (n = 0;; n++) {
        mdx_alloc_fail_after(n);
        int rc = mdx_skiplist_build(&sl, items, N);
        int injected = mdx_alloc_fail_triggered();
        mdx_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, MDX_ENOMEM);
        assert_true(injected);
        assert_int_equal(mdx_alloc_used(), used);
        assert_int_equal(sl.length, 0);
        assert_int_equal(sl.level, 1);
        assert_null(sl.tail);
        assert_true(sl.rng == rng);
        for (int i = 0; i < MDX_SKIPLIST_MAXLEVEL; i++)
            assert_null(sl.header->level[i].forward);
        assert_int_equal(mdx_skiplist_verify(&sl), 0);
    }
    assert_int_equal(n, N); /* one allocation per node */
    for (int i = 0; i < N; i++)
        assert_int_equal(mdx_skiplist_insert(&control, &recs[i].val, &recs[i], NULL), 0);
    assert_same_shape(&sl, &control); /* failed attempts left no trace */
    mdx_skiplist_fini(&sl);
    mdx_skiplist_fini(&control);
    assert_int_equal(mdx_alloc_used(), used0);
#else
    skip();
#endif
}

static void test_insert_out_of_memory_leaves_list_unchanged(void **state)
{
    (void)state;
#if MDX_FAULT_INJECTION
    enum { N = 200 };
    static rec_t recs[N + 1];
    mdx_skiplist_t sl, control;
    assert_int_equal(mdx_skiplist_init(&sl, rec_pk), 0);
    assert_int_equal(mdx_skiplist_init(&control, rec_pk), 0);
    int64_t keys[N];
    for (int i = 0; i < N; i++) {
        recs[i].key = i;
        recs[i].val = vint((i * 37) % N);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(mdx_skiplist_insert(&sl, &recs[i].val, &recs[i], NULL), 0);
        assert_int_equal(mdx_skiplist_insert(&control, &recs[i].val, &recs[i], NULL), 0);
    }
    for (int i = 0; i < N; i++)
        keys[i] = node_key(mdx_skiplist_at(&sl, (size_t)i));
    int level = sl.level;

    recs[N].key = N;
    recs[N].val = vint(N / 2); /* lands in the middle */
    size_t used = mdx_alloc_used();
    long n;
    for (n = 0;; n++) {
        mdx_alloc_fail_after(n);
        mdx_slnode_t *out = NULL;
        int rc = mdx_skiplist_insert(&sl, &recs[N].val, &recs[N], &out);
        int injected = mdx_alloc_fail_triggered();
        mdx_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, MDX_ENOMEM);
        assert_true(injected);
        assert_null(out);
        assert_int_equal(mdx_alloc_used(), used);
        assert_keys(&sl, keys, N);
        assert_int_equal(sl.level, level);
        assert_null(mdx_skiplist_find(&sl, &recs[N].val, &recs[N]));
    }
    assert_int_equal(n, 1); /* insert makes exactly one allocation */
    assert_int_equal(sl.length, N + 1);
    assert_int_equal(mdx_skiplist_verify(&sl), 0);
    assert_non_null(mdx_skiplist_find(&sl, &recs[N].val, &recs[N]));

    /* The failed attempt did not consume a level draw: the list is shaped exactly like one
     * that never saw a failure. */
    assert_int_equal(mdx_skiplist_insert(&control, &recs[N].val, &recs[N], NULL), 0);
    assert_true(sl.rng == control.rng);
    assert_int_equal(sl.level, control.level);
    for (int i = 0; i < control.level; i++) {
        const mdx_slnode_t *x = sl.header, *y = control.header;
        while (x && y) {
            assert_int_equal(x->level[i].span, y->level[i].span);
            x = x->level[i].forward;
            y = y->level[i].forward;
            assert_true((x == NULL) == (y == NULL));
            if (x)
                assert_ptr_equal(x->rec, y->rec);
        }
    }
    mdx_skiplist_fini(&sl);
    mdx_skiplist_fini(&control);
#else
    skip();
#endif
}

static void test_init_out_of_memory(void **state)
{
    (void)state;
#if MDX_FAULT_INJECTION
    mdx_skiplist_t sl;
    size_t used = mdx_alloc_used();
    mdx_alloc_fail_after(0);
    int rc = mdx_skiplist_init(&sl, rec_pk);
    mdx_alloc_fail_reset();
    assert_int_equal(rc, MDX_ENOMEM);
    assert_int_equal(mdx_alloc_used(), used);
    mdx_skiplist_fini(&sl); /* harmless after a failed init */
    assert_int_equal(mdx_skiplist_init(&sl, rec_pk), 0);
    mdx_skiplist_fini(&sl);
    assert_int_equal(mdx_alloc_used(), used);
#else
    skip();
#endif
}

static void test_nodes_are_sized_to_their_level(void **state)
{
    (void)state;
    enum { N = 100000 };
    rec_t *recs = calloc(N, sizeof *recs);
    assert_non_null(recs);
    size_t used0 = mdx_alloc_used();
    mdx_skiplist_t sl;
    assert_int_equal(mdx_skiplist_init(&sl, rec_pk), 0);
    size_t used1 = mdx_alloc_used();
    uint64_t calls = mdx_alloc_count();
    for (int i = 0; i < N; i++) {
        recs[i].key = i;
        recs[i].val = vint(i);
        assert_int_equal(mdx_skiplist_insert(&sl, &recs[i].val, &recs[i], NULL), 0);
    }
    assert_true(mdx_alloc_count() - calls == N); /* one block per node */
    /* Expected request: sizeof(node) + 4/3 level entries on average; the bound leaves room
     * for malloc rounding but fails if nodes were allocated at a fixed larger level. */
    size_t per_node = (mdx_alloc_used() - used1) / N;
    size_t entry = sizeof(sl.header->level[0]);
    print_message("bytes per node: %zu (node %zu, level entry %zu), levels: %d\n", per_node,
                  sizeof(mdx_slnode_t), entry, sl.level);
    assert_true(per_node <= sizeof(mdx_slnode_t) + 2 * entry + 16);
    /* p = 1/4: about log4(100000) = 8.3 levels */
    assert_in_range(sl.level, 6, 14);
    assert_int_equal(mdx_skiplist_verify(&sl), 0);

    for (int i = 0; i < N; i += 2)
        assert_int_equal(mdx_skiplist_delete(&sl, &recs[i].val, &recs[i]), 0);
    assert_int_equal(sl.length, N / 2);
    assert_int_equal(mdx_skiplist_verify(&sl), 0);
    mdx_skiplist_fini(&sl);
    assert_int_equal(mdx_alloc_used(), used0); /* delete and fini free every node */
    free(recs);
}

static void test_verify_detects_corruption(void **state)
{
    (void)state;
    mdx_skiplist_t sl;
    build_tie_list(&sl);
    assert_int_equal(mdx_skiplist_verify(&sl), 0);

    mdx_slnode_t *a = mdx_skiplist_at(&sl, 3), *b = mdx_skiplist_at(&sl, 4);

    a->level[0].span++;
    assert_int_not_equal(mdx_skiplist_verify(&sl), 0);
    a->level[0].span--;

    mdx_slnode_t *saved = b->backward;
    b->backward = NULL;
    assert_int_not_equal(mdx_skiplist_verify(&sl), 0);
    b->backward = saved;

    sl.length++;
    assert_int_not_equal(mdx_skiplist_verify(&sl), 0);
    sl.length--;

    mdx_slnode_t *tail = sl.tail;
    sl.tail = a;
    assert_int_not_equal(mdx_skiplist_verify(&sl), 0);
    sl.tail = tail;

    mdx_value_t v = a->value;
    a->value = vint(100); /* now orders after its successor b (4.5) */
    assert_int_not_equal(mdx_skiplist_verify(&sl), 0);
    a->value = v;

    /* a NULL link's span is the distance to the last node: 0 from the tail */
    sl.tail->level[0].span = 1;
    assert_int_not_equal(mdx_skiplist_verify(&sl), 0);
    sl.tail->level[0].span = 0;

    size_t span = sl.header->level[sl.level - 1].span;
    sl.header->level[sl.level - 1].span = span + 1;
    assert_int_not_equal(mdx_skiplist_verify(&sl), 0);
    sl.header->level[sl.level - 1].span = span;

    assert_int_equal(mdx_skiplist_verify(&sl), 0);
    mdx_skiplist_fini(&sl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_list_has_no_nodes),
        cmocka_unit_test(test_insert_find_delete),
        cmocka_unit_test(test_delete_and_find_need_value_and_pk),
        cmocka_unit_test(test_ties_on_value_order_by_pk),
        cmocka_unit_test(test_count_before_each_bound_kind),
        cmocka_unit_test(test_count_before_matches_brute_force),
        cmocka_unit_test(test_ranks_match_count_before),
        cmocka_unit_test(test_at_returns_node_of_each_rank),
        cmocka_unit_test(test_backward_links_walk_in_reverse),
        cmocka_unit_test(test_random_ops_match_sorted_model),
        cmocka_unit_test(test_build_matches_inserts),
        cmocka_unit_test(test_build_of_nothing_is_an_empty_list),
        cmocka_unit_test(test_build_out_of_memory_leaves_list_empty),
        cmocka_unit_test(test_insert_out_of_memory_leaves_list_unchanged),
        cmocka_unit_test(test_init_out_of_memory),
        cmocka_unit_test(test_nodes_are_sized_to_their_level),
        cmocka_unit_test(test_verify_detects_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
