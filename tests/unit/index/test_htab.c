/*
 * Unit tests for index/htab.c: basics, duplicates and find_next (also across rehash steps),
 * replace, exact resize thresholds, the bound on work per operation during a resize, a
 * randomized run against a flag array (seed printed, MDX_SEED overrides), scan under growth
 * and shrinking, allocation failures, and iteration.
 *
 * The tests read the public struct fields to check the layout invariants: every node sits in
 * bucket hash & (size - 1), moved buckets of table[0] are empty, used[] adds up to count.
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
#include "index/htab.h"
#include "memdex/error.h"

/* What the implementation promises per find/insert/remove while resizing: one non-empty
 * bucket moved, at most 10 empty ones visited. */
#define MAX_MOVED   1
#define MAX_ADVANCE 11

typedef struct {
    mdx_hnode_t node;
    uint64_t key;
    int present; /* reference: the test believes the node is in the table */
    unsigned seen;
} item_t;

static item_t *item_of(mdx_hnode_t *n)
{
    return (item_t *)(void *)((char *)n - offsetof(item_t, node));
}

static const item_t *citem_of(const mdx_hnode_t *n)
{
    return (const item_t *)(const void *)((const char *)n - offsetof(item_t, node));
}

static int eq_key(const mdx_hnode_t *n, const void *key)
{
    return citem_of(n)->key == *(const uint64_t *)key;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static uint64_t rng_next(uint64_t *s)
{
    *s += 0x9E3779B97F4A7C15ULL;
    uint64_t x = *s;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* n items with keys key0.., hashes mix64(key). Test memory comes from libc so that fault
 * injection only hits the table. */
static item_t *make_items(size_t n, uint64_t key0)
{
    item_t *it = calloc(n, sizeof(*it));
    assert_non_null(it);
    for (size_t i = 0; i < n; i++) {
        it[i].key = key0 + i;
        it[i].node.hash = mix64(key0 + i);
    }
    return it;
}

static item_t *find_key(mdx_htab_t *h, uint64_t key)
{
    mdx_hnode_t *n = mdx_htab_find(h, mix64(key), eq_key, &key);
    return n ? item_of(n) : NULL;
}

static void finish_resize(mdx_htab_t *h)
{
    while (mdx_htab_rehash_step(h, SIZE_MAX))
        ;
    assert_null(h->table[1]);
}

/* Which table holds node: 0, 1, or -1 when absent. */
static int table_of(const mdx_htab_t *h, const mdx_hnode_t *node)
{
    for (int t = 0; t < 2; t++) {
        const mdx_hnode_t *n;
        if (t == 0 && !h->table[0])
            n = h->spill;
        else if (h->table[t])
            n = h->table[t][node->hash & (h->size[t] - 1)];
        else
            continue;
        for (; n; n = n->next)
            if (n == node)
                return t;
    }
    return -1;
}

static void check_structure(const mdx_htab_t *h)
{
    size_t total = 0;
    for (int t = 0; t < 2; t++) {
        size_t used = 0;
        if (!h->table[t]) {
            assert_int_equal(h->size[t], 0);
            if (t == 0) {
                for (const mdx_hnode_t *n = h->spill; n; n = n->next)
                    used++;
            } else {
                assert_int_equal(h->used[1], 0);
            }
        } else {
            if (t == 0)
                assert_null(h->spill);
            size_t size = h->size[t];
            assert_true(size >= 4 && (size & (size - 1)) == 0);
            for (size_t b = 0; b < size; b++) {
                if (t == 0 && h->table[1] && b < h->rehash_idx)
                    assert_null(h->table[0][b]);
                for (const mdx_hnode_t *n = h->table[t][b]; n; n = n->next) {
                    assert_int_equal(n->hash & (size - 1), b);
                    used++;
                }
            }
        }
        assert_int_equal(used, h->used[t]);
        total += used;
    }
    assert_int_equal(total, h->count);
    if (!h->table[1])
        assert_int_equal(h->rehash_idx, 0);
}

/* Snapshot before one operation, to check after it how much resize work it did. */
typedef struct {
    int resizing;
    size_t idx;
    size_t used0;
    size_t win;                /* buckets in the window */
    size_t chain[MAX_ADVANCE]; /* chain lengths of table[0] buckets idx .. idx + win - 1 */
} probe_t;

static void probe_before(const mdx_htab_t *h, probe_t *p)
{
    memset(p, 0, sizeof(*p));
    p->resizing = h->table[1] != NULL;
    if (!p->resizing)
        return;
    p->idx = h->rehash_idx;
    p->used0 = h->used[0];
    size_t s0 = h->table[0] ? h->size[0] : 1;
    for (size_t i = p->idx; i < s0 && p->win < MAX_ADVANCE; i++, p->win++) {
        const mdx_hnode_t *n = h->table[0] ? h->table[0][i] : h->spill;
        for (; n; n = n->next)
            p->chain[p->win]++;
    }
}

/* Returns 1 when the operation finished the resize it found in progress. removed0: the
 * operation removed a node that was in table[0]. */
static int probe_after(const mdx_htab_t *h, const probe_t *p, int removed0)
{
    if (!p->resizing)
        return 0;
    if (!h->table[1] || h->rehash_idx <= p->idx) {
        /* Finished: what was left in table[0] was the first non-empty chain of the window
         * (one bucket moved), plus perhaps the removed node. */
        size_t first = 0;
        for (size_t i = 0; i < p->win; i++)
            if (p->chain[i]) {
                first = p->chain[i];
                break;
            }
        assert_true(p->used0 == first || (removed0 && p->used0 == first + 1));
        return 1;
    }
    size_t advance = h->rehash_idx - p->idx;
    assert_in_range(advance, 1, MAX_ADVANCE);
    size_t moved = 0;
    for (size_t i = 0; i < advance; i++)
        moved += p->chain[i] != 0;
    assert_in_range(moved, 0, MAX_MOVED);
    return 0;
}

static void test_empty_table(void **state)
{
    (void)state;
    mdx_htab_t h;
    mdx_htab_init(&h);
    item_t it = {.key = 1, .node = {.hash = mix64(1)}};
    assert_int_equal(mdx_htab_count(&h), 0);
    assert_null(find_key(&h, 1));
    assert_int_equal(mdx_htab_remove(&h, &it.node), MDX_ENOTFOUND);
    assert_int_equal(mdx_htab_replace(&h, &it.node, &it.node), MDX_ENOTFOUND);
    assert_int_equal(mdx_htab_rehash_step(&h, 1), 0);
    mdx_htab_iter_t iter = {0};
    assert_null(mdx_htab_iter_next(&h, &iter));
    assert_null(h.table[0]); /* no allocation yet */
    check_structure(&h);
    mdx_htab_fini(&h);
    mdx_htab_fini(&h); /* fini of a finished table is harmless */
}

static void test_insert_find_remove(void **state)
{
    (void)state;
    enum { N = 100 };
    item_t *it = make_items(N, 1000);
    mdx_htab_t h;
    mdx_htab_init(&h);
    for (size_t i = 0; i < N; i++) {
        mdx_htab_insert(&h, &it[i].node);
        assert_int_equal(mdx_htab_count(&h), i + 1);
    }
    for (size_t i = 0; i < N; i++)
        assert_ptr_equal(find_key(&h, 1000 + i), &it[i]);
    assert_null(find_key(&h, 999));
    assert_null(find_key(&h, 1000 + N));
    for (size_t i = 0; i < N; i += 2)
        assert_int_equal(mdx_htab_remove(&h, &it[i].node), 0);
    assert_int_equal(mdx_htab_count(&h), N / 2);
    for (size_t i = 0; i < N; i++)
        assert_ptr_equal(find_key(&h, 1000 + i), i % 2 ? &it[i] : NULL);
    assert_int_equal(mdx_htab_remove(&h, &it[0].node), MDX_ENOTFOUND);
    assert_int_equal(mdx_htab_count(&h), N / 2);
    check_structure(&h);
    mdx_htab_fini(&h);
    free(it);
}

static void test_first_insert_allocates_four_buckets_and_fourth_grows(void **state)
{
    (void)state;
    item_t *it = make_items(4, 0);
    mdx_htab_t h;
    mdx_htab_init(&h);
    mdx_htab_insert(&h, &it[0].node);
    assert_non_null(h.table[0]);
    assert_int_equal(h.size[0], 4);
    assert_null(h.table[1]);
    for (size_t i = 1; i < 3; i++)
        mdx_htab_insert(&h, &it[i].node);
    assert_int_equal(h.size[0], 4); /* load factor 3/4 is allowed */
    assert_null(h.table[1]);
    mdx_htab_insert(&h, &it[3].node);
    assert_non_null(h.table[1]);
    assert_int_equal(h.size[1], 8);
    assert_int_equal(table_of(&h, &it[3].node), 1); /* inserts go to the new table */
    check_structure(&h);
    assert_int_equal(mdx_htab_rehash_step(&h, SIZE_MAX), 0);
    assert_int_equal(h.size[0], 8);
    for (size_t i = 0; i < 4; i++)
        assert_ptr_equal(find_key(&h, i), &it[i]);
    mdx_htab_fini(&h);
    free(it);
}

/* With no resize in progress grow_bytes names exactly the array the next insert allocates (0
 * when it allocates none), by the same 3/4 rule as insert; while one is in progress it says 0. */
static void test_grow_bytes_predicts_the_next_insert(void **state)
{
    (void)state;
    enum { N = 300 };
    item_t *it = make_items(N, 0);
    mdx_htab_t h;
    mdx_htab_init(&h);
    size_t grows = 0, zero_while_resizing = 0;
    for (size_t i = 0; i < N; i++) {
        size_t predicted = mdx_htab_grow_bytes(&h);
        int resizing = h.table[1] != NULL;
        mdx_hnode_t **t0 = h.table[0], **t1 = h.table[1];
        mdx_htab_insert(&h, &it[i].node);
        size_t allocated = 0;
        if (h.table[1] && h.table[1] != t1)
            allocated = h.size[1] * sizeof(mdx_hnode_t *);
        else if (!t0 && h.table[0])
            allocated = h.size[0] * sizeof(mdx_hnode_t *);
        /* While resizing, the insert's rehash step may finish the resize and then grow: only
         * the prediction made with no resize in progress is exact. */
        if (!resizing)
            assert_int_equal(predicted, allocated);
        else
            zero_while_resizing += predicted == 0;
        grows += allocated != 0;
        if (i == 2) /* 3 elements in 4 buckets: the 4th insert grows to 8 */
            assert_int_equal(mdx_htab_grow_bytes(&h), 8 * sizeof(mdx_hnode_t *));
    }
    assert_int_equal(grows, 8); /* 4, 8, 16, ..., 512 buckets */
    assert_true(zero_while_resizing > 0);
    mdx_htab_fini(&h);
    free(it);
}

/* With every resize completed at once, sizes follow the thresholds exactly: grow to 2x when an
 * insert finds count at 3/4 of size, shrink when count < size / 8 to the power of two >=
 * 2 * count (min 4). */
static void test_resize_thresholds(void **state)
{
    (void)state;
    enum { N = 1000 };
    item_t *it = make_items(N, 0);
    mdx_htab_t h;
    mdx_htab_init(&h);
    size_t sizes[32], at_count[32], ns = 0;
    for (size_t i = 0; i < N; i++) {
        mdx_htab_insert(&h, &it[i].node);
        finish_resize(&h);
        if (ns == 0 || sizes[ns - 1] != h.size[0]) {
            at_count[ns] = h.count;
            sizes[ns++] = h.size[0];
        }
    }
    static const size_t grow[] = {4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048};
    static const size_t grow_at[] = {1, 4, 7, 13, 25, 49, 97, 193, 385, 769};
    assert_int_equal(ns, sizeof(grow) / sizeof(grow[0]));
    for (size_t i = 0; i < ns; i++) {
        assert_int_equal(sizes[i], grow[i]);
        assert_int_equal(at_count[i], grow_at[i]);
    }

    ns = 0;
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(mdx_htab_remove(&h, &it[i].node), 0);
        finish_resize(&h);
        if (h.size[0] != 2048 && (ns == 0 || sizes[ns - 1] != h.size[0])) {
            at_count[ns] = h.count;
            sizes[ns++] = h.size[0];
        }
    }
    static const size_t shrink[] = {512, 128, 32, 8, 4};
    static const size_t shrink_at[] = {255, 63, 15, 3, 0};
    assert_int_equal(ns, 5);
    for (size_t i = 0; i < ns; i++) {
        assert_int_equal(sizes[i], shrink[i]);
        assert_int_equal(at_count[i], shrink_at[i]);
    }
    assert_int_equal(h.count, 0);
    check_structure(&h);
    mdx_htab_fini(&h);
    free(it);
}

/* Runs the find/find_next walk for key and returns how many nodes it produced; each produced
 * node must have the key and must not repeat. between() runs between calls. */
static size_t walk(mdx_htab_t *h, uint64_t hash, uint64_t key, void (*between)(mdx_htab_t *))
{
    size_t n = 0;
    mdx_hnode_t *node = mdx_htab_find(h, hash, eq_key, &key);
    while (node) {
        item_t *it = item_of(node);
        assert_int_equal(it->key, key);
        assert_int_equal(it->seen, 0);
        it->seen = 1;
        n++;
        if (between)
            between(h);
        node = mdx_htab_find_next(h, node, eq_key, &key);
    }
    return n;
}

static void test_duplicates_find_next_returns_each_once(void **state)
{
    (void)state;
    /* 5 nodes with key 42, 3 with key 43, all with the same hash; 50 unrelated nodes. */
    enum { D = 5, C = 3, O = 50 };
    item_t *dup = make_items(D + C, 0);
    item_t *other = make_items(O, 1000);
    const uint64_t hash = 0x1234;
    for (size_t i = 0; i < D + C; i++) {
        dup[i].key = i < D ? 42 : 43;
        dup[i].node.hash = hash;
    }
    mdx_htab_t h;
    mdx_htab_init(&h);
    for (size_t i = 0; i < O; i++) {
        mdx_htab_insert(&h, &other[i].node);
        if (i < D + C)
            mdx_htab_insert(&h, &dup[i].node);
    }
    finish_resize(&h);
    assert_int_equal(walk(&h, hash, 42, NULL), D);
    for (size_t i = 0; i < D + C; i++)
        assert_int_equal(dup[i].seen, i < D);
    assert_int_equal(walk(&h, hash, 43, NULL), C);
    for (size_t i = 0; i < D + C; i++)
        assert_int_equal(dup[i].seen, 1);
    assert_int_equal(walk(&h, hash, 44, NULL), 0);
    mdx_htab_fini(&h);
    free(dup);
    free(other);
}

/* Bucket of the duplicates in the 1024-bucket table[0] below: the last one a resize moves. */
#define DUP_BUCKET 1023
static size_t g_walk_pos, g_move_at;

/* Moves the duplicates' bucket into table[1] after the g_move_at-th node of the walk. */
static void move_dups_at(mdx_htab_t *h)
{
    if (++g_walk_pos != g_move_at)
        return;
    while (h->table[1] && h->rehash_idx <= DUP_BUCKET)
        mdx_htab_rehash_step(h, 1);
}

static void finish_at(mdx_htab_t *h)
{
    if (++g_walk_pos == g_move_at)
        mdx_htab_rehash_step(h, SIZE_MAX);
}

static void find_unrelated(mdx_htab_t *h)
{
    uint64_t key = 7; /* absent; find still takes a rehash step */
    assert_null(mdx_htab_find(h, mix64(key), eq_key, &key));
}

/* Duplicates split between table[0] and table[1] during a resize; the walk must return each
 * once, also when rehash steps that move the duplicates' bucket happen between calls: while
 * the walk is in table[0]'s chain, at its end, and in table[1]'s chain. */
static void test_find_next_across_tables_and_rehash_steps(void **state)
{
    (void)state;
    enum { F = 1024, D = 6 };
    static const struct {
        void (*between)(mdx_htab_t *);
        size_t at;
    } variants[] = {{NULL, 0},         {move_dups_at, 1}, {move_dups_at, 2},  {move_dups_at, 3},
                    {move_dups_at, 4}, {finish_at, 2},    {find_unrelated, 0}};
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
        item_t *fill = make_items(F, 100);
        item_t *dup = make_items(D, 0);
        const uint64_t hash = 0xABC0000000000000ULL | DUP_BUCKET;
        for (size_t i = 0; i < D; i++) {
            dup[i].key = 42;
            dup[i].node.hash = hash;
        }
        mdx_htab_t h;
        mdx_htab_init(&h);
        for (size_t i = 0; i < D / 2; i++)
            mdx_htab_insert(&h, &dup[i].node);
        for (size_t i = 0; h.count < F / 4 * 3; i++)
            mdx_htab_insert(&h, &fill[i].node);
        finish_resize(&h);
        assert_int_equal(h.size[0], F);
        mdx_htab_insert(&h, &fill[F - D / 2].node); /* count == 3/4 size: starts the resize */
        for (size_t i = D / 2; i < D; i++)
            mdx_htab_insert(&h, &dup[i].node);
        assert_non_null(h.table[1]);
        for (size_t i = 0; i < D; i++)
            assert_int_equal(table_of(&h, &dup[i].node), i < D / 2 ? 0 : 1);

        g_walk_pos = 0;
        g_move_at = variants[v].at;
        assert_int_equal(walk(&h, hash, 42, variants[v].between), D);
        for (size_t i = 0; i < D; i++)
            assert_int_equal(dup[i].seen, 1);
        if (variants[v].at) /* the bucket really moved during the walk */
            assert_int_equal(table_of(&h, &dup[0].node), h.table[1] ? 1 : 0);
        if (variants[v].between == finish_at)
            assert_null(h.table[1]);
        check_structure(&h);
        mdx_htab_fini(&h);
        free(fill);
        free(dup);
    }
}

