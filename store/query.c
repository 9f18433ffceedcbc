/*
 * Reads: get, find (equality and ranges with order, limit, offset and cursors), count, scan.
 *
 * A skiplist query turns its bounds into a half-open rank range [start, end) with
 * mdx_skiplist_count_before, so offset and count cost O(log n) whatever their size. A cursor is
 * the msgpack array [value, primary key] of the last record returned: it names a position in
 * (value, key) order, so a page that follows it is exact even when records were written in
 * between.
 *
 * Queries first reclaim a bounded slice of the collection's expired and invalidated records
 * (a mass expiry or a large invalidation is freed by the reclaim step, never by one query), and
 * skip any such record still in an index. While some are waiting, a page may hold fewer than
 * `limit` records with `more` set, and offsets and counts include them.
 */
#include <string.h>

#include "common/assert.h"
#include "store/store_int.h"

int mdx_get(mdx_coll_t *c, const uint8_t *key, size_t key_len, mdx_rec_view_t *out)
{
    uint8_t ckey[KEYBUF(c->store)];
    size_t klen;
    uint64_t hash;
    c->ops.gets++;
    int rc = mdx__key_prep(c, key, key_len, ckey, &klen, &hash);
    if (rc) {
        c->ops.errors++;
        return rc;
    }
    /* A lookup takes a step of an incremental resize, which may free the old bucket array. */
    MEM_BEGIN();
    mdx_rec_t *r = mdx__rec_lookup(c, ckey, klen, hash);
    MEM_END(c);
    if (!r || rec_gone(r, c->store)) {
        c->ops.misses++;
        return mdx__err(c->store, MDX_ENOTFOUND, "no record with this key in '%s'", c->name);
    }
    c->ops.hits++;
    mdx__evict_hit(c, r);
    mdx__rec_view(r, out);
    return 0;
}

/* ---- query preparation ---- */

typedef struct {
    mdx_index_t *ix;
    int has_eq;
    mdx_value_t eq, lo, hi;
    int has_after;
    mdx_value_t after_v, after_pk;
} plan_t;

static int bound_value(mdx_store_t *st, const char *what, const uint8_t *p, size_t len,
                       mdx_value_t *v)
{
    int rc = p ? mdx_value_decode(p, len, v) : MDX_EINVAL;
    if (rc == MDX_ENAN)
        return mdx__err(st, MDX_ENAN, "query %s is NaN", what);
    if (rc)
        return mdx__err(st, MDX_EINVAL, "query %s must be one msgpack scalar", what);
    return 0;
}

static int plan_query(mdx_coll_t *c, const mdx_query_t *q, int paged, plan_t *pl)
{
    mdx_store_t *st = c->store;
    int rc;
    memset(pl, 0, sizeof(*pl));
    pl->ix = q->index ? mdx__index_by_name(c, q->index) : NULL;
    if (!pl->ix)
        return mdx__err(st, MDX_ENOINDEX, "no index '%.*s' on collection '%s'", MDX_NAME_MAX,
                        q->index ? q->index : "", c->name);
    if (paged && (q->limit == 0 || q->limit > st->opts.max_limit))
        return mdx__err(st, MDX_EBADLIMIT, "limit must be 1 to %u", st->opts.max_limit);
    if (q->eq) {
        if (q->lo || q->hi || q->lo_kind || q->hi_kind)
            return mdx__err(st, MDX_EINVAL, "a query has either eq or bounds, not both");
        if ((rc = bound_value(st, "eq", q->eq, q->eq_len, &pl->eq)))
            return rc;
        pl->has_eq = 1;
    } else {
        if (pl->ix->kind == MDX_INDEX_HASH)
            return mdx__err(st, MDX_ENOTRANGE,
                            "index '%s' is a hash index: it answers equality only; range "
                            "queries need a skiplist index",
                            pl->ix->name);
        if ((unsigned)q->lo_kind > MDX_BOUND_EXCL || (unsigned)q->hi_kind > MDX_BOUND_EXCL)
            return mdx__err(st, MDX_EINVAL, "bad bound kind");
        if (q->lo_kind && (rc = bound_value(st, "lower bound", q->lo, q->lo_len, &pl->lo)))
            return rc;
        if (q->hi_kind && (rc = bound_value(st, "upper bound", q->hi, q->hi_len, &pl->hi)))
            return rc;
    }
    if (paged && q->after) {
        const uint8_t *p = q->after, *end = q->after + q->after_len;
        mdx_mp_tok_t t, v, k;
        if (mdx_mp_read(&p, end, &t) || t.type != MDX_MP_ARRAY || t.len != 2 ||
            mdx_mp_read(&p, end, &v) || mdx_mp_read(&p, end, &k) || p != end ||
            mdx_value_from_tok(&v, &pl->after_v) || mdx_value_from_tok(&k, &pl->after_pk) ||
            (pl->after_pk.type != MDX_V_INT && pl->after_pk.type != MDX_V_UINT &&
             pl->after_pk.type != MDX_V_STR && pl->after_pk.type != MDX_V_BIN))
            return mdx__err(st, MDX_EBADCURSOR,
                            "cursor must be the msgpack array [value, key] a find returned");
        pl->has_after = 1;
    }
    return 0;
}

