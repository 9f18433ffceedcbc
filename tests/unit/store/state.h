/*
 * Shared by the store tests: msgpack built in fixed buffers, a fake clock, and a snapshot of a
 * whole store that a failing call must leave exactly as it was (test_badinput, test_oom).
 *
 * Test memory never comes from memdex's allocator: the snapshots live in libc memory and the
 * msgpack builder writes into arrays, so mdx_alloc_used() counts only the store, fault
 * injection hits only the store, and the store's memory statistics can be checked against the
 * allocator's exact count (state_check). Header-only: every function is static (some files
 * use only part of it, hence the unused attribute).
 */
#ifndef MDX_TEST_STORE_STATE_H
#define MDX_TEST_STORE_STATE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/mp.h"
#include "store/store_int.h"

#define TEST_FN static __attribute__((unused))

/* ---- msgpack in fixed buffers ---- */

#define MB_CAP 8192

typedef struct {
    uint8_t d[MB_CAP];
    size_t n;
} mb_t;

TEST_FN mb_t *mb_reset(mb_t *m)
{
    m->n = 0;
    return m;
}
TEST_FN void mb_raw(mb_t *m, const void *p, size_t n)
{
    assert_true(m->n + n <= MB_CAP);
    memcpy(m->d + m->n, p, n);
    m->n += n;
}
TEST_FN void mb_byte(mb_t *m, uint8_t b)
{
    mb_raw(m, &b, 1);
}
TEST_FN void mb_map(mb_t *m, uint32_t n)
{
    uint8_t o[5];
    mb_raw(m, o, mdx_mp_enc_map_header(o, n));
}
TEST_FN void mb_arr(mb_t *m, uint32_t n)
{
    uint8_t o[5];
    mb_raw(m, o, mdx_mp_enc_array_header(o, n));
}
TEST_FN void mb_strn(mb_t *m, const void *s, size_t len)
{
    uint8_t o[5];
    mb_raw(m, o, mdx_mp_enc_str_header(o, (uint32_t)len));
    mb_raw(m, s, len);
}
TEST_FN void mb_str(mb_t *m, const char *s)
{
    mb_strn(m, s, strlen(s));
}
TEST_FN void mb_bin(mb_t *m, const void *s, size_t len)
{
    uint8_t o[5];
    mb_raw(m, o, mdx_mp_enc_bin_header(o, (uint32_t)len));
    mb_raw(m, s, len);
}
TEST_FN void mb_int(mb_t *m, int64_t v)
{
    uint8_t o[9];
    mb_raw(m, o, mdx_mp_enc_int(o, v));
}
TEST_FN void mb_uint(mb_t *m, uint64_t v)
{
    uint8_t o[9];
    mb_raw(m, o, mdx_mp_enc_uint(o, v));
}
TEST_FN void mb_dbl(mb_t *m, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    mb_byte(m, 0xcb);
    for (int i = 7; i >= 0; i--)
        mb_byte(m, (uint8_t)(u >> (8 * i)));
}
TEST_FN void mb_f32(mb_t *m, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    mb_byte(m, 0xca);
    for (int i = 3; i >= 0; i--)
        mb_byte(m, (uint8_t)(u >> (8 * i)));
}
TEST_FN void mb_nil(mb_t *m)
{
    mb_byte(m, 0xc0);
}
TEST_FN void mb_bool(mb_t *m, int v)
{
    mb_byte(m, v ? 0xc3 : 0xc2);
}
/* Key/value pairs of a map whose header the caller wrote. */
TEST_FN void mb_kv_int(mb_t *m, const char *k, int64_t v)
{
    mb_str(m, k);
    mb_int(m, v);
}
TEST_FN void mb_kv_str(mb_t *m, const char *k, const char *v)
{
    mb_str(m, k);
    mb_str(m, v);
}

/* Keys, small enough to pass by value: K(ik(5)) expands to the two key arguments. */
typedef struct {
    uint8_t d[40];
    size_t n;
} tkey_t;

TEST_FN tkey_t ik(int64_t v)
{
    tkey_t k;
    k.n = mdx_key_int(k.d, v);
    return k;
}
TEST_FN tkey_t sk(const char *s)
{
    tkey_t k;
    assert_true(strlen(s) + 5 <= sizeof(k.d));
    k.n = mdx_key_str(k.d, s, strlen(s));
    return k;
}
TEST_FN tkey_t rawkey(const void *p, size_t n)
{
    tkey_t k;
    assert_true(n <= sizeof(k.d));
    memcpy(k.d, p, n);
    k.n = n;
    return k;
}
#define K(k) (k).d, (k).n

