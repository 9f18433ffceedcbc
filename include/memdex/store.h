/*
 * libmemdex: the embeddable engine.
 *
 * A store holds named collections of records. A record is a primary key (a msgpack integer,
 * string or binary) and a body (a msgpack map with string keys), plus an optional expiry time.
 * Each collection has a primary hash index on the key and any number of secondary indexes on
 * top-level body fields: hash (equality) or skiplist (equality, ranges, order, offset, count).
 *
 * Conventions (every function):
 * - Fallible functions return 0 or an error code from memdex/error.h; results come through
 *   out-parameters. After an error, mdx_store_errmsg() says what was wrong in words that name
 *   the collection, index or field.
 * - A write either changes the record and every index, or changes nothing and returns an error
 *   (out of memory included).
 * - Keys, bodies and query values are passed as msgpack bytes. The caller keeps ownership;
 *   they are borrowed for the call.
 * - Views (mdx_rec_view_t, cursors) point into the store and are valid until the next call that
 *   modifies the store (any put, update, delete, TTL change, expiry step, index or collection
 *   change, or a query, which may reclaim expired records).
 * - Thread: a store and everything in it belong to one thread. There is no locking.
 */
#ifndef MEMDEX_STORE_H
#define MEMDEX_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "memdex/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits (defaults; see mdx_store_opts_t). */
#define MDX_NAME_MAX          64  /* collection and index names: 1..64 of [A-Za-z0-9_.-] */
#define MDX_FIELD_MAX         255 /* indexed field names: 1..255 bytes */
#define MDX_MAX_INDEXES       32  /* secondary indexes per collection */
#define MDX_MAX_COLLECTIONS   4096
#define MDX_DEFAULT_MAX_KEY   1024 /* bytes of key payload (string/binary length) */
#define MDX_KEY_LIMIT         4096 /* the largest max_key a store accepts */
#define MDX_DEFAULT_MAX_BODY  (16u << 20)
#define MDX_DEFAULT_MAX_LIMIT 10000 /* records per find/scan page */

typedef struct mdx_store mdx_store_t;
typedef struct mdx_coll mdx_coll_t;

/** Clock: milliseconds since the Unix epoch. Tests inject their own. */
typedef int64_t (*mdx_clock_cb)(void *data);

/** Eviction policies (see docs/cache.md). A collection's MDX_EVICT_DEFAULT follows the
 *  store's policy. */
typedef enum {
    MDX_EVICT_DEFAULT = 0,
    MDX_EVICT_NOEVICTION = 1, /* writes that need memory are refused with MDX_EOOM */
    MDX_EVICT_S3FIFO = 2,     /* S-3FIFO (Yang et al., SOSP 2023): the store's default */
    MDX_EVICT_SIEVE = 3,      /* SIEVE (Zhang et al., NSDI 2024) */
    MDX_EVICT_LRU = 4,        /* least recently used (a get moves the record to the front) */
} mdx_evict_policy_t;

typedef struct {
    mdx_clock_cb clock; /* NULL: CLOCK_REALTIME */
    void *clock_data;
    uint32_t max_key;   /* 0: MDX_DEFAULT_MAX_KEY; at most MDX_KEY_LIMIT */
    uint32_t max_body;  /* 0: MDX_DEFAULT_MAX_BODY */
    uint32_t max_limit; /* 0: MDX_DEFAULT_MAX_LIMIT */
    size_t maxmemory;   /* bytes of collection memory (mdx_store_stats().memory); 0: no limit */
    mdx_evict_policy_t policy; /* when over maxmemory; MDX_EVICT_DEFAULT: MDX_EVICT_S3FIFO */
} mdx_store_opts_t;

/** Creates an empty store. opts may be NULL (defaults). Returns 0, MDX_EINVAL (max_key above
 *  MDX_KEY_LIMIT) or MDX_ENOMEM.
 *  Caller frees with mdx_store_free. */
int mdx_store_new(const mdx_store_opts_t *opts, mdx_store_t **out);
/** Frees the store and everything in it. Accepts NULL. */
void mdx_store_free(mdx_store_t *st);
/** Message for the last error returned by a call on this store (or on one of its collections).
 *  Returns a view valid until the next call. */
const char *mdx_store_errmsg(const mdx_store_t *st);
/** Current time by the store's clock (ms since the Unix epoch). */
int64_t mdx_store_now(const mdx_store_t *st);

/* ---- cache tier: memory limit, eviction policies, TTL classes ---- */

