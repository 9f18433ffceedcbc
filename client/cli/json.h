/*
 * JSON <-> msgpack for the memdex CLI: a direct transcoder in both directions, no tree.
 *
 * The mapping is a bijection between msgpack values and the JSON texts this file writes, so
 * `memdex export` then `memdex import` gives back the same values (docs/cli.md, "JSON and
 * msgpack"):
 *   - JSON integers become msgpack int/uint (shortest encoding); a number with a fraction or an
 *     exponent becomes float64 (an integer literal beyond the uint64/int64 range too).
 *   - Values JSON cannot hold are written as one-member objects whose key is a reserved tag:
 *     {"$bin": "hex"} binary, {"$str": "hex"} a string that is not valid UTF-8,
 *     {"$ext": [type, "hex"]} an ext value, {"$float": "NaN" | "Infinity" | "-Infinity"},
 *     {"$map": [[k, v], ...]} a map with a key that is not a UTF-8 string, and
 *     {"$map": {...}} a real map whose only key happens to be a reserved tag (an escape).
 *   - An object with more than one member is always a plain map, whatever its keys.
 * Object members keep their order; duplicate keys are kept as they are.
 */
#ifndef MDX_CLI_JSON_H
#define MDX_CLI_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "common/mp.h"

/** Why a JSON text was refused: the byte offset (0-based) and a one-line reason. */
typedef struct {
    size_t offset;
    char msg[120];
} mdx_json_err_t;

/** Parses exactly one JSON value (surrounding whitespace allowed) from [s, s+n) and appends its
 *  msgpack encoding to out. Returns 0, MDX_EINVAL (syntax, invalid UTF-8, bad tag; err says
 *  where and why, and out is truncated back to its length on entry) or MDX_ENOMEM.
 *  Borrows s for the call; err may be NULL. */
int mdx__json_to_mp(const char *s, size_t n, mdx_buf_t *out, mdx_json_err_t *err);

/** Appends the JSON text of the one msgpack value at *p to out (compact, no newline) and
 *  advances *p past it. Returns 0, MDX_EPROTO (malformed or truncated msgpack, nesting over
 *  MDX_MP_MAX_DEPTH) or MDX_ENOMEM. */
int mdx__mp_to_json(const uint8_t **p, const uint8_t *end, mdx_buf_t *out);

/** Appends the JSON string literal of [s, s+n) (quoted and escaped; must be valid UTF-8). */
void mdx__json_put_str(mdx_buf_t *out, const char *s, size_t n);

/** 1 when [s, s+n) is valid UTF-8 (no overlong forms, no surrogates). */
int mdx__utf8_valid(const uint8_t *s, size_t n);

#endif
