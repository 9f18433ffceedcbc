/*
 * Unit tests for common/alloc.c: byte accounting, the calloc overflow check, realloc keeping the
 * block on failure, and fault injection (MDX_FAULT_INJECTION=1 builds, i.e. Debug).
 *
 * Real allocation failures are provoked with absurd sizes; under AddressSanitizer that needs
 * allocator_may_return_null=1, which this file sets as its default.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/alloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifndef HAVE_ASAN
#define HAVE_ASAN 0
#endif

#if HAVE_ASAN
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif

/* More than any allocator hands out, but not so close to SIZE_MAX that the allocator's own
 * size arithmetic is what fails. */
#define HUGE_SIZE (SIZE_MAX / 2)

static void malloc_accounting_grows_by_usable_size_and_returns_to_baseline(void **state)
{
    (void)state;
    size_t base = mdx_alloc_used();
    uint64_t calls = mdx_alloc_count();

    unsigned char *p = mdx_malloc(100);
    assert_non_null(p);
    memset(p, 0xab, 100); /* all 100 bytes are ours (ASan checks) */
    size_t sp = mdx_alloc_size(p);
    assert_true(sp >= 100);
    assert_int_equal(mdx_alloc_used(), base + sp);
    assert_true(mdx_alloc_count() == calls + 1);

    void *q = mdx_malloc(5000);
    assert_non_null(q);
    size_t sq = mdx_alloc_size(q);
    assert_true(sq >= 5000);
    assert_int_equal(mdx_alloc_used(), base + sp + sq);
    assert_true(mdx_alloc_count() == calls + 2);

    mdx_free(p);
    assert_int_equal(mdx_alloc_used(), base + sq);
    mdx_free(q);
    assert_int_equal(mdx_alloc_used(), base);
    assert_true(mdx_alloc_count() == calls + 2); /* free is not an allocation */
}

static void malloc_zero_returns_a_counted_freeable_block(void **state)
{
    (void)state;
    size_t base = mdx_alloc_used();
    void *p = mdx_malloc(0);
    assert_non_null(p);
    assert_true(mdx_alloc_size(p) >= 1);
    assert_int_equal(mdx_alloc_used(), base + mdx_alloc_size(p));
    mdx_free(p);
    assert_int_equal(mdx_alloc_used(), base);
}

static void free_and_size_accept_null(void **state)
{
    (void)state;
    size_t base = mdx_alloc_used();
    uint64_t calls = mdx_alloc_count();
    mdx_free(NULL);
    assert_int_equal(mdx_alloc_size(NULL), 0);
    assert_int_equal(mdx_alloc_used(), base);
    assert_true(mdx_alloc_count() == calls);
}

static void calloc_zeroes_and_is_counted(void **state)
{
    (void)state;
    size_t base = mdx_alloc_used();
    uint64_t calls = mdx_alloc_count();
    unsigned char *p = mdx_calloc(37, 11);
    assert_non_null(p);
    for (size_t i = 0; i < 37 * 11; i++)
        assert_int_equal(p[i], 0);
    assert_true(mdx_alloc_size(p) >= 37 * 11);
    assert_int_equal(mdx_alloc_used(), base + mdx_alloc_size(p));
    assert_true(mdx_alloc_count() == calls + 1);
    mdx_free(p);
    assert_int_equal(mdx_alloc_used(), base);
}

static void calloc_overflow_returns_null_without_allocating(void **state)
{
    (void)state;
    size_t base = mdx_alloc_used();
    const size_t half = SIZE_MAX / 2 + 1; /* 2^63 on 64-bit */
    assert_null(mdx_calloc(half, 2));
    assert_null(mdx_calloc(2, half));
    assert_null(mdx_calloc(SIZE_MAX, SIZE_MAX));
    assert_null(
        mdx_calloc(((size_t)1 << (sizeof(size_t) * 4)) + 1, (size_t)1 << (sizeof(size_t) * 4)));
    assert_int_equal(mdx_alloc_used(), base);

    /* a product just below the overflow line passes the check and fails in the allocator */
    assert_null(mdx_calloc(SIZE_MAX / 4, 2));
    assert_int_equal(mdx_alloc_used(), base);
}

