/*
 * Intrusive chained hash table with incremental resize (see htab.h).
 *
 * Invariants: bucket counts are powers of two and a node sits in bucket hash & (size - 1) of
 * exactly one table. While resizing (table[1] != NULL) the buckets of table[0] below rehash_idx
 * are empty, new nodes go to table[1], and find/insert/remove each move one non-empty bucket of
 * table[0] (visiting at most EMPTY_VISITS empty ones), so a resize of an S-bucket table ends
 * within S such calls. When table[0] is NULL its single virtual bucket is h->spill: that is
 * where elements live if not even the first bucket array could be allocated.
 *
 * A moved bucket keeps the relative order of its nodes and lands in front of what table[1]
 * already holds. find visits table[0]'s chain before table[1]'s, so this keeps the sequence of
 * matches for a hash stable across moves, which is what lets find_next resume after rehash
 * steps taken by other calls.
 */
#include "index/htab.h"

#include <string.h>

#include "common/alloc.h"
#include "common/assert.h"
#include "memdex/error.h"

/* Smallest bucket array; the first insert allocates this many. */
#define MIN_BUCKETS 4
/* A rehash step gives up after this many empty buckets per bucket it was asked to move. */
#define EMPTY_VISITS 10
/* Shrink when count < size / SHRINK_RATIO, to a load factor of about 1/2. */
#define SHRINK_RATIO 8

static size_t pow2_at_least(size_t n)
{
    size_t s = MIN_BUCKETS;
    while (s < n && s <= SIZE_MAX / 2)
        s <<= 1;
    return s;
}

/* Elements a table of `size` buckets holds before it grows: a load factor of 3/4. A lookup
 * that hits visits 1 + load/2 nodes on average, each a cache miss in a different record, so
 * growing at 3/4 instead of 1 saves about a quarter of a miss per lookup (1.24 nodes instead
 * of 1.48 at 1M elements). The price: the bucket array costs 10.7 to 21.3 bytes per element
 * (8 to 16 at load 1). */
static inline size_t max_load(size_t size)
{
    return size - size / 4;
}

/* Bucket count for n elements: the smallest power of two whose max_load is at least n. */
static size_t size_for(size_t n)
{
    return pow2_at_least(n + (n + 2) / 3);
}

static inline size_t bucket_of(uint64_t hash, size_t size)
{
    return (size_t)(hash & (uint64_t)(size - 1));
}

/* Bucket count of table[0], counting the spill chain as one bucket. */
static inline size_t size0(const mdx_htab_t *h)
{
    return h->table[0] ? h->size[0] : 1;
}

static inline mdx_hnode_t **buckets0(mdx_htab_t *h)
{
    return h->table[0] ? h->table[0] : &h->spill;
}

static inline mdx_hnode_t **head0(mdx_htab_t *h, uint64_t hash)
{
    return h->table[0] ? &h->table[0][bucket_of(hash, h->size[0])] : &h->spill;
}

static inline mdx_hnode_t *chain_find(mdx_hnode_t *n, uint64_t hash, mdx_htab_eq_cb eq,
                                      const void *key)
{
    for (; n; n = n->next)
        if (n->hash == hash && eq(n, key))
            return n;
    return NULL;
}

/* The link that points at node, or NULL; *t receives the table it is in. */
static mdx_hnode_t **link_of(mdx_htab_t *h, const mdx_hnode_t *node, int *t)
{
    mdx_hnode_t **pp;
    for (pp = head0(h, node->hash); *pp; pp = &(*pp)->next)
        if (*pp == node) {
            *t = 0;
            return pp;
        }
    if (!h->table[1])
        return NULL;
    for (pp = &h->table[1][bucket_of(node->hash, h->size[1])]; *pp; pp = &(*pp)->next)
        if (*pp == node) {
            *t = 1;
            return pp;
        }
    return NULL;
}

void mdx_htab_init(mdx_htab_t *h)
{
    memset(h, 0, sizeof(*h));
}

void mdx_htab_fini(mdx_htab_t *h)
{
    mdx_free(h->table[0]);
    mdx_free(h->table[1]);
    memset(h, 0, sizeof(*h));
}

