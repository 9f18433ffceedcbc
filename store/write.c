/*
 * Writes: put (three modes), delete, partial update, TTL changes, the expiry heap and the
 * bounded expiry step.
 *
 * Atomicity: a put first does everything that can fail (validate, allocate the new record,
 * extract every index value, check unique indexes, reserve a heap slot, add the new record's
 * index entries, undoing those adds if one fails); only then does it run the steps that cannot
 * fail (remove or repoint the old record's entries, swap the primary entry, fix the heap, free
 * the old record). So a put either changes the record and every index, or nothing.
 *
 * Records whose expiry has passed are invisible: reads skip them, and a write that meets one
 * treats its key as absent and reclaims it first.
 */
#include <string.h>
#include <time.h>

#include "common/assert.h"
#include "store/store_int.h"

/* ---- expiry heap (min-heap on expires_at, positions kept in the records) ---- */

static void heap_set(mdx_coll_t *c, uint32_t i, mdx_rec_t *r)
{
    c->heap[i] = r;
    r->heap_pos = i;
}

static void heap_up(mdx_coll_t *c, uint32_t i)
{
    mdx_rec_t *r = c->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (c->heap[p]->expires_at <= r->expires_at)
            break;
        heap_set(c, i, c->heap[p]);
        i = p;
    }
    heap_set(c, i, r);
}

static void heap_down(mdx_coll_t *c, uint32_t i)
{
    mdx_rec_t *r = c->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, m = i;
        int64_t best = r->expires_at;
        if (l < c->heap_len && c->heap[l]->expires_at < best) {
            m = l;
            best = c->heap[l]->expires_at;
        }
        if (l + 1 < c->heap_len && c->heap[l + 1]->expires_at < best)
            m = l + 1;
        if (m == i)
            break;
        heap_set(c, i, c->heap[m]);
        i = m;
    }
    heap_set(c, i, r);
}

static void heap_fix(mdx_coll_t *c, uint32_t i)
{
    if (i > 0 && c->heap[i]->expires_at < c->heap[(i - 1) / 2]->expires_at)
        heap_up(c, i);
    else
        heap_down(c, i);
}

static int heap_reserve(mdx_coll_t *c)
{
    if (c->heap_len < c->heap_cap)
        return 0;
    if (c->heap_cap >= UINT32_MAX / 2)
        return MDX_ENOMEM;
    uint32_t cap = c->heap_cap ? c->heap_cap * 2 : 16;
    mdx_rec_t **h = mdx_realloc(c->heap, cap * sizeof(*h));
    if (!h)
        return MDX_ENOMEM;
    c->heap = h;
    c->heap_cap = cap;
    return 0;
}

/* Capacity must have been reserved. */
static void heap_push(mdx_coll_t *c, mdx_rec_t *r)
{
    MDX_ASSERT(c->heap_len < c->heap_cap);
    heap_set(c, c->heap_len++, r);
    heap_up(c, r->heap_pos);
}

static void heap_remove(mdx_coll_t *c, mdx_rec_t *r)
{
    uint32_t i = r->heap_pos;
    MDX_VERIFY(i < c->heap_len && c->heap[i] == r);
    r->heap_pos = MDX_NO_HEAP;
    c->heap_len--;
    if (i == c->heap_len)
        return;
    heap_set(c, i, c->heap[c->heap_len]);
    heap_fix(c, i);
}

/* ---- record lifecycle ---- */

/* A new record with room for ntags memberships (not linked yet) and in no queue. */
static mdx_rec_t *rec_new(const uint8_t *ckey, size_t klen, uint64_t hash, const uint8_t *body,
                          size_t blen, unsigned ntags)
{
    mdx_rec_t *r = mdx_malloc(REC_HDR + rec_tags_size(ntags) + klen + blen);
    if (!r)
        return NULL;
    r->hnode.next = NULL;
    r->hnode.hash = hash;
    r->qprev = r->qnext = NULL;
    r->snap_gen = 0;
    r->expires_at = 0;
    r->heap_pos = MDX_NO_HEAP;
    r->key_len = (uint16_t)klen;
    r->body_len = (uint32_t)blen;
    r->evict = 0;
    r->ntags = (uint8_t)ntags;
    uint8_t *k = (uint8_t *)(uintptr_t)rec_key(r);
    memcpy(k, ckey, klen);
    memcpy(k + klen, body, blen);
    return r;
}

