/*
 * docs/protocol.md must not rot: this test reads it and checks that it mirrors the frozen
 * lists. Every error code appears in the error table with its number, name and message; every
 * op has a section naming each argument it takes; and every example frame in the page (the
 * hex blocks) decodes: requests as valid requests of the section's op, responses as
 * responses with the id of the request before them, error examples with an error status.
 */
#include "tests/unit/protocol/helpers.h"

#include <ctype.h>

#ifndef MDX_PROTOCOL_DOC
#error "MDX_PROTOCOL_DOC must name docs/protocol.md"
#endif

static char *doc;

static int load(void **state)
{
    (void)state;
    FILE *f = fopen(MDX_PROTOCOL_DOC, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    doc = malloc((size_t)n + 1);
    if (!doc || fread(doc, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        return -1;
    }
    doc[n] = '\0';
    fclose(f);
    return 0;
}

static int unload(void **state)
{
    (void)state;
    free(doc);
    return 0;
}

/* The text of section "### name", up to the next heading of level 2 or 3. */
static const char *section(const char *name, size_t *len)
{
    char head[64];
    snprintf(head, sizeof head, "\n### %s\n", name);
    const char *s = strstr(doc, head);
    if (!s)
        return NULL;
    s += strlen(head);
    const char *e = strstr(s, "\n##");
    *len = e ? (size_t)(e - s) : strlen(s);
    return s;
}

static void error_table_mirrors_the_error_list(void **state)
{
    (void)state;
    char row[256];
    int rows = 0;
#define XX(num, name, msg)                                                                         \
    snprintf(row, sizeof row, "\n| %d | `%s` | %s |\n", num, #name, msg);                          \
    snprintf(ctx, sizeof ctx, "error row %s", row + 1);                                            \
    CK(strstr(doc, row) != NULL);                                                                  \
    rows++;
    MDX_ERRNO_MAP(XX)
#undef XX
    snprintf(row, sizeof row, "\n| %d | `", rows + 1);
    snprintf(ctx, sizeof ctx, "no row beyond the list");
    CK(strstr(doc, row) == NULL);
}

static void every_op_has_a_section_naming_its_arguments(void **state)
{
    (void)state;
    for (int op = 0; op < MDX_OP__COUNT; op++) {
        size_t len;
        const char *s = section(mdx_op_name((mdx_op_t)op), &len);
        snprintf(ctx, sizeof ctx, "section for %s", mdx_op_name((mdx_op_t)op));
        CK(s != NULL);
        uint64_t allowed = mdx_op_allowed((mdx_op_t)op);
        for (int a = 0; a < MDX_ARG__COUNT; a++) {
            if (!(allowed >> a & 1))
                continue;
            char tick[40];
            snprintf(tick, sizeof tick, "`%s`", mdx_arg_name((mdx_arg_t)a));
            snprintf(ctx, sizeof ctx, "section %s names %s", mdx_op_name((mdx_op_t)op), tick);
            char *copy = strndup(s, len);
            CK(strstr(copy, tick) != NULL);
            free(copy);
        }
    }
}

/* Bytes of a ```text block of hex: on each line, the 2-digit hex tokens before the first
 * double space (what follows is annotation). Returns 0 when the block is not all hex. */
static size_t block_bytes(const char *s, const char *end, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (s < end) {
        const char *eol = memchr(s, '\n', (size_t)(end - s));
        if (!eol)
            eol = end;
        const char *p = s;
        while (p < eol && *p == ' ')
            p++;
        int any = 0;
        while (p + 1 < eol && isxdigit((unsigned char)p[0]) && isxdigit((unsigned char)p[1]) &&
               (p + 2 == eol || p[2] == ' ')) {
            if (n == cap)
                return 0;
            unsigned v;
            sscanf(p, "%2x", &v);
            out[n++] = (uint8_t)v;
            any = 1;
            p += 2;
            if (p + 1 < eol && p[0] == ' ' && p[1] == ' ')
                break;
            if (p < eol)
                p++;
        }
        if (!any)
            return 0;
        s = eol + 1;
    }
    return n;
}

static void every_example_frame_decodes(void **state)
{
    (void)state;
    static uint8_t buf[4096];
    const char *cur_op = NULL;
    char opname[64] = "";
    uint64_t last_id = 0;
    int requests = 0, responses = 0, errors = 0;
    for (const char *s = strstr(doc, "```text\n"); s; s = strstr(s, "```text\n")) {
        /* The heading and label this block is under. */
        const char *h = s;
        while (h > doc && strncmp(h, "\n### ", 5) != 0 && strncmp(h, "\n## ", 4) != 0)
            h--;
        if (strncmp(h, "\n### ", 5) == 0) {
            size_t l = strcspn(h + 5, "\n");
            snprintf(opname, sizeof opname, "%.*s", (int)l, h + 5);
            cur_op = opname;
        } else {
            cur_op = NULL;
        }
        int is_req = s - doc >= 10 && strncmp(s - 10, "Request:\n\n", 10) == 0;
        s += 8;
        const char *e = strstr(s, "```");
        assert_non_null(e);
        size_t n = block_bytes(s, e, buf, sizeof buf);
        s = e + 3;
        if (n == 0)
            continue; /* not a frame */
        snprintf(ctx, sizeof ctx, "example under '%s' at offset %zu", cur_op ? cur_op : "##",
                 (size_t)(e - doc));
        const uint8_t *pl;
        size_t plen;
        CKI(mdx_frame_next(buf, n, MDX_DEFAULT_MAX_FRAME, &pl, &plen), n);
        mdx_request_t req;
        char err[256];
        if (is_req || !cur_op) {
            int rc = mdx_request_decode(pl, plen, &req, err, sizeof err);
            if (rc == 0) {
                if (cur_op)
                    CKS(mdx_op_name(req.op), cur_op);
                last_id = req.id;
                requests++;
                continue;
            }
            CK(!is_req);
        }
        uint64_t id;
        int status;
        const uint8_t *body;
        size_t blen;
        CKI(mdx_resp_decode(pl, plen, &id, &status, &body, &blen), 0);
        if (cur_op) {
            CKI(id, last_id);
            CKI(status, 0);
            responses++;
        } else {
            int code;
            const char *msg;
            size_t mlen;
            CK(status > 0);
            CKI(mdx_resp_error_decode(body, blen, &code, &msg, &mlen), 0);
            CKI(code, status);
            errors++;
        }
    }
    snprintf(ctx, sizeof ctx, "examples found");
    CKI(requests, MDX_OP__COUNT + 1); /* one per op, and the framing example */
    CKI(responses, MDX_OP__COUNT);
    CK(errors >= 2);
}

static void limits_are_stated(void **state)
{
    (void)state;
    snprintf(ctx, sizeof ctx, "limits");
    CKI(MDX_DEFAULT_MAX_FRAME, 32u << 20);
    CK(strstr(doc, "| Frame payload | 32 MiB") != NULL);
    CKI(MDX_PROTO_MAX_DEPTH, 32);
    CK(strstr(doc, "| Nesting of containers in a request | 32,") != NULL);
    CKI(MDX_MAX_MGET_KEYS, 10000);
    CK(strstr(doc, "| Keys in one `mget` | 10,000 |") != NULL);
    CKI(MDX_PROTO_MAX_STR, 255);
    CK(strstr(doc, "| Any `name` argument on the wire | 1–255 bytes |") != NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_table_mirrors_the_error_list),
        cmocka_unit_test(every_op_has_a_section_naming_its_arguments),
        cmocka_unit_test(every_example_frame_decodes),
        cmocka_unit_test(limits_are_stated),
    };
    return cmocka_run_group_tests(tests, load, unload);
}
