/*
 * libFuzzer target for the wire decoders: frame splitting, request decoding, and the error
 * reply a server would send for what it decoded.
 *
 * The input is read two ways: as a stream of frames (each payload decoded from its own
 * exact-size heap copy, so ASan sees an over-read by one byte), and as one bare payload (so
 * mutations need not keep a frame header consistent). Beyond "no crash", it checks properties
 * and aborts when one fails: a decoded request re-encodes from its views and decodes to the
 * same request; every error comes with a one-line printable message; the error reply for it
 * is a well-formed frame that the client-side decoder reads back.
 *
 * Build and run: make fuzz FUZZ_SECONDS=60 (clang; see tests/fuzz/CMakeLists.txt).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mp.h"
#include "memdex/protocol.h"
#include "protocol/response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(e)                                                                                   \
    do {                                                                                           \
        if (!(e)) {                                                                                \
            fprintf(stderr, "fuzz_request: %s:%d: check failed: %s\n", __FILE__, __LINE__, #e);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_reencodes(const mdx_request_t *req)
{
    mdx_buf_t b;
    size_t mark, plen;
    const uint8_t *pl;
    mdx_request_t again;

    CHECK((req->present & ~mdx_op_allowed(req->op)) == 0);
    CHECK((mdx_op_required(req->op) & ~req->present) == 0);
    mdx_buf_init(&b);
    mdx_req_begin(&b, &mark, req->id, mdx_op_name(req->op),
                  (uint32_t)__builtin_popcountll(req->present));
    for (int a = 0; a < MDX_ARG__COUNT; a++)
        if (mdx_req_has(req, (mdx_arg_t)a)) {
            mdx_req_arg(&b, (mdx_arg_t)a);
            mdx_buf_append(&b, req->args[a].raw, req->args[a].raw_len);
        }
    mdx_req_end(&b, mark);
    CHECK(b.err == 0);
    CHECK(mdx_frame_next(b.data, b.len, SIZE_MAX, &pl, &plen) == (long)b.len);
    CHECK(mdx_request_decode(pl, plen, &again, NULL, 0) == 0);
    CHECK(again.id == req->id && again.op == req->op && again.present == req->present);
    for (int a = 0; a < MDX_ARG__COUNT; a++) {
        const mdx_argval_t *x = &req->args[a], *y = &again.args[a];
        CHECK(x->raw_len == y->raw_len && x->len == y->len && x->u == y->u);
        CHECK(x->raw_len == 0 || memcmp(x->raw, y->raw, x->raw_len) == 0);
        CHECK(x->len == 0 || memcmp(x->str, y->str, x->len) == 0);
    }
    mdx_buf_fini(&b);
}

static void check_error_reply(uint64_t id, int code, const char *msg)
{
    mdx_buf_t b;
    const uint8_t *pl, *body;
    size_t plen, blen, mlen;
    uint64_t rid;
    int status, rcode;
    const char *rmsg;

    mdx_buf_init(&b);
    mdx_resp_error(&b, id, code, msg);
    CHECK(b.err == 0);
    CHECK(mdx_frame_next(b.data, b.len, SIZE_MAX, &pl, &plen) == (long)b.len);
    CHECK(mdx_resp_decode(pl, plen, &rid, &status, &body, &blen) == 0);
    CHECK(rid == id && status == code);
    CHECK(mdx_resp_error_decode(body, blen, &rcode, &rmsg, &mlen) == 0);
    CHECK(rcode == code && mlen == strlen(msg) && memcmp(rmsg, msg, mlen) == 0);
    mdx_buf_fini(&b);
}

static void decode_one(const uint8_t *payload, size_t len)
{
    uint8_t *own = malloc(len ? len : 1);
    mdx_request_t req;
    char err[256];

    CHECK(own != NULL);
    if (len)
        memcpy(own, payload, len);
    memset(err, 'z', sizeof err);
    int rc = mdx_request_decode(own, len, &req, err, sizeof err);
    CHECK(rc == 0 || rc == MDX_EPROTO || rc == MDX_EUNKNOWNOP || rc == MDX_EBADARGS);
    CHECK(memchr(err, '\0', sizeof err) != NULL);
    CHECK((rc == 0) == (err[0] == '\0'));
    for (const char *c = err; *c; c++)
        CHECK(*c >= 0x20 && *c < 0x7f);
    if (rc == 0)
        check_reencodes(&req);
    else
        check_error_reply(req.id, rc, err);
    free(own);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    for (;;) {
        const uint8_t *pl;
        size_t plen;
        long r = mdx_frame_next(data + pos, size - pos, 1 << 20, &pl, &plen);
        if (r <= 0) {
            CHECK(r == 0 || r == -MDX_EFRAMETOOBIG);
            break;
        }
        CHECK((size_t)r == MDX_FRAME_HEADER + plen && (size_t)r <= size - pos);
        CHECK(pl == data + pos + MDX_FRAME_HEADER);
        decode_one(pl, plen);
        pos += (size_t)r;
    }
    decode_one(data, size);
    return 0;
}