static void realloc_moves_contents_and_keeps_accounting(void **state)
{
    (void)state;
    size_t base = mdx_alloc_used();
    unsigned char *p = mdx_realloc(NULL, 16); /* realloc(NULL) is malloc */
    assert_non_null(p);
    assert_int_equal(mdx_alloc_used(), base + mdx_alloc_size(p));
    for (int i = 0; i < 16; i++)
        p[i] = (unsigned char)i;

    unsigned char *q = mdx_realloc(p, 100000);
    assert_non_null(q);
    for (int i = 0; i < 16; i++)
        assert_int_equal(q[i], i);
    assert_true(mdx_alloc_size(q) >= 100000);
    assert_int_equal(mdx_alloc_used(), base + mdx_alloc_size(q));

    q = mdx_realloc(q, 8);
    assert_non_null(q);
    for (int i = 0; i < 8; i++)
        assert_int_equal(q[i], i);
    assert_int_equal(mdx_alloc_used(), base + mdx_alloc_size(q));
    mdx_free(q);
    assert_int_equal(mdx_alloc_used(), base);
}

static void real_allocation_failure_returns_null_and_realloc_keeps_the_block(void **state)
{
    (void)state;
    size_t base = mdx_alloc_used();
    assert_null(mdx_malloc(HUGE_SIZE));
    assert_int_equal(mdx_alloc_used(), base);

    unsigned char *p = mdx_malloc(32);
    assert_non_null(p);
    memset(p, 0x5a, 32);
    size_t held = mdx_alloc_used();
    assert_null(mdx_realloc(p, HUGE_SIZE));
    assert_int_equal(mdx_alloc_used(), held);
    for (int i = 0; i < 32; i++)
        assert_int_equal(p[i], 0x5a);
    mdx_free(p); /* still ours: ASan would report a double free otherwise */
    assert_int_equal(mdx_alloc_used(), base);
}

static void allocator_bytes_track_used_under_libc(void **state)
{
    (void)state;
#if MDX_USE_JEMALLOC
    void *p = mdx_malloc(1 << 20);
    assert_non_null(p);
    assert_true(mdx_alloc_allocator_bytes() >= mdx_alloc_size(p));
    mdx_free(p);
#else
    void *p = mdx_malloc(1000);
    assert_non_null(p);
    assert_int_equal(mdx_alloc_allocator_bytes(), mdx_alloc_used());
    mdx_free(p);
    assert_int_equal(mdx_alloc_allocator_bytes(), mdx_alloc_used());
#endif
}

#if MDX_FAULT_INJECTION

static int teardown(void **state)
{
    (void)state;
    mdx_alloc_fail_reset();
    return 0;
}

static void fail_after_n_fails_the_nth_allocation_and_every_later_one(void **state)
{
    (void)state;
    for (long n = 0; n < 6; n++) {
        size_t base = mdx_alloc_used();
        void *got[10];
        mdx_alloc_fail_after(n);
        assert_false(mdx_alloc_fail_triggered());
        for (long i = 0; i < 10; i++) {
            got[i] = mdx_malloc(24);
            if (i < n) {
                assert_non_null(got[i]);
                assert_false(mdx_alloc_fail_triggered());
            } else {
                assert_null(got[i]);
                assert_true(mdx_alloc_fail_triggered());
            }
        }
        mdx_alloc_fail_reset();
        assert_false(mdx_alloc_fail_triggered());
        for (long i = 0; i < n; i++)
            mdx_free(got[i]);
        assert_int_equal(mdx_alloc_used(), base);
    }
}

static void calloc_and_realloc_count_toward_the_injected_failure(void **state)
{
    (void)state;
    size_t base = mdx_alloc_used();
    mdx_alloc_fail_after(2);
    void *a = mdx_malloc(10);   /* 0 */
    void *b = mdx_calloc(3, 4); /* 1 */
    assert_non_null(a);
    assert_non_null(b);
    mdx_free(a); /* frees do not count */
    memset(b, 0x11, 12);
    size_t held = mdx_alloc_used();
    assert_null(mdx_realloc(b, 4096)); /* 2: fails, b untouched and still ours */
    assert_true(mdx_alloc_fail_triggered());
    assert_int_equal(mdx_alloc_used(), held);
    for (int i = 0; i < 12; i++)
        assert_int_equal(((unsigned char *)b)[i], 0x11);
    assert_null(mdx_calloc(1, 1));     /* and everything after */
    assert_null(mdx_realloc(NULL, 1)); /* realloc(NULL) is malloc */
    assert_null(mdx_malloc(1));
    assert_int_equal(mdx_alloc_used(), held);

    mdx_alloc_fail_reset();
    void *c = mdx_realloc(b, 4096);
    assert_non_null(c);
    for (int i = 0; i < 12; i++)
        assert_int_equal(((unsigned char *)c)[i], 0x11);
    mdx_free(c);
    assert_int_equal(mdx_alloc_used(), base);
}