static void test_replace_swaps_node_in_place(void **state)
{
    (void)state;
    item_t *it = make_items(4, 0);
    item_t *fresh = make_items(2, 0);
    for (size_t i = 0; i < 4; i++)
        it[i].node.hash = 77; /* one chain: keys 0..3 */
    mdx_htab_t h;
    mdx_htab_init(&h);
    for (size_t i = 0; i < 4; i++)
        mdx_htab_insert(&h, &it[i].node);
    fresh[0].key = 1;
    fresh[0].node.hash = 77;
    fresh[1].node.hash = 77;
    assert_int_equal(mdx_htab_replace(&h, &it[1].node, &fresh[0].node), 0);
    assert_int_equal(mdx_htab_count(&h), 4);
    uint64_t key = 1;
    assert_ptr_equal(mdx_htab_find(&h, 77, eq_key, &key), &fresh[0].node);
    for (key = 0; key < 4; key += 2) /* neighbours in the chain still reachable */
        assert_ptr_equal(mdx_htab_find(&h, 77, eq_key, &key), &it[key].node);
    key = 3;
    assert_ptr_equal(mdx_htab_find(&h, 77, eq_key, &key), &it[3].node);
    assert_int_equal(mdx_htab_remove(&h, &it[1].node), MDX_ENOTFOUND);
    assert_int_equal(mdx_htab_replace(&h, &it[1].node, &fresh[1].node), MDX_ENOTFOUND);
    assert_int_equal(mdx_htab_replace(&h, &it[2].node, &it[2].node), 0);
    check_structure(&h);
    mdx_htab_fini(&h);

    /* During a resize, for a node in table[0] and one in table[1]; no rehash step taken. */
    enum { F = 64 };
    item_t *fill = make_items(F + 1, 100);
    item_t *rep = make_items(F + 1, 100);
    mdx_htab_init(&h);
    for (size_t i = 0; i <= F; i++)
        mdx_htab_insert(&h, &fill[i].node);
    assert_non_null(h.table[1]);
    size_t idx = h.rehash_idx;
    int seen_t[2] = {0, 0};
    for (size_t i = 0; i <= F; i++) {
        int t = table_of(&h, &fill[i].node);
        assert_int_not_equal(t, -1);
        seen_t[t] = 1;
        assert_int_equal(mdx_htab_replace(&h, &fill[i].node, &rep[i].node), 0);
        assert_int_equal(table_of(&h, &rep[i].node), t);
    }
    assert_true(seen_t[0] && seen_t[1]);
    assert_int_equal(h.rehash_idx, idx);
    for (size_t i = 0; i <= F; i++)
        assert_ptr_equal(find_key(&h, 100 + i), &rep[i]);
    check_structure(&h);
    mdx_htab_fini(&h);
    free(fill);
    free(rep);
    free(it);
    free(fresh);
}

