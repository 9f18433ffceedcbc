/*
 * Frame encoding for memdexd and the client: responses ([id, status, body]) for the server,
 * requests ([id, op, args]) for clients and tests, and the response envelope decoder a client
 * needs. Internal to server/ and client/ (not a public header): it speaks mdx_buf_t.
 *
 * A frame is written in place: *_begin appends a 4-byte length placeholder and the envelope
 * head and remembers where the frame starts (mark); the caller appends the body (or the args
 * pairs) with the mdx_mp_put_* writers; *_end patches the length. Nothing is copied twice.
 * Errors stick in out->err (mdx_buf_t's rule), so a whole frame can be checked once at the end;
 * after an error, mdx_resp_rollback() removes the partial frame.
 */
#ifndef MDX_PROTOCOL_RESPONSE_H
#define MDX_PROTOCOL_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "common/mp.h"
#include "memdex/protocol.h"

/** Starts a response frame: appends the length placeholder, array(3), id and status (0, or an
 *  error code from memdex/error.h) and stores the frame's offset in *mark. The caller then
 *  appends exactly one msgpack value (the body) and calls mdx_resp_end. */
void mdx_resp_begin(mdx_buf_t *out, size_t *mark, uint64_t id, int status);

/** Finishes the frame started at mark by writing its payload length. Does nothing when out->err
 *  is set; sets out->err to MDX_ETOOBIG when the payload exceeds 2^32-1 bytes. */
void mdx_resp_end(mdx_buf_t *out, size_t mark);

/** Drops everything from mark on (a frame that could not be completed) and clears out->err, so
 *  the caller can append an error frame instead. */
void mdx_resp_rollback(mdx_buf_t *out, size_t mark);

/** Appends a complete error frame [id, code, {"code": NAME, "message": msg}]. msg may be NULL
 *  (mdx_strerror(code) is used). Check out->err afterwards. */
void mdx_resp_error(mdx_buf_t *out, uint64_t id, int code, const char *msg);

/** Starts a request frame: appends the length placeholder, array(3), id, the op name (a
 *  NUL-terminated string, normally mdx_op_name()) and a map header of nargs pairs. The caller
 *  appends nargs pairs (mdx_req_arg() then a value) and calls mdx_req_end. */
void mdx_req_begin(mdx_buf_t *out, size_t *mark, uint64_t id, const char *opname, uint32_t nargs);

/** Appends the name of argument a (the key of one args pair). */
void mdx_req_arg(mdx_buf_t *out, mdx_arg_t a);

/** Finishes a request frame; same rules as mdx_resp_end. */
void mdx_req_end(mdx_buf_t *out, size_t mark);

/** Decodes a response (or push) payload [id, status, body]: checks that it is exactly one
 *  well-formed array of 3 with a uint id. For a response, *status is the status (0 or an error
 *  code, at most INT32_MAX); for a push (second element a string, id 0) *status is -1.
 *  [*body, *body + *body_len) are the bytes of the third element. Returns 0 or MDX_EPROTO.
 *  Lifetime: body is a view into payload. */
int mdx_resp_decode(const uint8_t *payload, size_t len, uint64_t *id, int *status,
                    const uint8_t **body, size_t *body_len);

/** From the body of an error response, the "message" string (a view, not NUL-terminated) and
 *  the code named by "code" (0 when absent or unknown). Returns 0, or MDX_EPROTO when the body
 *  is not a map holding a string "message". */
int mdx_resp_error_decode(const uint8_t *body, size_t len, int *code, const char **msg,
                          size_t *msg_len);

#endif
