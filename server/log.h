/*
 * Logging for memdexd: one line per event, "2024-05-01T12:00:00.123Z info message", to stderr
 * or to a file (opened in append mode, line-buffered). Messages below the configured level
 * cost one comparison: the macro checks the level before any formatting happens, which keeps
 * debug logging off the hot path.
 */
#ifndef MDX_SERVER_LOG_H
#define MDX_SERVER_LOG_H

#include "server/config.h"

extern int mdx_log_min; /* lowest level written */

/** Sets the level and the destination (path NULL or empty: stderr). Returns 0, or -1 with
 *  errno set when the file cannot be opened (logging stays on stderr). */
int mdx_log_open(int level, const char *path);
void mdx_log_close(void);

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void mdx_log_write(int level, const char *fmt, ...);

#define mdx_log(level, ...)                                                                        \
    do {                                                                                           \
        if ((level) >= mdx_log_min)                                                                \
            mdx_log_write((level), __VA_ARGS__);                                                   \
    } while (0)

#define mdx_log_debug(...) mdx_log(MDX_LOG_DEBUG, __VA_ARGS__)
#define mdx_log_info(...)  mdx_log(MDX_LOG_INFO, __VA_ARGS__)
#define mdx_log_warn(...)  mdx_log(MDX_LOG_WARN, __VA_ARGS__)
#define mdx_log_error(...) mdx_log(MDX_LOG_ERROR, __VA_ARGS__)

#endif