static void test_rehash_step_reports_remaining_work(void **state)
{
    (void)state;
    item_t *it = make_items(193, 0);
    mdx_htab_t h;
    mdx_htab_init(&h);
    for (size_t i = 0; i < 192; i++)
        mdx_htab_insert(&h, &it[i].node);
    finish_resize(&h);
    assert_int_equal(h.size[0], 256);
    assert_int_equal(mdx_htab_rehash_step(&h, 1), 0);
    mdx_htab_insert(&h, &it[192].node);
    assert_int_equal(h.size[1], 512);
    size_t steps = 0;
    while (mdx_htab_rehash_step(&h, 1) == 1) {
        assert_non_null(h.table[1]);
        steps++;
    }
    assert_null(h.table[1]);
    assert_int_equal(h.size[0], 512);
    assert_in_range(steps, 256 / MAX_ADVANCE, 192);
    for (size_t i = 0; i < 193; i++)
        assert_ptr_equal(find_key(&h, i), &it[i]);
    mdx_htab_fini(&h);
    free(it);
}

/* Grows to 2^17 buckets and back to empty one operation at a time; every operation during a
 * resize moves at most one bucket, and the biggest resizes span thousands of operations. */
static void test_resize_work_per_operation_is_bounded(void **state)
{
    (void)state;
    enum { N = 3 << 15 }; /* 3/4 of 2^17 */
    item_t *it = make_items(N, 0);
    mdx_htab_t h;
    mdx_htab_init(&h);
    size_t run = 0, longest = 0, resizes = 0;
    probe_t p;
    for (size_t i = 0; i < N; i++) {
        probe_before(&h, &p);
        mdx_htab_insert(&h, &it[i].node);
        resizes += probe_after(&h, &p, 0);
        run = h.table[1] ? run + 1 : 0;
        if (run > longest)
            longest = run;
        if (h.table[1]) /* an S-bucket resize finishes within S operations */
            assert_true(run <= (h.size[0] ? h.size[0] : 1) + 1);
    }
    /* 4 -> 8 -> ... -> 131072: 15 resizes, all finished (a resize of S buckets ends within S
     * steps, before the count doubles). The last one spans at least 65536 / 11 inserts. */
    assert_int_equal(resizes, 15);
    assert_null(h.table[1]);
    assert_int_equal(h.size[0], 1 << 17);
    assert_true(longest >= 65536 / MAX_ADVANCE);
    check_structure(&h);

    run = longest = resizes = 0;
    size_t max_size = h.size[0];
    for (size_t i = 0; i < N; i++) {
        probe_before(&h, &p);
        int t = table_of(&h, &it[i].node);
        assert_int_equal(mdx_htab_remove(&h, &it[i].node), 0);
        resizes += probe_after(&h, &p, t == 0);
        run = h.table[1] ? run + 1 : 0;
        if (run > longest)
            longest = run;
    }
    /* Removes alone shrink slowly: the first shrink (131072 -> 32768, started at count 16383)
     * visits at most 11 buckets per remove, so it runs until nearly the end. The table is
     * back at the minimum once empty. */
    assert_int_equal(h.count, 0);
    assert_true(resizes >= 1);
    assert_true(max_size > h.size[0]);
    assert_null(h.table[1]);
    assert_int_equal(h.size[0], 4);
    assert_true(longest >= 16383 / 2);
    check_structure(&h);
    mdx_htab_fini(&h);
    free(it);
}