/* ---- fake clock ---- */

static int64_t fake_now = 1700000000000;
TEST_FN int64_t fake_clock(void *data)
{
    (void)data;
    return fake_now;
}

/* ---- store internals the snapshot needs ---- */

/* Finishes every incremental resize in the store's hash tables. A lookup moves buckets of a
 * resize in progress and may free the old bucket array; tests that compare memory exactly
 * start from settled tables so that such a free is not mistaken for the call's doing. */
TEST_FN void state_settle(mdx_store_t *st)
{
    for (size_t i = 0; i < st->ncolls; i++) {
        mdx_coll_t *c = st->colls[i];
        size_t mem0 = mdx_alloc_used(); /* charged to the collection, as the store does */
        while (mdx_htab_rehash_step(&c->primary, 1024))
            ;
        for (size_t j = 0; j < c->nindexes; j++)
            if (c->indexes[j]->kind == MDX_INDEX_HASH)
                while (mdx_htab_rehash_step(&c->indexes[j]->groups, 1024))
                    ;
        while (mdx_htab_rehash_step(&c->tags, 1024))
            ;
        c->mem += mdx_alloc_used() - mem0;
        st->mem += mdx_alloc_used() - mem0;
    }
}

static size_t htab_arrays(const mdx_htab_t *h)
{
    return mdx_alloc_size(h->table[0]) + mdx_alloc_size(h->table[1]);
}

/* Bytes of a collection held in growable arrays: bucket arrays of the primary table and of
 * hash indexes, the expiry heap, the record arrays of hash-index groups. These may keep a
 * grown capacity after a failed call (see test_oom.c); every other block must not. */
TEST_FN size_t state_coll_arrays(const mdx_coll_t *c)
{
    size_t n = htab_arrays(&c->primary) + mdx_alloc_size(c->heap) + htab_arrays(&c->tags) +
               mdx_alloc_size(c->ghost.ring) + mdx_alloc_size(c->ghost.set);
    for (size_t j = 0; j < c->nindexes; j++) {
        const mdx_index_t *ix = c->indexes[j];
        if (ix->kind != MDX_INDEX_HASH)
            continue;
        n += htab_arrays(&ix->groups);
        mdx_htab_iter_t it = {0};
        const mdx_hnode_t *hn;
        while ((hn = mdx_htab_iter_next(&ix->groups, &it))) {
            const mdx_hgroup_t *g = (const mdx_hgroup_t *)hn;
            if (g->cap > 1)
                n += mdx_alloc_size(g->recs.many);
        }
    }
    return n;
}

/* Store-level blocks: the store, its collection array and its cursor buffer. */
static size_t store_own_bytes(const mdx_store_t *st)
{
    return mdx_alloc_size(st) + mdx_alloc_size(st->colls) + mdx_alloc_size(st->cursor.data);
}

/* The expiry heap: positions, order, and exactly the records that have an expiry. */
static void heap_check(const mdx_coll_t *c)
{
    for (uint32_t i = 0; i < c->heap_len; i++) {
        const mdx_rec_t *r = c->heap[i];
        assert_int_equal(r->heap_pos, i);
        assert_int_not_equal(r->expires_at, 0);
        if (i > 0)
            assert_true(c->heap[(i - 1) / 2]->expires_at <= r->expires_at);
    }
    uint64_t with_expiry = 0;
    mdx_htab_iter_t it = {0};
    const mdx_hnode_t *hn;
    while ((hn = mdx_htab_iter_next(&c->primary, &it))) {
        const mdx_rec_t *r = (const mdx_rec_t *)hn;
        if (r->expires_at) {
            with_expiry++;
            assert_true(r->heap_pos < c->heap_len && c->heap[r->heap_pos] == r);
        } else {
            assert_int_equal(r->heap_pos, MDX_NO_HEAP);
        }
    }
    assert_int_equal(with_expiry, c->heap_len);
}

/* The eviction queues hold every record once, linked both ways, each in the queue its
 * EV_MAIN bit names; a SIEVE hand points into main. */