void mdx__rec_destroy(mdx_coll_t *c, mdx_rec_t *rec)
{
    mdx__snap_guard(c, rec);
    if (rec->ntags)
        mdx__tags_detach(c, rec);
    mdx__evict_remove(c, rec);
    for (size_t i = 0; i < c->nindexes; i++) {
        mdx_index_t *ix = c->indexes[i];
        mdx_value_t v;
        if (mdx__index_extract(ix, rec_body(rec), rec->body_len, &v) == 1)
            mdx__index_remove(c, ix, &v, rec);
    }
    int rc = mdx_htab_remove(&c->primary, &rec->hnode);
    MDX_VERIFY(rc == 0);
    if (rec->heap_pos != MDX_NO_HEAP)
        heap_remove(c, rec);
    mdx_free(rec);
}

/* Frees up to max (0: all) expired records of c; stops at deadline_us (0: none). Returns how
 * many; *more is set when due records remain. */
static uint64_t expire_coll(mdx_coll_t *c, int64_t now, uint64_t max, uint64_t deadline_us,
                            int *more)
{
    uint64_t done = 0;
    while (c->heap_len && c->heap[0]->expires_at <= now) {
        if ((max && done >= max) ||
            (deadline_us && (done & 15) == 0 && done && mdx__mono_us() >= deadline_us)) {
            *more = 1;
            break;
        }
        mdx__rec_destroy(c, c->heap[0]);
        c->ops.expired++;
        done++;
    }
    return done;
}

void mdx__expire_due(mdx_coll_t *c)
{
    int more = 0;
    if (c->heap_len)
        (void)expire_coll(c, mdx_store_now(c->store), QUERY_RECLAIM, 0, &more);
    if (c->dying)
        (void)mdx__tags_reclaim(c, QUERY_RECLAIM, 0);
}

void mdx__expire_all(mdx_coll_t *c)
{
    int more = 0;
    if (c->heap_len)
        (void)expire_coll(c, mdx_store_now(c->store), 0, 0, &more);
    (void)mdx__tags_reclaim(c, 0, 0);
}

void mdx__coll_free_records(mdx_coll_t *c)
{
    mdx_htab_iter_t it = {0};
    mdx_hnode_t *n;
    while ((n = mdx_htab_iter_next(&c->primary, &it)))
        mdx_free(n);
}

/* Looks up a live record by canonical key; an expired or invalidated one is reclaimed and
 * reported absent. */
static mdx_rec_t *live_lookup(mdx_coll_t *c, const uint8_t *ckey, size_t klen, uint64_t hash)
{
    mdx_rec_t *r = mdx__rec_lookup(c, ckey, klen, hash);
    if (r && rec_gone(r, c->store)) {
        if (rec_expired(r, c->store))
            c->ops.expired++;
        mdx__rec_destroy(c, r);
        r = NULL;
    }
    return r;
}

/* Tags of a write: a checked msgpack array (tags/len, n of them), or the old record's. */
typedef struct {
    const uint8_t *p;
    size_t len;
    unsigned n;
    int keep;
} tagset_t;

/* Does old hold exactly the tags of ts, in order? */
static int tags_same(const mdx_rec_t *old, const tagset_t *ts)
{
    if (ts->keep)
        return 1;
    if (old->ntags != ts->n)
        return 0;
    const uint8_t *p = ts->p, *end = ts->p + ts->len;
    const mdx_tagref_t *refs = rec_tagrefs(old);
    mdx_mp_tok_t t, s;
    if (ts->n)
        (void)mdx_mp_read(&p, end, &t);
    for (unsigned i = 0; i < ts->n; i++) {
        const mdx_tag_t *tag = tagref_tag(&refs[i]);
        (void)mdx_mp_read(&p, end, &s);
        if (s.len != tag->len || memcmp(s.v.ptr, tag->name, s.len) != 0)
            return 0;
    }
    return 1;
}

