/*
 * Tags and invalidation.
 *
 * Each collection keeps a table of its live tags; a tag lists its records through the
 * memberships stored inside each record (mdx_tagref_t), so adding and removing a record costs
 * one table lookup and a few pointer writes per tag, and no allocation unless the tag is new.
 *
 * mdx_invalidate must be logically immediate but must not stall the loop on a tag held by
 * millions of records. A tag with few records (EAGER_MAX) is handled at once: its records are
 * freed in the call. A larger tag is taken out of the table and marked dead: every read checks
 * a tagged record's tags and treats a record holding a dead tag as gone, so the tag's records
 * vanish in O(1); the reclaim step (mdx_store_expire, and a small slice before each query)
 * frees them later. A write of the same key meets the dead record and replaces it; a write that
 * names the tag again creates a new live tag.
 */
#include <string.h>

#include <xxhash.h>

#include "common/assert.h"
#include "store/store_int.h"

#define EAGER_MAX 256 /* tags with at most this many records are freed inside mdx_invalidate */

int mdx__tags_check(mdx_store_t *st, const uint8_t *tags, size_t len, unsigned *n)
{
    const uint8_t *p = tags, *end = tags + len;
    mdx_mp_tok_t t, s;
    struct {
        const char *p;
        uint32_t len;
    } seen[MDX_TAGS_MAX];
    if (mdx_mp_read(&p, end, &t) || t.type != MDX_MP_ARRAY)
        return mdx__err(st, MDX_EINVAL, "tags must be a msgpack array of strings");
    if (t.len > MDX_TAGS_MAX)
        return mdx__err(st, MDX_EINVAL, "a record holds at most %d tags (got %u)", MDX_TAGS_MAX,
                        t.len);
    for (uint32_t i = 0; i < t.len; i++) {
        if (mdx_mp_read(&p, end, &s) || s.type != MDX_MP_STR || s.len == 0 || s.len > MDX_TAG_MAX)
            return mdx__err(st, MDX_EINVAL, "a tag is a string of 1 to %d bytes", MDX_TAG_MAX);
        for (uint32_t k = 0; k < i; k++)
            if (seen[k].len == s.len && memcmp(seen[k].p, s.v.ptr, s.len) == 0)
                return mdx__err(st, MDX_EINVAL, "tag '%.*s' is given twice", (int)s.len,
                                (const char *)s.v.ptr);
        seen[i].p = (const char *)s.v.ptr;
        seen[i].len = s.len;
    }
    if (p != end)
        return mdx__err(st, MDX_EINVAL, "tags must be one msgpack array of strings");
    *n = t.len;
    return 0;
}

typedef struct {
    const char *p;
    size_t len;
} name_t;

static int tag_eq(const mdx_hnode_t *n, const void *key)
{
    const mdx_tag_t *t = (const mdx_tag_t *)n;
    const name_t *k = key;
    return t->len == k->len && memcmp(t->name, k->p, k->len) == 0;
}

static mdx_tag_t *tag_find(mdx_coll_t *c, const char *p, size_t len)
{
    name_t k = {p, len};
    return (mdx_tag_t *)mdx_htab_find(&c->tags, XXH3_64bits(p, len), tag_eq, &k);
}

static void link_ref(mdx_tag_t *t, mdx_tagref_t *ref, unsigned idx)
{
    ref->tagx = (uintptr_t)t | idx;
    ref->prev = NULL;
    ref->next = t->first;
    if (t->first)
        t->first->prev = ref;
    t->first = ref;
    t->count++;
}

static void dying_unlink(mdx_coll_t *c, mdx_tag_t *t)
{
    mdx_tag_t **pp = &c->dying;
    while (*pp != t)
        pp = &(*pp)->dnext;
    *pp = t->dnext;
}

