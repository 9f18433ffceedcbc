/*
 * Skiplist with spans, after Redis' sorted sets (t_zset.c), ordered by (value, primary key).
 *
 * Ranks are 1-based inside this file (the header sentinel has rank 0) and 0-based in the API.
 * Span invariant: for a link from a node of rank r to a node of rank s, span = s - r; for a
 * NULL link at a level below sl->level, span = length - r (the distance to the last node, as in
 * Redis; such spans only feed other NULL spans but are kept exact so verify() can check them).
 * Header levels at or above sl->level have NULL links and meaningless spans.
 *
 * Nodes do not store their level: a node is allocated with exactly the levels it uses. Insert
 * allocates the node before it touches any link (or the RNG state), so ENOMEM leaves the list
 * exactly as it was. Build appends sorted items at the end of an empty list, which needs no
 * search: each level's last node is known, and a link's span is the difference of ranks.
 */
#include "index/skiplist.h"

#include <string.h>

#include "common/alloc.h"
#include "common/assert.h"
#include "memdex/error.h"

/* Fixed so that level choices, and therefore tests, are reproducible. */
#define SL_SEED 0x9e3779b97f4a7c15ULL

static inline size_t node_size(int level)
{
    return sizeof(mdx_slnode_t) + (size_t)level * sizeof(((mdx_slnode_t *)0)->level[0]);
}

/* Same-type INT and STR comparisons inline: this runs O(log n) times per operation. */
static inline int vcmp(const mdx_value_t *a, const mdx_value_t *b)
{
    if (a->type == b->type && a->type == MDX_V_INT)
        return (a->v.i > b->v.i) - (a->v.i < b->v.i);
    return mdx_value_cmp(a, b);
}

/* Position of node n against (value, pk); pk NULL compares values only. The primary key is
 * fetched only on a value tie. */
static inline int node_cmp(const mdx_skiplist_t *sl, const mdx_slnode_t *n,
                           const mdx_value_t *value, const mdx_value_t *pk)
{
    int c = vcmp(&n->value, value);
    if (c || !pk)
        return c;
    mdx_value_t npk;
    sl->pk(n->rec, &npk);
    return vcmp(&npk, pk);
}

/* xorshift64; two bits per level give p = 1/4. Returns the new level and the next state. */
static int random_level(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    int level = 1;
    while (level < MDX_SKIPLIST_MAXLEVEL && (x & 3) == 0) {
        level++;
        x >>= 2;
    }
    return level;
}

int mdx_skiplist_init(mdx_skiplist_t *sl, mdx_skiplist_pk_cb pk)
{
    memset(sl, 0, sizeof *sl);
    mdx_slnode_t *h = mdx_malloc(node_size(MDX_SKIPLIST_MAXLEVEL));
    if (!h)
        return MDX_ENOMEM;
    memset(h, 0, node_size(MDX_SKIPLIST_MAXLEVEL));
    h->value.type = MDX_V_NIL;
    sl->header = h;
    sl->tail = NULL;
    sl->length = 0;
    sl->level = 1;
    sl->rng = SL_SEED;
    sl->pk = pk;
    return 0;
}

void mdx_skiplist_fini(mdx_skiplist_t *sl)
{
    if (!sl->header)
        return;
    mdx_slnode_t *x = sl->header->level[0].forward;
    while (x) {
        mdx_slnode_t *next = x->level[0].forward;
        mdx_free(x);
        x = next;
    }
    mdx_free(sl->header);
    memset(sl, 0, sizeof *sl);
}

int mdx_skiplist_insert(mdx_skiplist_t *sl, const mdx_value_t *value, void *rec, mdx_slnode_t **out)
{
    mdx_slnode_t *update[MDX_SKIPLIST_MAXLEVEL];
    size_t rank[MDX_SKIPLIST_MAXLEVEL];
    mdx_value_t pk;
    sl->pk(rec, &pk);

    mdx_slnode_t *x = sl->header;
    for (int i = sl->level - 1; i >= 0; i--) {
        rank[i] = i == sl->level - 1 ? 0 : rank[i + 1];
        while (x->level[i].forward && node_cmp(sl, x->level[i].forward, value, &pk) < 0) {
            rank[i] += x->level[i].span;
            x = x->level[i].forward;
        }
        update[i] = x;
    }
    MDX_ASSERT(!x->level[0].forward || node_cmp(sl, x->level[0].forward, value, &pk) != 0);

    uint64_t rng = sl->rng;
    int level = random_level(&rng);
    mdx_slnode_t *n = mdx_malloc(node_size(level));
    if (!n)
        return MDX_ENOMEM;
    /* From here on nothing can fail. */
    sl->rng = rng;
    n->value = *value;
    n->rec = rec;

    if (level > sl->level) {
        for (int i = sl->level; i < level; i++) {
            rank[i] = 0;
            update[i] = sl->header;
            update[i]->level[i].span = sl->length;
        }
        sl->level = level;
    }
    for (int i = 0; i < level; i++) {
        n->level[i].forward = update[i]->level[i].forward;
        update[i]->level[i].forward = n;
        n->level[i].span = update[i]->level[i].span - (rank[0] - rank[i]);
        update[i]->level[i].span = (rank[0] - rank[i]) + 1;
    }
    for (int i = level; i < sl->level; i++)
        update[i]->level[i].span++;

    n->backward = update[0] == sl->header ? NULL : update[0];
    if (n->level[0].forward)
        n->level[0].forward->backward = n;
    else
        sl->tail = n;
    sl->length++;
    if (out)
        *out = n;
    return 0;
}