/* *out = now + ttl_ms (ttl_ms > 0). Returns -1 when the sum would overflow an int64. */
static int expiry_after(const mdx_store_t *st, int64_t ttl_ms, int64_t *out)
{
    int64_t now = mdx_store_now(st);
    if (now > 0 && ttl_ms > INT64_MAX - now)
        return -1;
    *out = now + ttl_ms;
    return 0;
}

typedef struct {
    mdx_value_t oldv, newv;
    uint8_t has_old, has_new, same;
} slot_t;

/* A replace that changes no index value and fits in the old record's allocation rewrites the
 * body in place: nothing is allocated and no index entry has to be found again (a skiplist
 * repoint is a full descent). Hash groups copy their values, but skiplist nodes borrow string
 * values from the body, so such a value must sit at the same offset in the new body. Returns
 * 1 when done; 0 sends the caller down the general path (which also reports any error). */
static int write_in_place(mdx_coll_t *c, mdx_rec_t *old, const uint8_t *body, size_t blen,
                          int64_t expires_at, const tagset_t *ts)
{
    if (mdx_alloc_size(old) < REC_HDR + rec_tags_size(old->ntags) + old->key_len + blen ||
        !tags_same(old, ts))
        return 0;
    for (size_t i = 0; i < c->nindexes; i++) {
        const mdx_index_t *ix = c->indexes[i];
        mdx_value_t nv, ov;
        int gn = mdx__index_extract(ix, body, blen, &nv);
        int go = mdx__index_extract(ix, rec_body(old), old->body_len, &ov);
        if (gn < 0 || gn != go)
            return 0;
        if (gn == 0)
            continue;
        if (mdx_value_cmp(&nv, &ov) != 0)
            return 0;
        if (ix->kind == MDX_INDEX_SKIPLIST && (nv.type == MDX_V_STR || nv.type == MDX_V_BIN) &&
            nv.v.p - body != ov.v.p - rec_body(old))
            return 0;
    }
    if (expires_at && old->heap_pos == MDX_NO_HEAP && heap_reserve(c))
        return 0;
    mdx__snap_guard(c, old);
    /* body may be a view of old's own body */
    memmove((uint8_t *)(uintptr_t)rec_body(old), body, blen);
    old->body_len = (uint32_t)blen;
    c->store->epoch++;
    if (old->heap_pos != MDX_NO_HEAP && !expires_at) {
        heap_remove(c, old);
        old->expires_at = 0;
    } else if (old->heap_pos != MDX_NO_HEAP) {
        old->expires_at = expires_at;
        heap_fix(c, old->heap_pos);
    } else if (expires_at) {
        old->expires_at = expires_at;
        heap_push(c, old);
    }
    return 1;
}

/* The shared write path. old is the live record with this key or NULL. expires_at is the new
 * record's absolute expiry (0 = none). *out receives the record now holding the key. */
