/*
 * A skiplist ordered by (value, primary key), with spans and backward links.
 *
 * Each node holds an index value (mdx_value_t, whose string bytes are borrowed from the record
 * the node points at) and an opaque record pointer. Ties on the value are broken by the
 * record's primary key, which the list obtains through the pk callback given at init, so every
 * node has a distinct position and a cursor (value, pk) resumes exactly. Each forward link
 * stores its span (the number of nodes it skips), as Redis' sorted sets do, so rank, access by
 * rank, and counting a range are O(log n). Level probability 1/4, at most 32 levels.
 *
 * The list owns its nodes, not the records. Not thread-safe.
 */
#ifndef MDX_INDEX_SKIPLIST_H
#define MDX_INDEX_SKIPLIST_H

#include <stddef.h>
#include <stdint.h>

#include "index/value.h"

#define MDX_SKIPLIST_MAXLEVEL 32

/** Writes the primary key of rec as a value (INT, UINT, STR or BIN; strings borrowed from the
 *  record). Keys order as values do. */
typedef void (*mdx_skiplist_pk_cb)(const void *rec, mdx_value_t *out);

typedef struct mdx_slnode mdx_slnode_t;
struct mdx_slnode {
    mdx_value_t value;
    void *rec;
    mdx_slnode_t *backward;
    struct {
        mdx_slnode_t *forward;
        size_t span;
    } level[]; /* flexible array: as many as the node's level */
};

typedef struct {
    mdx_slnode_t *header; /* sentinel with MDX_SKIPLIST_MAXLEVEL levels */
    mdx_slnode_t *tail;
    size_t length;
    int level;
    uint64_t rng; /* xorshift state for levels */
    mdx_skiplist_pk_cb pk;
} mdx_skiplist_t;

/** Initializes an empty list. Returns 0 or MDX_ENOMEM. */
int mdx_skiplist_init(mdx_skiplist_t *sl, mdx_skiplist_pk_cb pk);
/** Frees every node (not the records). */
void mdx_skiplist_fini(mdx_skiplist_t *sl);

/** Inserts (value, rec). The pair must not already be present (MDX_ASSERT in debug builds).
 *  The value is copied by view: string bytes must stay valid while the node exists. Returns 0
 *  or MDX_ENOMEM (list unchanged). *out (may be NULL) receives the new node. */
int mdx_skiplist_insert(mdx_skiplist_t *sl, const mdx_value_t *value, void *rec,
                        mdx_slnode_t **out);

/** One (value, record) pair for mdx_skiplist_build. */
typedef struct {
    mdx_value_t value;
    void *rec;
} mdx_skiplist_item_t;

/** Builds the list from n items in strictly increasing (value, pk) order, bottom-up in O(n)
 *  with no comparisons (the order is checked by MDX_ASSERT in debug builds only). The list
 *  must be empty. Levels are drawn from the list's generator in item order, so the result is
 *  exactly the list that inserting items[0..n) in that order would make: same nodes, levels,
 *  spans and generator state. Values are copied by view as in insert. Returns 0 or MDX_ENOMEM
 *  (list unchanged: empty, generator as before). Borrows items for the call. */
int mdx_skiplist_build(mdx_skiplist_t *sl, const mdx_skiplist_item_t *items, size_t n);

/** Removes the node for (value, pk of rec). Returns 0 or MDX_ENOTFOUND. */
int mdx_skiplist_delete(mdx_skiplist_t *sl, const mdx_value_t *value, const void *rec);

/** The node for (value, pk of rec), or NULL. */
mdx_slnode_t *mdx_skiplist_find(const mdx_skiplist_t *sl, const mdx_value_t *value,
                                const void *rec);

/** Number of nodes that order before the position (value, pk): with pk == NULL only values are
 *  compared. inclusive = 0 counts nodes strictly less; inclusive = 1 counts nodes less or
 *  equal. O(log n). Ranks are 0-based: the result is also the rank of the first node not
 *  counted. */
size_t mdx_skiplist_count_before(const mdx_skiplist_t *sl, const mdx_value_t *value,
                                 const mdx_value_t *pk, int inclusive);

/** The ranks of two positions in one descent: *lo_rank = count_before(lo, lo_pk, lo_incl)
 *  (0 when lo is NULL) and *hi_rank = count_before(hi, hi_pk, hi_incl) (length when hi is
 *  NULL); *lo_node (may be NULL) receives the node at rank *lo_rank (NULL at the end). The hi
 *  search starts from where the lo search is whenever that node is before hi, so a narrow
 *  range costs little more than one search. */
void mdx_skiplist_ranks(const mdx_skiplist_t *sl, const mdx_value_t *lo, const mdx_value_t *lo_pk,
                        int lo_incl, const mdx_value_t *hi, const mdx_value_t *hi_pk, int hi_incl,
                        size_t *lo_rank, size_t *hi_rank, mdx_slnode_t **lo_node);

/** The node at 0-based rank r, or NULL when r >= length. O(log n). */
mdx_slnode_t *mdx_skiplist_at(const mdx_skiplist_t *sl, size_t r);

static inline mdx_slnode_t *mdx_skiplist_next(const mdx_slnode_t *n)
{
    return n->level[0].forward;
}
/** The previous node, or NULL for the first (the first node's backward link is NULL). */
static inline mdx_slnode_t *mdx_skiplist_prev(const mdx_slnode_t *n)
{
    return n->backward;
}

/** Checks every invariant (order, spans, backward links, length). Returns 0 when consistent;
 *  for tests and debug checks. */
int mdx_skiplist_verify(const mdx_skiplist_t *sl);

#endif