static uint64_t test_seed(void)
{
    const char *s = getenv("MDX_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : 20240611;
    print_message("htab seed=%llu (set MDX_SEED to replay)\n", (unsigned long long)seed);
    return seed;
}

/* 200k random operations over 20k keys whose hashes collide in pairs, checked against the
 * items' present flags. Insert-heavy and remove-heavy phases alternate, so the table grows to
 * 16k buckets and drains to empty several times; one stretch runs with every allocation
 * failing. Removes mostly pick a present key (from a dense list) so the count really falls. */
static void test_random_ops_match_reference(void **state)
{
    (void)state;
    enum { K = 20000, OPS = 200000, PHASE = 25000 };
    uint64_t rng = test_seed();
    item_t *it = make_items(K, 0);
    size_t *live = calloc(K, sizeof(*live)), *pos = calloc(K, sizeof(*pos));
    assert_true(live && pos);
    for (size_t i = 0; i < K; i++)
        it[i].node.hash = mix64(i >> 1); /* keys 2i and 2i+1 share a hash */
    mdx_htab_t h;
    mdx_htab_init(&h);
    size_t count = 0, grows = 0, shrinks = 0, last_size = 0, max_count = 0;
    probe_t p;
    for (size_t op = 0; op < OPS; op++) {
#if MDX_FAULT_INJECTION
        if (op == 110000)
            mdx_alloc_fail_after(0);
        if (op == 120000)
            mdx_alloc_fail_reset();
#endif
        uint64_t r = rng_next(&rng);
        int pct = (int)((r >> 32) % 100);
        int insert_pct = (op / PHASE) % 2 ? 15 : 80;
        size_t k = (size_t)(r % K);
        int kind; /* 0 insert or find, 1 remove any key, 2 remove a present key */
        if (pct < insert_pct)
            kind = 0;
        else if (pct < insert_pct + 3 || count == 0)
            kind = 1;
        else
            kind = 2;
        if (kind == 2)
            k = live[(size_t)(r % count)];

        probe_before(&h, &p);
        int t = table_of(&h, &it[k].node);
        assert_true(it[k].present ? t >= 0 : t == -1);
        uint64_t key = k;
        if (kind == 0 && it[k].present) {
            assert_ptr_equal(mdx_htab_find(&h, it[k].node.hash, eq_key, &key), &it[k].node);
            probe_after(&h, &p, 0);
        } else if (kind == 0) {
            mdx_htab_insert(&h, &it[k].node);
            probe_after(&h, &p, 0);
            it[k].present = 1;
            pos[k] = count;
            live[count++] = k;
        } else {
            int rc = mdx_htab_remove(&h, &it[k].node);
            probe_after(&h, &p, t == 0);
            assert_int_equal(rc, it[k].present ? 0 : MDX_ENOTFOUND);
            if (it[k].present) {
                it[k].present = 0;
                live[pos[k]] = live[--count];
                pos[live[pos[k]]] = pos[k];
            }
        }
        assert_int_equal(mdx_htab_count(&h), count);
        if (count > max_count)
            max_count = count;

        size_t j = (size_t)(rng_next(&rng) % K);
        key = j;
        mdx_hnode_t *n = mdx_htab_find(&h, mix64(j >> 1), eq_key, &key);
        assert_ptr_equal(n, it[j].present ? &it[j].node : NULL);

        size_t size = h.table[1] ? h.size[1] : h.size[0];
        grows += last_size && size > last_size;
        shrinks += last_size && size < last_size;
        last_size = size;

        if (op % 10000 == 9999) {
            check_structure(&h);
            for (size_t i = 0; i < K; i++) {
                key = i;
                n = mdx_htab_find(&h, mix64(i >> 1), eq_key, &key);
                assert_ptr_equal(n, it[i].present ? &it[i].node : NULL);
            }
        }
    }
    print_message("random: max count %zu, %zu grows, %zu shrinks\n", max_count, grows, shrinks);
    assert_true(max_count > 8192); /* reached 16384 buckets */
    assert_true(grows >= 20);
    assert_true(shrinks >= 10);
    mdx_htab_fini(&h);
    free(it);
    free(live);
    free(pos);
}

static void count_calls(void *data, mdx_hnode_t *node)
{
    (void)node;
    (*(size_t *)data)++;
}

static void test_scan_empty_table_returns_zero(void **state)
{
    (void)state;
    mdx_htab_t h;
    mdx_htab_init(&h);
    size_t calls = 0;
    assert_int_equal(mdx_htab_scan(&h, 0, count_calls, &calls), 0);
    item_t it = {.key = 1, .node = {.hash = 5}};
    mdx_htab_insert(&h, &it.node);
    assert_int_equal(mdx_htab_remove(&h, &it.node), 0);
    assert_int_equal(mdx_htab_scan(&h, 0, count_calls, &calls), 0);
    assert_int_equal(mdx_htab_scan(&h, 12345, count_calls, &calls), 0);
    assert_int_equal(calls, 0);
    mdx_htab_fini(&h);
}

static void count_seen(void *data, mdx_hnode_t *node)
{
    item_t *it = item_of(node);
    assert_int_equal(it->present, 1);
    it->seen++;
    (*(size_t *)data)++;
}

static size_t full_scan(mdx_htab_t *h)
{
    size_t visited = 0, calls = 0;
    uint64_t cursor = 0;
    do {
        cursor = mdx_htab_scan(h, cursor, count_seen, &visited);
        assert_true(++calls <= 1u << 20);
    } while (cursor != 0);
    return visited;
}

/* A table of the N = 3000 items in one of three shapes: 0 stable, 1 growing (a resize to more
 * buckets in progress), 2 shrinking (a resize to fewer in progress, 400 items left). */
static void build_shape(mdx_htab_t *h, item_t *it, size_t N, int mode)
{
    mdx_htab_init(h);
    size_t n = mode == 1 ? 1536 : N; /* 3/4 of 2048: the 1537th insert starts a grow */
    for (size_t i = 0; i < n; i++) {
        mdx_htab_insert(h, &it[i].node);
        it[i].present = 1;
    }
    finish_resize(h);
    if (mode == 1) {
        mdx_htab_insert(h, &it[n].node);
        it[n++].present = 1;
        for (int s = 0; s < 100; s++)
            mdx_htab_rehash_step(h, 1);
        assert_true(h->size[1] > h->size[0]);
    } else if (mode == 2) {
        for (size_t i = 0; i < N - 400; i++) {
            assert_int_equal(mdx_htab_remove(h, &it[i].node), 0);
            it[i].present = 0;
        }
        assert_non_null(h->table[1]);
        assert_true(h->size[1] < h->size[0]);
    }
}

/* Without modifications, a scan returns each element exactly once, whether or not a resize is
 * in progress (growing or shrinking). */
static void test_scan_unmodified_table_returns_each_once(void **state)
{
    (void)state;
    enum { N = 3000 };
    for (int mode = 0; mode < 3; mode++) {
        item_t *it = make_items(N, 0);
        mdx_htab_t h;
        build_shape(&h, it, N, mode);
        assert_int_equal(full_scan(&h), h.count);
        for (size_t i = 0; i < N; i++)
            assert_int_equal(it[i].seen, it[i].present ? 1 : 0);
        mdx_htab_fini(&h);
        free(it);
    }
}

/* Counts what scan_batch emits and counts a budget down, as the snapshot walk does. */
typedef struct {
    size_t visited;
    uint64_t left;
} batch_ctx_t;

static void count_batch(void *data, mdx_hnode_t *node)
{
    batch_ctx_t *b = data;
    count_seen(&b->visited, node);
    if (b->left)
        b->left--;
}

/* mdx_htab_scan_batch walks exactly as repeated mdx_htab_scan calls do: the same cursor after
 * the same number of buckets, each element once on an unmodified table, in the stable,
 * growing and shrinking shapes, for batch sizes below, at and above the read-ahead ring. */
static void test_scan_batch_is_the_scan_walk(void **state)
{
    (void)state;
    enum { N = 3000 };
    static const size_t sizes[] = {1, 3, 8, 16, 17, 100, 5000};
    for (int mode = 0; mode < 3; mode++) {
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            item_t *it = make_items(N, 0);
            mdx_htab_t h;
            build_shape(&h, it, N, mode);
            batch_ctx_t b = {0, UINT64_MAX};
            uint64_t cursor = 0, ref = 0;
            size_t calls = 0, dummy = 0;
            do {
                cursor = mdx_htab_scan_batch(&h, cursor, sizes[k], &b.left, count_batch, &b);
                /* The reference: sizes[k] single-bucket calls from where it stood. */
                for (size_t j = 0; j < sizes[k]; j++) {
                    ref = mdx_htab_scan(&h, ref, count_calls, &dummy);
                    if (ref == 0)
                        break;
                }
                assert_int_equal(cursor, ref);
                assert_true(++calls <= 1u << 20);
            } while (cursor != 0);
            assert_int_equal(b.visited, h.count);
            assert_int_equal(dummy, h.count);
            for (size_t i = 0; i < N; i++)
                assert_int_equal(it[i].seen, it[i].present ? 1 : 0);
            mdx_htab_fini(&h);
            free(it);
        }
    }
}

