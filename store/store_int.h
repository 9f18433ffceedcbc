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
#include <stdint.h>

#include "common/alloc.h"
#include "common/mp.h"
#include "index/htab.h"
#include "index/skiplist.h"
#include "index/value.h"
#include "memdex/store.h"

#define MDX_NO_HEAP UINT32_MAX

typedef struct mdx_rec {
    mdx_hnode_t hnode;  /* primary index link; hash = XXH3 of the canonical key */
    uint64_t epoch;     /* store epoch of the write that made this record (snapshots) */
    int64_t expires_at; /* ms since the Unix epoch; 0 = never */
    uint32_t heap_pos;  /* position in the collection's expiry heap, or MDX_NO_HEAP */
    uint32_t body_len;
    uint16_t key_len;
    uint16_t snap_gen; /* generation of the last snapshot that saved this record */
    uint8_t data[];    /* key_len bytes of canonical msgpack key, then body_len bytes of body */
} mdx_rec_t;

static inline const uint8_t *rec_key(const mdx_rec_t *r)
{
    return r->data;
}
static inline const uint8_t *rec_body(const mdx_rec_t *r)
{
    return r->data + r->key_len;
}

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
};

struct mdx_store {
    mdx_store_opts_t opts;
    mdx_coll_t **colls;
    size_t ncolls, colls_cap;
    size_t expire_next; /* round-robin position of the expiry step */
    uint64_t epoch;
    struct mdx_snapshot *snap;  /* the snapshot in progress, or NULL */
    uint64_t snap_epoch;        /* its epoch: records written after it began have more */
    uint16_t snap_gen;          /* its generation (new records start with it: not to save) */
    mdx_counters_t dropped_ops; /* counters of dropped collections, kept in the totals */
    mdx_buf_t cursor;           /* backing store of the last find cursor */
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
    if (__builtin_expect(st->snap != NULL, 0) && c->snap_idx >= 0 && r->epoch <= st->snap_epoch &&
        r->snap_gen != st->snap_gen)
        mdx__snap_save(c, r);
}

/* write.c */
/** Inserts a record read from a snapshot (no indexes yet). Errors: MDX_EBADKEY, MDX_EBADBODY,
 *  MDX_EEXISTS (duplicate key), MDX_ENOMEM. */
int mdx__rec_load(mdx_coll_t *c, const uint8_t *key, size_t key_len, const uint8_t *body,
                  size_t body_len, int64_t expires_at);
/** Unlinks rec from every index, the primary table and the heap, and frees it. */
void mdx__rec_destroy(mdx_coll_t *c, mdx_rec_t *rec);
/** Reclaims every expired record of c (queries call this so counts and offsets are exact). */
void mdx__expire_due(mdx_coll_t *c);
void mdx__coll_free_records(mdx_coll_t *c);

/* Memory charged to a collection is measured, not estimated: every call that changes a
 * collection brackets its work with these, and the wrapper's exact count of live bytes moves by
 * what the call allocated and freed (records, index entries, tables). Single-threaded, so
 * nothing else allocates in between. */
#define MEM_BEGIN() size_t mem0_ = mdx_alloc_used()
#define MEM_END(c)  ((c)->mem += mdx_alloc_used() - mem0_)

#endif
