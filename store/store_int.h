/*
 * Engine internals shared by the store/ sources and their tests. Not a public header.
 *
 * A record is one allocation: header, canonical key bytes, body bytes. The primary hash table
 * links records through the embedded hnode. Secondary index entries never own record memory:
 * skiplist nodes and hash groups point at records and borrow string values from their bodies,
 * so a write that replaces a record repoints every entry before the old record is freed.
 */
#ifndef MDX_STORE_INT_H
#define MDX_STORE_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/mp.h"
#include "index/htab.h"
#include "index/skiplist.h"
#include "index/value.h"
#include "memdex/store.h"

#define MDX_NO_HEAP UINT32_MAX

struct mdx_tag;

/* A record's membership in one tag: a link in the tag's member list. It lives inside the
 * record allocation; `tagx` is the tag pointer with the membership's index in the record in
 * its low 4 bits (tags are malloc'ed, so 16-byte aligned), which leads back to the record. */
typedef struct mdx_tagref {
    struct mdx_tagref *prev, *next;
    uintptr_t tagx;
} mdx_tagref_t;

/* Eviction state, one byte: access frequency (0..3; SIEVE's visited bit is freq != 0) and the
 * queue the record is in (S3-FIFO's small or main; the other policies use main only). */
#define EV_FREQ 0x03u
#define EV_MAIN 0x04u

typedef struct mdx_rec {
    mdx_hnode_t hnode;             /* primary index link; hash = XXH3 of the canonical key */
    struct mdx_rec *qprev, *qnext; /* eviction queue: toward the head (newer) / tail (older) */
    int64_t expires_at;            /* ms since the Unix epoch; 0 = never */
    uint32_t heap_pos;             /* position in the collection's expiry heap, or MDX_NO_HEAP */
    uint32_t body_len;
    uint16_t key_len;
    uint16_t snap_gen; /* generation of the last snapshot that saved this record */
    uint8_t evict;     /* EV_* */
    uint8_t ntags;
    /* With tags: 2 bytes of padding, ntags mdx_tagref_t (8-aligned), then the key and body.
     * Without: key_len bytes of canonical msgpack key, then body_len bytes of body. */
    uint8_t data[];
} mdx_rec_t;

#define REC_HDR     offsetof(mdx_rec_t, data)
#define REC_TAG_PAD ((8 - REC_HDR % 8) % 8)
_Static_assert((REC_HDR + REC_TAG_PAD) % 8 == 0, "tag memberships must be 8-aligned");

static inline size_t rec_tags_size(unsigned ntags)
{
    return ntags ? REC_TAG_PAD + ntags * sizeof(mdx_tagref_t) : 0;
}
static inline mdx_tagref_t *rec_tagrefs(const mdx_rec_t *r)
{
    return (mdx_tagref_t *)(uintptr_t)(r->data + REC_TAG_PAD);
}
static inline const uint8_t *rec_key(const mdx_rec_t *r)
{
    return r->data + rec_tags_size(r->ntags);
}
static inline const uint8_t *rec_body(const mdx_rec_t *r)
{
    return rec_key(r) + r->key_len;
}
static inline struct mdx_tag *tagref_tag(const mdx_tagref_t *t)
{
    return (struct mdx_tag *)(t->tagx & ~(uintptr_t)15);
}
static inline mdx_rec_t *tagref_rec(const mdx_tagref_t *t)
{
    const mdx_tagref_t *first = t - (t->tagx & 15);
    return (mdx_rec_t *)(uintptr_t)((const uint8_t *)first - REC_TAG_PAD - REC_HDR);
}

/* A tag of a collection: its name and the records holding it. A live tag is in the
 * collection's tag table; mdx_invalidate takes it out of the table and marks it dead (with the
 * epoch of the invalidation, which snapshots compare with theirs): from then on its records
 * are invisible, and the reclaim step frees them. A tag is freed with its last member. */
typedef struct mdx_tag {
    mdx_hnode_t hnode; /* in c->tags while live; hash = XXH3 of the name */
    mdx_tagref_t *first;
    uint64_t count;
    uint64_t dead_epoch;   /* 0 while live */
    struct mdx_tag *dnext; /* the collection's list of dead tags with members left */
    uint16_t len;
    char name[];
} mdx_tag_t;

/* An S3-FIFO ghost queue: 32-bit fingerprints of recently evicted keys, in a FIFO ring and a
 * linear-probing set (at most half full) for lookups. */
typedef struct {
    uint32_t *ring, *set;
    uint32_t ring_mask, set_mask; /* capacities - 1 (powers of two), or 0 before first use */
    uint64_t head;                /* fingerprints pushed so far; ring slot = n & ring_mask */
    uint32_t len;
} mdx_ghost_t;

