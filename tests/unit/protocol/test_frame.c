/*
 * Unit tests for protocol/frame.c: mdx_frame_next, the frame splitter.
 *
 * Inputs sit at the end of exact-size heap blocks, so any read past `len` is an ASan report.
 * A stream of frames is fed whole, cut at every proper prefix, fed one byte at a time and fed
 * in random chunks (seed printed; MDX_SEED replays), and must always yield the same frames.
 */
#include "tests/unit/protocol/helpers.h"

/* A stream of frames of assorted sizes, including an empty one and one of 70,000 bytes (a
 * length with all four header bytes significant below 2^24). */
typedef struct {
    mdx_buf_t b;
    size_t n;
    size_t off[8], plen[8];
} stream_t;

static void stream_init(stream_t *s)
{
    static const size_t sizes[] = {1, 0, 5, 300, 70000, 2};
    mdx_buf_init(&s->b);
    s->n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t l = sizes[i];
        uint8_t h[4] = {(uint8_t)(l >> 24), (uint8_t)(l >> 16), (uint8_t)(l >> 8), (uint8_t)l};
        s->off[s->n] = s->b.len;
        s->plen[s->n++] = l;
        mdx_buf_append(&s->b, h, 4);
        for (size_t j = 0; j < l; j++) {
            uint8_t c = (uint8_t)(i * 31 + j);
            mdx_buf_append(&s->b, &c, 1);
        }
    }
    assert_int_equal(s->b.err, 0);
}

static void complete_frame_returns_its_size_and_payload(void **state)
{
    (void)state;
    stream_t s;
    stream_init(&s);
    size_t pos = 0;
    for (size_t i = 0; i < s.n; i++) {
        snprintf(ctx, sizeof ctx, "frame %zu", i);
        const uint8_t *pl = NULL;
        size_t plen = 99;
        long r = mdx_frame_next(s.b.data + pos, s.b.len - pos, MDX_DEFAULT_MAX_FRAME, &pl, &plen);
        CKI(r, 4 + s.plen[i]);
        CK(pl == s.b.data + s.off[i] + 4);
        CKI(plen, s.plen[i]);
        pos += (size_t)r;
    }
    CKI(pos, s.b.len);
    mdx_buf_fini(&s.b);
}

static void every_proper_prefix_needs_more(void **state)
{
    (void)state;
    stream_t s;
    stream_init(&s);
    for (size_t i = 0; i < s.n; i++) {
        const uint8_t *frame = s.b.data + s.off[i];
        size_t flen = 4 + s.plen[i];
        /* Every prefix of the big frame would take a while under ASan: its first and last
         * 4096 prefixes cover the header and the tail. */
        for (size_t k = 0; k < flen; k++) {
            if (flen > 10000 && k > 4096 && k < flen - 4096)
                continue;
            snprintf(ctx, sizeof ctx, "frame %zu, prefix %zu of %zu", i, k, flen);
            uint8_t *buf = tail_copy(frame, k);
            const uint8_t *pl = (const uint8_t *)"x";
            size_t plen = 77;
            CKI(mdx_frame_next(buf, k, MDX_DEFAULT_MAX_FRAME, &pl, &plen), 0);
            CK(pl[0] == 'x' && plen == 77); /* untouched */
            tail_free(buf, k);
        }
        snprintf(ctx, sizeof ctx, "frame %zu whole", i);
        uint8_t *buf = tail_copy(frame, flen);
        const uint8_t *pl;
        size_t plen;
        CKI(mdx_frame_next(buf, flen, MDX_DEFAULT_MAX_FRAME, &pl, &plen), flen);
        CK(plen == 0 || memcmp(pl, frame + 4, plen) == 0);
        tail_free(buf, flen);
    }
    mdx_buf_fini(&s.b);
}

/* Feeds the stream through an input buffer the way a server does: append what arrived, take
 * every complete frame, keep the rest. Chunk sizes come from next_chunk. */
