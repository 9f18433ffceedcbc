/*
 * memdex error codes: one list shared by the engine, the wire protocol, the server and the
 * client. FROZEN: the numbers travel on the wire and are mirrored in docs/protocol.md. The list
 * is append-only: never renumber or reuse an entry.
 *
 * Every fallible memdex function returns 0 on success or one of these codes (as a positive
 * int). mdx_err_name() gives the stable name ("NOMEM"), mdx_strerror() a short message.
 */
#ifndef MEMDEX_ERROR_H
#define MEMDEX_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* XX(number, NAME, message) */
#define MDX_ERRNO_MAP(XX)                                                                          \
    XX(1, NOMEM, "out of memory")                                                                  \
    XX(2, INVAL, "invalid argument")                                                               \
    XX(3, NOCOLL, "no such collection")                                                            \
    XX(4, COLLEXISTS, "collection already exists")                                                 \
    XX(5, NOINDEX, "no such index")                                                                \
    XX(6, INDEXEXISTS, "index already exists")                                                     \
    XX(7, NOTFOUND, "record not found")                                                            \
    XX(8, EXISTS, "record already exists")                                                         \
    XX(9, UNIQUE, "unique index violation")                                                        \
    XX(10, BADBODY, "body must be a msgpack map with string keys")                                 \
    XX(11, BADKEY, "key must be a msgpack integer, string or binary")                              \
    XX(12, BADFIELD, "indexed field holds an array or a map")                                      \
    XX(13, NAN, "NaN cannot be indexed or compared")                                               \
    XX(14, TOOBIG, "value exceeds a configured size limit")                                        \
    XX(15, NOTRANGE, "range queries need a skiplist index")                                        \
    XX(16, BADLIMIT, "limit out of range")                                                         \
    XX(17, BADCURSOR, "malformed cursor")                                                          \
    XX(18, BADNAME, "invalid collection, index or field name")                                     \
    XX(19, PROTO, "malformed frame or request")                                                    \
    XX(20, FRAMETOOBIG, "frame exceeds the size limit")                                            \
    XX(21, UNKNOWNOP, "unknown operation")                                                         \
    XX(22, BADARGS, "missing, unknown or mistyped argument")                                       \
    XX(23, MAXCLIENTS, "too many clients")                                                         \
    XX(24, BUSY, "operation already in progress")                                                  \
    XX(25, IO, "input/output error")                                                               \
    XX(26, CORRUPT, "data is corrupt")                                                             \
    XX(27, TIMEOUT, "timed out")                                                                   \
    XX(28, CONNLOST, "connection lost")                                                            \
    XX(29, INTERNAL, "internal error")                                                             \
    XX(30, OOM, "memory limit reached")                                                            \
    XX(31, SHUTDOWN, "server is shutting down")                                                    \
    XX(32, LEASE, "lease no longer held")

typedef enum {
    MDX_OK = 0,
#define XX(num, name, msg) MDX_E##name = num,
    MDX_ERRNO_MAP(XX)
#undef XX
        MDX_ERRNO_MAX
} mdx_errno_t;

/** Stable name of an error code ("NOMEM"); "OK" for 0 and "UNKNOWN" for codes not in the list.
 *  Returns a static string. */
const char *mdx_err_name(int code);

/** Short human message for an error code. Returns a static string. */
const char *mdx_strerror(int code);

/** Code for a stable name, or 0 when the name is not in the list. */
int mdx_err_from_name(const char *name, unsigned long len);

#ifdef __cplusplus
}
#endif
#endif
