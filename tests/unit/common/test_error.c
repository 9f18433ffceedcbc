/*
 * Unit tests for the error list (include/memdex/error.h) and its generated functions
 * (common/error.c). The expectations are built from MDX_ERRNO_MAP itself, so an entry added to
 * the list is checked without touching this file; what it checks is that the list is sound:
 * numbers and names distinct, numbers only growing (the list is append-only), every function
 * agreeing with the list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <string.h>

#include "memdex/error.h"

typedef struct {
    int num;
    int value; /* the enum constant MDX_E<NAME> */
    const char *name;
    const char *msg;
} entry_t;

static const entry_t entries[] = {
#define XX(num, name, msg) {num, MDX_E##name, #name, msg},
    MDX_ERRNO_MAP(XX)
#undef XX
};

#define NENTRIES (sizeof entries / sizeof entries[0])

static int in_list(int code)
{
    for (size_t i = 0; i < NENTRIES; i++)
        if (entries[i].num == code)
            return 1;
    return 0;
}

/* The code the list gives the name s[0..len), 0 when it is not a name in the list. */
static int list_code(const char *s, size_t len)
{
    for (size_t i = 0; i < NENTRIES; i++)
        if (strlen(entries[i].name) == len && memcmp(entries[i].name, s, len) == 0)
            return entries[i].num;
    return 0;
}

static void numbers_are_positive_distinct_and_only_grow(void **state)
{
    (void)state;
    assert_true(NENTRIES > 0);
    for (size_t i = 0; i < NENTRIES; i++) {
        assert_int_equal(entries[i].value, entries[i].num);
        assert_true(entries[i].num > 0);
        assert_true(entries[i].num < MDX_ERRNO_MAX);
        if (i > 0)
            assert_true(entries[i].num > entries[i - 1].num); /* also makes them distinct */
    }
    assert_int_equal(MDX_ERRNO_MAX, entries[NENTRIES - 1].num + 1);
    assert_int_equal(MDX_OK, 0);
}

static void names_are_distinct_upper_case_identifiers(void **state)
{
    (void)state;
    for (size_t i = 0; i < NENTRIES; i++) {
        const char *n = entries[i].name;
        assert_true(n[0] >= 'A' && n[0] <= 'Z');
        for (const char *c = n; *c; c++)
            assert_true((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_');
        assert_string_not_equal(n, "OK");
        assert_string_not_equal(n, "UNKNOWN");
        for (size_t j = i + 1; j < NENTRIES; j++)
            assert_string_not_equal(n, entries[j].name);
        assert_true(strlen(entries[i].msg) > 0);
    }
}

static void name_and_message_follow_the_list(void **state)
{
    (void)state;
    for (size_t i = 0; i < NENTRIES; i++) {
        assert_string_equal(mdx_err_name(entries[i].num), entries[i].name);
        assert_string_equal(mdx_strerror(entries[i].num), entries[i].msg);
    }
    assert_string_equal(mdx_err_name(MDX_ENOMEM), "NOMEM");
    assert_string_equal(mdx_strerror(MDX_ENOMEM), "out of memory");
    assert_string_equal(mdx_err_name(MDX_EPROTO), "PROTO");
}

static void names_round_trip_through_err_from_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < NENTRIES; i++) {
        const char *n = mdx_err_name(entries[i].num);
        assert_int_equal(mdx_err_from_name(n, strlen(n)), entries[i].num);

        /* the name is length-delimited: a longer buffer with the name as prefix matches only
         * at the name's length; one byte less or more is another name or none */
        char buf[64];
        size_t len = strlen(n);
        assert_true(len + 2 < sizeof buf);
        memcpy(buf, n, len);
        memcpy(buf + len, "XY", 3);
        assert_int_equal(mdx_err_from_name(buf, len), entries[i].num);
        assert_int_equal(mdx_err_from_name(buf, len + 1), list_code(buf, len + 1));
        assert_int_equal(mdx_err_from_name(buf, len - 1), list_code(buf, len - 1));
    }
}

static void unknown_names_give_zero(void **state)
{
    (void)state;
    static const char *const bad[] = {"",       "OK", "UNKNOWN", "nomem",      "NOMEM ",
                                      " NOMEM", "E",  "ENOMEM",  "MDX_ENOMEM", "NOMEMNOMEM"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mdx_err_from_name(bad[i], strlen(bad[i])), 0);
    assert_int_equal(mdx_err_from_name("NOMEM", 0), 0);
}

static void zero_is_ok_and_unknown_codes_are_unknown(void **state)
{
    (void)state;
    assert_string_equal(mdx_err_name(0), "OK");
    assert_string_equal(mdx_strerror(0), "success");
    const int unknown[] = {-1,   -MDX_ENOMEM, MDX_ERRNO_MAX, MDX_ERRNO_MAX + 1,
                           1000, INT_MAX,     INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(mdx_err_name(unknown[i]), "UNKNOWN");
        assert_string_equal(mdx_strerror(unknown[i]), "unknown error");
    }
    /* every number below MDX_ERRNO_MAX that is not in the list (gaps, if any) is unknown too */
    for (int c = 1; c < MDX_ERRNO_MAX; c++) {
        if (!in_list(c))
            assert_string_equal(mdx_err_name(c), "UNKNOWN");
        else
            assert_string_not_equal(mdx_err_name(c), "UNKNOWN");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numbers_are_positive_distinct_and_only_grow),
        cmocka_unit_test(names_are_distinct_upper_case_identifiers),
        cmocka_unit_test(name_and_message_follow_the_list),
        cmocka_unit_test(names_round_trip_through_err_from_name),
        cmocka_unit_test(unknown_names_give_zero),
        cmocka_unit_test(zero_is_ok_and_unknown_codes_are_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
