/*
 * The cache tier's eviction: per-collection queues, the four policies, the memory limit and
 * collection capacities.
 *
 * Every record is in one of its collection's two queues (doubly linked through the record,
 * head = newest): S3-FIFO uses both (small and main), SIEVE and LRU only main. Keeping the
 * queues for every collection, limited or not, costs two pointers per record and a few
 * pointer writes per insert and delete; in exchange a limit or a policy can be set at any time
 * and a snapshot can keep each record's eviction state.
 *
 * - S3-FIFO (Yang et al., SOSP 2023): new records enter the small queue (10% of the records),
 *   or main when their key is in the ghost queue of recently evicted keys. A hit raises a
 *   2-bit frequency. Evicting from small: a record hit at least once moves to main, else it is
 *   evicted and its key goes to the ghost queue. Evicting from main: a record with frequency >
 *   0 goes back to the head with frequency - 1, else it is evicted.
 * - SIEVE (Zhang et al., NSDI 2024): one FIFO queue and a hand that moves from the tail toward
 *   the head; a hit sets the visited bit; the hand clears visited bits until it meets an
 *   unvisited record, which is evicted; the hand stays where it stopped.
 * - LRU: a hit moves the record to the head; the tail is evicted.
 *
 * Eviction runs after a write (mdx__evict_enforce): while the collection holds more records
 * than its capacity, it evicts from that collection; while the store holds more memory than
 * maxmemory, it evicts from the evictable collection holding the most memory. The record just
 * written is never its own victim.
 */
#include <string.h>

#include "common/assert.h"
#include "store/store_int.h"

/* S3-FIFO: a record leaves the small queue for main when hit at least this often. */
#define S3_PROMOTE 1
#define GHOST_MIN  1024u

static const char *const policy_names[] = {"default", "noeviction", "s3fifo", "sieve", "lru"};

const char *mdx_evict_policy_name(mdx_evict_policy_t p)
{
    return (unsigned)p <= MDX_EVICT_LRU ? policy_names[p] : "unknown";
}

int mdx_evict_policy_parse(const char *name, size_t len, int allow_default, mdx_evict_policy_t *out)
{
    for (unsigned i = allow_default ? 0 : 1; i <= MDX_EVICT_LRU; i++) {
        if (strlen(policy_names[i]) == len && memcmp(policy_names[i], name, len) == 0) {
            *out = (mdx_evict_policy_t)i;
            return 0;
        }
    }
    return MDX_EINVAL;
}

mdx_evict_policy_t mdx_coll_policy(const mdx_coll_t *c)
{
    return c->opts.policy != MDX_EVICT_DEFAULT ? c->opts.policy : c->store->opts.policy;
}

/* ---- queues ---- */

static void q_push_head(mdx_queue_t *q, mdx_rec_t *r)
{
    r->qprev = NULL;
    r->qnext = q->head;
    if (q->head)
        q->head->qprev = r;
    else
        q->tail = r;
    q->head = r;
    q->len++;
}

static void q_unlink(mdx_queue_t *q, mdx_rec_t *r)
{
    if (r->qprev)
        r->qprev->qnext = r->qnext;
    else
        q->head = r->qnext;
    if (r->qnext)
        r->qnext->qprev = r->qprev;
    else
        q->tail = r->qprev;
    q->len--;
}

static mdx_queue_t *q_of(mdx_coll_t *c, const mdx_rec_t *r)
{
    return &c->q[(r->evict & EV_MAIN) ? 1 : 0];
}

/* ---- the ghost queue ---- */

static uint32_t fingerprint(uint64_t hash)
{
    uint32_t fp = (uint32_t)(hash >> 32);
    return fp ? fp : 1;
}

static void set_insert(mdx_ghost_t *g, uint32_t fp)
{
    uint32_t i = fp & g->set_mask;
    while (g->set[i])
        i = (i + 1) & g->set_mask;
    g->set[i] = fp;
}

/* Removes one entry fp; returns 1 when there was one. Backward-shift deletion keeps every
 * probe sequence unbroken without tombstones. */
static int set_remove(mdx_ghost_t *g, uint32_t fp)
{
    uint32_t m = g->set_mask, i = fp & m;
    while (g->set[i] != fp) {
        if (!g->set[i])
            return 0;
        i = (i + 1) & m;
    }
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & m;
        uint32_t f = g->set[j];
        if (!f)
            break;
        uint32_t home = f & m;
        /* f may move into the hole at i when its home is not in (i, j]. */
        if (((j - home) & m) >= ((j - i) & m)) {
            g->set[i] = f;
            i = j;
        }
    }
    g->set[i] = 0;
    return 1;
}