static int write_record(mdx_coll_t *c, const uint8_t *ckey, size_t klen, uint64_t hash,
                        mdx_rec_t *old, const uint8_t *body, size_t blen, int64_t expires_at,
                        const tagset_t *ts, mdx_rec_t **out)
{
    mdx_store_t *st = c->store;
    slot_t slots[MDX_MAX_INDEXES];
    size_t n = c->nindexes, i;
    int rc;

    if (old && write_in_place(c, old, body, blen, expires_at, ts)) {
        *out = old;
        return 0;
    }
    unsigned ntags = ts->keep ? (old ? old->ntags : 0) : ts->n;
    mdx_rec_t *rec = rec_new(ckey, klen, hash, body, blen, ntags);
    if (!rec)
        return mdx__err(st, MDX_ENOMEM, "out of memory storing a record in '%s'", c->name);

    for (i = 0; i < n; i++) {
        mdx_index_t *ix = c->indexes[i];
        slot_t *s = &slots[i];
        /* Extract from the record's own copy: skiplist nodes borrow these string bytes. */
        int got = mdx__index_extract(ix, rec_body(rec), blen, &s->newv);
        if (got < 0) {
            mdx_free(rec);
            return mdx__err(st, -got,
                            "field '%s' of a record in '%s' holds %s, which index '%s' "
                            "cannot hold",
                            ix->field, c->name,
                            -got == MDX_ENAN ? "NaN" : "an array, map or extension", ix->name);
        }
        s->has_new = got == 1;
        s->has_old = old && mdx__index_extract(ix, rec_body(old), old->body_len, &s->oldv) == 1;
        s->same = s->has_old && s->has_new && mdx_value_cmp(&s->oldv, &s->newv) == 0;
    }

    for (i = 0; i < n; i++) {
        mdx_index_t *ix = c->indexes[i];
        if (!ix->unique || !slots[i].has_new || slots[i].same)
            continue;
        mdx_rec_t *h = mdx__index_holder(ix, &slots[i].newv);
        if (!h)
            continue;
        if (h != old && rec_gone(h, st)) {
            if (rec_expired(h, st))
                c->ops.expired++;
            mdx__rec_destroy(c, h);
            continue;
        }
        mdx_free(rec);
        return mdx__err(st, MDX_EUNIQUE,
                        "unique index '%s' of '%s' already holds this value of field '%s'",
                        ix->name, c->name, ix->field);
    }

    int need_heap = expires_at != 0 && !(old && old->heap_pos != MDX_NO_HEAP);
    int new_tags = !ts->keep && ntags;
    if ((need_heap && heap_reserve(c)) || (new_tags && mdx__tags_attach(c, rec, ts->p, ts->len))) {
        mdx_free(rec);
        return mdx__err(st, MDX_ENOMEM, "out of memory storing a record in '%s'", c->name);
    }

    for (i = 0; i < n; i++) {
        if (!slots[i].has_new || slots[i].same)
            continue;
        rc = mdx__index_add(c, c->indexes[i], &slots[i].newv, rec);
        if (rc) {
            while (i-- > 0)
                if (slots[i].has_new && !slots[i].same)
                    mdx__index_remove(c, c->indexes[i], &slots[i].newv, rec);
            if (new_tags)
                mdx__tags_detach(c, rec);
            mdx_free(rec);
            return mdx__err(st, rc, "%s while indexing a record in '%s'",
                            rc == MDX_ENOMEM ? "out of memory" : "unique violation", c->name);
        }
    }

    /* Nothing below can fail. A running snapshot that still needs the old image saves it now
     * (a snapshot's own failure does not fail the write). */
    if (old)
        mdx__snap_guard(c, old);
    rec->snap_gen = st->snap_gen;
    for (i = 0; i < n; i++) {
        slot_t *s = &slots[i];
        if (s->same)
            mdx__index_repoint(c->indexes[i], &s->oldv, old, rec, &s->newv);
        else if (s->has_old)
            mdx__index_remove(c, c->indexes[i], &s->oldv, old);
    }
    rec->expires_at = expires_at;
    st->epoch++;
    if (old) {
        if (ts->keep && ntags)
            mdx__tags_move(old, rec);
        else if (old->ntags)
            mdx__tags_detach(c, old);
        mdx__evict_replace(c, old, rec);
        mdx_htab_replace(&c->primary, &old->hnode, &rec->hnode);
        if (old->heap_pos != MDX_NO_HEAP) {
            uint32_t pos = old->heap_pos;
            if (expires_at) {
                heap_set(c, pos, rec);
                heap_fix(c, pos);
            } else {
                heap_remove(c, old);
            }
        }
        mdx_free(old);
    } else {
        mdx__evict_insert(c, rec);
        mdx_htab_insert(&c->primary, &rec->hnode);
    }
    if (need_heap)
        heap_push(c, rec);
    *out = rec;
    return 0;
}