/* A budget that reaches 0 stops the batch between two buckets; the cursor it returns resumes
 * the walk without skipping or repeating an element. */
static void test_scan_batch_stops_when_the_budget_is_spent(void **state)
{
    (void)state;
    enum { N = 5000, BUDGET = 7 };
    item_t *it = make_items(N, 0);
    mdx_htab_t h;
    mdx_htab_init(&h);
    for (size_t i = 0; i < N; i++) {
        mdx_htab_insert(&h, &it[i].node);
        it[i].present = 1;
    }
    finish_resize(&h);
    batch_ctx_t b = {0, 0};
    uint64_t cursor = 0;
    size_t calls = 0;
    /* A spent budget does nothing. */
    assert_int_equal(mdx_htab_scan_batch(&h, 0, 100, &b.left, count_batch, &b), 0);
    assert_int_equal(b.visited, 0);
    do {
        size_t before = b.visited;
        b.left = BUDGET;
        cursor = mdx_htab_scan_batch(&h, cursor, 1000, &b.left, count_batch, &b);
        /* At least the budget unless the walk ended, and at most one bucket's chain over it. */
        if (cursor != 0)
            assert_true(b.visited - before >= BUDGET);
        assert_true(b.visited - before < BUDGET + 8);
        assert_true(++calls <= N);
    } while (cursor != 0);
    assert_int_equal(b.visited, N);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(it[i].seen, 1);
    /* With no budget at all (NULL), one call walks max_buckets buckets. */
    for (size_t i = 0; i < N; i++)
        it[i].seen = 0;
    b.visited = 0;
    assert_int_equal(mdx_htab_scan_batch(&h, 0, SIZE_MAX, NULL, count_batch, &b), 0);
    assert_int_equal(b.visited, N);
    mdx_htab_fini(&h);
    free(it);
}