static void queues_check(const mdx_coll_t *c)
{
    uint64_t total = 0;
    int hand_seen = c->hand == NULL;
    for (int q = 0; q < 2; q++) {
        const mdx_rec_t *prev = NULL;
        uint64_t n = 0;
        for (const mdx_rec_t *r = c->q[q].head; r; prev = r, r = r->qnext) {
            assert_ptr_equal(r->qprev, prev);
            assert_int_equal(!!(r->evict & EV_MAIN), q);
            hand_seen |= r == c->hand;
            n++;
            assert_true(n <= mdx_htab_count(&c->primary));
        }
        assert_ptr_equal(c->q[q].tail, prev);
        assert_int_equal(n, c->q[q].len);
        total += n;
    }
    assert_true(hand_seen);
    assert_int_equal(total, mdx_htab_count(&c->primary));
}

/* Tags: each tag's member list leads to records that hold it, its count is the list's length;
 * live tags are in the table, dead ones in the dying list with `pending` their total; every
 * membership of every record is linked into its tag's list (counted both ways). */
static void tags_check(const mdx_coll_t *c)
{
    uint64_t members = 0, pending = 0, refs = 0;
    mdx_htab_iter_t it = {0};
    const mdx_hnode_t *hn;
    for (int dead = 0; dead < 2; dead++) {
        const mdx_tag_t *t = dead ? c->dying : NULL;
        memset(&it, 0, sizeof(it));
        for (;;) {
            if (!dead) {
                hn = mdx_htab_iter_next(&c->tags, &it);
                t = (const mdx_tag_t *)hn;
            }
            if (!t)
                break;
            assert_int_equal(!!t->dead_epoch, dead);
            assert_true(t->count > 0);
            uint64_t n = 0;
            const mdx_tagref_t *prev = NULL;
            for (const mdx_tagref_t *ref = t->first; ref; prev = ref, ref = ref->next) {
                assert_ptr_equal(ref->prev, prev);
                assert_ptr_equal(tagref_tag(ref), t);
                const mdx_rec_t *r = tagref_rec(ref);
                assert_true((ref->tagx & 15) < r->ntags);
                assert_ptr_equal(&rec_tagrefs(r)[ref->tagx & 15], ref);
                n++;
            }
            assert_int_equal(n, t->count);
            members += n;
            if (dead) {
                pending += n;
                t = t->dnext;
            }
        }
    }
    assert_int_equal(pending, c->pending);
    memset(&it, 0, sizeof(it));
    while ((hn = mdx_htab_iter_next(&c->primary, &it)))
        refs += ((const mdx_rec_t *)hn)->ntags;
    assert_int_equal(refs, members);
}

/* Invariants that hold after every call: each index holds exactly the live records with their
 * current values, the heap is consistent, and the memory the statistics report (collections
 * plus the store's own blocks) is exactly what the allocator wrapper counts. The last holds
 * only while the test owns no memory from memdex's allocator, which these tests ensure. */
TEST_FN void state_check(mdx_store_t *st)
{
    size_t total = store_own_bytes(st);
    for (size_t i = 0; i < st->ncolls; i++) {
        mdx_coll_t *c = st->colls[i];
        /* Verifying looks groups up, which steps a resize of a group table and may free its
         * old bucket array: charge that to the collection, as the store does for its lookups. */
        size_t mem0 = mdx_alloc_used();
        for (size_t j = 0; j < c->nindexes; j++) {
            int v = mdx__index_verify(c, c->indexes[j]);
            if (v != 0)
                print_error("index '%s' of '%s': verify %d\n", c->indexes[j]->name, c->name, v);
            assert_int_equal(v, 0);
        }
        c->mem += mdx_alloc_used() - mem0;
        st->mem += mdx_alloc_used() - mem0;
        heap_check(c);
        queues_check(c);
        tags_check(c);
        mdx_coll_stats_t cs;
        mdx_coll_stats(c, &cs);
        total += cs.memory;
    }
    if (total != mdx_alloc_used())
        print_error("memory in the statistics %zu, allocator wrapper %zu\n", total,
                    mdx_alloc_used());
    assert_int_equal(total, mdx_alloc_used());
    size_t sum = 0;
    for (size_t i = 0; i < st->ncolls; i++)
        sum += st->colls[i]->mem;
    assert_int_equal(sum, st->mem);
}

/* ---- snapshots ---- */

typedef struct {
    uint8_t *key;
    size_t key_len;
    int get_rc; /* what mdx_get returns for the key: 0, or MDX_ENOTFOUND once expired */
    uint8_t *body;
    size_t body_len;
    int64_t expires_at;
    uint16_t snap_gen;
} state_rec_t;

typedef struct {
    char name[MDX_NAME_MAX + 1];
    char field[MDX_FIELD_MAX + 1];
    mdx_index_kind_t kind;
    int unique;
    uint64_t entries;
} state_ix_t;