/** Name of a policy ("s3fifo"), or "default". Static string. */
const char *mdx_evict_policy_name(mdx_evict_policy_t p);
/** Parses a policy name (len bytes): noeviction, s3fifo, sieve, lru (and "default" when
 *  allow_default). Errors: MDX_EINVAL. */
int mdx_evict_policy_parse(const char *name, size_t len, int allow_default,
                           mdx_evict_policy_t *out);
/** Changes the memory limit (0: none) and the store's policy (MDX_EVICT_DEFAULT keeps it).
 *  Lowering the limit below what is held evicts on the next write. Errors: MDX_EINVAL. */
int mdx_store_set_limit(mdx_store_t *st, size_t maxmemory, mdx_evict_policy_t policy);

#define MDX_TTL_CLASSES_MAX 16 /* named TTL classes per store */
/** Defines or changes a named TTL class (name: 1..64 of [A-Za-z0-9_.-], not "none"; ttl_ms >
 *  0). The defaults are short 60 s, medium 10 min, long 1 h, very_long 24 h. Errors:
 *  MDX_EBADNAME, MDX_EINVAL, MDX_ETOOBIG (more than MDX_TTL_CLASSES_MAX). */
int mdx_ttl_class_set(mdx_store_t *st, const char *name, int64_t ttl_ms);
/** The TTL of a class (name of len bytes). "none" gives 0 (no expiry). Errors: MDX_EINVAL
 *  (unknown class). */
int mdx_ttl_class_get(mdx_store_t *st, const char *name, size_t len, int64_t *ttl_ms);
/** Number of classes and the i-th one's name and TTL (definition order). */
size_t mdx_ttl_class_count(const mdx_store_t *st);
const char *mdx_ttl_class_at(const mdx_store_t *st, size_t i, int64_t *ttl_ms);

/* Tags: a write may attach up to MDX_TAGS_MAX tags (strings of 1..MDX_TAG_MAX bytes) to a
 * record; mdx_invalidate removes every record holding a tag. */
#define MDX_TAGS_MAX 16
#define MDX_TAG_MAX  128

/* ---- collections ---- */

/** Creates a collection. Errors: MDX_EBADNAME, MDX_ECOLLEXISTS, MDX_ENOMEM, MDX_ETOOBIG
 *  (more than MDX_MAX_COLLECTIONS). *out (may be NULL) receives the handle, valid until the
 *  collection is dropped. */
int mdx_coll_create(mdx_store_t *st, const char *name, mdx_coll_t **out);
/** Drops a collection with its records and indexes. Errors: MDX_ENOCOLL. */
int mdx_coll_drop(mdx_store_t *st, const char *name);
/** Looks a collection up by name (len bytes, not necessarily NUL-terminated).
 *  Errors: MDX_ENOCOLL. */
int mdx_coll_find(mdx_store_t *st, const char *name, size_t len, mdx_coll_t **out);
/** Number of collections, and the i-th one (0 <= i < count; order is creation order). */
size_t mdx_coll_count(const mdx_store_t *st);
mdx_coll_t *mdx_coll_at(const mdx_store_t *st, size_t i);
/** Name (NUL-terminated, owned by the collection) and number of records held, which includes
 *  records whose expiry has passed but that the expiry step (or a query or write on the
 *  collection) has not reclaimed yet; reads never return those. */
const char *mdx_coll_name(const mdx_coll_t *c);
uint64_t mdx_coll_records(const mdx_coll_t *c);

/** Per-collection cache options. */
typedef struct {
    uint64_t capacity;         /* most records held (0: no limit); the policy makes room */
    mdx_evict_policy_t policy; /* MDX_EVICT_DEFAULT: the store's */
    int64_t default_ttl_ms;    /* TTL of a put that names none (0: no expiry) */
} mdx_coll_opts_t;

/** Sets a collection's options. Lowering the capacity below the records held evicts down to
 *  it now (noeviction: refuses with MDX_EOOM). Errors: MDX_EINVAL (negative TTL, bad policy),
 *  MDX_EOOM. */
int mdx_coll_configure(mdx_coll_t *c, const mdx_coll_opts_t *opts);
void mdx_coll_options(const mdx_coll_t *c, mdx_coll_opts_t *out);
/** The policy in force for c (never MDX_EVICT_DEFAULT). */
mdx_evict_policy_t mdx_coll_policy(const mdx_coll_t *c);

/* ---- secondary indexes ---- */

typedef enum { MDX_INDEX_HASH = 0, MDX_INDEX_SKIPLIST = 1 } mdx_index_kind_t;