/* Stable elements are all returned while other elements are inserted and removed between walk
 * calls (mdx_htab_scan, or mdx_htab_scan_batch over 1 to 37 buckets, whose read-ahead ring
 * restarts whenever the shape changed), making the table grow past 16k buckets and shrink
 * again, several times. */
static void scan_under_churn(int batch, int churn)
{
    enum { S = 500, O = 20000 };
    item_t *stable = make_items(S, 0);
    item_t *other = make_items(O, 1000000);
    mdx_htab_t h;
    mdx_htab_init(&h);
    for (size_t i = 0; i < S; i++) {
        mdx_htab_insert(&h, &stable[i].node);
        stable[i].present = 1;
    }
    finish_resize(&h);
    size_t calls = 0, next = 0, max_size = 0, resizing_calls = 0;
    int growing = 1, shrank_after_max = 0;
    batch_ctx_t b = {0, UINT64_MAX};
    uint64_t cursor = 0;
    do {
        if (batch)
            cursor = mdx_htab_scan_batch(&h, cursor, 1 + calls % 37, &b.left, count_batch, &b);
        else
            cursor = mdx_htab_scan(&h, cursor, count_seen, &b.visited);
        calls++;
        for (int c = 0; c < churn; c++) {
            if (growing) {
                mdx_htab_insert(&h, &other[next].node);
                other[next].present = 1;
                if (++next == O)
                    growing = 0;
            } else {
                assert_int_equal(mdx_htab_remove(&h, &other[--next].node), 0);
                other[next].present = 0;
                if (next == 0)
                    growing = 1;
            }
        }
        size_t size = h.table[1] && h.size[1] > h.size[0] ? h.size[1] : h.size[0];
        if (size > max_size)
            max_size = size;
        else if (size < max_size)
            shrank_after_max = 1;
        resizing_calls += h.table[1] != NULL;
        assert_true(calls < 100000);
    } while (cursor != 0);
    for (size_t i = 0; i < S; i++)
        assert_true(stable[i].seen >= 1);
    assert_true(max_size >= 16384);
    assert_int_equal(shrank_after_max, 1);
    assert_true(resizing_calls > 0);
    print_message("%s: %zu calls, %zu visits, max %zu buckets\n", batch ? "scan_batch" : "scan",
                  calls, b.visited, max_size);
    mdx_htab_fini(&h);
    free(stable);
    free(other);
}

