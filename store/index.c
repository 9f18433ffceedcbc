/*
 * Secondary indexes: extracting a field's value from a body, and keeping hash and skiplist
 * indexes in step with the records.
 *
 * Hash index: a table of groups, one per distinct value; a group keeps its records in an array
 * sorted by primary key, so equality lookup is O(1), offset and cursors within a value are a
 * binary search, and removal is a binary search plus a memmove of pointers (cheap even for
 * values shared by many thousands of records; a skiplist index suits low-cardinality fields
 * better, see docs/architecture.md). A group with one record stores the pointer inline.
 *
 * Skiplist index: one node per record, ordered by (value, primary key); string values are
 * views into the record body, so a replace repoints the node at the new body.
 *
 * Invariant: an index holds exactly the records whose field is present, not nil, and scalar.
 */
#include <string.h>

#include "common/assert.h"
#include "store/store_int.h"

int mdx__index_extract(const mdx_index_t *ix, const uint8_t *body, size_t len, mdx_value_t *v)
{
    mdx_mp_tok_t t;
    if (!mdx_mp_map_find(body, len, ix->field, ix->field_len, &t, NULL, NULL))
        return 0;
    if (t.type == MDX_MP_NIL)
        return 0;
    int rc = mdx_value_from_tok(&t, v);
    return rc ? -rc : 1;
}

/* ---- hash groups ---- */

static int group_eq(const mdx_hnode_t *n, const void *key)
{
    return mdx_value_cmp(&((const mdx_hgroup_t *)n)->value, key) == 0;
}

static mdx_hgroup_t *group_find(mdx_index_t *ix, const mdx_value_t *v)
{
    return (mdx_hgroup_t *)mdx_htab_find(&ix->groups, mdx_value_hash(v), group_eq, v);
}

static inline mdx_rec_t **group_recs(mdx_hgroup_t *g)
{
    return g->cap == 1 ? &g->recs.one : g->recs.many;
}