typedef struct {
    const char *name;  /* owned by the index */
    const char *field; /* owned by the index */
    mdx_index_kind_t kind;
    int unique;
    uint64_t entries; /* records in the index (records lacking the field are not) */
} mdx_index_info_t;

/** Creates an index on top-level field `field` and indexes every existing record. On any error
 *  nothing changes. Errors: MDX_EBADNAME, MDX_EINDEXEXISTS, MDX_ETOOBIG (too many indexes),
 *  MDX_EUNIQUE (unique index and two records share a value), MDX_EBADFIELD (a record holds an
 *  array or map in the field), MDX_ENAN, MDX_ENOMEM, MDX_EINVAL (bad kind). */
int mdx_index_create(mdx_coll_t *c, const char *name, const char *field, mdx_index_kind_t kind,
                     int unique);
/** Drops an index. Errors: MDX_ENOINDEX. */
int mdx_index_drop(mdx_coll_t *c, const char *name);
size_t mdx_index_count(const mdx_coll_t *c);
/** Fills *out for the i-th index (creation order). Errors: MDX_ENOINDEX when i is out of
 *  range. The strings are views valid until the index is dropped. */
int mdx_index_info(const mdx_coll_t *c, size_t i, mdx_index_info_t *out);

/* ---- records ---- */

typedef struct {
    const uint8_t *key; /* canonical (shortest) msgpack encoding of the key */
    size_t key_len;
    const uint8_t *body;
    size_t body_len;
    int64_t expires_at; /* ms since the Unix epoch, 0 when the record has no expiry */
} mdx_rec_view_t;

typedef enum {
    MDX_PUT_UPSERT = 0,  /* insert or replace */
    MDX_PUT_INSERT = 1,  /* fail with MDX_EEXISTS when the key exists */
    MDX_PUT_REPLACE = 2, /* fail with MDX_ENOTFOUND when it does not */
} mdx_put_mode_t;

typedef struct {
    mdx_put_mode_t mode;
    int64_t ttl_ms;        /* > 0: expire that many ms from now */
    int keep_ttl;          /* on replace, keep the old record's expiry (ttl_ms, ttl_class unused) */
    const char *ttl_class; /* NUL-terminated class name ("short", ..., "none"), or NULL */
    const uint8_t *tags;   /* msgpack array of 0..MDX_TAGS_MAX strings, or NULL (no tags) */
    size_t tags_len;
    uint64_t lease; /* a token from mdx_get_or_lease (0: none): the put fills that lease, and
                       fails with MDX_ELEASE when the lease is no longer held */
} mdx_put_opts_t;

/** Stores a record. opts may be NULL (upsert, no TTL, no tags). The expiry is, in order:
 *  the old record's (keep_ttl, on replace), ttl_ms, ttl_class, the collection's default TTL,
 *  none. The record's tags are exactly opts->tags (a replace drops the old record's). Errors:
 *  MDX_EBADKEY, MDX_EBADBODY, MDX_ETOOBIG (key or body over the limit), MDX_EBADFIELD /
 *  MDX_ENAN (an indexed field holds an array, map, extension or NaN), MDX_EUNIQUE, MDX_EEXISTS,
 *  MDX_ENOTFOUND, MDX_EINVAL (negative ttl, a ttl for which now + ttl_ms overflows an int64,
 *  both ttl_ms and ttl_class, unknown class, bad mode, tags not an array of 1..MDX_TAG_MAX-byte
 *  strings or more than MDX_TAGS_MAX of them), MDX_EOOM (over the memory limit or the
 *  collection's capacity and the policy is noeviction, or nothing left to evict),
 *  MDX_ENOMEM. */
int mdx_put(mdx_coll_t *c, const uint8_t *key, size_t key_len, const uint8_t *body, size_t body_len,
            const mdx_put_opts_t *opts);

/** Reads a record. Errors: MDX_EBADKEY, MDX_ENOTFOUND (absent or expired). *out is a view
 *  valid until the next modifying call. */
int mdx_get(mdx_coll_t *c, const uint8_t *key, size_t key_len, mdx_rec_view_t *out);

/** Deletes a record. Errors: MDX_EBADKEY, MDX_ENOTFOUND. */
int mdx_del(mdx_coll_t *c, const uint8_t *key, size_t key_len);

/** Partial update: sets the fields of the msgpack map `set` (may be NULL/0) and removes the
 *  fields named in the msgpack array of strings `unset` (may be NULL/0) in the record's body;
 *  the record keeps its expiry. Errors: as mdx_put, plus MDX_EINVAL when set is not a map with
 *  string keys or unset is not an array of strings, MDX_ENOTFOUND. */