static void test_scan_survives_growth_and_shrinking(void **state)
{
    (void)state;
    scan_under_churn(0, 40);
}

static void test_scan_batch_survives_growth_and_shrinking(void **state)
{
    (void)state;
    scan_under_churn(1, 400);
}

static void test_insert_never_fails_when_growth_allocation_fails(void **state)
{
    (void)state;
#if !MDX_FAULT_INJECTION
    skip();
#endif
    enum { A = 100, B = 5000 };
    item_t *it = make_items(A + B + 1, 0);
    mdx_htab_t h;
    mdx_htab_init(&h);
    for (size_t i = 0; i < A; i++)
        mdx_htab_insert(&h, &it[i].node);
    finish_resize(&h);
    assert_int_equal(h.size[0], 256);

    mdx_alloc_fail_after(0);
    for (size_t i = A; i < A + B; i++)
        mdx_htab_insert(&h, &it[i].node);
    assert_int_equal(mdx_alloc_fail_triggered(), 1);
    assert_int_equal(mdx_htab_count(&h), A + B);
    assert_null(h.table[1]);
    assert_int_equal(h.size[0], 256);
    for (size_t i = 0; i < A + B; i++)
        assert_ptr_equal(find_key(&h, i), &it[i]);
    for (size_t i = 0; i < A + B; i += 2)
        assert_int_equal(mdx_htab_remove(&h, &it[i].node), 0);
    check_structure(&h);
    mdx_alloc_fail_reset();

    /* The next insert retries and jumps straight to a size for the whole count. */
    mdx_htab_insert(&h, &it[A + B].node);
    assert_non_null(h.table[1]);
    assert_int_equal(h.size[1], 4096); /* >= 4/3 * 2551 */
    finish_resize(&h);
    for (size_t i = 0; i <= A + B; i++)
        assert_ptr_equal(find_key(&h, i), i % 2 == 0 && i < A + B ? NULL : &it[i]);
    check_structure(&h);
    mdx_htab_fini(&h);
    free(it);
}

static void test_insert_never_fails_when_first_allocation_fails(void **state)
{
    (void)state;
#if !MDX_FAULT_INJECTION
    skip();
#endif
    enum { N = 500 };
    item_t *it = make_items(N + 1, 0);
    for (size_t i = N - 4; i < N; i++) { /* four duplicates of key 9999 */
        it[i].key = 9999;
        it[i].node.hash = mix64(9999);
    }
    mdx_htab_t h;
    mdx_htab_init(&h);
    mdx_alloc_fail_after(0);
    for (size_t i = 0; i < N; i++) {
        mdx_htab_insert(&h, &it[i].node);
        it[i].present = 1;
    }
    assert_int_equal(mdx_alloc_fail_triggered(), 1);
    assert_null(h.table[0]);
    assert_non_null(h.spill);
    assert_int_equal(mdx_htab_count(&h), N);
    for (size_t i = 0; i < N - 4; i++)
        assert_ptr_equal(find_key(&h, i), &it[i]);
    assert_int_equal(walk(&h, mix64(9999), 9999, NULL), 4);
    for (size_t i = 0; i < N; i++)
        it[i].seen = 0;
    assert_int_equal(full_scan(&h), N);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(it[i].seen, 1);
    for (size_t i = 0; i < 100; i++) {
        assert_int_equal(mdx_htab_remove(&h, &it[i].node), 0);
        it[i].present = 0;
    }
    check_structure(&h);
    mdx_alloc_fail_reset();

    mdx_htab_insert(&h, &it[N].node); /* allocation works again: resize out of the spill */
    assert_null(h.table[0]);
    assert_non_null(h.table[1]);
    assert_int_equal(h.size[1], 1024); /* >= 4/3 * 401 */
    assert_null(find_key(&h, 0));      /* one step moves the spill chain */
    assert_null(h.table[1]);
    assert_null(h.spill);
    assert_int_equal(h.size[0], 1024);
    for (size_t i = 100; i < N - 4; i++)
        assert_ptr_equal(find_key(&h, i), &it[i]);
    assert_ptr_equal(find_key(&h, N), &it[N]);
    check_structure(&h);
    mdx_htab_fini(&h);
    free(it);
}

