/*
 * Leases: stampede protection for a cache in front of a slow source, after memcached's leases
 * (Nishtala et al., NSDI 2013) and its meta protocol.
 *
 * On a miss, mdx_get_or_lease grants the key's lease to the first caller (FILL, with a token)
 * and tells the others to wait, so one client loads the value from the source instead of all
 * of them. Any write or delete of the key ends the lease, and a put carrying a token that is no
 * longer held fails: a filler that read the source before someone else wrote a fresher value
 * (or deleted the key) cannot overwrite it. A lease also ends after its lease_ms, so a filler
 * that died does not block the key: the next caller gets a new lease.
 *
 * A lease is a small allocation in the collection's lease table, keyed like records, and on a
 * list in grant order that the reclaim step trims from the front. Leases are not saved in
 * snapshots: they are promises to live clients.
 */
#include <string.h>

#include "common/assert.h"
#include "store/store_int.h"

typedef struct mdx_lease {
    mdx_hnode_t hnode; /* in c->leases; hash = the key's */
    struct mdx_lease *prev, *next;
    uint64_t token;
    int64_t expires_at;
    uint16_t key_len;
    uint8_t key[];
} mdx_lease_t;

typedef struct {
    const uint8_t *p;
    size_t len;
} lkey_t;

static int lease_eq(const mdx_hnode_t *n, const void *key)
{
    const mdx_lease_t *l = (const mdx_lease_t *)n;
    const lkey_t *k = key;
    return l->key_len == k->len && memcmp(l->key, k->p, k->len) == 0;
}

static mdx_lease_t *lease_find(mdx_coll_t *c, const uint8_t *ckey, size_t klen, uint64_t hash)
{
    lkey_t k = {ckey, klen};
    return (mdx_lease_t *)mdx_htab_find(&c->leases, hash, lease_eq, &k);
}

static void lease_unlink(mdx_coll_t *c, mdx_lease_t *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        c->lease_head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        c->lease_tail = l->prev;
    int rc = mdx_htab_remove(&c->leases, &l->hnode);
    MDX_VERIFY(rc == 0);
    mdx_free(l);
}

void mdx__lease_drop(mdx_coll_t *c, const uint8_t *ckey, size_t klen, uint64_t hash)
{
    mdx_lease_t *l = lease_find(c, ckey, klen, hash);
    if (l)
        lease_unlink(c, l);
}

int mdx__lease_check(mdx_coll_t *c, const uint8_t *ckey, size_t klen, uint64_t hash, uint64_t token)
{
    mdx_lease_t *l = mdx_htab_count(&c->leases) ? lease_find(c, ckey, klen, hash) : NULL;
    if (l && l->token == token && l->expires_at > mdx_store_now(c->store))
        return 0;
    return mdx__err(c->store, MDX_ELEASE,
                    "lease %llu on this key of '%s' is no longer held (it ended, or the key was "
                    "written or deleted since)",
                    (unsigned long long)token, c->name);
}

void mdx__lease_expire(mdx_coll_t *c, int64_t now)
{
    /* Grant order is expiry order for equal lease_ms; a longer lease ahead of shorter ones
     * only delays their freeing until it ends (they are already invalid). */
    while (c->lease_head && c->lease_head->expires_at <= now)
        lease_unlink(c, c->lease_head);
}

void mdx__lease_free(mdx_coll_t *c)
{
    while (c->lease_head) {
        mdx_lease_t *l = c->lease_head;
        c->lease_head = l->next;
        mdx_free(l);
    }
    c->lease_tail = NULL;
    mdx_htab_fini(&c->leases);
}

int mdx_get_or_lease(mdx_coll_t *c, const uint8_t *key, size_t key_len, int64_t lease_ms,
                     mdx_rec_view_t *out, mdx_lease_state_t *state, uint64_t *token)
{
    mdx_store_t *st = c->store;
    uint8_t ckey[KEYBUF(st)];
    size_t klen;
    uint64_t hash;
    c->ops.gets++;
    *token = 0;
    int rc = mdx__key_prep(c, key, key_len, ckey, &klen, &hash);
    if (!rc && (lease_ms < 1 || lease_ms > MDX_LEASE_MAX_MS))
        rc = mdx__err(st, MDX_EINVAL, "lease_ms must be 1 to %d", MDX_LEASE_MAX_MS);
    if (rc) {
        c->ops.errors++;
        return rc;
    }
    MEM_BEGIN();
    mdx_rec_t *r = mdx__rec_lookup(c, ckey, klen, hash);
    if (r && !rec_gone(r, st)) {
        MEM_END(c);
        c->ops.hits++;
        mdx__evict_hit(c, r);
        mdx__rec_view(r, out);
        *state = MDX_LEASE_HIT;
        return 0;
    }
    c->ops.misses++;
    int64_t now = mdx_store_now(st);
    mdx_lease_t *l = lease_find(c, ckey, klen, hash);
    if (l && l->expires_at > now) {
        MEM_END(c);
        *state = MDX_LEASE_WAIT;
        return 0;
    }
    if (l)
        lease_unlink(c, l); /* ended: the next caller gets a new one */
    l = mdx_malloc(sizeof(*l) + klen);
    if (!l) {
        MEM_END(c);
        c->ops.errors++;
        return mdx__err(st, MDX_ENOMEM, "out of memory granting a lease in '%s'", c->name);
    }
    l->hnode.next = NULL;
    l->hnode.hash = hash;
    l->token = ++st->lease_seq;
    l->expires_at = now + lease_ms;
    l->key_len = (uint16_t)klen;
    memcpy(l->key, ckey, klen);
    l->next = NULL;
    l->prev = c->lease_tail;
    if (c->lease_tail)
        c->lease_tail->next = l;
    else
        c->lease_head = l;
    c->lease_tail = l;
    mdx_htab_insert(&c->leases, &l->hnode);
    MEM_END(c);
    *state = MDX_LEASE_FILL;
    *token = l->token;
    return 0;
}