/* Skiplist: the rank range [*start, *end) of the value condition, in one descent; *first is
 * the node at *start. */
static void sl_range(const plan_t *pl, const mdx_query_t *q, size_t *start, size_t *end,
                     mdx_slnode_t **first)
{
    const mdx_skiplist_t *sl = &pl->ix->sl;
    if (pl->has_eq) {
        mdx_skiplist_ranks(sl, &pl->eq, NULL, 0, &pl->eq, NULL, 1, start, end, first);
        return;
    }
    mdx_skiplist_ranks(sl, q->lo_kind ? &pl->lo : NULL, NULL, q->lo_kind == MDX_BOUND_EXCL,
                       q->hi_kind ? &pl->hi : NULL, NULL, q->hi_kind == MDX_BOUND_INCL, start, end,
                       first);
}

/* Whether a node is at or before the upper end of the value condition. */
static int sl_below_hi(const plan_t *pl, const mdx_query_t *q, const mdx_slnode_t *n)
{
    if (pl->has_eq)
        return mdx_value_cmp(&n->value, &pl->eq) <= 0;
    if (!q->hi_kind)
        return 1;
    return mdx_value_cmp(&n->value, &pl->hi) < (q->hi_kind == MDX_BOUND_INCL);
}

static int set_cursor(mdx_coll_t *c, const mdx_value_t *v, const mdx_rec_t *r)
{
    mdx_buf_t *b = &c->store->cursor;
    b->len = 0;
    b->err = 0;
    mdx_mp_put_array(b, 2);
    mdx_value_encode(b, v);
    mdx_buf_append(b, rec_key(r), r->key_len);
    return b->err;
}

int mdx_find(mdx_coll_t *c, const mdx_query_t *q, mdx_rec_cb cb, void *data, mdx_find_result_t *res)
{
    plan_t pl;
    c->ops.finds++;
    memset(res, 0, sizeof(*res));
    int rc = plan_query(c, q, 1, &pl);
    if (rc) {
        c->ops.errors++;
        return rc;
    }
    /* Expiry frees records, and hash-group lookups take steps of a resize of the group table
     * (which may free its old bucket array): both change the collection's memory. The
     * callbacks (which may allocate for their own purposes) and the store's cursor buffer stay
     * outside the bracket. */
    MEM_BEGIN();
    mdx__expire_due(c);
    mdx_rec_t **recs = NULL;
    uint32_t hstart = 0, hend = 0;
    if (pl.ix->kind == MDX_INDEX_HASH) {
        recs = mdx__index_group(pl.ix, &pl.eq, &hend);
        if (pl.has_after && mdx_value_cmp(&pl.after_v, &pl.eq) != 0) {
            /* A cursor at another value: nothing of this value lies beyond it on one side. */
            int past = (mdx_value_cmp(&pl.after_v, &pl.eq) > 0) != (q->desc != 0);
            if (past)
                hstart = hend;
        } else if (pl.has_after) {
            if (!q->desc)
                hstart = mdx__index_group_lower(pl.ix, &pl.eq, &pl.after_pk, 1);
            else
                hend = mdx__index_group_lower(pl.ix, &pl.eq, &pl.after_pk, 0);
        }
    }
    MEM_END(c);

    mdx_rec_view_t view;
    const mdx_rec_t *last = NULL;
    const mdx_value_t *last_v = NULL;
    int stopped = 0;
    uint64_t n = 0;

    if (pl.ix->kind == MDX_INDEX_HASH) {
        uint64_t avail = hend > hstart ? hend - hstart : 0;
        uint64_t skip = q->offset < avail ? q->offset : avail;
        int64_t now = mdx_store_now(c->store);
        uint64_t i;
        for (i = skip; i < avail && n < q->limit && !stopped; i++) {
            const mdx_rec_t *r = recs[q->desc ? hend - 1 - i : hstart + i];
            if (rec_gone_at(r, now))
                continue;
            mdx__rec_view(r, &view);
            n++;
            last = r;
            stopped = cb && cb(data, &view);
        }
        res->more = i < avail;
        last_v = &pl.eq;
    } else if (!q->desc && q->offset == 0 && !pl.has_after) {
        /* A first ascending page needs no ranks: one descent to the first node of the range
         * (no upper-bound search), then level 0 while the nodes are below the upper end. */
        const mdx_value_t *lo = pl.has_eq ? &pl.eq : q->lo_kind ? &pl.lo : NULL;
        size_t start, end;
        mdx_slnode_t *node;
        mdx_skiplist_ranks(&pl.ix->sl, lo, NULL, !pl.has_eq && q->lo_kind == MDX_BOUND_EXCL, NULL,
                           NULL, 0, &start, &end, &node);
        int64_t now = mdx_store_now(c->store);
        while (node && n < q->limit && !stopped && sl_below_hi(&pl, q, node)) {
            const mdx_slnode_t *cur = node;
            node = mdx_skiplist_next(node);
            if (rec_gone_at(cur->rec, now))
                continue;
            mdx__rec_view(cur->rec, &view);
            n++;
            last = cur->rec;
            last_v = &cur->value;
            stopped = cb && cb(data, &view);
        }
        res->more = node && sl_below_hi(&pl, q, node); /* as i < avail below */
    } else {
        const mdx_skiplist_t *sl = &pl.ix->sl;
        size_t start, end, lo_start;
        mdx_slnode_t *first;
        sl_range(&pl, q, &start, &end, &first);
        lo_start = start;
        if (pl.has_after) {
            if (!q->desc) {
                size_t a = mdx_skiplist_count_before(sl, &pl.after_v, &pl.after_pk, 1);
                start = a > start ? a : start;
            } else {
                size_t a = mdx_skiplist_count_before(sl, &pl.after_v, &pl.after_pk, 0);
                end = a < end ? a : end;
            }
        }
        uint64_t avail = end > start ? end - start : 0;
        uint64_t skip = q->offset < avail ? q->offset : avail;
        const mdx_slnode_t *node = NULL;
        if (skip < avail)
            node = (!q->desc && skip == 0 && start == lo_start)
                       ? first
                       : mdx_skiplist_at(sl, q->desc ? end - 1 - skip : start + skip);
        int64_t now = mdx_store_now(c->store);
        uint64_t i;
        for (i = skip; node && i < avail && n < q->limit && !stopped; i++) {
            const mdx_slnode_t *cur = node;
            node = q->desc ? mdx_skiplist_prev(node) : mdx_skiplist_next(node);
            if (rec_gone_at(cur->rec, now))
                continue;
            mdx__rec_view(cur->rec, &view);
            n++;
            last = cur->rec;
            last_v = &cur->value;
            stopped = cb && cb(data, &view);
        }
        res->more = i < avail;
    }
    res->returned = n;
    if (res->more && last) {
        if (set_cursor(c, last_v, last)) {
            c->ops.errors++;
            return mdx__err(c->store, MDX_ENOMEM, "out of memory building a cursor");
        }
        res->cursor = c->store->cursor.data;
        res->cursor_len = c->store->cursor.len;
    }
    return 0;
}