typedef struct {
    char name[MDX_NAME_MAX + 1];
    uint64_t records; /* mdx_coll_records */
    state_rec_t *recs;
    size_t nrecs;
    state_ix_t ix[MDX_MAX_INDEXES];
    size_t nix;
    uint32_t heap_len;
    size_t memory; /* mdx_coll_stats */
    size_t arrays; /* state_coll_arrays */
} state_coll_t;

typedef struct {
    state_coll_t *colls;
    size_t ncolls;
    uint64_t epoch;
    size_t used;   /* mdx_alloc_used() */
    size_t arrays; /* all collections' arrays plus the store's collection array and cursor */
} state_t;

static int rec_cmp(const void *a, const void *b)
{
    const state_rec_t *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    assert_non_null(d);
    memcpy(d, p, n);
    return d;
}

/* Records the whole store: every collection, every record as mdx_get returns it (records in
 * key order), every index's description and entry count, the epoch and the memory. Runs
 * state_check first. The lookups may take rehash steps; memory is read after them. */
TEST_FN void state_take(mdx_store_t *st, state_t *s)
{
    state_check(st);
    memset(s, 0, sizeof(*s));
    s->ncolls = mdx_coll_count(st);
    s->colls = calloc(s->ncolls ? s->ncolls : 1, sizeof(*s->colls));
    assert_non_null(s->colls);
    for (size_t i = 0; i < s->ncolls; i++) {
        mdx_coll_t *c = mdx_coll_at(st, i);
        state_coll_t *sc = &s->colls[i];
        snprintf(sc->name, sizeof(sc->name), "%s", mdx_coll_name(c));
        sc->records = mdx_coll_records(c);
        sc->nrecs = mdx_htab_count(&c->primary);
        sc->recs = calloc(sc->nrecs ? sc->nrecs : 1, sizeof(*sc->recs));
        assert_non_null(sc->recs);
        /* Keys first (plain iteration takes no rehash step), lookups after. */
        mdx_htab_iter_t it = {0};
        const mdx_hnode_t *hn;
        size_t k = 0;
        while ((hn = mdx_htab_iter_next(&c->primary, &it))) {
            const mdx_rec_t *r = (const mdx_rec_t *)hn;
            assert_true(k < sc->nrecs);
            sc->recs[k].key = dup_bytes(rec_key(r), r->key_len);
            sc->recs[k].key_len = r->key_len;
            sc->recs[k].snap_gen = r->snap_gen;
            k++;
        }
        assert_int_equal(k, sc->nrecs);
        for (k = 0; k < sc->nrecs; k++) {
            state_rec_t *sr = &sc->recs[k];
            mdx_rec_view_t v;
            sr->get_rc = mdx_get(c, sr->key, sr->key_len, &v);
            if (sr->get_rc == 0) {
                assert_int_equal(v.key_len, sr->key_len);
                assert_memory_equal(v.key, sr->key, sr->key_len);
                sr->body = dup_bytes(v.body, v.body_len);
                sr->body_len = v.body_len;
                sr->expires_at = v.expires_at;
            } else {
                assert_int_equal(sr->get_rc, MDX_ENOTFOUND);
            }
        }
        qsort(sc->recs, sc->nrecs, sizeof(*sc->recs), rec_cmp);
        sc->nix = mdx_index_count(c);
        for (size_t j = 0; j < sc->nix; j++) {
            mdx_index_info_t info;
            assert_int_equal(mdx_index_info(c, j, &info), 0);
            snprintf(sc->ix[j].name, sizeof(sc->ix[j].name), "%s", info.name);
            snprintf(sc->ix[j].field, sizeof(sc->ix[j].field), "%s", info.field);
            sc->ix[j].kind = info.kind;
            sc->ix[j].unique = info.unique;
            sc->ix[j].entries = info.entries;
        }
        sc->heap_len = c->heap_len;
        mdx_coll_stats_t cs;
        mdx_coll_stats(c, &cs);
        sc->memory = cs.memory;
        sc->arrays = state_coll_arrays(c);
        s->arrays += sc->arrays;
    }
    s->epoch = st->epoch;
    s->arrays += mdx_alloc_size(st->colls) + mdx_alloc_size(st->cursor.data);
    s->used = mdx_alloc_used();
}

TEST_FN void state_free(state_t *s)
{
    for (size_t i = 0; i < s->ncolls; i++) {
        for (size_t k = 0; k < s->colls[i].nrecs; k++) {
            free(s->colls[i].recs[k].key);
            free(s->colls[i].recs[k].body);
        }
        free(s->colls[i].recs);
    }
    free(s->colls);
    memset(s, 0, sizeof(*s));
}