static void test_shrink_allocation_failure_keeps_table(void **state)
{
    (void)state;
#if !MDX_FAULT_INJECTION
    skip();
#endif
    enum { N = 1000 };
    item_t *it = make_items(N, 0);
    mdx_htab_t h;
    mdx_htab_init(&h);
    for (size_t i = 0; i < N; i++)
        mdx_htab_insert(&h, &it[i].node);
    finish_resize(&h);
    assert_int_equal(h.size[0], 2048);
    mdx_alloc_fail_after(0);
    for (size_t i = 0; i < 990; i++)
        assert_int_equal(mdx_htab_remove(&h, &it[i].node), 0);
    assert_int_equal(mdx_alloc_fail_triggered(), 1);
    assert_null(h.table[1]);
    assert_int_equal(h.size[0], 2048);
    for (size_t i = 990; i < N; i++)
        assert_ptr_equal(find_key(&h, i), &it[i]);
    mdx_alloc_fail_reset();
    assert_int_equal(mdx_htab_remove(&h, &it[990].node), 0);
    assert_non_null(h.table[1]);
    assert_int_equal(h.size[1], 32); /* >= 2 * 9 */
    finish_resize(&h);
    for (size_t i = 991; i < N; i++)
        assert_ptr_equal(find_key(&h, i), &it[i]);
    check_structure(&h);
    mdx_htab_fini(&h);
    free(it);
}

static size_t iterate_marking(const mdx_htab_t *h)
{
    mdx_htab_iter_t iter = {0};
    size_t n = 0;
    mdx_hnode_t *node;
    while ((node = mdx_htab_iter_next(h, &iter)) != NULL) {
        item_of(node)->seen++;
        n++;
    }
    assert_null(mdx_htab_iter_next(h, &iter)); /* stays at the end */
    return n;
}

static void test_iter_visits_each_once(void **state)
{
    (void)state;
    enum { N = 1537 }; /* 3/4 of 2048, plus one */
    item_t *it = make_items(N, 0);
    mdx_htab_t h;
    mdx_htab_init(&h);
    for (size_t i = 0; i < N - 1; i++)
        mdx_htab_insert(&h, &it[i].node);
    finish_resize(&h);
    assert_int_equal(iterate_marking(&h), N - 1);
    for (size_t i = 0; i < N - 1; i++)
        assert_int_equal(it[i].seen, 1);

    mdx_htab_insert(&h, &it[N - 1].node); /* starts 2048 -> 4096 */
    for (int s = 0; s < 300; s++)
        mdx_htab_rehash_step(&h, 1);
    assert_non_null(h.table[1]);
    assert_true(h.used[0] > 0 && h.used[1] > 0);
    assert_int_equal(iterate_marking(&h), N);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(it[i].seen, i < N - 1 ? 2 : 1);
    mdx_htab_fini(&h);
    free(it);
}

/* Teardown: the caller may free each node as it is returned, then call fini. ASan reports a
 * read of a freed node. */
static void test_iter_allows_freeing_returned_nodes(void **state)
{
    (void)state;
    mdx_htab_t h;
    mdx_htab_init(&h);
    for (uint64_t k = 0; k < 500; k++) {
        item_t *it = calloc(1, sizeof(*it));
        assert_non_null(it);
        it->key = k;
        it->node.hash = k % 7 == 0 ? 3 : mix64(k); /* some long chains */
        mdx_htab_insert(&h, &it->node);
    }
    assert_non_null(h.table[1]); /* 512 -> 1024 in progress */
    mdx_htab_iter_t iter = {0};
    size_t n = 0;
    mdx_hnode_t *node;
    while ((node = mdx_htab_iter_next(&h, &iter)) != NULL) {
        free(item_of(node));
        n++;
    }
    assert_int_equal(n, 500);
    mdx_htab_fini(&h);
    assert_null(h.table[0]);
    assert_int_equal(mdx_htab_count(&h), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_table),
        cmocka_unit_test(test_insert_find_remove),
        cmocka_unit_test(test_first_insert_allocates_four_buckets_and_fourth_grows),
        cmocka_unit_test(test_grow_bytes_predicts_the_next_insert),
        cmocka_unit_test(test_resize_thresholds),
        cmocka_unit_test(test_duplicates_find_next_returns_each_once),
        cmocka_unit_test(test_find_next_across_tables_and_rehash_steps),
        cmocka_unit_test(test_replace_swaps_node_in_place),
        cmocka_unit_test(test_rehash_step_reports_remaining_work),
        cmocka_unit_test(test_resize_work_per_operation_is_bounded),
        cmocka_unit_test(test_random_ops_match_reference),
        cmocka_unit_test(test_scan_empty_table_returns_zero),
        cmocka_unit_test(test_scan_unmodified_table_returns_each_once),
        cmocka_unit_test(test_scan_survives_growth_and_shrinking),
        cmocka_unit_test(test_scan_batch_is_the_scan_walk),
        cmocka_unit_test(test_scan_batch_stops_when_the_budget_is_spent),
        cmocka_unit_test(test_scan_batch_survives_growth_and_shrinking),
        cmocka_unit_test(test_insert_never_fails_when_growth_allocation_fails),
        cmocka_unit_test(test_insert_never_fails_when_first_allocation_fails),
        cmocka_unit_test(test_shrink_allocation_failure_keeps_table),
        cmocka_unit_test(test_iter_visits_each_once),
        cmocka_unit_test(test_iter_allows_freeing_returned_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
