/*
 * Helpers shared by the protocol unit tests: checks that say which case failed, exact-size
 * heap copies (an over-read past the end is an AddressSanitizer report) and a request builder
 * on top of protocol/response.h.
 */
#ifndef MDX_TESTS_PROTOCOL_HELPERS_H
#define MDX_TESTS_PROTOCOL_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/mp.h"
#include "memdex/protocol.h"
#include "protocol/response.h"

/* What the current case is checking, printed when a check fails. */
static char ctx[512];

#define CK(cond)                                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("%s: check failed: %s\n", ctx, #cond);                                     \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#define CKI(a, b)                                                                                  \
    do {                                                                                           \
        intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);                                           \
        if (a_ != b_) {                                                                            \
            print_error("%s: %s == %jd, expected %s == %jd\n", ctx, #a, a_, #b, b_);               \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#define CKS(a, b)                                                                                  \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (strcmp(a_, b_) != 0) {                                                                 \
            print_error("%s: %s == \"%s\", expected \"%s\"\n", ctx, #a, a_, b_);                   \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* Copies n bytes into a heap block of exactly n bytes (free with free()). */
static inline uint8_t *tail_copy(const void *src, size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n)
        memcpy(p, src, n);
    /* For n == 0 the caller gets a pointer whose every byte is out of bounds for it. */
    return n ? p : p + 1;
}

static inline void tail_free(void *p, size_t n)
{
    free(n ? p : (uint8_t *)p - 1);
}

static inline void hexdump(char *out, size_t outsz, const uint8_t *p, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 4 < outsz; i++)
        o += (size_t)snprintf(out + o, outsz - o, "%02x", p[i]);
}

static inline void put_cstr(mdx_buf_t *b, const char *s)
{
    mdx_mp_put_str(b, s, strlen(s));
}

/* The frame [id, op, {}] with nargs pairs to come; finish with rq_end. */
static inline size_t rq_begin(mdx_buf_t *b, uint64_t id, const char *op, uint32_t nargs)
{
    size_t mark;
    mdx_req_begin(b, &mark, id, op, nargs);
    return mark;
}

static inline void rq_end(mdx_buf_t *b, size_t mark)
{
    mdx_req_end(b, mark);
    assert_int_equal(b->err, 0);
}

/* Payload of the frame that starts at mark. */
static inline const uint8_t *rq_payload(const mdx_buf_t *b, size_t mark, size_t *len)
{
    *len = b->len - mark - MDX_FRAME_HEADER;
    return b->data + mark + MDX_FRAME_HEADER;
}

/* A seed from MDX_SEED, or the default; printed so a failure can be replayed. */
static inline uint64_t test_seed(uint64_t dflt)
{
    const char *s = getenv("MDX_SEED");
    uint64_t seed = s && *s ? strtoull(s, NULL, 0) : dflt;
    print_message("seed %" PRIu64 " (set MDX_SEED to replay)\n", seed);
    return seed;
}

/* xorshift64*: deterministic across platforms. */
static inline uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

#endif