void mdx__ghost_free(mdx_ghost_t *g)
{
    mdx_free(g->ring);
    mdx_free(g->set);
    memset(g, 0, sizeof(*g));
}

/* Makes room for `want` entries; on allocation failure the ghost keeps its size. */
static void ghost_grow(mdx_ghost_t *g, uint32_t want)
{
    uint32_t cap = GHOST_MIN;
    while (cap < want && cap < (1u << 30))
        cap <<= 1;
    if (g->ring && cap <= g->ring_mask + 1)
        return;
    uint32_t *ring = mdx_malloc((size_t)cap * sizeof(*ring));
    uint32_t *set = mdx_calloc((size_t)cap * 2, sizeof(*set));
    if (!ring || !set) {
        mdx_free(ring);
        mdx_free(set);
        return;
    }
    mdx_ghost_t n = {ring, set, cap - 1, cap * 2 - 1, 0, 0};
    for (uint32_t k = 0; k < g->len; k++) {
        uint32_t fp = g->ring[(g->head - g->len + k) & g->ring_mask];
        n.ring[n.head++ & n.ring_mask] = fp;
        set_insert(&n, fp);
    }
    n.len = g->len;
    mdx__ghost_free(g);
    *g = n;
}

static void ghost_add(mdx_coll_t *c, uint64_t hash)
{
    mdx_ghost_t *g = &c->ghost;
    uint64_t bound = c->q[1].len > GHOST_MIN ? c->q[1].len : GHOST_MIN;
    if (bound > (1u << 30))
        bound = 1u << 30;
    if (!g->ring || bound > (uint64_t)g->ring_mask + 1)
        ghost_grow(g, (uint32_t)bound);
    if (!g->ring)
        return;
    while (g->len && (g->len >= bound || g->len > g->ring_mask)) {
        (void)set_remove(g, g->ring[(g->head - g->len) & g->ring_mask]);
        g->len--;
    }
    uint32_t fp = fingerprint(hash);
    g->ring[g->head++ & g->ring_mask] = fp;
    g->len++;
    set_insert(g, fp);
}

/* Was the key recently evicted? Takes it out of the ghost when so. (Its ring slot stays; when
 * that slot ages out it removes one entry with the same fingerprint, if any.) */
static int ghost_take(mdx_coll_t *c, uint64_t hash)
{
    mdx_ghost_t *g = &c->ghost;
    return g->len && set_remove(g, fingerprint(hash));
}

/* ---- record events ---- */

void mdx__evict_insert(mdx_coll_t *c, mdx_rec_t *r)
{
    int main = mdx_coll_policy(c) != MDX_EVICT_S3FIFO || ghost_take(c, r->hnode.hash);
    r->evict = main ? EV_MAIN : 0;
    q_push_head(&c->q[main], r);
}

void mdx__evict_restore(mdx_coll_t *c, mdx_rec_t *r, uint8_t evict)
{
    evict &= EV_FREQ | EV_MAIN;
    if (mdx_coll_policy(c) != MDX_EVICT_S3FIFO)
        evict |= EV_MAIN;
    r->evict = evict;
    q_push_head(&c->q[(evict & EV_MAIN) ? 1 : 0], r);
}

void mdx__evict_remove(mdx_coll_t *c, mdx_rec_t *r)
{
    if (c->hand == r)
        c->hand = r->qprev;
    q_unlink(q_of(c, r), r);
}

void mdx__evict_replace(mdx_coll_t *c, mdx_rec_t *old, mdx_rec_t *r)
{
    mdx_queue_t *q = q_of(c, old);
    r->evict = old->evict;
    r->qprev = old->qprev;
    r->qnext = old->qnext;
    if (r->qprev)
        r->qprev->qnext = r;
    else
        q->head = r;
    if (r->qnext)
        r->qnext->qprev = r;
    else
        q->tail = r;
    if (c->hand == old)
        c->hand = r;
}

void mdx__evict_hit_lru(mdx_coll_t *c, mdx_rec_t *r)
{
    mdx_queue_t *q = q_of(c, r);
    if (q->head == r)
        return;
    q_unlink(q, r);
    q_push_head(q, r);
}

