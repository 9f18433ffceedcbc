/*
 * Log lines are formatted into one buffer and written with a single fputs, so lines from a
 * crash handler or a child never interleave mid-line. Timestamps are UTC, ISO-8601 with
 * milliseconds. The listening line at start-up is part of the interface: integration tests
 * read "listening on HOST:PORT" from stderr to find the port.
 */
#include "server/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int mdx_log_min = MDX_LOG_INFO;
static FILE *log_fp;

int mdx_log_open(int level, const char *path)
{
    mdx_log_min = level;
    if (!path || !*path)
        return 0;
    FILE *f = fopen(path, "a");
    if (!f)
        return -1;
    setvbuf(f, NULL, _IOLBF, 0);
    log_fp = f;
    return 0;
}

void mdx_log_close(void)
{
    if (log_fp)
        fclose(log_fp);
    log_fp = NULL;
}

void mdx_log_write(int level, const char *fmt, ...)
{
    int saved = errno;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03dZ %s ", (int)(ts.tv_nsec / 1000000),
                          mdx_log_level_name(level));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += (size_t)m;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    line[n] = '\0';
    fputs(line, log_fp ? log_fp : stderr);
    errno = saved;
}