/* Unlinks one membership; frees the tag when it was its last record. */
static void unlink_ref(mdx_coll_t *c, mdx_tagref_t *ref)
{
    mdx_tag_t *t = tagref_tag(ref);
    if (ref->prev)
        ref->prev->next = ref->next;
    else
        t->first = ref->next;
    if (ref->next)
        ref->next->prev = ref->prev;
    t->count--;
    if (t->dead_epoch)
        c->pending--;
    if (t->count)
        return;
    if (t->dead_epoch) {
        dying_unlink(c, t);
    } else {
        int rc = mdx_htab_remove(&c->tags, &t->hnode);
        MDX_VERIFY(rc == 0);
    }
    mdx_free(t);
}

int mdx__tags_attach(mdx_coll_t *c, mdx_rec_t *r, const uint8_t *tags, size_t len)
{
    const uint8_t *p = tags, *end = tags + len;
    mdx_mp_tok_t t, s;
    mdx_tagref_t *refs = rec_tagrefs(r);
    (void)mdx_mp_read(&p, end, &t);
    MDX_ASSERT(t.len == r->ntags);
    for (unsigned i = 0; i < r->ntags; i++) {
        (void)mdx_mp_read(&p, end, &s);
        mdx_tag_t *tag = tag_find(c, (const char *)s.v.ptr, s.len);
        if (!tag) {
            tag = mdx_malloc(sizeof(*tag) + s.len);
            if (!tag) {
                while (i-- > 0)
                    unlink_ref(c, &refs[i]);
                return MDX_ENOMEM;
            }
            MDX_ASSERT(((uintptr_t)tag & 15) == 0);
            memset(tag, 0, sizeof(*tag));
            tag->len = (uint16_t)s.len;
            memcpy(tag->name, s.v.ptr, s.len);
            tag->hnode.hash = XXH3_64bits(s.v.ptr, s.len);
            mdx_htab_insert(&c->tags, &tag->hnode);
        }
        link_ref(tag, &refs[i], i);
    }
    return 0;
}

void mdx__tags_detach(mdx_coll_t *c, mdx_rec_t *r)
{
    mdx_tagref_t *refs = rec_tagrefs(r);
    for (unsigned i = 0; i < r->ntags; i++)
        unlink_ref(c, &refs[i]);
}

void mdx__tags_move(mdx_rec_t *old, mdx_rec_t *r)
{
    const mdx_tagref_t *o = rec_tagrefs(old);
    mdx_tagref_t *n = rec_tagrefs(r);
    MDX_ASSERT(old->ntags == r->ntags);
    for (unsigned i = 0; i < r->ntags; i++) {
        n[i] = o[i];
        if (n[i].prev)
            n[i].prev->next = &n[i];
        else
            tagref_tag(&n[i])->first = &n[i];
        if (n[i].next)
            n[i].next->prev = &n[i];
    }
}

int mdx__rec_invalidated(const mdx_rec_t *r, uint64_t epoch)
{
    const mdx_tagref_t *refs = rec_tagrefs(r);
    for (unsigned i = 0; i < r->ntags; i++) {
        uint64_t d = tagref_tag(&refs[i])->dead_epoch;
        if (d && (epoch == 0 || d <= epoch))
            return 1;
    }
    return 0;
}

/* Invalidates one live tag; returns the records it removed. */
static uint64_t invalidate_tag(mdx_coll_t *c, mdx_tag_t *t)
{
    mdx_store_t *st = c->store;
    int rc = mdx_htab_remove(&c->tags, &t->hnode);
    MDX_VERIFY(rc == 0);
    t->dead_epoch = ++st->epoch;
    if (t->count > EAGER_MAX) {
        /* A record that an earlier invalidation already hid is counted again here. */
        uint64_t n = t->count;
        t->dnext = c->dying;
        c->dying = t;
        c->pending += n;
        return n;
    }
    /* Small: free its records now. t stays allocated until its last record unlinks it. */
    uint64_t n = 0, left = t->count;
    t->dnext = c->dying;
    c->dying = t;
    c->pending += left;
    while (left--) {
        mdx_rec_t *r = tagref_rec(t->first);
        /* Gone already (expired, or another dead tag): not counted as removed by this call. */
        int before = rec_expired(r, st);
        if (!before) {
            const mdx_tagref_t *refs = rec_tagrefs(r);
            for (unsigned i = 0; i < r->ntags && !before; i++) {
                const mdx_tag_t *o = tagref_tag(&refs[i]);
                before = o != t && o->dead_epoch;
            }
        }
        n += !before;
        mdx__rec_destroy(c, r);
    }
    return n;
}

