/*
 * A zero-copy msgpack reader and a small growable-buffer writer.
 *
 * The reader never allocates and never trusts its input: every length is checked against the
 * end of the buffer before it is used, container nesting is bounded, and the reserved byte 0xc1
 * is refused. Strings and binaries come back as views into the input buffer. msgpack-c's
 * unpacker builds an object tree in a zone; the engine's hot paths (finding one field of a
 * body, validating a request) need neither, so this reader exists.
 *
 * The writer appends msgpack to an mdx_buf_t, always in the shortest encoding.
 */
#ifndef MDX_COMMON_MP_H
#define MDX_COMMON_MP_H

#include <stddef.h>
#include <stdint.h>

/** Deepest container nesting the reader accepts (a value at depth 0 is the outermost). */
#define MDX_MP_MAX_DEPTH 32

typedef enum {
    MDX_MP_NIL,
    MDX_MP_BOOL,
    MDX_MP_INT,   /* signed integer that fits int64 (any encoding) */
    MDX_MP_UINT,  /* unsigned integer above INT64_MAX */
    MDX_MP_FLOAT, /* float32 or float64, widened to double */
    MDX_MP_STR,
    MDX_MP_BIN,
    MDX_MP_ARRAY,
    MDX_MP_MAP,
    MDX_MP_EXT
} mdx_mp_type_t;

/** One decoded msgpack header. For ARRAY and MAP only the header is read: n is the element
 *  (or pair) count and the elements follow in the input. */
typedef struct {
    mdx_mp_type_t type;
    int8_t ext_type;
    uint32_t len; /* STR, BIN, EXT: byte length; ARRAY, MAP: element/pair count */
    union {
        int b;
        int64_t i;
        uint64_t u;
        double f;
        const uint8_t *ptr; /* STR, BIN, EXT: view into the input */
    } v;
} mdx_mp_tok_t;

/** Reads one header at *p and advances *p past it (and past the payload of STR/BIN/EXT).
 *  Returns 0, or MDX_EPROTO when the input is truncated or holds byte 0xc1. On error *p is
 *  unchanged. */
int mdx_mp_read(const uint8_t **p, const uint8_t *end, mdx_mp_tok_t *tok);

/** Skips one whole value (containers included) at *p. Returns 0, or MDX_EPROTO (truncated,
 *  invalid byte, or nesting deeper than max_depth). On error *p is unchanged. Runs in time
 *  linear in the bytes skipped: a header claiming more elements than bytes remain fails at
 *  once. */
int mdx_mp_skip(const uint8_t **p, const uint8_t *end, unsigned max_depth);

/** Checks that buf holds exactly one well-formed msgpack value. Returns 0 or MDX_EPROTO. */
int mdx_mp_check(const uint8_t *buf, size_t len, unsigned max_depth);

/** Checks that buf holds exactly one map whose keys are all strings and which is well formed
 *  to max_depth. Returns 0 or MDX_EBADBODY. */
int mdx_mp_check_body(const uint8_t *buf, size_t len, unsigned max_depth);

/** Finds the value of the string key `field` in a map that mdx_mp_check_body accepted.
 *  On success fills *tok with the value's header and [*vstart, *vend) with the value's bytes
 *  (either may be NULL) and returns 1; returns 0 when the field is absent. When a key repeats,
 *  the last occurrence wins (as a decoder that builds a map would see it). */
int mdx_mp_map_find(const uint8_t *map, size_t len, const char *field, size_t flen,
                    mdx_mp_tok_t *tok, const uint8_t **vstart, const uint8_t **vend);

/* ---- writer ---- */

/** A growable byte buffer. err sticks at the first failure (allocation, or a str/bin too long
 *  for msgpack) so a sequence of writes can be checked once at the end. */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
    int err; /* 0, MDX_ENOMEM, or MDX_ETOOBIG (a str/bin longer than 2^32-1 bytes) */
} mdx_buf_t;

void mdx_buf_init(mdx_buf_t *b);
void mdx_buf_fini(mdx_buf_t *b);
/** Makes room for n more bytes. Returns 0 or MDX_ENOMEM (also recorded in b->err). */
int mdx_buf_reserve(mdx_buf_t *b, size_t n);
void mdx_buf_append(mdx_buf_t *b, const void *src, size_t n);

void mdx_mp_put_nil(mdx_buf_t *b);
void mdx_mp_put_bool(mdx_buf_t *b, int v);
void mdx_mp_put_int(mdx_buf_t *b, int64_t v);
void mdx_mp_put_uint(mdx_buf_t *b, uint64_t v);
void mdx_mp_put_double(mdx_buf_t *b, double v);
void mdx_mp_put_str(mdx_buf_t *b, const void *s, size_t len);
void mdx_mp_put_bin(mdx_buf_t *b, const void *s, size_t len);
void mdx_mp_put_array(mdx_buf_t *b, uint32_t n);
void mdx_mp_put_map(mdx_buf_t *b, uint32_t n);

/** Encoders into a caller's array; each returns the number of bytes written. */
size_t mdx_mp_enc_int(uint8_t out[9], int64_t v);
size_t mdx_mp_enc_uint(uint8_t out[9], uint64_t v);
size_t mdx_mp_enc_str_header(uint8_t out[5], uint32_t len);
size_t mdx_mp_enc_bin_header(uint8_t out[5], uint32_t len);
size_t mdx_mp_enc_array_header(uint8_t out[5], uint32_t n);
size_t mdx_mp_enc_map_header(uint8_t out[5], uint32_t n);

#endif