typedef struct {
    mdx_rec_t *head, *tail;
    uint64_t len;
} mdx_queue_t;

/* A hash-index group: every record whose field equals `value`, sorted by primary key. The
 * value's string bytes are copied into the group allocation after the struct. */
typedef struct {
    mdx_hnode_t hnode; /* hash = mdx_value_hash(value) */
    mdx_value_t value;
    uint32_t count;
    uint32_t cap;
    union {
        mdx_rec_t *one;   /* cap == 1 */
        mdx_rec_t **many; /* cap > 1 */
    } recs;
} mdx_hgroup_t;

typedef struct {
    char name[MDX_NAME_MAX + 1];
    char field[MDX_FIELD_MAX + 1];
    size_t field_len;
    mdx_index_kind_t kind;
    int unique;
    uint64_t entries;
    mdx_htab_t groups; /* HASH */
    mdx_skiplist_t sl; /* SKIPLIST */
} mdx_index_t;

struct mdx_coll {
    char name[MDX_NAME_MAX + 1];
    mdx_store_t *store;
    mdx_htab_t primary;
    mdx_index_t *indexes[MDX_MAX_INDEXES];
    size_t nindexes;
    mdx_rec_t **heap; /* min-heap on expires_at */
    uint32_t heap_len, heap_cap;
    size_t mem;       /* bytes of records, index entries and tables charged to this collection */
    int32_t snap_idx; /* index in the running snapshot's header, -1 when not in it */
    mdx_counters_t ops;
    mdx_coll_opts_t opts;
    mdx_queue_t q[2];  /* eviction queues: [0] S3-FIFO's small, [1] main (every policy) */
    mdx_rec_t *hand;   /* SIEVE's hand, NULL: start at the tail */
    mdx_ghost_t ghost; /* S3-FIFO */
    mdx_htab_t tags;   /* live tags (mdx_tag_t) */
    mdx_tag_t *dying;  /* dead tags whose records are still to be freed */
    uint64_t pending;  /* records of dead tags not yet freed (counted once per tag) */
    mdx_htab_t leases; /* mdx_lease_t by key */
    struct mdx_lease *lease_head, *lease_tail; /* in the order they were granted */
};

struct mdx_store {
    mdx_store_opts_t opts;
    mdx_coll_t **colls;
    size_t ncolls, colls_cap;
    size_t expire_next; /* round-robin position of the expiry step */
    uint64_t epoch;
    struct mdx_snapshot *snap;  /* the snapshot in progress, or NULL */
    uint64_t snap_epoch;        /* its epoch: tags invalidated after it began have more */
    uint16_t snap_gen;          /* its generation (new records start with it: not to save) */
    mdx_counters_t dropped_ops; /* counters of dropped collections, kept in the totals */
    mdx_buf_t cursor;           /* backing store of the last find cursor */
    size_t mem;                 /* sum of the collections' mem */
    uint64_t lease_seq;         /* last lease token handed out */
    size_t evict_next;          /* round-robin start of the eviction step over collections */
    struct {
        char name[MDX_NAME_MAX + 1];
        int64_t ttl_ms;
    } ttl_classes[MDX_TTL_CLASSES_MAX];
    size_t nttl_classes;
    char errmsg[320];
};