int mdx_invalidate(mdx_coll_t *c, const uint8_t *tags, size_t tags_len, uint64_t *removed)
{
    mdx_store_t *st = c->store;
    unsigned n;
    uint64_t total = 0;
    int rc = tags ? mdx__tags_check(st, tags, tags_len, &n)
                  : mdx__err(st, MDX_EINVAL, "invalidate needs tags");
    c->ops.invalidations++;
    if (rc) {
        c->ops.errors++;
        return rc;
    }
    const uint8_t *p = tags, *end = tags + tags_len;
    mdx_mp_tok_t t, s;
    (void)mdx_mp_read(&p, end, &t);
    MEM_BEGIN();
    for (unsigned i = 0; i < n; i++) {
        (void)mdx_mp_read(&p, end, &s);
        mdx_tag_t *tag = tag_find(c, (const char *)s.v.ptr, s.len);
        if (tag)
            total += invalidate_tag(c, tag);
    }
    MEM_END(c);
    c->ops.invalidated += total;
    if (removed)
        *removed = total;
    return 0;
}

int mdx_store_invalidate(mdx_store_t *st, const uint8_t *tags, size_t tags_len, uint64_t *removed)
{
    uint64_t total = 0, one;
    unsigned n;
    int rc = tags ? mdx__tags_check(st, tags, tags_len, &n)
                  : mdx__err(st, MDX_EINVAL, "invalidate needs tags");
    for (size_t i = 0; rc == 0 && i < st->ncolls; i++) {
        rc = mdx_invalidate(st->colls[i], tags, tags_len, &one);
        total += one;
    }
    if (removed)
        *removed = rc ? 0 : total;
    return rc;
}

uint64_t mdx__tags_reclaim(mdx_coll_t *c, uint64_t max, uint64_t deadline_us)
{
    uint64_t done = 0;
    while (c->dying && (!max || done < max)) {
        if (deadline_us && (done & 15) == 0 && done && mdx__mono_us() >= deadline_us)
            break;
        mdx__rec_destroy(c, tagref_rec(c->dying->first));
        done++;
    }
    return done;
}

void mdx__tags_free(mdx_coll_t *c)
{
    mdx_htab_iter_t it = {0};
    mdx_hnode_t *n;
    /* Records are gone (freed without unlinking); the tags are freed here. */
    while ((n = mdx_htab_iter_next(&c->tags, &it)))
        mdx_free(n);
    mdx_htab_fini(&c->tags);
    while (c->dying) {
        mdx_tag_t *t = c->dying;
        c->dying = t->dnext;
        mdx_free(t);
    }
}

int mdx_tags_get(mdx_coll_t *c, const uint8_t *key, size_t key_len,
                 void (*fn)(void *data, const char *tag, size_t len), void *data)
{
    mdx_store_t *st = c->store;
    uint8_t ckey[KEYBUF(st)];
    size_t klen;
    uint64_t hash;
    int rc = mdx__key_prep(c, key, key_len, ckey, &klen, &hash);
    if (rc)
        return rc;
    MEM_BEGIN();
    mdx_rec_t *r = mdx__rec_lookup(c, ckey, klen, hash);
    MEM_END(c);
    if (!r || rec_gone(r, st))
        return mdx__err(st, MDX_ENOTFOUND, "no record with this key in '%s'", c->name);
    const mdx_tagref_t *refs = rec_tagrefs(r);
    for (unsigned i = 0; i < r->ntags; i++) {
        const mdx_tag_t *t = tagref_tag(&refs[i]);
        fn(data, t->name, t->len);
    }
    return 0;
}