static void calloc_overflow_is_refused_before_fault_injection(void **state)
{
    (void)state;
    /* an impossible size is not an allocation that injection could fail */
    mdx_alloc_fail_after(0);
    assert_null(mdx_calloc(SIZE_MAX / 2 + 1, 2));
    assert_false(mdx_alloc_fail_triggered());
    mdx_alloc_fail_after(1);
    assert_null(mdx_calloc(2, SIZE_MAX / 2 + 1));
    void *p = mdx_malloc(1); /* still the 0th allocation: succeeds */
    assert_non_null(p);
    assert_null(mdx_malloc(1));
    mdx_alloc_fail_reset();
    mdx_free(p);
}

static void realloc_null_counts_as_one_allocation(void **state)
{
    (void)state;
    mdx_alloc_fail_after(1);
    uint64_t calls = mdx_alloc_count();
    void *p = mdx_realloc(NULL, 8); /* 0: succeeds */
    assert_non_null(p);
    assert_true(mdx_alloc_count() == calls + 1);
    assert_false(mdx_alloc_fail_triggered());
    void *q = mdx_malloc(8); /* 1: fails */
    assert_null(q);
    assert_true(mdx_alloc_fail_triggered());
    mdx_alloc_fail_reset();
    mdx_free(p);
}

static void reset_and_negative_n_disable_injection(void **state)
{
    (void)state;
    mdx_alloc_fail_after(0);
    assert_null(mdx_malloc(1));
    assert_true(mdx_alloc_fail_triggered());
    mdx_alloc_fail_reset();
    assert_false(mdx_alloc_fail_triggered());
    void *p = mdx_malloc(1);
    assert_non_null(p);
    mdx_free(p);

    mdx_alloc_fail_after(0);
    assert_null(mdx_calloc(1, 1));
    mdx_alloc_fail_after(-1); /* also disables, and clears the triggered flag */
    assert_false(mdx_alloc_fail_triggered());
    for (int i = 0; i < 100; i++) {
        p = mdx_malloc(1);
        assert_non_null(p);
        mdx_free(p);
    }
    assert_false(mdx_alloc_fail_triggered());

    /* re-arming starts a fresh countdown */
    mdx_alloc_fail_after(1);
    p = mdx_malloc(1);
    assert_non_null(p);
    mdx_alloc_fail_after(1);
    void *q = mdx_malloc(1);
    assert_non_null(q);
    assert_null(mdx_malloc(1));
    mdx_alloc_fail_reset();
    mdx_free(p);
    mdx_free(q);
}

static void triggered_stays_false_when_no_allocation_reaches_n(void **state)
{
    (void)state;
    mdx_alloc_fail_after(3);
    void *p = mdx_malloc(1), *q = mdx_malloc(1), *r = mdx_malloc(1);
    assert_non_null(p);
    assert_non_null(q);
    assert_non_null(r);
    assert_false(mdx_alloc_fail_triggered());
    mdx_alloc_fail_reset();
    mdx_free(p);
    mdx_free(q);
    mdx_free(r);
}

#else

static void fault_injection_is_a_no_op_when_compiled_out(void **state)
{
    (void)state;
    mdx_alloc_fail_after(0);
    void *p = mdx_malloc(1);
    assert_non_null(p);
    assert_false(mdx_alloc_fail_triggered());
    mdx_free(p);
    mdx_alloc_fail_reset();
}

#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(malloc_accounting_grows_by_usable_size_and_returns_to_baseline),
        cmocka_unit_test(malloc_zero_returns_a_counted_freeable_block),
        cmocka_unit_test(free_and_size_accept_null),
        cmocka_unit_test(calloc_zeroes_and_is_counted),
        cmocka_unit_test(calloc_overflow_returns_null_without_allocating),
        cmocka_unit_test(realloc_moves_contents_and_keeps_accounting),
        cmocka_unit_test(real_allocation_failure_returns_null_and_realloc_keeps_the_block),
        cmocka_unit_test(allocator_bytes_track_used_under_libc),
#if MDX_FAULT_INJECTION
        cmocka_unit_test_teardown(fail_after_n_fails_the_nth_allocation_and_every_later_one,
                                  teardown),
        cmocka_unit_test_teardown(calloc_and_realloc_count_toward_the_injected_failure, teardown),
        cmocka_unit_test_teardown(calloc_overflow_is_refused_before_fault_injection, teardown),
        cmocka_unit_test_teardown(realloc_null_counts_as_one_allocation, teardown),
        cmocka_unit_test_teardown(reset_and_negative_n_disable_injection, teardown),
        cmocka_unit_test_teardown(triggered_stays_false_when_no_allocation_reaches_n, teardown),
#else
        cmocka_unit_test(fault_injection_is_a_no_op_when_compiled_out),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