int mdx_update(mdx_coll_t *c, const uint8_t *key, size_t key_len, const uint8_t *set,
               size_t set_len, const uint8_t *unset, size_t unset_len);

/* ---- leases (stampede protection) ---- */

typedef enum {
    MDX_LEASE_HIT = 0,  /* the record is there: *out holds it */
    MDX_LEASE_FILL = 1, /* absent, and this caller holds the lease: fill it with a put that
                           passes *token in mdx_put_opts_t.lease */
    MDX_LEASE_WAIT = 2, /* absent, and another caller holds the lease: retry shortly */
} mdx_lease_state_t;

#define MDX_LEASE_MAX_MS 60000

/** A get that, on a miss, hands out one lease per key: the first caller is told to fill the
 *  record (MDX_LEASE_FILL with a token), every other caller to wait (MDX_LEASE_WAIT) until
 *  the record is written or the lease ends after lease_ms (1..MDX_LEASE_MAX_MS), when the
 *  next caller gets a new lease. Any write or delete of the key ends its lease; a put that
 *  passes a token no longer held fails with MDX_ELEASE, so a slow filler cannot overwrite a
 *  fresher value. Counts as a get (hit or miss). Errors: MDX_EBADKEY, MDX_EINVAL (lease_ms),
 *  MDX_ENOMEM. */
int mdx_get_or_lease(mdx_coll_t *c, const uint8_t *key, size_t key_len, int64_t lease_ms,
                     mdx_rec_view_t *out, mdx_lease_state_t *state, uint64_t *token);

/* ---- tags ---- */

/** Removes every record of c holding any of the tags (msgpack array of strings). Logically
 *  immediate: no read or query after the call returns those records; their memory is
 *  reclaimed by mdx_store_expire in bounded slices (at once for small tags). *removed (may be
 *  NULL) receives the number of records removed (see docs/cache.md for when it can count a
 *  record twice). Errors: MDX_EINVAL (bad tags). */
int mdx_invalidate(mdx_coll_t *c, const uint8_t *tags, size_t tags_len, uint64_t *removed);
/** mdx_invalidate on every collection. */
int mdx_store_invalidate(mdx_store_t *st, const uint8_t *tags, size_t tags_len, uint64_t *removed);
/** Calls fn for each tag of the record with key `key` (tags are views valid until the next
 *  modifying call). Errors: MDX_EBADKEY, MDX_ENOTFOUND. */
int mdx_tags_get(mdx_coll_t *c, const uint8_t *key, size_t key_len,
                 void (*fn)(void *data, const char *tag, size_t len), void *data);

/* ---- TTL ---- */

/** Sets a record to expire ttl_ms (> 0) from now. Errors: MDX_EBADKEY, MDX_ENOTFOUND,
 *  MDX_EINVAL, MDX_ENOMEM. */
int mdx_ttl_set(mdx_coll_t *c, const uint8_t *key, size_t key_len, int64_t ttl_ms);
/** Remaining ms (>= 0), or -1 when the record has no expiry. Errors: MDX_ENOTFOUND. */
int mdx_ttl_get(mdx_coll_t *c, const uint8_t *key, size_t key_len, int64_t *remaining_ms);
/** Removes the expiry. Errors: MDX_ENOTFOUND. */
int mdx_ttl_clear(mdx_coll_t *c, const uint8_t *key, size_t key_len);

/** Frees expired and invalidated records across all collections, stopping after max_records
 *  (0: no limit) or after about max_us microseconds (0: no limit), whichever comes first.
 *  *freed (may be NULL) receives the number freed. Returns 1 when such records remain, 0
 *  otherwise. Reads never return those records meanwhile; until they are freed, mdx_count and
 *  offsets may still count them (see docs/cache.md). */
int mdx_store_expire(mdx_store_t *st, uint64_t max_records, uint64_t max_us, uint64_t *freed);

/* ---- queries ---- */

typedef enum { MDX_BOUND_OPEN = 0, MDX_BOUND_INCL = 1, MDX_BOUND_EXCL = 2 } mdx_bound_t;

/** A query on one secondary index. Values are msgpack scalars (nil, bool, number, string,
 *  binary). Either eq is set (equality, any index kind), or lo/hi bounds (skiplist only). */