/* Starts a resize to `size` buckets. An allocation failure is not an error: the table keeps
 * its current array and the next insert or remove tries again. */
static void resize(mdx_htab_t *h, size_t size)
{
    MDX_ASSERT(!h->table[1]);
    mdx_hnode_t **t = mdx_calloc(size, sizeof(*t));
    if (!t)
        return;
    if (h->used[0] == 0) {
        /* Nothing to move (first allocation, or shrinking an empty table). */
        MDX_ASSERT(!h->spill);
        mdx_free(h->table[0]);
        h->table[0] = t;
        h->size[0] = size;
        return;
    }
    h->table[1] = t;
    h->size[1] = size;
    h->used[1] = 0;
    h->rehash_idx = 0;
}

/* Moves one chain of table[0] into table[1]. The chain is reversed first so that prepending
 * restores the original order within each destination bucket (see the file comment). */
static void move_chain(mdx_htab_t *h, mdx_hnode_t **src)
{
    mdx_hnode_t *rev = NULL, *n = *src, *next;
    *src = NULL;
    for (; n; n = next) {
        next = n->next;
        n->next = rev;
        rev = n;
    }
    mdx_hnode_t **t1 = h->table[1];
    size_t size1 = h->size[1];
    for (n = rev; n; n = next) {
        next = n->next;
        mdx_hnode_t **b = &t1[bucket_of(n->hash, size1)];
        n->next = *b;
        *b = n;
        h->used[0]--;
        h->used[1]++;
    }
}

int mdx_htab_rehash_step(mdx_htab_t *h, size_t n)
{
    if (!h->table[1])
        return 0;
    size_t empty = n > SIZE_MAX / EMPTY_VISITS ? SIZE_MAX : n * EMPTY_VISITS;
    mdx_hnode_t **t0 = buckets0(h);
    size_t s0 = size0(h);
    for (; n > 0 && h->used[0] != 0; n--) {
        while (!t0[h->rehash_idx]) {
            h->rehash_idx++;
            MDX_ASSERT(h->rehash_idx < s0);
            if (--empty == 0)
                return 1;
        }
        move_chain(h, &t0[h->rehash_idx]);
        h->rehash_idx++;
    }
    if (h->used[0] != 0)
        return 1;
    MDX_ASSERT(!h->spill);
    mdx_free(h->table[0]);
    h->table[0] = h->table[1];
    h->size[0] = h->size[1];
    h->used[0] = h->used[1];
    h->table[1] = NULL;
    h->size[1] = 0;
    h->used[1] = 0;
    h->rehash_idx = 0;
    return 0;
}

static mdx_hnode_t *find_resizing(mdx_htab_t *h, uint64_t hash, mdx_htab_eq_cb eq, const void *key)
{
    mdx_htab_rehash_step(h, 1);
    mdx_hnode_t *n = chain_find(*head0(h, hash), hash, eq, key);
    if (n || !h->table[1])
        return n;
    return chain_find(h->table[1][bucket_of(hash, h->size[1])], hash, eq, key);
}

mdx_hnode_t *mdx_htab_find(mdx_htab_t *h, uint64_t hash, mdx_htab_eq_cb eq, const void *key)
{
    if (MDX_UNLIKELY(h->table[1] != NULL))
        return find_resizing(h, hash, eq, key);
    if (MDX_UNLIKELY(h->table[0] == NULL))
        return chain_find(h->spill, hash, eq, key);
    return chain_find(h->table[0][bucket_of(hash, h->size[0])], hash, eq, key);
}

/*
 * The walk that find starts is: the matches in prev's table[0] chain, then (while resizing) the
 * matches in the table[1] chain for the hash. find_next continues after prev in its own chain;
 * at the end of that chain it goes on to table[1] only if prev is still in table[0] (checked by
 * pointer; a moved bucket of table[0] is empty, so a node that was moved is found in table[1]
 * and its chain already holds the rest of the walk). Because moves keep the order (see
 * move_chain), rehash steps taken by other calls between find_next calls neither skip nor
 * repeat a match; nodes inserted meanwhile may or may not be returned. prev must still be in
 * the table.
 */