void mdx__evict_policy_changed(mdx_coll_t *c)
{
    /* Every policy but S3-FIFO keeps all records in main: the small queue's records (the
     * newest) go to main's head. */
    if (mdx_coll_policy(c) != MDX_EVICT_S3FIFO && c->q[0].len) {
        mdx_queue_t *s = &c->q[0], *m = &c->q[1];
        for (mdx_rec_t *r = s->head; r; r = r->qnext)
            r->evict |= EV_MAIN;
        s->tail->qnext = m->head;
        if (m->head)
            m->head->qprev = s->tail;
        else
            m->tail = s->tail;
        m->head = s->head;
        m->len += s->len;
        s->head = s->tail = NULL;
        s->len = 0;
    }
    c->hand = NULL;
    MEM_BEGIN();
    mdx__ghost_free(&c->ghost);
    MEM_END(c);
}

/* ---- choosing a victim ---- */

/* The next record the policy evicts from c, never `keep`; NULL when c holds nothing else. May
 * reorder the queues (promotions, second chances) and feed the ghost. */
static mdx_rec_t *pick_victim(mdx_coll_t *c, const mdx_rec_t *keep)
{
    mdx_queue_t *s = &c->q[0], *m = &c->q[1];
    uint64_t total = s->len + m->len;
    if (keep && total)
        total--;
    if (total == 0)
        return NULL;
    switch (mdx_coll_policy(c)) {
    case MDX_EVICT_S3FIFO:
        for (;;) {
            uint64_t slen = s->len - (keep && !(keep->evict & EV_MAIN));
            uint64_t mlen = m->len - (keep && (keep->evict & EV_MAIN));
            if (slen && (slen * 10 >= total || !mlen)) {
                mdx_rec_t *t = s->tail == keep ? keep->qprev : s->tail;
                if ((t->evict & EV_FREQ) >= S3_PROMOTE) {
                    q_unlink(s, t);
                    t->evict = EV_MAIN;
                    q_push_head(m, t);
                    continue;
                }
                ghost_add(c, t->hnode.hash);
                return t;
            }
            mdx_rec_t *t = m->tail == keep ? keep->qprev : m->tail;
            if (t->evict & EV_FREQ) {
                q_unlink(m, t);
                t->evict--;
                q_push_head(m, t);
                continue;
            }
            return t;
        }
    case MDX_EVICT_SIEVE: {
        mdx_rec_t *h = c->hand ? c->hand : m->tail;
        for (;;) {
            if (!h)
                h = m->tail;
            if (h != keep && !(h->evict & EV_FREQ)) {
                c->hand = h; /* mdx__evict_remove moves it on */
                return h;
            }
            h->evict &= (uint8_t)~EV_FREQ;
            h = h->qprev;
        }
    }
    default: /* LRU, and noeviction when asked for a capacity it cannot keep */
        return m->tail == keep ? keep->qprev : m->tail;
    }
}

static int evictable(const mdx_coll_t *c)
{
    return mdx_coll_policy(c) != MDX_EVICT_NOEVICTION;
}

/* Evicts one record of c (not keep); returns 0 when there was none. */
static int evict_one(mdx_coll_t *c, const mdx_rec_t *keep, uint64_t *counter)
{
    MEM_BEGIN();
    mdx_rec_t *v = pick_victim(c, keep);
    if (v) {
        mdx__rec_destroy(c, v);
        (*counter)++;
    }
    MEM_END(c);
    return v != NULL;
}

/* The evictable collection holding the most memory, other than records `keep`. */
static mdx_coll_t *biggest(mdx_store_t *st, const mdx_rec_t *keep, const mdx_coll_t *kc)
{
    mdx_coll_t *best = NULL;
    for (size_t i = 0; i < st->ncolls; i++) {
        mdx_coll_t *c = st->colls[i];
        uint64_t n = mdx_htab_count(&c->primary) - (c == kc && keep);
        if (n && evictable(c) && (!best || c->mem > best->mem))
            best = c;
    }
    return best;
}

/* Evicts while the store holds more than `target` bytes. */
static void enforce_memory(mdx_store_t *st, const mdx_rec_t *keep, const mdx_coll_t *kc,
                           size_t target)
{
    while (st->mem > target) {
        mdx_coll_t *v = biggest(st, keep, kc);
        if (!v)
            return;
        for (int k = 0; k < 64 && st->mem > target; k++)
            if (!evict_one(v, v == kc ? keep : NULL, &v->ops.evicted_memory))
                break;
    }
}