int mdx_skiplist_build(mdx_skiplist_t *sl, const mdx_skiplist_item_t *items, size_t n)
{
    MDX_ASSERT(sl->length == 0);
    /* last[i]: the node whose level-i link is still open (the header at first), at 1-based
     * rank last_rank[i]. Appending the node of rank r closes the open links of its levels with
     * span r - last_rank[i], which is what insert computes for a node that lands at the end. */
    mdx_slnode_t *last[MDX_SKIPLIST_MAXLEVEL];
    size_t last_rank[MDX_SKIPLIST_MAXLEVEL];
    for (int i = 0; i < MDX_SKIPLIST_MAXLEVEL; i++) {
        last[i] = sl->header;
        last_rank[i] = 0;
    }
    uint64_t rng = sl->rng;
    int top = 1;
    mdx_slnode_t *prev = NULL;
    for (size_t k = 0; k < n; k++) {
#if MDX_DEBUG
        if (k) {
            mdx_value_t pk;
            sl->pk(items[k].rec, &pk);
            MDX_ASSERT(node_cmp(sl, prev, &items[k].value, &pk) < 0);
        }
#endif
        int level = random_level(&rng);
        mdx_slnode_t *x = mdx_malloc(node_size(level));
        if (!x) {
            /* Undo through the backward links (the last node's forward links are not set
             * yet), and reopen the header's levels as an empty list has them. */
            while (prev) {
                mdx_slnode_t *b = prev->backward;
                mdx_free(prev);
                prev = b;
            }
            for (int i = 0; i < top; i++) {
                sl->header->level[i].forward = NULL;
                sl->header->level[i].span = 0;
            }
            return MDX_ENOMEM;
        }
        x->value = items[k].value;
        x->rec = items[k].rec;
        x->backward = prev;
        size_t rank = k + 1;
        for (int i = 0; i < level; i++) {
            last[i]->level[i].forward = x;
            last[i]->level[i].span = rank - last_rank[i];
            last[i] = x;
            last_rank[i] = rank;
        }
        if (level > top)
            top = level;
        prev = x;
    }
    /* Close every level in use: NULL links carry the distance to the last node. */
    for (int i = 0; i < top; i++) {
        last[i]->level[i].forward = NULL;
        last[i]->level[i].span = n - last_rank[i];
    }
    sl->rng = rng;
    sl->level = top;
    sl->length = n;
    sl->tail = prev;
    return 0;
}

int mdx_skiplist_delete(mdx_skiplist_t *sl, const mdx_value_t *value, const void *rec)
{
    mdx_slnode_t *update[MDX_SKIPLIST_MAXLEVEL];
    mdx_value_t pk;
    sl->pk(rec, &pk);

    mdx_slnode_t *x = sl->header;
    for (int i = sl->level - 1; i >= 0; i--) {
        while (x->level[i].forward && node_cmp(sl, x->level[i].forward, value, &pk) < 0)
            x = x->level[i].forward;
        update[i] = x;
    }
    x = x->level[0].forward;
    if (!x || node_cmp(sl, x, value, &pk) != 0)
        return MDX_ENOTFOUND;

    for (int i = 0; i < sl->level; i++) {
        if (update[i]->level[i].forward == x) {
            update[i]->level[i].span += x->level[i].span - 1;
            update[i]->level[i].forward = x->level[i].forward;
        } else {
            update[i]->level[i].span--;
        }
    }
    if (x->level[0].forward)
        x->level[0].forward->backward = x->backward;
    else
        sl->tail = x->backward;
    while (sl->level > 1 && !sl->header->level[sl->level - 1].forward)
        sl->level--;
    sl->length--;
    mdx_free(x);
    return 0;
}

mdx_slnode_t *mdx_skiplist_find(const mdx_skiplist_t *sl, const mdx_value_t *value, const void *rec)
{
    mdx_value_t pk;
    sl->pk(rec, &pk);
    mdx_slnode_t *x = sl->header;
    for (int i = sl->level - 1; i >= 0; i--) {
        while (x->level[i].forward && node_cmp(sl, x->level[i].forward, value, &pk) < 0)
            x = x->level[i].forward;
    }
    x = x->level[0].forward;
    return x && node_cmp(sl, x, value, &pk) == 0 ? x : NULL;
}