typedef enum {
    /* Every byte the store holds is as before. */
    STATE_MEM_EXACT,
    /* Every block outside the growable arrays (state_coll_arrays) is as before; the arrays
     * may differ (a failed call may keep a grown capacity, a lookup may finish a resize). */
    STATE_MEM_ARRAYS,
} state_mem_t;

#define STATE_DIFF(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("%s: state changed: ", ctx);                                               \
            print_error(__VA_ARGS__);                                                              \
            print_error("\n");                                                                     \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* Fails the test, naming ctx and the first difference, unless a and b describe the same
 * store. */
TEST_FN void state_compare(const state_t *a, const state_t *b, state_mem_t mem, const char *ctx)
{
    STATE_DIFF(a->ncolls == b->ncolls, "collections %zu -> %zu", a->ncolls, b->ncolls);
    for (size_t i = 0; i < a->ncolls; i++) {
        const state_coll_t *x = &a->colls[i], *y = &b->colls[i];
        STATE_DIFF(strcmp(x->name, y->name) == 0, "collection %zu '%s' -> '%s'", i, x->name,
                   y->name);
        STATE_DIFF(x->records == y->records, "'%s' records %llu -> %llu", x->name,
                   (unsigned long long)x->records, (unsigned long long)y->records);
        STATE_DIFF(x->nrecs == y->nrecs, "'%s' table holds %zu -> %zu", x->name, x->nrecs,
                   y->nrecs);
        for (size_t k = 0; k < x->nrecs; k++) {
            const state_rec_t *p = &x->recs[k], *q = &y->recs[k];
            STATE_DIFF(p->key_len == q->key_len && memcmp(p->key, q->key, p->key_len) == 0,
                       "'%s' record %zu has another key", x->name, k);
            STATE_DIFF(p->get_rc == q->get_rc, "'%s' record %zu: get %d -> %d", x->name, k,
                       p->get_rc, q->get_rc);
            STATE_DIFF(p->body_len == q->body_len &&
                           (p->body_len == 0 || memcmp(p->body, q->body, p->body_len) == 0),
                       "'%s' record %zu: body differs", x->name, k);
            STATE_DIFF(p->expires_at == q->expires_at, "'%s' record %zu: expiry %lld -> %lld",
                       x->name, k, (long long)p->expires_at, (long long)q->expires_at);
            STATE_DIFF(p->snap_gen == q->snap_gen, "'%s' record %zu: snapshot generation %u -> %u",
                       x->name, k, (unsigned)p->snap_gen, (unsigned)q->snap_gen);
        }
        STATE_DIFF(x->nix == y->nix, "'%s' indexes %zu -> %zu", x->name, x->nix, y->nix);
        for (size_t j = 0; j < x->nix; j++) {
            const state_ix_t *p = &x->ix[j], *q = &y->ix[j];
            STATE_DIFF(strcmp(p->name, q->name) == 0 && strcmp(p->field, q->field) == 0 &&
                           p->kind == q->kind && p->unique == q->unique,
                       "'%s' index %zu '%s' -> '%s'", x->name, j, p->name, q->name);
            STATE_DIFF(p->entries == q->entries, "index '%s' entries %llu -> %llu", p->name,
                       (unsigned long long)p->entries, (unsigned long long)q->entries);
        }
        STATE_DIFF(x->heap_len == y->heap_len, "'%s' heap %u -> %u", x->name, x->heap_len,
                   y->heap_len);
        if (mem == STATE_MEM_EXACT)
            STATE_DIFF(x->memory == y->memory, "'%s' memory %zu -> %zu", x->name, x->memory,
                       y->memory);
        else
            STATE_DIFF(x->memory - x->arrays == y->memory - y->arrays,
                       "'%s' memory outside arrays %zu -> %zu", x->name, x->memory - x->arrays,
                       y->memory - y->arrays);
    }
    STATE_DIFF(a->epoch == b->epoch, "epoch %llu -> %llu", (unsigned long long)a->epoch,
               (unsigned long long)b->epoch);
    if (mem == STATE_MEM_EXACT)
        STATE_DIFF(a->used == b->used, "allocated bytes %zu -> %zu", a->used, b->used);
    else
        STATE_DIFF(a->used - a->arrays == b->used - b->arrays,
                   "allocated bytes outside arrays %zu -> %zu", a->used - a->arrays,
                   b->used - b->arrays);
}

#endif
