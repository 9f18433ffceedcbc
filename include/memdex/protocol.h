/*
 * The memdex wire protocol: framing, request decoding and response encoding. No I/O: bytes in,
 * decoded requests out; responses are appended to a caller's buffer. FROZEN at protocol
 * version 1; docs/protocol.md is the normative description and mirrors every constant here.
 *
 *   frame    := uint32 big-endian length L, then L bytes holding exactly one msgpack value
 *   request  := [id, op, args]      id: uint (echoed), op: str, args: map with string keys
 *   response := [id, status, body]  status 0: body is the result;
 *                                   status > 0: an error code (memdex/error.h) and
 *                                   body = {"code": NAME, "message": str}
 *   push     := [0, "event", body]  id 0 is reserved for messages the server sends unasked
 *
 * Decoding never trusts its input: lengths are checked against the frame, nesting is bounded,
 * wrong types, missing, unknown and duplicate arguments are errors (MDX_EBADARGS), unknown ops
 * are MDX_EUNKNOWNOP, anything that is not the envelope above is MDX_EPROTO.
 */
#ifndef MEMDEX_PROTOCOL_H
#define MEMDEX_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "memdex/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MDX_PROTOCOL_VERSION  1
#define MDX_FRAME_HEADER      4
#define MDX_DEFAULT_MAX_FRAME (32u << 20) /* bytes of payload; configurable per server */
#define MDX_PROTO_MAX_DEPTH   32 /* nesting in a request, its array and args map included */
#define MDX_MAX_MGET_KEYS     10000
#define MDX_PROTO_MAX_STR     255 /* bytes in a STR argument (names, field, mode, kind, client) */
#define MDX_PROTO_MAX_TAGS    16  /* strings in a TAGS argument (memdex/store.h MDX_TAGS_MAX) */
#define MDX_PROTO_MAX_TAG     128 /* bytes in one tag, at least 1 (MDX_TAG_MAX) */

/* XX(enum suffix, wire name, idempotent) — FROZEN: append only. */
#define MDX_OP_MAP(XX)                                                                             \
    XX(HELLO, "hello", 1)                                                                          \
    XX(PING, "ping", 1)                                                                            \
    XX(CREATE_COLLECTION, "create_collection", 0)                                                  \
    XX(DROP_COLLECTION, "drop_collection", 0)                                                      \
    XX(LIST_COLLECTIONS, "list_collections", 1)                                                    \
    XX(CREATE_INDEX, "create_index", 0)                                                            \
    XX(DROP_INDEX, "drop_index", 0)                                                                \
    XX(LIST_INDEXES, "list_indexes", 1)                                                            \
    XX(PUT, "put", 0)                                                                              \
    XX(GET, "get", 1)                                                                              \
    XX(MGET, "mget", 1)                                                                            \
    XX(DELETE, "delete", 0)                                                                        \
    XX(UPDATE, "update", 0)                                                                        \
    XX(FIND, "find", 1)                                                                            \
    XX(COUNT, "count", 1)                                                                          \
    XX(SCAN, "scan", 1)                                                                            \
    XX(TTL_SET, "ttl_set", 1)                                                                      \
    XX(TTL_GET, "ttl_get", 1)                                                                      \
    XX(TTL_CLEAR, "ttl_clear", 1)                                                                  \
    XX(STATS, "stats", 1)                                                                          \
    XX(SNAPSHOT, "snapshot", 0)                                                                    \
    XX(CONFIGURE_COLLECTION, "configure_collection", 1)                                            \
    XX(INVALIDATE, "invalidate", 0)                                                                \
    XX(GET_LEASE, "get_lease", 0)

typedef enum {
#define XX(e, name, idem) MDX_OP_##e,
    MDX_OP_MAP(XX)
#undef XX
        MDX_OP__COUNT
} mdx_op_t;

/* Arguments: XX(enum suffix, wire name, type). Types: STR (name-like string), KEY (msgpack
 * int/str/bin), KEYS (array of keys), MAP (msgpack map), SCALAR (nil/bool/number/str/bin),
 * UINT, BOOL, ARRAY (any array), STRARRAY (array of strings), TAGS (array of at most
 * MDX_PROTO_MAX_TAGS strings of 1..MDX_PROTO_MAX_TAG bytes). */