mdx_hnode_t *mdx_htab_find_next(mdx_htab_t *h, mdx_hnode_t *prev, mdx_htab_eq_cb eq,
                                const void *key)
{
    uint64_t hash = prev->hash;
    mdx_hnode_t *n = chain_find(prev->next, hash, eq, key);
    if (n || !h->table[1])
        return n;
    for (n = *head0(h, hash); n && n != prev; n = n->next)
        ;
    if (!n)
        return NULL; /* prev is in table[1]: its chain was the end of the walk */
    return chain_find(h->table[1][bucket_of(hash, h->size[1])], hash, eq, key);
}

void mdx_htab_insert(mdx_htab_t *h, mdx_hnode_t *node)
{
    if (h->table[1])
        mdx_htab_rehash_step(h, 1);
    /* size[0] is 0 before the first allocation and in spill mode: both try to allocate. */
    if (!h->table[1] && h->count >= max_load(h->size[0]))
        resize(h, size_for(h->count + 1));
#if MDX_DEBUG
    int dummy;
    MDX_VERIFY(link_of(h, node, &dummy) == NULL);
#endif
    int t = h->table[1] != NULL;
    mdx_hnode_t **b = t ? &h->table[1][bucket_of(node->hash, h->size[1])] : head0(h, node->hash);
    node->next = *b;
    *b = node;
    h->used[t]++;
    h->count++;
}

int mdx_htab_remove(mdx_htab_t *h, mdx_hnode_t *node)
{
    if (h->table[1])
        mdx_htab_rehash_step(h, 1);
    int t;
    mdx_hnode_t **pp = link_of(h, node, &t);
    if (!pp)
        return MDX_ENOTFOUND;
    *pp = node->next;
    node->next = NULL;
    h->used[t]--;
    h->count--;
    if (h->table[1] && h->used[0] == 0)
        mdx_htab_rehash_step(h, 0); /* nothing left to move: finish now */
    if (!h->table[1] && h->table[0] && h->size[0] > MIN_BUCKETS &&
        h->count < h->size[0] / SHRINK_RATIO)
        resize(h, pow2_at_least(h->count * 2));
    return 0;
}

int mdx_htab_replace(mdx_htab_t *h, mdx_hnode_t *old_node, mdx_hnode_t *new_node)
{
    /* A different hash would leave new_node in the wrong bucket, unreachable by find. */
    MDX_VERIFY(old_node->hash == new_node->hash);
    int t;
    mdx_hnode_t **pp = link_of(h, old_node, &t);
    if (!pp)
        return MDX_ENOTFOUND;
    if (old_node != new_node) {
        new_node->next = old_node->next;
        *pp = new_node;
        old_node->next = NULL;
    }
    return 0;
}

static uint64_t rev64(uint64_t v)
{
    v = ((v >> 1) & 0x5555555555555555ULL) | ((v & 0x5555555555555555ULL) << 1);
    v = ((v >> 2) & 0x3333333333333333ULL) | ((v & 0x3333333333333333ULL) << 2);
    v = ((v >> 4) & 0x0F0F0F0F0F0F0F0FULL) | ((v & 0x0F0F0F0F0F0F0F0FULL) << 4);
    v = ((v >> 8) & 0x00FF00FF00FF00FFULL) | ((v & 0x00FF00FF00FF00FFULL) << 8);
    v = ((v >> 16) & 0x0000FFFF0000FFFFULL) | ((v & 0x0000FFFF0000FFFFULL) << 16);
    return (v >> 32) | (v << 32);
}

static void emit_chain(mdx_hnode_t *n, mdx_htab_scan_cb fn, void *data)
{
    mdx_hnode_t *next;
    for (; n; n = next) {
        next = n->next;
        fn(data, n);
    }
}

/*
 * Redis' dictScan. The cursor counts in bit-reversed order, so the buckets it has covered in a
 * table of size s are exactly those covered, as expansions or as folds, in a table of size 2s or
 * s/2: a resize between calls skips nothing. While resizing, a call covers the cursor's bucket
 * in the smaller table and all its expansions in the larger one, so every element whose hash
 * agrees with the cursor in the smaller table's bits is visited wherever it currently lives.
 */
