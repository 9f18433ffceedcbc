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
#include "store/index_int.h"
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

/* A group for value v with one record (inline), not yet in the table; NULL when out of memory.
 * The value's bytes are copied after the struct. */
static mdx_hgroup_t *group_new(const mdx_value_t *v, mdx_rec_t *rec)
{
    size_t extra = (v->type == MDX_V_STR || v->type == MDX_V_BIN) ? v->len : 0;
    mdx_hgroup_t *g = mdx_malloc(sizeof(*g) + extra);
    if (!g)
        return NULL;
    g->value = *v;
    if (extra) {
        memcpy(g + 1, v->v.p, extra);
        g->value.v.p = (const uint8_t *)(g + 1);
    }
    g->count = 1;
    g->cap = 1;
    g->recs.one = rec;
    g->hnode.hash = mdx_value_hash(v);
    return g;
}

static int group_add(mdx_index_t *ix, const mdx_value_t *v, mdx_rec_t *rec)
{
    mdx_hgroup_t *g = group_find(ix, v);
    if (!g) {
        g = group_new(v, rec);
        if (!g)
            return MDX_ENOMEM;
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

/* ---- bulk build ----
 *
 * An index made on a populated collection is built from one sorted array instead of one
 * insert per record: one pass over the records extracts (value, record) pairs, one sort puts
 * them in the index's total order (value, then primary key), and the structure is assembled
 * from the sorted run (skiplist bottom-up, hash groups at their final size with their records
 * already in key order). Inserting in hash order costs a search per record through randomly
 * placed nodes and records (about 20 cache misses each); the sort mostly compares keys held in
 * the array. Duplicates of a unique index are adjacent after the sort.
 *
 * Each pair carries order keys: a 64-bit key per value and per primary key that orders like
 * the value within its class (class first, then key). Equal keys do not always mean equal
 * values, so ties fall back to the exact comparison, which reads a record only for two strings
 * longer than 8 bytes that share their first 8. Number keys are the sortable bits of the value
 * rounded to a double: rounding is monotone, so a < b gives key(a) <= key(b), and equal values
 * (1 and 1.0) get equal keys (-0.0 is folded into 0.0, which compares equal to it). */

typedef struct {
    uint64_t vk;  /* order key of v within its class */
    uint64_t pkk; /* order key of the primary key within its class */
    mdx_value_t v;
    mdx_rec_t *rec;
    uint32_t pk_len; /* STR and BIN keys: payload length */
    uint8_t vcls;    /* nil 0, false 1, true 2, numbers 3, str 4, bin 5 (value.c's order) */
    uint8_t pcls;    /* int 0, uint 1, str 2, bin 3 */
} bent_t;

enum { CLS_NUM = 3, CLS_STR = 4 };

/* The first 8 bytes, big-endian, zero-padded: orders strings by their first 8 bytes. */
static inline uint64_t bytes_key(const uint8_t *p, uint32_t len)
{
    uint8_t b[8] = {0};
    memcpy(b, p, len < 8 ? len : 8);
    uint64_t k = 0;
    for (int i = 0; i < 8; i++)
        k = k << 8 | b[i];
    return k;
}

static void bent_set(bent_t *e, const mdx_value_t *v, mdx_rec_t *rec)
{
    e->v = *v;
    e->rec = rec;
    switch (v->type) {
    case MDX_V_INT:
    case MDX_V_UINT:
    case MDX_V_DOUBLE: {
        double d = v->type == MDX_V_INT    ? (double)v->v.i
                   : v->type == MDX_V_UINT ? (double)v->v.u
                                           : v->v.d;
        if (d == 0)
            d = 0.0;
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        e->vk = bits >> 63 ? ~bits : bits | 1ULL << 63;
        e->vcls = CLS_NUM;
        break;
    }
    case MDX_V_STR:
    case MDX_V_BIN:
        e->vk = bytes_key(v->v.p, v->len);
        e->vcls = v->type == MDX_V_STR ? CLS_STR : CLS_STR + 1;
        break;
    default: /* nil, false, true */
        e->vk = 0;
        e->vcls = v->type;
        break;
    }
    mdx_value_t pk;
    mdx__rec_pk(rec, &pk);
    e->pk_len = 0;
    switch (pk.type) {
    case MDX_V_INT:
        e->pkk = (uint64_t)pk.v.i ^ 1ULL << 63;
        e->pcls = 0;
        break;
    case MDX_V_UINT:
        e->pkk = pk.v.u;
        e->pcls = 1;
        break;
    default: /* STR, BIN */
        e->pkk = bytes_key(pk.v.p, pk.len);
        e->pk_len = pk.len;
        e->pcls = pk.type == MDX_V_STR ? 2 : 3;
        break;
    }
}

/* Two strings with equal first-8-byte keys: when one is at most 8 bytes long it is a prefix of
 * the other, so the lengths decide. */
static inline int len_cmp(uint32_t a, uint32_t b)
{
    return (a > b) - (a < b);
}

/* Value order of two pairs (mdx_value_cmp of their values). */
static inline int bent_vcmp(const bent_t *a, const bent_t *b)
{
    if (a->vcls != b->vcls)
        return a->vcls < b->vcls ? -1 : 1;
    if (a->vk != b->vk)
        return a->vk < b->vk ? -1 : 1;
    if (a->vcls == CLS_NUM)
        return mdx_value_cmp(&a->v, &b->v); /* inline numbers: no record read */
    if (a->vcls >= CLS_STR) {
        if (a->v.len <= 8 || b->v.len <= 8)
            return len_cmp(a->v.len, b->v.len);
        return mdx_value_cmp(&a->v, &b->v);
    }
    return 0;
}

/* The index's total order: value, then primary key. */
static inline int bent_cmp(const bent_t *a, const bent_t *b)
{
    int c = bent_vcmp(a, b);
    if (c)
        return c;
    if (a->pcls != b->pcls)
        return a->pcls < b->pcls ? -1 : 1;
    if (a->pkk != b->pkk)
        return a->pkk < b->pkk ? -1 : 1;
    if (a->pk_len > 8 && b->pk_len > 8) {
        mdx_value_t x, y;
        mdx__rec_pk(a->rec, &x);
        mdx__rec_pk(b->rec, &y);
        return mdx_value_cmp(&x, &y);
    }
    return len_cmp(a->pk_len, b->pk_len);
}

static inline void bent_swap(bent_t *a, bent_t *b)
{
    bent_t t = *a;
    *a = *b;
    *b = t;
}

static void bent_sift(bent_t *a, size_t i, size_t n)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && bent_cmp(&a[c], &a[c + 1]) < 0)
            c++;
        if (bent_cmp(&a[i], &a[c]) >= 0)
            return;
        bent_swap(&a[i], &a[c]);
        i = c;
    }
}