int mdx_count(mdx_coll_t *c, const mdx_query_t *q, uint64_t *out)
{
    plan_t pl;
    c->ops.counts++;
    int rc = plan_query(c, q, 0, &pl);
    if (rc) {
        c->ops.errors++;
        return rc;
    }
    MEM_BEGIN(); /* as in mdx_find */
    mdx__expire_due(c);
    if (pl.ix->kind == MDX_INDEX_HASH) {
        uint32_t count;
        (void)mdx__index_group(pl.ix, &pl.eq, &count);
        *out = count;
    } else {
        size_t start, end;
        sl_range(&pl, q, &start, &end, NULL);
        *out = end > start ? end - start : 0;
    }
    MEM_END(c);
    return 0;
}

typedef struct {
    mdx_rec_cb cb;
    void *data;
    uint64_t n;
    int stopped;
    int64_t now;
} scan_ctx_t;

static void scan_one(void *data, mdx_hnode_t *node)
{
    scan_ctx_t *s = data;
    mdx_rec_view_t v;
    if (s->stopped || rec_gone_at((const mdx_rec_t *)node, s->now))
        return;
    mdx__rec_view((const mdx_rec_t *)node, &v);
    s->n++;
    if (s->cb && s->cb(s->data, &v))
        s->stopped = 1;
}

int mdx_scan(mdx_coll_t *c, uint64_t cursor, uint32_t limit, mdx_rec_cb cb, void *data,
             uint64_t *next)
{
    c->ops.scans++;
    if (limit == 0 || limit > c->store->opts.max_limit) {
        c->ops.errors++;
        return mdx__err(c->store, MDX_EBADLIMIT, "limit must be 1 to %u", c->store->opts.max_limit);
    }
    MEM_BEGIN();
    mdx__expire_due(c);
    MEM_END(c);
    scan_ctx_t s = {cb, data, 0, 0, mdx_store_now(c->store)};
    do {
        cursor = mdx_htab_scan(&c->primary, cursor, scan_one, &s);
    } while (cursor != 0 && s.n < limit && !s.stopped);
    *next = cursor;
    return 0;
}