void mdx__evict_enforce(mdx_coll_t *c, mdx_rec_t *keep)
{
    if (c->opts.capacity && evictable(c))
        while (mdx_htab_count(&c->primary) > c->opts.capacity)
            if (!evict_one(c, keep, &c->ops.evicted_capacity))
                break;
    if (c->store->opts.maxmemory)
        enforce_memory(c->store, keep, c, c->store->opts.maxmemory);
}

int mdx__evict_full(mdx_coll_t *c)
{
    mdx_store_t *st = c->store;
    /* An insert that would grow the primary table past the memory limit when nothing can be
     * evicted to pay for it is refused: the bucket array is the one large allocation a
     * write can make. */
    size_t grow = st->opts.maxmemory ? mdx_htab_grow_bytes(&c->primary) : 0;
    if (grow && st->mem + grow > st->opts.maxmemory) {
        enforce_memory(st, NULL, NULL, grow < st->opts.maxmemory ? st->opts.maxmemory - grow : 0);
        if (st->mem + grow > st->opts.maxmemory) {
            c->ops.oom++;
            return mdx__err(st, MDX_EOOM,
                            "memory limit of %zu bytes reached (%zu used, growing the table of "
                            "'%s' needs %zu more) and nothing can be evicted",
                            st->opts.maxmemory, st->mem, c->name, grow);
        }
    }
    if (c->opts.capacity && !evictable(c) && mdx_htab_count(&c->primary) >= c->opts.capacity) {
        c->ops.oom++;
        return mdx__err(c->store, MDX_EOOM,
                        "collection '%s' holds its capacity of %llu records and its policy is "
                        "noeviction",
                        c->name, (unsigned long long)c->opts.capacity);
    }
    return 0;
}

int mdx__evict_admit(mdx_coll_t *c)
{
    mdx_store_t *st = c->store;
    if (st->opts.maxmemory && st->mem >= st->opts.maxmemory) {
        enforce_memory(st, NULL, NULL, st->opts.maxmemory - 1);
        if (st->mem >= st->opts.maxmemory) {
            c->ops.oom++;
            return mdx__err(st, MDX_EOOM,
                            "memory limit of %zu bytes reached (%zu used) and nothing can be "
                            "evicted",
                            st->opts.maxmemory, st->mem);
        }
    }
    return 0;
}

/* ---- configuration ---- */

int mdx_store_set_limit(mdx_store_t *st, size_t maxmemory, mdx_evict_policy_t policy)
{
    if ((unsigned)policy > MDX_EVICT_LRU)
        return mdx__err(st, MDX_EINVAL, "unknown eviction policy %d", (int)policy);
    st->opts.maxmemory = maxmemory;
    if (policy != MDX_EVICT_DEFAULT && policy != st->opts.policy) {
        st->opts.policy = policy;
        for (size_t i = 0; i < st->ncolls; i++)
            if (st->colls[i]->opts.policy == MDX_EVICT_DEFAULT)
                mdx__evict_policy_changed(st->colls[i]);
    }
    return 0;
}

int mdx_coll_configure(mdx_coll_t *c, const mdx_coll_opts_t *o)
{
    mdx_store_t *st = c->store;
    if ((unsigned)o->policy > MDX_EVICT_LRU)
        return mdx__err(st, MDX_EINVAL, "unknown eviction policy %d", (int)o->policy);
    if (o->default_ttl_ms < 0)
        return mdx__err(st, MDX_EINVAL, "default ttl must be >= 0 ms");
    mdx_evict_policy_t before = mdx_coll_policy(c);
    mdx_coll_opts_t prev = c->opts;
    c->opts = *o;
    if (o->capacity && mdx_htab_count(&c->primary) > o->capacity && !evictable(c)) {
        c->opts = prev;
        return mdx__err(st, MDX_EOOM,
                        "collection '%s' holds %llu records, more than the capacity %llu, and "
                        "its policy is noeviction",
                        c->name, (unsigned long long)mdx_htab_count(&c->primary),
                        (unsigned long long)o->capacity);
    }
    if (mdx_coll_policy(c) != before)
        mdx__evict_policy_changed(c);
    mdx__evict_enforce(c, NULL);
    return 0;
}

void mdx_coll_options(const mdx_coll_t *c, mdx_coll_opts_t *out)
{
    *out = c->opts;
}