/* Introsort: quicksort (median of three) with a depth bound, heapsort past it, insertion sort
 * for short ranges. Every pair is distinct (primary keys are), so partitions never degrade on
 * runs of equal elements. */
static void bent_sort(bent_t *a, size_t n, int depth)
{
    while (n > 16) {
        if (depth-- == 0) {
            for (size_t i = n / 2; i-- > 0;)
                bent_sift(a, i, n);
            for (size_t i = n - 1; i > 0; i--) {
                bent_swap(&a[0], &a[i]);
                bent_sift(a, 0, i);
            }
            return;
        }
        size_t mid = n / 2;
        if (bent_cmp(&a[mid], &a[0]) < 0)
            bent_swap(&a[mid], &a[0]);
        if (bent_cmp(&a[n - 1], &a[mid]) < 0) {
            bent_swap(&a[n - 1], &a[mid]);
            if (bent_cmp(&a[mid], &a[0]) < 0)
                bent_swap(&a[mid], &a[0]);
        }
        bent_t pivot = a[mid];
        size_t i = 0, j = n - 1;
        for (;;) {
            while (bent_cmp(&a[i], &pivot) < 0)
                i++;
            while (bent_cmp(&pivot, &a[j]) < 0)
                j--;
            if (i >= j)
                break;
            bent_swap(&a[i], &a[j]);
            i++;
            j--;
        }
        /* [0, j] <= pivot <= [j + 1, n): recurse on the smaller side. */
        size_t left = j + 1;
        if (left < n - left) {
            bent_sort(a, left, depth);
            a += left;
            n -= left;
        } else {
            bent_sort(a + left, n - left, depth);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        bent_t t = a[i];
        size_t j = i;
        for (; j > 0 && bent_cmp(&t, &a[j - 1]) < 0; j--)
            a[j] = a[j - 1];
        a[j] = t;
    }
}

/* Hash index from a sorted run: one group per run of equal values, sized to the run. */
static int build_groups(mdx_index_t *ix, const bent_t *e, size_t m)
{
    for (size_t k = 0; k < m;) {
        size_t j = k + 1;
        while (j < m && bent_vcmp(&e[k], &e[j]) == 0)
            j++;
        size_t cnt = j - k;
        if (cnt > UINT32_MAX / 2)
            return MDX_ENOMEM;
        mdx_hgroup_t *g = group_new(&e[k].v, e[k].rec);
        if (!g)
            return MDX_ENOMEM;
        if (cnt > 1) {
            mdx_rec_t **a = mdx_malloc(cnt * sizeof(*a));
            if (!a) {
                mdx_free(g);
                return MDX_ENOMEM;
            }
            for (size_t i = 0; i < cnt; i++)
                a[i] = e[k + i].rec;
            g->recs.many = a;
            g->count = g->cap = (uint32_t)cnt;
        }
        mdx_htab_insert(&ix->groups, &g->hnode);
        k = j;
    }
    return 0;
}

/* The next record to index: recs[*k] when a list is given, else the primary table's next. */
static inline mdx_rec_t *next_rec(const mdx_coll_t *c, mdx_htab_iter_t *it, mdx_rec_t *const *recs,
                                  size_t n, size_t *k)
{
    if (!recs)
        return (mdx_rec_t *)mdx_htab_iter_next(&c->primary, it);
    if (*k >= n)
        return NULL;
    if (*k + 8 < n)
        __builtin_prefetch(recs[*k + 8]);
    return recs[(*k)++];
}

/* Fills the new, empty index ix from every record of c (recs[0..n) when it lists them all).
 * On error the caller frees ix; the error message is set. */
static int index_build(mdx_coll_t *c, mdx_index_t *ix, mdx_rec_t *const *recs, size_t nrecs,
                       void *scratch, size_t scratch_bytes)
{
    mdx_store_t *st = c->store;
    size_t n = mdx_htab_count(&c->primary);
    if (n == 0)
        return 0;
    if (nrecs != n)
        recs = NULL;
    size_t need = mdx__index_scratch_bytes(n);
    bent_t *e = scratch && need && scratch_bytes >= need ? scratch : NULL;
    bent_t *own = NULL;
    if (!e)
        e = own = need ? mdx_malloc(need) : NULL;
    if (!e)
        return mdx__err(st, MDX_ENOMEM, "out of memory building index '%s'", ix->name);
    int rc = 0;
    size_t m = 0, k = 0;
    mdx_htab_iter_t it = {0};
    mdx_rec_t *r;
    while ((r = next_rec(c, &it, recs, nrecs, &k))) {
        mdx_value_t v;
        int got = mdx__index_extract(ix, rec_body(r), r->body_len, &v);
        if (got < 0) {
            rc = mdx__err(st, -got, "cannot index field '%s' of collection '%s': a record holds %s",
                          ix->field, c->name,
                          -got == MDX_ENAN ? "NaN" : "an array, map or extension");
            goto out;
        }
        if (got)
            bent_set(&e[m++], &v, r);
    }
    bent_sort(e, m, 2 * 64);
    if (ix->unique) {
        for (size_t i = 1; i < m; i++) {
            if (bent_vcmp(&e[i - 1], &e[i]) == 0) {
                rc = mdx__err(st, MDX_EUNIQUE,
                              "cannot create unique index '%s': two records of '%s' share a value "
                              "of field '%s'",
                              ix->name, c->name, ix->field);
                goto out;
            }
        }
    }
    if (ix->kind == MDX_INDEX_HASH) {
        rc = build_groups(ix, e, m);
    } else {
        /* Compact the pairs into the skiplist's items in place (an item is smaller than a pair,
         * so item k never overlaps pair k' >= k). */
        mdx_skiplist_item_t *items = (mdx_skiplist_item_t *)(void *)e;
        for (size_t i = 0; i < m; i++) {
            mdx_skiplist_item_t t = {e[i].v, e[i].rec};
            items[i] = t;
        }
        rc = mdx_skiplist_build(&ix->sl, items, m);
    }
    if (rc) {
        mdx__err(st, rc, "out of memory building index '%s'", ix->name);
        goto out;
    }
    ix->entries = m;
out:
    mdx_free(own);
    return rc;
}

size_t mdx__index_scratch_bytes(size_t n)
{
    return n <= SIZE_MAX / sizeof(bent_t) ? n * sizeof(bent_t) : 0;
}

/* ---- create / drop / info ---- */

int mdx_index_create(mdx_coll_t *c, const char *name, const char *field, mdx_index_kind_t kind,
                     int unique)
{
    return mdx__index_create_from(c, name, field, kind, unique, NULL, 0, NULL, 0);
}

int mdx__index_create_from(mdx_coll_t *c, const char *name, const char *field,
                           mdx_index_kind_t kind, int unique, mdx_rec_t *const *recs, size_t n,
                           void *scratch, size_t scratch_bytes)
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

    rc = index_build(c, ix, recs, n, scratch, scratch_bytes);
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
