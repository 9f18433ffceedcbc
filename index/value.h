/*
 * Index values and their total order.
 *
 * Order: nil < false < true < numbers < strings < binary. Integers (signed or unsigned) and
 * floats compare numerically and exactly with each other (1 == 1.0, 2^63 as uint64 > INT64_MAX
 * as int64, 0.5 between 0 and 1); NaN is refused when a value is made. Strings and binaries
 * compare bytewise, shorter first on a common prefix. Equal values hash equally
 * (mdx_value_hash), so 1 and 1.0 land in the same hash-index group.
 *
 * A value holding a string or binary borrows its bytes: it is a view, valid as long as the
 * buffer it was made from.
 */
#ifndef MDX_INDEX_VALUE_H
#define MDX_INDEX_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "common/mp.h"

typedef enum {
    MDX_V_NIL = 0,
    MDX_V_FALSE,
    MDX_V_TRUE,
    MDX_V_INT,    /* int64 */
    MDX_V_UINT,   /* uint64 above INT64_MAX only: smaller ones are MDX_V_INT */
    MDX_V_DOUBLE, /* never NaN */
    MDX_V_STR,
    MDX_V_BIN
} mdx_value_type_t;

typedef struct {
    uint8_t type; /* mdx_value_type_t */
    uint32_t len; /* STR, BIN */
    union {
        int64_t i;
        uint64_t u;
        double d;
        const uint8_t *p; /* STR, BIN: borrowed */
    } v;
} mdx_value_t;

/** Makes a value from a decoded msgpack header. Returns 0, MDX_EBADFIELD for arrays, maps and
 *  extension types, or MDX_ENAN for a NaN float. Strings and binaries borrow tok's bytes. */
int mdx_value_from_tok(const mdx_mp_tok_t *tok, mdx_value_t *out);

/** Decodes exactly one scalar msgpack value from [buf, buf+len). Returns 0, MDX_EPROTO when
 *  the bytes are not one well-formed msgpack value, MDX_EBADFIELD, or MDX_ENAN. */
int mdx_value_decode(const uint8_t *buf, size_t len, mdx_value_t *out);

/** Total order: <0, 0, >0. */
int mdx_value_cmp(const mdx_value_t *a, const mdx_value_t *b);

/** Hash consistent with mdx_value_cmp equality (XXH3). */
uint64_t mdx_value_hash(const mdx_value_t *v);

/** Appends the shortest msgpack encoding of v to b. */
void mdx_value_encode(mdx_buf_t *b, const mdx_value_t *v);

#endif