int mdx_put(mdx_coll_t *c, const uint8_t *key, size_t key_len, const uint8_t *body, size_t body_len,
            const mdx_put_opts_t *opts)
{
    static const mdx_put_opts_t defaults = {MDX_PUT_UPSERT, 0, 0, NULL, NULL, 0, 0};
    mdx_store_t *st = c->store;
    if (!opts)
        opts = &defaults;
    c->ops.puts++;
    uint8_t ckey[KEYBUF(st)];
    size_t klen;
    uint64_t hash;
    int rc = mdx__key_prep(c, key, key_len, ckey, &klen, &hash);
    if (rc)
        goto fail;
    if (body_len > st->opts.max_body) {
        rc = mdx__err(st, MDX_ETOOBIG, "body of %zu bytes exceeds the limit of %u", body_len,
                      st->opts.max_body);
        goto fail;
    }
    if (!body || mdx_mp_check_body(body, body_len, MDX_MP_MAX_DEPTH)) {
        rc = mdx__err(st, MDX_EBADBODY,
                      "body for collection '%s' must be one msgpack map with string keys", c->name);
        goto fail;
    }
    if (opts->ttl_ms < 0 || (unsigned)opts->mode > MDX_PUT_REPLACE ||
        (opts->ttl_ms && opts->ttl_class)) {
        rc = mdx__err(st, MDX_EINVAL, "put: %s",
                      opts->ttl_ms < 0 ? "negative ttl"
                      : (unsigned)opts->mode > MDX_PUT_REPLACE
                          ? "bad mode"
                          : "give ttl_ms or a ttl class, not both");
        goto fail;
    }
    int64_t ttl = opts->ttl_ms;
    if (opts->ttl_class &&
        (rc = mdx_ttl_class_get(st, opts->ttl_class, strlen(opts->ttl_class), &ttl)))
        goto fail;
    if (!opts->ttl_ms && !opts->ttl_class)
        ttl = c->opts.default_ttl_ms;
    int64_t ttl_exp = 0;
    if (ttl > 0 && expiry_after(st, ttl, &ttl_exp)) {
        rc = mdx__err(st, MDX_EINVAL, "put: ttl of %lld ms is too large", (long long)ttl);
        goto fail;
    }
    tagset_t ts = {opts->tags, opts->tags_len, 0, 0};
    if (opts->tags && (rc = mdx__tags_check(st, opts->tags, opts->tags_len, &ts.n)))
        goto fail;
    if ((rc = mdx__evict_admit(c)))
        goto fail;

    mdx_rec_t *rec = NULL, *old;
    {
        MEM_BEGIN();
        old = live_lookup(c, ckey, klen, hash);
        MEM_END(c);
    }
    if (old && opts->mode == MDX_PUT_INSERT) {
        rc = mdx__err(st, MDX_EEXISTS, "a record with this key already exists in '%s'", c->name);
    } else if (!old && opts->mode == MDX_PUT_REPLACE) {
        rc = mdx__err(st, MDX_ENOTFOUND, "no record with this key in '%s' to replace", c->name);
    } else if (opts->lease && (rc = mdx__lease_check(c, ckey, klen, hash, opts->lease))) {
        /* message set */
    } else if (!old && (rc = mdx__evict_full(c))) { /* may evict: outside a MEM bracket */
        /* message set */
    } else {
        int64_t exp = 0;
        if (opts->keep_ttl && old)
            exp = old->expires_at;
        else
            exp = ttl_exp;
        MEM_BEGIN();
        rc = write_record(c, ckey, klen, hash, old, body, body_len, exp, &ts, &rec);
        if (rc == 0)
            mdx__lease_end(c, ckey, klen, hash);
        MEM_END(c);
    }
    if (rc == 0) {
        mdx__evict_enforce(c, rec);
        return 0;
    }
fail:
    c->ops.errors++;
    return rc;
}