uint64_t mdx_htab_scan(mdx_htab_t *h, uint64_t cursor, mdx_htab_scan_cb fn, void *data)
{
    if (h->count == 0)
        return 0;
    uint64_t v = cursor;
    if (!h->table[1]) {
        uint64_t m0 = (uint64_t)size0(h) - 1;
        emit_chain(buckets0(h)[v & m0], fn, data);
        v |= ~m0;
        v = rev64(v);
        v++;
        return rev64(v);
    }
    mdx_hnode_t **small = buckets0(h), **big = h->table[1];
    uint64_t m0 = (uint64_t)size0(h) - 1, m1 = (uint64_t)h->size[1] - 1;
    if (m0 > m1) {
        mdx_hnode_t **tt = small;
        small = big;
        big = tt;
        uint64_t tm = m0;
        m0 = m1;
        m1 = tm;
    }
    emit_chain(small[v & m0], fn, data);
    do {
        emit_chain(big[v & m1], fn, data);
        v |= ~m1;
        v = rev64(v);
        v++;
        v = rev64(v);
    } while (v & (m0 ^ m1));
    return v;
}

/* Read-ahead of mdx_htab_scan_batch: the slots of a cursor are prefetched SCAN_AHEAD cursors
 * ahead, and the elements they point to SCAN_NODE_AHEAD cursors ahead, once the slots have had
 * time to arrive. Elements are intrusive (the node opens a record of a few cache lines), so
 * the first SCAN_NODE_LINES lines of each are fetched; a prefetch past the end of a smaller
 * element is harmless. Distances chosen for a miss of ~600 ns against ~100 ns of work per
 * element. */
#define SCAN_AHEAD      16 /* a power of two: the ring of cursors below */
#define SCAN_NODE_AHEAD 8
#define SCAN_NODE_LINES 3
#define SCAN_MAX_FANOUT 4 /* slots of the larger table prefetched per cursor while resizing */

/* The cursor after v in a table whose mask is `mask`. */
static inline uint64_t scan_next(uint64_t v, uint64_t mask)
{
    v |= ~mask;
    v = rev64(v);
    v++;
    return rev64(v);
}

/* The tables a scan call walks: the smaller one first, then the larger (NULL when not
 * resizing), as in mdx_htab_scan. */
typedef struct {
    mdx_hnode_t **small, **big;
    uint64_t m_small, m_big;
    size_t fanout; /* slots of the larger table per slot of the smaller one, prefetched */
} scan_shape_t;

static void scan_shape(mdx_htab_t *h, scan_shape_t *sh)
{
    sh->small = buckets0(h);
    sh->m_small = (uint64_t)size0(h) - 1;
    sh->big = NULL;
    sh->m_big = 0;
    sh->fanout = 0;
    if (!h->table[1])
        return;
    sh->big = h->table[1];
    sh->m_big = (uint64_t)h->size[1] - 1;
    if (sh->m_small > sh->m_big) {
        mdx_hnode_t **t = sh->small;
        uint64_t m = sh->m_small;
        sh->small = sh->big;
        sh->m_small = sh->m_big;
        sh->big = t;
        sh->m_big = m;
    }
    size_t ratio = (size_t)((sh->m_big + 1) / (sh->m_small + 1));
    sh->fanout = ratio < SCAN_MAX_FANOUT ? ratio : SCAN_MAX_FANOUT;
}

static inline void prefetch_node(const mdx_hnode_t *n)
{
    if (!n)
        return;
    __builtin_prefetch(n, 1, 3); /* the caller may write the element's first line */
    for (int i = 1; i < SCAN_NODE_LINES; i++)
        __builtin_prefetch((const char *)n + 64 * i, 0, 3);
}

/* Slots of the larger table that cursor v's slot of the smaller one expands to: v's low bits,
 * then each value of the bits the larger mask adds. */
static inline uint64_t big_slot(const scan_shape_t *sh, uint64_t v, size_t j)
{
    return (v & sh->m_small) + (uint64_t)j * (sh->m_small + 1);
}

