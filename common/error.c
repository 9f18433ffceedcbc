/* Error names and messages, generated from the single list in include/memdex/error.h. */
#include "memdex/error.h"

#include <string.h>

const char *mdx_err_name(int code)
{
    switch (code) {
    case 0:
        return "OK";
#define XX(num, name, msg)                                                                         \
    case num:                                                                                      \
        return #name;
        MDX_ERRNO_MAP(XX)
#undef XX
    default:
        return "UNKNOWN";
    }
}

const char *mdx_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define XX(num, name, msg)                                                                         \
    case num:                                                                                      \
        return msg;
        MDX_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

int mdx_err_from_name(const char *name, unsigned long len)
{
#define XX(num, nm, msg)                                                                           \
    if (len == sizeof(#nm) - 1 && memcmp(name, #nm, len) == 0)                                     \
        return num;
    MDX_ERRNO_MAP(XX)
#undef XX
    return 0;
}