int mdx_del(mdx_coll_t *c, const uint8_t *key, size_t key_len)
{
    mdx_store_t *st = c->store;
    c->ops.deletes++;
    uint8_t ckey[KEYBUF(st)];
    size_t klen;
    uint64_t hash;
    int rc = mdx__key_prep(c, key, key_len, ckey, &klen, &hash);
    if (rc) {
        c->ops.errors++;
        return rc;
    }
    MEM_BEGIN();
    mdx_rec_t *r = live_lookup(c, ckey, klen, hash);
    if (r) {
        st->epoch++;
        mdx__rec_destroy(c, r);
    }
    mdx__lease_end(c, ckey, klen, hash); /* a delete ends a lease even on an absent key */
    MEM_END(c);
    if (!r) {
        c->ops.errors++;
        return mdx__err(st, MDX_ENOTFOUND, "no record with this key in '%s'", c->name);
    }
    return 0;
}

/* Is the string [p, p+len) one of the keys of map `set` or one of the strings of `unset`? */
static int field_listed(const uint8_t *p, uint32_t len, const uint8_t *set, size_t set_len,
                        const uint8_t *unset, size_t unset_len)
{
    if (set && mdx_mp_map_find(set, set_len, (const char *)p, len, NULL, NULL, NULL))
        return 1;
    if (unset) {
        const uint8_t *q = unset, *end = unset + unset_len;
        mdx_mp_tok_t t, s;
        (void)mdx_mp_read(&q, end, &t);
        for (uint32_t i = 0; i < t.len; i++) {
            (void)mdx_mp_read(&q, end, &s);
            if (s.len == len && memcmp(s.v.ptr, p, len) == 0)
                return 1;
        }
    }
    return 0;
}

static int check_unset(const uint8_t *unset, size_t len)
{
    const uint8_t *q = unset, *end = unset + len;
    mdx_mp_tok_t t, s;
    if (mdx_mp_read(&q, end, &t) || t.type != MDX_MP_ARRAY)
        return MDX_EINVAL;
    for (uint32_t i = 0; i < t.len; i++)
        if (mdx_mp_read(&q, end, &s) || s.type != MDX_MP_STR)
            return MDX_EINVAL;
    return q == end ? 0 : MDX_EINVAL;
}