/* store.c */
int mdx__err(mdx_store_t *st, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int mdx__check_name(const char *name, size_t len);

/* record keys */
/** Canonicalizes a msgpack key (int, str or bin) into out (max_key + 9 bytes). */
int mdx__key_canon(const mdx_store_t *st, const uint8_t *key, size_t len, uint8_t *out,
                   size_t *out_len);
uint64_t mdx__key_hash(const uint8_t *ckey, size_t len);
/** Canonicalizes and hashes a caller's key, setting the error message on failure. ckey must
 *  hold KEYBUF(st) bytes. Errors: MDX_EBADKEY, MDX_ETOOBIG. */
int mdx__key_prep(mdx_coll_t *c, const uint8_t *key, size_t key_len, uint8_t *ckey, size_t *klen,
                  uint64_t *hash);
#define KEYBUF(st) (MDX_KEY_LIMIT + 9)
void mdx__rec_pk(const void *rec, mdx_value_t *out);
mdx_rec_t *mdx__rec_lookup(mdx_coll_t *c, const uint8_t *ckey, size_t len, uint64_t hash);
void mdx__rec_view(const mdx_rec_t *r, mdx_rec_view_t *v);
/* The clock is read only for records that have an expiry (most do not, and a clock read costs
 * as much as the rest of a cached get). */
static inline int rec_expired(const mdx_rec_t *r, const mdx_store_t *st)
{
    return r->expires_at != 0 && r->expires_at <= mdx_store_now(st);
}
/** Does the record hold a tag invalidated at or before epoch (0: at any time)? */
int mdx__rec_invalidated(const mdx_rec_t *r, uint64_t epoch);
/** Is the record invisible (expired, or holding an invalidated tag)? Such records wait in the
 *  indexes for the reclaim step; reads skip them and writes reclaim them when met. */
static inline int rec_gone(const mdx_rec_t *r, const mdx_store_t *st)
{
    return rec_expired(r, st) || (r->ntags && mdx__rec_invalidated(r, 0));
}
/** rec_gone with the time already read (queries read the clock once, not per record). */
static inline int rec_gone_at(const mdx_rec_t *r, int64_t now)
{
    return (r->expires_at != 0 && r->expires_at <= now) || (r->ntags && mdx__rec_invalidated(r, 0));
}

/* index.c: the per-record index upkeep. */
/** Extracts a record body's value for index ix: returns 1 with *v set, 0 when the field is
 *  absent or nil, or a negative error (-MDX_EBADFIELD, -MDX_ENAN). */
int mdx__index_extract(const mdx_index_t *ix, const uint8_t *body, size_t len, mdx_value_t *v);
/** Adds rec with value v to ix. Returns 0, MDX_EUNIQUE or MDX_ENOMEM (ix unchanged). */
int mdx__index_add(mdx_coll_t *c, mdx_index_t *ix, const mdx_value_t *v, mdx_rec_t *rec);
/** Removes rec (with value v) from ix. Never fails for an entry that exists. */
void mdx__index_remove(mdx_coll_t *c, mdx_index_t *ix, const mdx_value_t *v, mdx_rec_t *rec);
/** Points the entry of old (value v) at new_rec, whose value equals v. Never fails. */
void mdx__index_repoint(mdx_index_t *ix, const mdx_value_t *v, mdx_rec_t *old, mdx_rec_t *new_rec,
                        const mdx_value_t *new_v);
/** The record that holds value v in a unique index, or NULL. */
mdx_rec_t *mdx__index_holder(mdx_index_t *ix, const mdx_value_t *v);
/** Equality on a hash index: the group's records sorted by primary key (NULL, 0 if none). */
mdx_rec_t **mdx__index_group(mdx_index_t *ix, const mdx_value_t *v, uint32_t *count);
/** Position in v's group of the first record with primary key >= pk (> pk when strict). */
uint32_t mdx__index_group_lower(mdx_index_t *ix, const mdx_value_t *v, const mdx_value_t *pk,
                                int strict);
mdx_index_t *mdx__index_by_name(const mdx_coll_t *c, const char *name);
void mdx__index_free(mdx_coll_t *c, mdx_index_t *ix);
/** Checks that ix holds exactly the live records of c with their current values. */
int mdx__index_verify(mdx_coll_t *c, mdx_index_t *ix);

/* snapshot.c: called before a record is replaced, changed in place or freed, so a running
 * snapshot saves the record's image as of its start (see snapshot.c). */
void mdx__snap_save(mdx_coll_t *c, mdx_rec_t *r);
/** Saves every unsaved record of a collection about to be dropped. */
void mdx__snap_coll_drop(mdx_coll_t *c);
static inline void mdx__snap_guard(mdx_coll_t *c, mdx_rec_t *r)
{
    const mdx_store_t *st = c->store;
    if (__builtin_expect(st->snap != NULL, 0) && c->snap_idx >= 0 && r->snap_gen != st->snap_gen)
        mdx__snap_save(c, r);
}

/* write.c */
/** Inserts a record read from a snapshot (no indexes yet); *out gets it. tags: msgpack array
 *  of strings or NULL; evict: the saved EV_* byte. Errors: MDX_EBADKEY, MDX_EBADBODY, MDX_EEXISTS
 * (duplicate key), MDX_EINVAL (bad tags), MDX_ENOMEM. */
int mdx__rec_load(mdx_coll_t *c, const uint8_t *key, size_t key_len, const uint8_t *body,
                  size_t body_len, int64_t expires_at, const uint8_t *tags, size_t tags_len,
                  uint8_t evict, mdx_rec_t **out);
/** Unlinks rec from every index, the primary table, the heap, its tags and the eviction
 *  queue, and frees it. */
void mdx__rec_destroy(mdx_coll_t *c, mdx_rec_t *rec);
/** Frees up to QUERY_RECLAIM expired and as many invalidated records of c (queries call this;
 *  the rest waits for mdx_store_expire, and reads skip them meanwhile). */
#define QUERY_RECLAIM 32
void mdx__expire_due(mdx_coll_t *c);
/** Frees every expired and invalidated record of c (O(n): index creation). */
void mdx__expire_all(mdx_coll_t *c);
void mdx__coll_free_records(mdx_coll_t *c);

/* evict.c: eviction queues and policies, the memory limit. */
void mdx__evict_insert(mdx_coll_t *c, mdx_rec_t *r);                  /* a new record */
void mdx__evict_remove(mdx_coll_t *c, mdx_rec_t *r);                  /* before r is freed */
void mdx__evict_replace(mdx_coll_t *c, mdx_rec_t *old, mdx_rec_t *r); /* r takes old's place */
void mdx__evict_restore(mdx_coll_t *c, mdx_rec_t *r, uint8_t evict);  /* loaded: saved state */
void mdx__evict_policy_changed(mdx_coll_t *c);
void mdx__ghost_free(mdx_ghost_t *g);
void mdx__evict_hit_lru(mdx_coll_t *c, mdx_rec_t *r);
/** A read hit on r. */
static inline void mdx__evict_hit(mdx_coll_t *c, mdx_rec_t *r)
{
    if ((r->evict & EV_FREQ) != EV_FREQ)
        r->evict++;
    if (__builtin_expect(
            c->opts.policy == MDX_EVICT_LRU ||
                (c->opts.policy == MDX_EVICT_DEFAULT && c->store->opts.policy == MDX_EVICT_LRU),
            0))
        mdx__evict_hit_lru(c, r);
}
/** Before a write that may need memory in c: when the store is at its memory limit, evicts;
 *  MDX_EOOM (message set) when nothing can be evicted. */
int mdx__evict_admit(mdx_coll_t *c);
/** Before an insert into c: MDX_EOOM (message set) when c holds its capacity and its policy is
 *  noeviction. */
int mdx__evict_full(mdx_coll_t *c);
/** After a write in c: evicts until c is within its capacity and the store within its
 *  memory limit. keep (may be NULL) is not evicted. */
void mdx__evict_enforce(mdx_coll_t *c, mdx_rec_t *keep);

/* lease.c */
void mdx__lease_drop(mdx_coll_t *c, const uint8_t *ckey, size_t klen, uint64_t hash);
/** Ends the lease on a key that was just written or deleted (cheap when none is held). */
static inline void mdx__lease_end(mdx_coll_t *c, const uint8_t *ckey, size_t klen, uint64_t hash)
{
    if (__builtin_expect(mdx_htab_count(&c->leases) != 0, 0))
        mdx__lease_drop(c, ckey, klen, hash);
}
/** 0 when `token` is the live lease on the key, else MDX_ELEASE (message set). */
int mdx__lease_check(mdx_coll_t *c, const uint8_t *ckey, size_t klen, uint64_t hash,
                     uint64_t token);
/** Frees leases that ended (the reclaim step calls this). */
void mdx__lease_expire(mdx_coll_t *c, int64_t now);
void mdx__lease_free(mdx_coll_t *c);

/* tags.c */
/** Validates a msgpack array of tags: 0 or MDX_EINVAL (message set); *n gets the count. */
int mdx__tags_check(mdx_store_t *st, const uint8_t *tags, size_t len, unsigned *n);
/** Links r's ntags memberships (r->ntags set, refs uninitialised) to the tags named in the
 *  checked array, creating tags as needed. Returns 0 or MDX_ENOMEM (r linked to none). */
int mdx__tags_attach(mdx_coll_t *c, mdx_rec_t *r, const uint8_t *tags, size_t len);
/** Unlinks r from its tags, freeing tags left with no member. */
void mdx__tags_detach(mdx_coll_t *c, mdx_rec_t *r);
/** Moves old's memberships to r (same tags: r is old's replacement with copied refs). */
void mdx__tags_move(mdx_rec_t *old, mdx_rec_t *r);
/** Frees up to max records of dead tags (max_us as in mdx_store_expire); returns how many. */
uint64_t mdx__tags_reclaim(mdx_coll_t *c, uint64_t max, uint64_t deadline_us);
void mdx__tags_free(mdx_coll_t *c);
uint64_t mdx__mono_us(void);

/* Memory charged to a collection is measured, not estimated: every call that changes a
 * collection brackets its work with these, and the wrapper's exact count of live bytes moves by
 * what the call allocated and freed (records, index entries, tables). Single-threaded, so
 * nothing else allocates in between. The store keeps the sum for its memory limit. */
#define MEM_BEGIN() size_t mem0_ = mdx_alloc_used()
#define MEM_END(c)                                                                                 \
    do {                                                                                           \
        size_t d_ = mdx_alloc_used() - mem0_;                                                      \
        (c)->mem += d_;                                                                            \
        (c)->store->mem += d_;                                                                     \
    } while (0)

#endif
