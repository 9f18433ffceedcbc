/*
 * Response and request frame encoding, and the response envelope decoder (see response.h).
 *
 * A frame's head is written with one reservation and the shortest msgpack encodings, then its
 * length is patched in place once the body is known: the server appends the stored body bytes
 * of a record straight after the head, never re-encoding them.
 */
#include "protocol/response.h"

#include <string.h>

#include "common/assert.h"

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Appends the length placeholder, array(3) and the id; returns 0 or out->err. */
static int head(mdx_buf_t *out, size_t *mark, uint64_t id, size_t extra)
{
    *mark = out->len;
    if (mdx_buf_reserve(out, MDX_FRAME_HEADER + 1 + 9 + extra))
        return out->err;
    uint8_t *w = out->data + out->len;
    memset(w, 0, MDX_FRAME_HEADER);
    w[MDX_FRAME_HEADER] = 0x93; /* fixarray of 3 */
    out->len += MDX_FRAME_HEADER + 1 + mdx_mp_enc_uint(w + MDX_FRAME_HEADER + 1, id);
    return 0;
}

static void end(mdx_buf_t *out, size_t mark)
{
    if (out->err)
        return;
    MDX_ASSERT(mark + MDX_FRAME_HEADER <= out->len);
    size_t l = out->len - mark - MDX_FRAME_HEADER;
    if (l > UINT32_MAX) {
        out->err = MDX_ETOOBIG;
        return;
    }
    put_be32(out->data + mark, (uint32_t)l);
}

void mdx_resp_begin(mdx_buf_t *out, size_t *mark, uint64_t id, int status)
{
    MDX_ASSERT(status >= 0);
    if (head(out, mark, id, 9))
        return;
    out->len += mdx_mp_enc_uint(out->data + out->len, (uint64_t)status);
}

void mdx_resp_end(mdx_buf_t *out, size_t mark)
{
    end(out, mark);
}

void mdx_resp_rollback(mdx_buf_t *out, size_t mark)
{
    if (mark <= out->len)
        out->len = mark;
    out->err = 0;
}

void mdx_resp_error(mdx_buf_t *out, uint64_t id, int code, const char *msg)
{
    size_t mark;
    const char *name = mdx_err_name(code);
    if (!msg)
        msg = mdx_strerror(code);
    mdx_resp_begin(out, &mark, id, code);
    mdx_mp_put_map(out, 2);
    mdx_mp_put_str(out, "code", 4);
    mdx_mp_put_str(out, name, strlen(name));
    mdx_mp_put_str(out, "message", 7);
    mdx_mp_put_str(out, msg, strlen(msg));
    mdx_resp_end(out, mark);
}

void mdx_req_begin(mdx_buf_t *out, size_t *mark, uint64_t id, const char *opname, uint32_t nargs)
{
    if (head(out, mark, id, 0))
        return;
    mdx_mp_put_str(out, opname, strlen(opname));
    mdx_mp_put_map(out, nargs);
}

void mdx_req_arg(mdx_buf_t *out, mdx_arg_t a)
{
    const char *n = mdx_arg_name(a);
    MDX_ASSERT(n != NULL);
    mdx_mp_put_str(out, n, strlen(n));
}

void mdx_req_end(mdx_buf_t *out, size_t mark)
{
    end(out, mark);
}

int mdx_resp_decode(const uint8_t *payload, size_t len, uint64_t *id, int *status,
                    const uint8_t **body, size_t *body_len)
{
    const uint8_t *p = payload, *end_ = payload + len;
    mdx_mp_tok_t t;
    if (mdx_mp_check(payload, len, MDX_MP_MAX_DEPTH))
        return MDX_EPROTO;
    /* Well formed from here on: reads cannot run past end_. */
    if (mdx_mp_read(&p, end_, &t) || t.type != MDX_MP_ARRAY || t.len != 3)
        return MDX_EPROTO;
    if (mdx_mp_read(&p, end_, &t))
        return MDX_EPROTO;
    if (t.type == MDX_MP_UINT)
        *id = t.v.u;
    else if (t.type == MDX_MP_INT && t.v.i >= 0)
        *id = (uint64_t)t.v.i;
    else
        return MDX_EPROTO;
    if (mdx_mp_read(&p, end_, &t))
        return MDX_EPROTO;
    if (t.type == MDX_MP_STR && *id == 0)
        *status = -1;
    else if (t.type == MDX_MP_INT && t.v.i >= 0 && t.v.i <= INT32_MAX)
        *status = (int)t.v.i;
    else
        return MDX_EPROTO;
    *body = p;
    *body_len = (size_t)(end_ - p);
    return 0;
}

int mdx_resp_error_decode(const uint8_t *body, size_t len, int *code, const char **msg,
                          size_t *msg_len)
{
    mdx_mp_tok_t t;
    if (mdx_mp_check(body, len, MDX_MP_MAX_DEPTH))
        return MDX_EPROTO;
    if (!mdx_mp_map_find(body, len, "message", 7, &t, NULL, NULL) || t.type != MDX_MP_STR)
        return MDX_EPROTO;
    *msg = (const char *)t.v.ptr;
    *msg_len = t.len;
    *code = 0;
    if (mdx_mp_map_find(body, len, "code", 4, &t, NULL, NULL) && t.type == MDX_MP_STR)
        *code = mdx_err_from_name((const char *)t.v.ptr, t.len);
    return 0;
}