size_t mdx_skiplist_count_before(const mdx_skiplist_t *sl, const mdx_value_t *value,
                                 const mdx_value_t *pk, int inclusive)
{
    /* Advance while the next node is before the bound: cmp < 0, or <= 0 when inclusive. */
    int limit = inclusive ? 1 : 0;
    size_t rank = 0;
    const mdx_slnode_t *x = sl->header;
    for (int i = sl->level - 1; i >= 0; i--) {
        while (x->level[i].forward && node_cmp(sl, x->level[i].forward, value, pk) < limit) {
            rank += x->level[i].span;
            x = x->level[i].forward;
        }
    }
    return rank;
}

void mdx_skiplist_ranks(const mdx_skiplist_t *sl, const mdx_value_t *lo, const mdx_value_t *lo_pk,
                        int lo_incl, const mdx_value_t *hi, const mdx_value_t *hi_pk, int hi_incl,
                        size_t *lo_rank, size_t *hi_rank, mdx_slnode_t **lo_node)
{
    int lo_limit = lo_incl ? 1 : 0, hi_limit = hi_incl ? 1 : 0;
    size_t rx = 0, ry = 0;
    const mdx_slnode_t *x = sl->header, *y = sl->header;
    for (int i = sl->level - 1; i >= 0; i--) {
        if (lo) {
            while (x->level[i].forward && node_cmp(sl, x->level[i].forward, lo, lo_pk) < lo_limit) {
                rx += x->level[i].span;
                x = x->level[i].forward;
            }
        }
        if (hi) {
            /* x has a link at level i; when it is before hi it is a valid start for y. */
            if (rx > ry && node_cmp(sl, x, hi, hi_pk) < hi_limit) {
                y = x;
                ry = rx;
            }
            while (y->level[i].forward && node_cmp(sl, y->level[i].forward, hi, hi_pk) < hi_limit) {
                ry += y->level[i].span;
                y = y->level[i].forward;
            }
        }
    }
    *lo_rank = rx;
    *hi_rank = hi ? ry : sl->length;
    if (lo_node)
        *lo_node = x->level[0].forward;
}

mdx_slnode_t *mdx_skiplist_at(const mdx_skiplist_t *sl, size_t r)
{
    if (r >= sl->length)
        return NULL;
    size_t target = r + 1, traversed = 0;
    mdx_slnode_t *x = sl->header;
    for (int i = sl->level - 1; i >= 0; i--) {
        while (x->level[i].forward && traversed + x->level[i].span <= target) {
            traversed += x->level[i].span;
            x = x->level[i].forward;
        }
        if (traversed == target)
            return x;
    }
    return NULL;
}

int mdx_skiplist_verify(const mdx_skiplist_t *sl)
{
    const mdx_slnode_t *h = sl->header;
    if (!h || sl->level < 1 || sl->level > MDX_SKIPLIST_MAXLEVEL)
        return -1;
    for (int i = sl->level; i < MDX_SKIPLIST_MAXLEVEL; i++)
        if (h->level[i].forward)
            return -1;
    if (sl->level > 1 && !h->level[sl->level - 1].forward)
        return -1;

    /* Level 0: order, backward links, tail, length. */
    size_t n = 0;
    const mdx_slnode_t *prev = NULL;
    for (const mdx_slnode_t *x = h->level[0].forward; x; x = x->level[0].forward) {
        if (x->backward != prev)
            return -1;
        if (prev) {
            mdx_value_t pk;
            sl->pk(x->rec, &pk);
            if (node_cmp(sl, prev, &x->value, &pk) >= 0)
                return -1;
        }
        prev = x;
        if (++n > sl->length) /* also stops on a cycle */
            return -1;
    }
    if (n != sl->length || sl->tail != prev)
        return -1;

    /* Every level: each link's span equals the level-0 steps it covers, and the level's
     * nodes are a subsequence of the level below (so a search can always descend). */
    for (int i = 0; i < sl->level; i++) {
        const mdx_slnode_t *x = h, *walk0 = h, *below = h;
        size_t r = 0;
        for (;;) {
            const mdx_slnode_t *next = x->level[i].forward;
            if (!next) {
                if (x->level[i].span != sl->length - r)
                    return -1;
                break;
            }
            size_t steps = 0;
            while (walk0 && walk0 != next) {
                walk0 = walk0->level[0].forward;
                steps++;
            }
            if (!walk0 || steps != x->level[i].span)
                return -1;
            if (i > 0) {
                while (below && below != next)
                    below = below->level[i - 1].forward;
                if (!below)
                    return -1;
            }
            r += steps;
            x = next;
        }
    }
    return 0;
}