static void feed(const stream_t *s, size_t (*next_chunk)(uint64_t *), uint64_t *rs)
{
    uint8_t *in = malloc(s->b.len);
    assert_non_null(in);
    size_t have = 0, sent = 0, got = 0;
    while (sent < s->b.len) {
        size_t c = next_chunk(rs);
        if (c > s->b.len - sent)
            c = s->b.len - sent;
        memcpy(in + have, s->b.data + sent, c);
        have += c;
        sent += c;
        for (;;) {
            const uint8_t *pl;
            size_t plen;
            long r = mdx_frame_next(in, have, MDX_DEFAULT_MAX_FRAME, &pl, &plen);
            CK(r >= 0);
            if (r == 0)
                break;
            snprintf(ctx, sizeof ctx, "frame %zu after %zu bytes", got, sent);
            CK(got < s->n);
            CKI(plen, s->plen[got]);
            CK(plen == 0 || memcmp(pl, s->b.data + s->off[got] + 4, plen) == 0);
            got++;
            memmove(in, in + r, have - (size_t)r);
            have -= (size_t)r;
        }
    }
    CKI(got, s->n);
    CKI(have, 0);
    free(in);
}

static size_t one(uint64_t *rs)
{
    (void)rs;
    return 1;
}

static size_t random_chunk(uint64_t *rs)
{
    uint64_t r = rnd(rs);
    return (r & 3) == 0 ? 1 + (size_t)(r >> 8) % 5 : 1 + (size_t)(r >> 8) % 9000;
}

static void byte_at_a_time_yields_the_same_frames(void **state)
{
    (void)state;
    stream_t s;
    stream_init(&s);
    feed(&s, one, NULL);
    mdx_buf_fini(&s.b);
}

static void random_splits_yield_the_same_frames(void **state)
{
    (void)state;
    stream_t s;
    stream_init(&s);
    uint64_t seed = test_seed(0x5eedf00d), rs = seed ? seed : 1;
    for (int i = 0; i < 50; i++)
        feed(&s, random_chunk, &rs);
    mdx_buf_fini(&s.b);
}

static void length_over_limit_is_refused_from_the_header_alone(void **state)
{
    (void)state;
    const uint8_t *pl;
    size_t plen;
    static const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    static const uint8_t at[4] = {0x00, 0x00, 0x01, 0x00}; /* 256 */
    static const uint8_t over[4] = {0x00, 0x00, 0x01, 0x01};
    static const uint8_t big[4] = {0x02, 0x00, 0x00, 0x01}; /* 32 MiB + 1 */
    snprintf(ctx, sizeof ctx, "frame over the limit");
    CKI(mdx_frame_next(huge, 4, MDX_DEFAULT_MAX_FRAME, &pl, &plen), -MDX_EFRAMETOOBIG);
    CKI(mdx_frame_next(big, 4, MDX_DEFAULT_MAX_FRAME, &pl, &plen), -MDX_EFRAMETOOBIG);
    CKI(mdx_frame_next(over, 4, 256, &pl, &plen), -MDX_EFRAMETOOBIG);
    CKI(mdx_frame_next(at, 4, 256, &pl, &plen), 0); /* at the limit: wait for the payload */
    CKI(mdx_frame_next(huge, 3, 0, &pl, &plen), 0); /* the header is not complete yet */
    static const uint8_t zero[4] = {0, 0, 0, 0};
    CKI(mdx_frame_next(zero, 4, 0, &pl, &plen), 4); /* an empty frame fits any limit */
}

static void empty_frame_is_complete_and_fails_to_decode(void **state)
{
    (void)state;
    uint8_t *buf = tail_copy("\0\0\0\0", 4);
    const uint8_t *pl = NULL;
    size_t plen = 99;
    snprintf(ctx, sizeof ctx, "empty frame");
    CKI(mdx_frame_next(buf, 4, MDX_DEFAULT_MAX_FRAME, &pl, &plen), 4);
    CKI(plen, 0);
    CK(pl == buf + 4);
    mdx_request_t req;
    char err[128];
    CKI(mdx_request_decode(pl, plen, &req, err, sizeof err), MDX_EPROTO);
    CKI(req.id, 0);
    CKS(err, "empty payload: a request is an array [id, op, args]");
    tail_free(buf, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(complete_frame_returns_its_size_and_payload),
        cmocka_unit_test(every_proper_prefix_needs_more),
        cmocka_unit_test(byte_at_a_time_yields_the_same_frames),
        cmocka_unit_test(random_splits_yield_the_same_frames),
        cmocka_unit_test(length_over_limit_is_refused_from_the_header_alone),
        cmocka_unit_test(empty_frame_is_complete_and_fails_to_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
