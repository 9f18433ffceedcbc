/*
 * An intrusive chained hash table with incremental resize.
 *
 * Callers embed an mdx_hnode_t in their own objects and set node->hash (XXH3 of the key)
 * before inserting; the table never allocates per element and never owns the elements. The
 * bucket array is a power of two and grows when an insert would take the load past 3/4. Growing or
 * shrinking allocates a second array and moves a few buckets per operation (Redis' dict does the
 * same), so no single call rehashes the whole table. A failed allocation of the new array is not an
 * error: the table keeps working at a higher load factor and tries again later, so insert never
 * fails.
 *
 * Scanning uses a reverse-binary cursor: a full scan that starts at cursor 0 and continues until
 * the returned cursor is 0 sees every element that was in the table for the whole scan at least
 * once, even when the table grows or shrinks between calls; an element may be seen more than
 * once when the table shrinks mid-scan. Elements inserted or removed during the scan may or may
 * not be seen.
 *
 * Not thread-safe: a table belongs to one thread.
 */
#ifndef MDX_INDEX_HTAB_H
#define MDX_INDEX_HTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct mdx_hnode {
    struct mdx_hnode *next;
    uint64_t hash;
} mdx_hnode_t;

/** Returns nonzero when node's key equals key. */
typedef int (*mdx_htab_eq_cb)(const mdx_hnode_t *node, const void *key);

typedef struct {
    mdx_hnode_t **table[2]; /* table[1] is non-NULL only while resizing */
    size_t size[2];         /* bucket counts, powers of two (0 when absent) */
    size_t used[2];
    size_t rehash_idx; /* next bucket of table[0] to move while resizing */
    size_t count;
    /* The elements while table[0] is NULL: a one-bucket chain used when not even the first
     * bucket array could be allocated, so insert still never fails. */
    mdx_hnode_t *spill;
} mdx_htab_t;

/** Bytes of bucket array the next insert would allocate to grow the table (0 when it would
 *  not grow): lets a caller with a memory limit refuse before going over it. */
size_t mdx_htab_grow_bytes(const mdx_htab_t *h);
/** Initializes an empty table (no allocation until the first insert). */
void mdx_htab_init(mdx_htab_t *h);
/** Frees the bucket arrays. The elements belong to the caller and are not touched. */
void mdx_htab_fini(mdx_htab_t *h);

static inline size_t mdx_htab_count(const mdx_htab_t *h)
{
    return h->count;
}

/** Returns the first element whose hash equals `hash` and for which eq(node, key) holds, or
 *  NULL. Moves a bounded number of buckets when a resize is in progress. */
mdx_hnode_t *mdx_htab_find(mdx_htab_t *h, uint64_t hash, mdx_htab_eq_cb eq, const void *key);

/** Returns the element after `prev` (in the same chain walk) with the same hash and eq(),
 *  for tables that hold several elements with equal keys; NULL at the end. Pass the node a
 *  previous find/find_next returned. Does not resize. */
mdx_hnode_t *mdx_htab_find_next(mdx_htab_t *h, mdx_hnode_t *prev, mdx_htab_eq_cb eq,
                                const void *key);

/** Inserts node (node->hash must be set). Does not check for duplicates. Never fails. */
void mdx_htab_insert(mdx_htab_t *h, mdx_hnode_t *node);

/** Removes exactly this node (found by pointer in the chain of node->hash). Returns 0, or
 *  MDX_ENOTFOUND when it is not in the table. */
int mdx_htab_remove(mdx_htab_t *h, mdx_hnode_t *node);

/** Puts new_node where old_node is, without a resize step; both must have the same hash.
 *  Returns 0, or MDX_ENOTFOUND when old_node is not in the table. */
int mdx_htab_replace(mdx_htab_t *h, mdx_hnode_t *old_node, mdx_hnode_t *new_node);

/** Moves up to n buckets of an in-progress resize. Returns 1 while more work remains. */
int mdx_htab_rehash_step(mdx_htab_t *h, size_t n);

/** Calls fn on every element of the buckets that cursor names and returns the next cursor
 *  (0 when the scan is complete). fn must not insert or remove. See the file comment for the
 *  guarantee. */
typedef void (*mdx_htab_scan_cb)(void *data, mdx_hnode_t *node);
uint64_t mdx_htab_scan(mdx_htab_t *h, uint64_t cursor, mdx_htab_scan_cb fn, void *data);

/** The same walk as calling mdx_htab_scan from cursor again and again, for at most max_buckets
 *  buckets (of the smaller table while resizing), stopping early between two buckets once *left
 *  is 0 (fn may count it down; left may be NULL). Returns the next cursor, 0 when the scan is
 *  complete. When no resize is in progress it reads ahead: the bucket slots of the next cursors
 *  and the first cache lines of the elements they hold are prefetched, so the misses of several
 *  buckets overlap (the cursor's order visits buckets far apart, each a miss of its own, and so
 *  is each element). fn must not insert or remove. */
uint64_t mdx_htab_scan_batch(mdx_htab_t *h, uint64_t cursor, size_t max_buckets,
                             const uint64_t *left, mdx_htab_scan_cb fn, void *data);

/** Plain iteration over every element while the table is not modified (no resize step is
 *  taken). Start with it = {0}; returns NULL at the end. It is safe to remove the node just
 *  returned only with mdx_htab_fini afterwards (teardown). */
typedef struct {
    int t;
    size_t bucket;
    mdx_hnode_t *next;
} mdx_htab_iter_t;
mdx_hnode_t *mdx_htab_iter_next(const mdx_htab_t *h, mdx_htab_iter_t *it);

#endif