static void prefetch_slots(const scan_shape_t *sh, uint64_t v)
{
    __builtin_prefetch(&sh->small[v & sh->m_small], 0, 3);
    for (size_t j = 0; j < sh->fanout; j++)
        __builtin_prefetch(&sh->big[big_slot(sh, v, j)], 0, 3);
}

static void prefetch_nodes(const scan_shape_t *sh, uint64_t v)
{
    prefetch_node(sh->small[v & sh->m_small]);
    for (size_t j = 0; j < sh->fanout; j++)
        prefetch_node(sh->big[big_slot(sh, v, j)]);
}

/*
 * The walk itself is mdx_htab_scan's, call by call, so its guarantee holds unchanged. Beside
 * it runs a prediction: ring[] holds the cursors the next calls are expected to take (the
 * smaller table's order, which is exactly what mdx_htab_scan returns once a cursor has no bits
 * above the smaller mask), and their slots and elements are prefetched ahead. fn does not
 * change the table, so the shape holds for the whole call; should a returned cursor differ
 * from the prediction, the ring restarts from it.
 */
uint64_t mdx_htab_scan_batch(mdx_htab_t *h, uint64_t cursor, size_t max_buckets,
                             const uint64_t *left, mdx_htab_scan_cb fn, void *data)
{
    if (h->count == 0)
        return 0;
    scan_shape_t sh;
    scan_shape(h, &sh);
    uint64_t ring[SCAN_AHEAD], next = 0;
    size_t head = 0, n = 0;
    int more = 0;
    while (max_buckets > 0 && (!left || *left)) {
        if (n == 0 || ring[head] != cursor) {
            /* (Re)fill: ring[head .. head + n) are the next cursors (no more than this call
             * may emit), next the one after. */
            head = n = 0;
            next = cursor;
            more = 1;
            while (n < SCAN_AHEAD && more && n < max_buckets) {
                ring[n++] = next;
                prefetch_slots(&sh, next);
                next = scan_next(next, sh.m_small);
                more = next != 0;
            }
            for (size_t i = 0; i < n && i < SCAN_NODE_AHEAD; i++)
                prefetch_nodes(&sh, ring[i]);
        }
        /* Take this call's cursor off the ring; what is left follows it. */
        head = (head + 1) & (SCAN_AHEAD - 1);
        n--;
        max_buckets--;
        if (n >= SCAN_NODE_AHEAD)
            prefetch_nodes(&sh, ring[(head + SCAN_NODE_AHEAD - 1) & (SCAN_AHEAD - 1)]);
        if (more && n < max_buckets) {
            ring[(head + n++) & (SCAN_AHEAD - 1)] = next;
            prefetch_slots(&sh, next);
            next = scan_next(next, sh.m_small);
            more = next != 0;
        }
        if ((cursor = mdx_htab_scan(h, cursor, fn, data)) == 0)
            break;
    }
    return cursor;
}

mdx_hnode_t *mdx_htab_iter_next(const mdx_htab_t *h, mdx_htab_iter_t *it)
{
    for (;;) {
        mdx_hnode_t *n = it->next;
        if (n) {
            /* Read ahead so the caller may free n during teardown. */
            it->next = n->next;
            return n;
        }
        if (it->t == 0) {
            size_t s = h->table[0] ? h->size[0] : 1;
            if (it->bucket < s) {
                it->next = h->table[0] ? h->table[0][it->bucket] : h->spill;
                it->bucket++;
                continue;
            }
            it->t = 1;
            it->bucket = 0;
        }
        if (it->t == 1 && h->table[1] && it->bucket < h->size[1]) {
            it->next = h->table[1][it->bucket++];
            continue;
        }
        it->t = 2;
        return NULL;
    }
}

size_t mdx_htab_grow_bytes(const mdx_htab_t *h)
{
    /* The same rule as mdx_htab_insert. */
    if (h->table[1] || h->count < max_load(h->size[0]))
        return 0;
    return size_for(h->count + 1) * sizeof(mdx_hnode_t *);
}