#define MDX_ARG_MAP(XX)                                                                            \
    XX(COLL, "coll", STR)                                                                          \
    XX(NAME, "name", STR)                                                                          \
    XX(KEY, "key", KEY)                                                                            \
    XX(KEYS, "keys", KEYS)                                                                         \
    XX(BODY, "body", MAP)                                                                          \
    XX(MODE, "mode", STR)                                                                          \
    XX(TTL_MS, "ttl_ms", UINT)                                                                     \
    XX(KEEP_TTL, "keep_ttl", BOOL)                                                                 \
    XX(INDEX, "index", STR)                                                                        \
    XX(FIELD, "field", STR)                                                                        \
    XX(KIND, "kind", STR)                                                                          \
    XX(UNIQUE, "unique", BOOL)                                                                     \
    XX(EQ, "eq", SCALAR)                                                                           \
    XX(GE, "ge", SCALAR)                                                                           \
    XX(GT, "gt", SCALAR)                                                                           \
    XX(LE, "le", SCALAR)                                                                           \
    XX(LT, "lt", SCALAR)                                                                           \
    XX(DESC, "desc", BOOL)                                                                         \
    XX(LIMIT, "limit", UINT)                                                                       \
    XX(OFFSET, "offset", UINT)                                                                     \
    XX(AFTER, "after", ARRAY)                                                                      \
    XX(CURSOR, "cursor", UINT)                                                                     \
    XX(SET, "set", MAP)                                                                            \
    XX(UNSET, "unset", STRARRAY)                                                                   \
    XX(PROTOCOL, "protocol", UINT)                                                                 \
    XX(CLIENT, "client", STR)                                                                      \
    XX(TTL_CLASS, "ttl_class", STR)                                                                \
    XX(TAGS, "tags", TAGS)                                                                         \
    XX(CAPACITY, "capacity", UINT)                                                                 \
    XX(POLICY, "policy", STR)                                                                      \
    XX(DEFAULT_TTL_MS, "default_ttl_ms", UINT)                                                     \
    XX(DEFAULT_TTL, "default_ttl", STR)                                                            \
    XX(WITH_TAGS, "with_tags", BOOL)                                                               \
    XX(LEASE_MS, "lease_ms", UINT)                                                                 \
    XX(LEASE, "lease", UINT)

typedef enum {
#define XX(e, name, type) MDX_ARG_##e,
    MDX_ARG_MAP(XX)
#undef XX
        MDX_ARG__COUNT
} mdx_arg_t;

/** One argument as it appeared on the wire. raw/raw_len: the exact msgpack bytes of the value
 *  (views into the frame). For STR also str/len (the string's bytes); for UINT and BOOL, u.
 *  "mode" and "kind" are checked against their values and u holds the choice, numbered as in
 *  memdex/store.h: mode 0 upsert, 1 insert, 2 replace (mdx_put_mode_t); kind 0 hash,
 *  1 skiplist (mdx_index_kind_t). A UINT is the full uint64 from the wire: the caller narrows
 *  it (a limit of 2^32 must not become 0). */
typedef struct {
    const uint8_t *raw;
    uint32_t raw_len;
    const char *str; /* STR: not NUL-terminated */
    uint32_t len;
    uint64_t u;
} mdx_argval_t;

typedef struct {
    uint64_t id;
    mdx_op_t op;
    uint64_t present; /* bit (1 << mdx_arg_t) for each argument present */
    mdx_argval_t args[MDX_ARG__COUNT];
} mdx_request_t;

static inline int mdx_req_has(const mdx_request_t *r, mdx_arg_t a)
{
    return (r->present >> a) & 1;
}

/** Finds the next frame in [buf, buf+len). Returns the number of bytes the whole frame
 *  occupies (header included) and sets *payload and *plen when a complete frame is there; 0 when
 *  more bytes are needed; -MDX_EFRAMETOOBIG when the declared length exceeds max_frame (the
 *  stream cannot be trusted after this: reply and close). A length of 0 is a complete, empty
 *  frame (its decode fails with MDX_EPROTO). */
long mdx_frame_next(const uint8_t *buf, size_t len, size_t max_frame, const uint8_t **payload,
                    size_t *plen);

/** Decodes one request payload. Returns 0, or MDX_EPROTO / MDX_EUNKNOWNOP / MDX_EBADARGS with
 *  a one-line reason in errbuf (errlen bytes, NUL-terminated; errbuf may be NULL). req->id is
 *  set whenever the id could be read (0 otherwise) so the error reply can echo it.
 *  The codes are ranked: a payload that is not a well-formed envelope (to MDX_PROTO_MAX_DEPTH,
 *  with no trailing bytes) is MDX_EPROTO whatever else is wrong with it; then an unknown op is
 *  MDX_EUNKNOWNOP; then the first bad argument in wire order, a missing required argument, or
 *  a forbidden combination, is MDX_EBADARGS. Runs in time linear in len, without recursion.
 *  On success req is fully written: arguments not present are zeroed. On error only req->id
 *  is meaningful.
 *  Lifetime: the request holds views into payload, valid while payload is. */
int mdx_request_decode(const uint8_t *payload, size_t len, mdx_request_t *req, char *errbuf,
                       size_t errlen);

/** Wire name of an op ("get"); NULL when out of range. */
const char *mdx_op_name(mdx_op_t op);
/** 1 when repeating the op cannot change the result of a completed earlier attempt. */
int mdx_op_idempotent(mdx_op_t op);
/** Wire name of an argument ("coll"); NULL when out of range. */
const char *mdx_arg_name(mdx_arg_t a);
/** Bitmasks of the required and allowed arguments of op. */
uint64_t mdx_op_required(mdx_op_t op);
uint64_t mdx_op_allowed(mdx_op_t op);

#ifdef __cplusplus
}
#endif
#endif