typedef struct {
    const char *index;
    const uint8_t *eq;
    size_t eq_len;
    const uint8_t *lo;
    size_t lo_len;
    mdx_bound_t lo_kind;
    const uint8_t *hi;
    size_t hi_len;
    mdx_bound_t hi_kind;
    int desc;             /* descending order (skiplist only, or equality on a skiplist) */
    uint32_t limit;       /* 1..max_limit records per call (ignored by mdx_count) */
    uint64_t offset;      /* records to skip first, O(log n) on a skiplist */
    const uint8_t *after; /* cursor from a previous mdx_find result, or NULL */
    size_t after_len;
} mdx_query_t;

typedef struct {
    uint64_t returned;
    int more;              /* further records match beyond this page */
    const uint8_t *cursor; /* when more: pass as `after` to continue; view valid until the
                              next call on the store */
    size_t cursor_len;
} mdx_find_result_t;

/** Called for each result in order; return nonzero to stop early. The callback must not call
 *  functions that modify the store. */
typedef int (*mdx_rec_cb)(void *data, const mdx_rec_view_t *rec);

/** Runs a query. Results come in index order (value, then primary key), ascending unless
 *  q->desc; on a hash index, in primary-key order within the value. Errors: MDX_ENOINDEX,
 *  MDX_ENOTRANGE (bounds on a hash index), MDX_EBADLIMIT, MDX_EBADCURSOR, MDX_EINVAL (a
 *  bound that is not a msgpack scalar, both eq and bounds), MDX_ENAN. */
int mdx_find(mdx_coll_t *c, const mdx_query_t *q, mdx_rec_cb cb, void *data,
             mdx_find_result_t *res);

/** Counts the records matching q's value condition (eq or bounds; limit, offset and after are
 *  ignored). O(log n) on a skiplist, O(1) for equality on a hash index. */
int mdx_count(mdx_coll_t *c, const mdx_query_t *q, uint64_t *out);

/** Scans a collection in primary (hash) order, one page per call: start with cursor 0, pass the
 *  returned *next back, stop when *next is 0. Every record present for the whole scan is
 *  returned at least once; a page holds up to about `limit` records (whole hash buckets).
 *  Errors: MDX_EBADLIMIT. */
int mdx_scan(mdx_coll_t *c, uint64_t cursor, uint32_t limit, mdx_rec_cb cb, void *data,
             uint64_t *next);

/* ---- stats ---- */

typedef struct {
    uint64_t puts, gets, deletes, updates, finds, counts, scans;
    uint64_t hits, misses;     /* gets that found / did not find a record */
    uint64_t expired;          /* records freed because their TTL passed */
    uint64_t errors;           /* calls that returned an error */
    uint64_t evicted_memory;   /* records evicted to stay under maxmemory */
    uint64_t evicted_capacity; /* records evicted to stay within the collection's capacity */
    uint64_t invalidated;      /* records removed by mdx_invalidate */
    uint64_t invalidations;    /* mdx_invalidate calls */
    uint64_t oom;              /* writes refused with MDX_EOOM */
} mdx_counters_t;

typedef struct {
    uint64_t records;          /* records held (as mdx_coll_records) */
    size_t memory;             /* bytes held for records and indexes (allocator usable sizes) */
    mdx_counters_t ops;        /* for this collection */
    uint64_t capacity;         /* mdx_coll_opts_t.capacity */
    mdx_evict_policy_t policy; /* in force */
    uint64_t pending;          /* invalidated records not yet reclaimed */
} mdx_coll_stats_t;

typedef struct {
    uint64_t collections;
    uint64_t records;
    size_t memory;    /* sum of the collections' memory: what maxmemory limits */
    size_t maxmemory; /* 0: no limit */
    mdx_evict_policy_t policy;
    size_t allocated;       /* all bytes allocated through memdex's allocator wrapper */
    size_t allocator_bytes; /* process-wide, from the allocator's statistics */
    mdx_counters_t ops;     /* totals */
    uint64_t pending;       /* invalidated records not yet reclaimed */
} mdx_store_stats_t;

void mdx_coll_stats(const mdx_coll_t *c, mdx_coll_stats_t *out);
void mdx_store_stats(const mdx_store_t *st, mdx_store_stats_t *out);

/* ---- helpers for building keys ---- */

/** Encodes an integer / string key into out (at least 9 / len+5 bytes); returns its length. */
size_t mdx_key_int(uint8_t out[9], int64_t v);
size_t mdx_key_str(uint8_t *out, const char *s, size_t len);

#ifdef __cplusplus
}
#endif
#endif