int mdx_update(mdx_coll_t *c, const uint8_t *key, size_t key_len, const uint8_t *set,
               size_t set_len, const uint8_t *unset, size_t unset_len)
{
    mdx_store_t *st = c->store;
    c->ops.updates++;
    uint8_t ckey[KEYBUF(st)];
    size_t klen;
    uint64_t hash;
    mdx_buf_t nb;
    mdx_buf_init(&nb);
    int rc = mdx__key_prep(c, key, key_len, ckey, &klen, &hash);
    if (rc)
        goto fail;
    if (set && set_len && mdx_mp_check_body(set, set_len, MDX_MP_MAX_DEPTH)) {
        rc = mdx__err(st, MDX_EINVAL, "update: 'set' must be a msgpack map with string keys");
        goto fail;
    }
    if (unset && unset_len && check_unset(unset, unset_len)) {
        rc = mdx__err(st, MDX_EINVAL, "update: 'unset' must be a msgpack array of strings");
        goto fail;
    }
    if (!set_len)
        set = NULL;
    if (!unset_len)
        unset = NULL;
    if ((rc = mdx__evict_admit(c)))
        goto fail;

    mdx_rec_t *rec = NULL;
    MEM_BEGIN();
    mdx_rec_t *old = live_lookup(c, ckey, klen, hash);
    if (!old) {
        rc = mdx__err(st, MDX_ENOTFOUND, "no record with this key in '%s' to update", c->name);
        goto out;
    }

    /* New body: the old pairs not named in set or unset, then every pair of set. */
    const uint8_t *p = rec_body(old), *end = p + old->body_len;
    mdx_mp_tok_t mt, kt;
    (void)mdx_mp_read(&p, end, &mt);
    uint32_t kept = 0, nset = 0;
    mdx_buf_reserve(&nb, old->body_len + set_len + 5);
    nb.len = 5; /* room for the largest map header; moved into place below */
    for (uint32_t i = 0; i < mt.len; i++) {
        const uint8_t *ks = p;
        (void)mdx_mp_read(&p, end, &kt);
        (void)mdx_mp_skip(&p, end, MDX_MP_MAX_DEPTH);
        if (field_listed(kt.v.ptr, kt.len, set, set_len, unset, unset_len))
            continue;
        mdx_buf_append(&nb, ks, (size_t)(p - ks));
        kept++;
    }
    if (set) {
        const uint8_t *q = set;
        (void)mdx_mp_read(&q, set + set_len, &mt);
        nset = mt.len;
        mdx_buf_append(&nb, q, (size_t)(set + set_len - q));
    }
    if (nb.err) {
        rc = mdx__err(st, MDX_ENOMEM, "out of memory updating a record in '%s'", c->name);
        goto out;
    }
    uint8_t hdr[5];
    size_t hl = mdx_mp_enc_map_header(hdr, kept + nset);
    uint8_t *nbody = nb.data + 5 - hl;
    memcpy(nbody, hdr, hl);
    size_t nlen = nb.len - 5 + hl;
    if (nlen > st->opts.max_body) {
        rc = mdx__err(st, MDX_ETOOBIG, "updated body of %zu bytes exceeds the limit of %u", nlen,
                      st->opts.max_body);
        goto out;
    }
    tagset_t keep = {NULL, 0, 0, 1};
    rc = write_record(c, ckey, klen, hash, old, nbody, nlen, old->expires_at, &keep, &rec);
out:
    mdx_buf_fini(&nb); /* before MEM_END: the scratch buffer is not the collection's memory */
    MEM_END(c);
    if (rc == 0) {
        mdx__evict_enforce(c, rec);
        return 0;
    }
fail:
    mdx_buf_fini(&nb);
    c->ops.errors++;
    return rc;
}

/* ---- TTL ---- */

static int ttl_lookup(mdx_coll_t *c, const uint8_t *key, size_t key_len, mdx_rec_t **out)
{
    mdx_store_t *st = c->store;
    uint8_t ckey[KEYBUF(st)];
    size_t klen;
    uint64_t hash;
    int rc = mdx__key_prep(c, key, key_len, ckey, &klen, &hash);
    if (rc)
        return rc;
    *out = live_lookup(c, ckey, klen, hash);
    if (!*out)
        return mdx__err(st, MDX_ENOTFOUND, "no record with this key in '%s'", c->name);
    return 0;
}

int mdx_ttl_set(mdx_coll_t *c, const uint8_t *key, size_t key_len, int64_t ttl_ms)
{
    mdx_rec_t *r;
    int64_t exp;
    if (ttl_ms <= 0 || expiry_after(c->store, ttl_ms, &exp))
        return mdx__err(c->store, MDX_EINVAL,
                        "ttl must be a positive number of milliseconds (and now + ttl an int64)");
    MEM_BEGIN();
    int rc = ttl_lookup(c, key, key_len, &r);
    if (rc == 0) {
        if (r->heap_pos == MDX_NO_HEAP && heap_reserve(c)) {
            rc = mdx__err(c->store, MDX_ENOMEM, "out of memory setting a ttl in '%s'", c->name);
        } else {
            mdx__snap_guard(c, r);
            r->expires_at = exp;
            c->store->epoch++;
            if (r->heap_pos == MDX_NO_HEAP)
                heap_push(c, r);
            else
                heap_fix(c, r->heap_pos);
        }
    }
    MEM_END(c);
    return rc;
}

int mdx_ttl_get(mdx_coll_t *c, const uint8_t *key, size_t key_len, int64_t *remaining_ms)
{
    mdx_rec_t *r;
    MEM_BEGIN();
    int rc = ttl_lookup(c, key, key_len, &r);
    MEM_END(c);
    if (rc)
        return rc;
    *remaining_ms = r->expires_at ? r->expires_at - mdx_store_now(c->store) : -1;
    return 0;
}

