/*
 * Assertions. MDX_ASSERT is checked in debug builds only but always compiled, so it stays
 * type-correct; MDX_VERIFY is always on and guards invariants whose failure would corrupt data.
 * Never use either on bytes from the network or disk: those get error returns.
 */
#ifndef MDX_COMMON_ASSERT_H
#define MDX_COMMON_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define MDX_VERIFY(e)                                                                              \
    do {                                                                                           \
        if (!(e)) {                                                                                \
            fprintf(stderr, "memdex: %s:%d: invariant failed: %s\n", __FILE__, __LINE__, #e);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#if MDX_DEBUG
#define MDX_ASSERT(e) MDX_VERIFY(e)
#else
#define MDX_ASSERT(e) ((void)sizeof(!(e)))
#endif

#define MDX_LIKELY(x)   __builtin_expect(!!(x), 1)
#define MDX_UNLIKELY(x) __builtin_expect(!!(x), 0)

#endif