/* Position of the first record whose pk is >= pk (or > pk when after). */
static uint32_t group_lower(mdx_hgroup_t *g, const mdx_value_t *pk, int after)
{
    mdx_rec_t **r = group_recs(g);
    uint32_t lo = 0, hi = g->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        mdx_value_t k;
        mdx__rec_pk(r[mid], &k);
        int cmp = mdx_value_cmp(&k, pk);
        if (cmp < 0 || (after && cmp == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static uint32_t group_pos_of(mdx_hgroup_t *g, const mdx_rec_t *rec)
{
    mdx_value_t pk;
    mdx__rec_pk(rec, &pk);
    uint32_t pos = group_lower(g, &pk, 0);
    MDX_VERIFY(pos < g->count && group_recs(g)[pos] == rec);
    return pos;
}

static int group_add(mdx_index_t *ix, const mdx_value_t *v, mdx_rec_t *rec)
{
    mdx_hgroup_t *g = group_find(ix, v);
    if (!g) {
        size_t extra = (v->type == MDX_V_STR || v->type == MDX_V_BIN) ? v->len : 0;
        g = mdx_malloc(sizeof(*g) + extra);
        if (!g)
            return MDX_ENOMEM;
        g->value = *v;
        if (extra) {
            memcpy(g + 1, v->v.p, extra);
            g->value.v.p = (const uint8_t *)(g + 1);
        }
        g->count = 1;
        g->cap = 1;
        g->recs.one = rec;
        g->hnode.hash = mdx_value_hash(v);
        mdx_htab_insert(&ix->groups, &g->hnode);
        return 0;
    }
    if (ix->unique)
        return MDX_EUNIQUE;
    if (g->count == g->cap) {
        uint32_t cap = g->cap == 1 ? 4 : g->cap * 2;
        mdx_rec_t **a;
        if (g->cap == 1) {
            a = mdx_malloc(cap * sizeof(*a));
            if (!a)
                return MDX_ENOMEM;
            a[0] = g->recs.one;
        } else {
            if (g->cap > UINT32_MAX / 2)
                return MDX_ENOMEM;
            a = mdx_realloc(g->recs.many, cap * sizeof(*a));
            if (!a)
                return MDX_ENOMEM;
        }
        g->recs.many = a;
        g->cap = cap;
    }
    mdx_value_t pk;
    mdx__rec_pk(rec, &pk);
    uint32_t pos = group_lower(g, &pk, 0);
    mdx_rec_t **r = group_recs(g);
    memmove(&r[pos + 1], &r[pos], (g->count - pos) * sizeof(*r));
    r[pos] = rec;
    g->count++;
    return 0;
}

static void group_remove(mdx_index_t *ix, const mdx_value_t *v, mdx_rec_t *rec)
{
    mdx_hgroup_t *g = group_find(ix, v);
    MDX_VERIFY(g != NULL);
    uint32_t pos = group_pos_of(g, rec);
    mdx_rec_t **r = group_recs(g);
    memmove(&r[pos], &r[pos + 1], (g->count - pos - 1) * sizeof(*r));
    g->count--;
    if (g->count == 0) {
        mdx_htab_remove(&ix->groups, &g->hnode);
        if (g->cap > 1)
            mdx_free(g->recs.many);
        mdx_free(g);
    } else if (g->cap > 4 && g->count < g->cap / 4) {
        /* Shrink; a failed realloc just keeps the bigger array. */
        mdx_rec_t **a = mdx_realloc(g->recs.many, (g->cap / 2) * sizeof(*a));
        if (a) {
            g->recs.many = a;
            g->cap /= 2;
        }
    }
}

static void group_free_all(mdx_index_t *ix)
{
    mdx_htab_iter_t it = {0};
    mdx_hnode_t *n;
    while ((n = mdx_htab_iter_next(&ix->groups, &it))) {
        mdx_hgroup_t *g = (mdx_hgroup_t *)n;
        if (g->cap > 1)
            mdx_free(g->recs.many);
        mdx_free(g);
    }
    mdx_htab_fini(&ix->groups);
}

/* ---- per-record upkeep ---- */

int mdx__index_add(mdx_coll_t *c, mdx_index_t *ix, const mdx_value_t *v, mdx_rec_t *rec)
{
    (void)c;
    int rc;
    if (ix->kind == MDX_INDEX_HASH) {
        rc = group_add(ix, v, rec);
    } else {
        if (ix->unique && mdx_skiplist_count_before(&ix->sl, v, NULL, 1) >
                              mdx_skiplist_count_before(&ix->sl, v, NULL, 0))
            return MDX_EUNIQUE;
        rc = mdx_skiplist_insert(&ix->sl, v, rec, NULL);
    }
    if (rc == 0)
        ix->entries++;
    return rc;
}

void mdx__index_remove(mdx_coll_t *c, mdx_index_t *ix, const mdx_value_t *v, mdx_rec_t *rec)
{
    (void)c;
    if (ix->kind == MDX_INDEX_HASH) {
        group_remove(ix, v, rec);
    } else {
        int rc = mdx_skiplist_delete(&ix->sl, v, rec);
        MDX_VERIFY(rc == 0);
    }
    ix->entries--;
}

void mdx__index_repoint(mdx_index_t *ix, const mdx_value_t *v, mdx_rec_t *old, mdx_rec_t *new_rec,
                        const mdx_value_t *new_v)
{
    if (ix->kind == MDX_INDEX_HASH) {
        mdx_hgroup_t *g = group_find(ix, v);
        MDX_VERIFY(g != NULL);
        group_recs(g)[group_pos_of(g, old)] = new_rec;
    } else {
        mdx_slnode_t *n = mdx_skiplist_find(&ix->sl, v, old);
        MDX_VERIFY(n != NULL);
        n->rec = new_rec;
        n->value = *new_v;
    }
}

mdx_rec_t *mdx__index_holder(mdx_index_t *ix, const mdx_value_t *v)
{
    if (ix->kind == MDX_INDEX_HASH) {
        mdx_hgroup_t *g = group_find(ix, v);
        return g ? group_recs(g)[0] : NULL;
    }
    mdx_slnode_t *n = mdx_skiplist_at(&ix->sl, mdx_skiplist_count_before(&ix->sl, v, NULL, 0));
    return n && mdx_value_cmp(&n->value, v) == 0 ? n->rec : NULL;
}

mdx_rec_t **mdx__index_group(mdx_index_t *ix, const mdx_value_t *v, uint32_t *count)
{
    mdx_hgroup_t *g = group_find(ix, v);
    if (!g) {
        *count = 0;
        return NULL;
    }
    *count = g->count;
    return group_recs(g);
}

uint32_t mdx__index_group_lower(mdx_index_t *ix, const mdx_value_t *v, const mdx_value_t *pk,
                                int strict)
{
    mdx_hgroup_t *g = group_find(ix, v);
    return g ? group_lower(g, pk, strict) : 0;
}

mdx_index_t *mdx__index_by_name(const mdx_coll_t *c, const char *name)
{
    for (size_t i = 0; i < c->nindexes; i++)
        if (strcmp(c->indexes[i]->name, name) == 0)
            return c->indexes[i];
    return NULL;
}

void mdx__index_free(mdx_coll_t *c, mdx_index_t *ix)
{
    (void)c;
    if (ix->kind == MDX_INDEX_HASH)
        group_free_all(ix);
    else
        mdx_skiplist_fini(&ix->sl);
    mdx_free(ix);
}

/* ---- create / drop / info ---- */

int mdx_index_create(mdx_coll_t *c, const char *name, const char *field, mdx_index_kind_t kind,
                     int unique)
{
    mdx_store_t *st = c->store;
    size_t nlen = strnlen(name, MDX_NAME_MAX + 1);
    size_t flen = strnlen(field, MDX_FIELD_MAX + 1);
    if (mdx__check_name(name, nlen))
        return mdx__err(st, MDX_EBADNAME,
                        "bad index name '%.*s' on collection '%s': use 1 to %d of A-Z a-z 0-9 "
                        "_ - .",
                        (int)(nlen > MDX_NAME_MAX ? MDX_NAME_MAX : nlen), name, c->name,
                        MDX_NAME_MAX);
    if (flen == 0 || flen > MDX_FIELD_MAX)
        return mdx__err(st, MDX_EBADNAME, "bad field name for index '%s': 1 to %d bytes", name,
                        MDX_FIELD_MAX);
    if (kind != MDX_INDEX_HASH && kind != MDX_INDEX_SKIPLIST)
        return mdx__err(st, MDX_EINVAL, "bad index kind %d for index '%s'", (int)kind, name);
    if (mdx__index_by_name(c, name))
        return mdx__err(st, MDX_EINDEXEXISTS, "index '%s' already exists on collection '%s'", name,
                        c->name);
    if (c->nindexes >= MDX_MAX_INDEXES)
        return mdx__err(st, MDX_ETOOBIG, "collection '%s' already has %d indexes (the limit)",
                        c->name, MDX_MAX_INDEXES);

    MEM_BEGIN();
    mdx__expire_all(c); /* expired and invalidated records must not block a unique index */
    int rc = 0;
    mdx_index_t *ix = mdx_calloc(1, sizeof(*ix));
    if (!ix) {
        rc = mdx__err(st, MDX_ENOMEM, "out of memory creating index '%s'", name);
        goto out;
    }
    memcpy(ix->name, name, nlen + 1);
    memcpy(ix->field, field, flen + 1);
    ix->field_len = flen;
    ix->kind = kind;
    ix->unique = unique != 0;
    if (kind == MDX_INDEX_HASH) {
        mdx_htab_init(&ix->groups);
    } else if (mdx_skiplist_init(&ix->sl, mdx__rec_pk)) {
        mdx_free(ix);
        rc = mdx__err(st, MDX_ENOMEM, "out of memory creating index '%s'", name);
        goto out;
    }

    mdx_htab_iter_t it = {0};
    mdx_hnode_t *n;
    while ((n = mdx_htab_iter_next(&c->primary, &it))) {
        mdx_rec_t *r = (mdx_rec_t *)n;
        mdx_value_t v;
        int got = mdx__index_extract(ix, rec_body(r), r->body_len, &v);
        if (got < 0) {
            rc = mdx__err(st, -got, "cannot index field '%s' of collection '%s': a record holds %s",
                          field, c->name, -got == MDX_ENAN ? "NaN" : "an array, map or extension");
            break;
        }
        if (got == 0)
            continue;
        rc = mdx__index_add(c, ix, &v, r);
        if (rc == MDX_EUNIQUE) {
            mdx__err(st, rc,
                     "cannot create unique index '%s': two records of '%s' share a value "
                     "of field '%s'",
                     name, c->name, field);
            break;
        }
        if (rc) {
            mdx__err(st, rc, "out of memory building index '%s'", name);
            break;
        }
    }
    if (rc) {
        mdx__index_free(c, ix);
        goto out;
    }
    c->indexes[c->nindexes++] = ix;
out:
    MEM_END(c);
    return rc;
}

int mdx_index_drop(mdx_coll_t *c, const char *name)
{
    for (size_t i = 0; i < c->nindexes; i++) {
        mdx_index_t *ix = c->indexes[i];
        if (strcmp(ix->name, name) != 0)
            continue;
        MEM_BEGIN();
        memmove(&c->indexes[i], &c->indexes[i + 1], (c->nindexes - i - 1) * sizeof(ix));
        c->nindexes--;
        mdx__index_free(c, ix);
        MEM_END(c);
        return 0;
    }
    return mdx__err(c->store, MDX_ENOINDEX, "no index '%.*s' on collection '%s'", MDX_NAME_MAX,
                    name, c->name);
}

size_t mdx_index_count(const mdx_coll_t *c)
{
    return c->nindexes;
}

int mdx_index_info(const mdx_coll_t *c, size_t i, mdx_index_info_t *out)
{
    if (i >= c->nindexes)
        return MDX_ENOINDEX;
    const mdx_index_t *ix = c->indexes[i];
    out->name = ix->name;
    out->field = ix->field;
    out->kind = ix->kind;
    out->unique = ix->unique;
    out->entries = ix->entries;
    return 0;
}

/* ---- consistency check (tests) ---- */

int mdx__index_verify(mdx_coll_t *c, mdx_index_t *ix)
{
    uint64_t expect = 0;
    mdx_htab_iter_t it = {0};
    mdx_hnode_t *n;
    while ((n = mdx_htab_iter_next(&c->primary, &it))) {
        mdx_rec_t *r = (mdx_rec_t *)n;
        mdx_value_t v;
        int got = mdx__index_extract(ix, rec_body(r), r->body_len, &v);
        if (got < 0)
            return -1;
        if (got == 0)
            continue;
        expect++;
        if (ix->kind == MDX_INDEX_HASH) {
            mdx_hgroup_t *g = group_find(ix, &v);
            if (!g)
                return -2;
            mdx_value_t pk;
            mdx__rec_pk(r, &pk);
            uint32_t pos = group_lower(g, &pk, 0);
            if (pos >= g->count || group_recs(g)[pos] != r)
                return -3;
        } else {
            mdx_slnode_t *sn = mdx_skiplist_find(&ix->sl, &v, r);
            if (!sn || sn->rec != r)
                return -4;
        }
    }
    if (expect != ix->entries)
        return -5;
    if (ix->kind == MDX_INDEX_SKIPLIST) {
        if (ix->sl.length != expect || mdx_skiplist_verify(&ix->sl))
            return -6;
        /* Every node's stored value is its record's current value. */
        for (mdx_slnode_t *sn = mdx_skiplist_at(&ix->sl, 0); sn; sn = mdx_skiplist_next(sn)) {
            mdx_value_t v;
            const mdx_rec_t *r = sn->rec;
            if (mdx__index_extract(ix, rec_body(r), r->body_len, &v) != 1 ||
                mdx_value_cmp(&v, &sn->value) != 0)
                return -7;
        }
    } else {
        uint64_t total = 0;
        mdx_htab_iter_t git = {0};
        while ((n = mdx_htab_iter_next(&ix->groups, &git))) {
            mdx_hgroup_t *g = (mdx_hgroup_t *)n;
            if (g->count == 0 || (ix->unique && g->count > 1))
                return -8;
            mdx_rec_t **r = group_recs(g);
            for (uint32_t i = 1; i < g->count; i++) {
                mdx_value_t a, b;
                mdx__rec_pk(r[i - 1], &a);
                mdx__rec_pk(r[i], &b);
                if (mdx_value_cmp(&a, &b) >= 0)
                    return -9;
            }
            total += g->count;
        }
        if (total != expect)
            return -10;
    }
    return 0;
}