int mdx_ttl_clear(mdx_coll_t *c, const uint8_t *key, size_t key_len)
{
    mdx_rec_t *r;
    MEM_BEGIN();
    int rc = ttl_lookup(c, key, key_len, &r);
    if (rc == 0 && r->heap_pos != MDX_NO_HEAP) {
        mdx__snap_guard(c, r);
        heap_remove(c, r);
        r->expires_at = 0;
        c->store->epoch++;
    }
    MEM_END(c);
    return rc;
}

uint64_t mdx__mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int coll_due(const mdx_coll_t *c, int64_t now)
{
    return (c->heap_len && c->heap[0]->expires_at <= now) || c->dying;
}

int mdx_store_expire(mdx_store_t *st, uint64_t max_records, uint64_t max_us, uint64_t *freed)
{
    uint64_t done = 0, deadline = max_us ? mdx__mono_us() + max_us : 0;
    int64_t now = mdx_store_now(st);
    int more = 0;
    for (size_t k = 0; k < st->ncolls && !more; k++) {
        if (st->expire_next >= st->ncolls)
            st->expire_next = 0;
        mdx_coll_t *c = st->colls[st->expire_next];
        if (mdx_htab_count(&c->leases)) {
            MEM_BEGIN();
            mdx__lease_expire(c, now);
            MEM_END(c);
        }
        if (!coll_due(c, now)) {
            st->expire_next++;
            continue;
        }
        if ((max_records && done >= max_records) ||
            (deadline && done && mdx__mono_us() >= deadline)) {
            more = 1;
            break;
        }
        MEM_BEGIN();
        done += expire_coll(c, now, max_records ? max_records - done : 0, deadline, &more);
        if (!more && c->dying) {
            if (max_records && done >= max_records)
                more = 1;
            else
                done += mdx__tags_reclaim(c, max_records ? max_records - done : 0, deadline);
            more |= c->dying != NULL;
        }
        MEM_END(c);
        if (!more)
            st->expire_next++;
    }
    if (freed)
        *freed = done;
    return more;
}

int mdx__rec_load(mdx_coll_t *c, const uint8_t *key, size_t key_len, const uint8_t *body,
                  size_t body_len, int64_t expires_at, const uint8_t *tags, size_t tags_len,
                  uint8_t evict, mdx_rec_t **out)
{
    mdx_store_t *st = c->store;
    uint8_t ckey[KEYBUF(st)];
    size_t klen;
    uint64_t hash;
    if (mdx__key_canon(st, key, key_len, ckey, &klen))
        return MDX_EBADKEY;
    hash = mdx__key_hash(ckey, klen);
    if (body_len > st->opts.max_body || mdx_mp_check_body(body, body_len, MDX_MP_MAX_DEPTH))
        return MDX_EBADBODY;
    unsigned ntags = 0;
    if (tags && mdx__tags_check(st, tags, tags_len, &ntags))
        return MDX_EINVAL;
    MEM_BEGIN();
    int rc = 0;
    if (mdx__rec_lookup(c, ckey, klen, hash)) {
        rc = MDX_EEXISTS;
        goto out;
    }
    if (expires_at && heap_reserve(c)) {
        rc = MDX_ENOMEM;
        goto out;
    }
    mdx_rec_t *r = rec_new(ckey, klen, hash, body, body_len, ntags);
    if (!r) {
        rc = MDX_ENOMEM;
        goto out;
    }
    if (ntags && mdx__tags_attach(c, r, tags, tags_len)) {
        mdx_free(r);
        rc = MDX_ENOMEM;
        goto out;
    }
    r->snap_gen = st->snap_gen;
    r->expires_at = expires_at;
    mdx__evict_restore(c, r, evict);
    mdx_htab_insert(&c->primary, &r->hnode);
    *out = r;
    if (expires_at)
        heap_push(c, r);
out:
    MEM_END(c);
    return rc;
}
