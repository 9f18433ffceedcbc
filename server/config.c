/*
 * Configuration: one table drives defaults, the config file, the flags and --help, so a key
 * cannot exist in one of them and be missing from another. Values are parsed strictly (a size
 * is digits with an optional k/m/g suffix, binary multiples; anything else is refused with a
 * message naming the key and the value) because a typo in a limit should stop the server, not
 * run it with a surprising number.
 */
#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memdex/store.h"

typedef enum {
    T_ADDR,
    T_PATH,
    T_SOCK,
    T_SIZE,
    T_UINT,
    T_LEVEL,
    T_BOOL,
    T_RULES,
    T_POLICY,
    T_TTLCLASS
} ktype_t;

typedef struct {
    const char *name;
    ktype_t type;
    const char *def;
    size_t off;
    uint64_t min, max; /* T_SIZE, T_UINT */
    const char *help;
} cfg_key;

#define OFF(f) offsetof(mdx_config_t, f)

static const cfg_key keys[] = {
    {"listen", T_ADDR, "127.0.0.1:7711", OFF(listen), 0, 0,
     "TCP address host:port (port 0 picks a free port)"},
    {"unix", T_SOCK, "", OFF(unix_path), 0, 0, "Unix socket path (empty: off)"},
    {"data_dir", T_PATH, "./data", OFF(data_dir), 0, 0,
     "data directory, created if missing (snapshots)"},
    {"max_clients", T_UINT, "10000", OFF(max_clients), 1, 1000000,
     "connections served at once; more get a MAXCLIENTS error"},
    {"max_frame", T_SIZE, "33554432", OFF(max_frame), 64, UINT32_MAX,
     "largest frame payload in bytes; a larger frame closes the connection"},
    {"max_body", T_SIZE, "16777216", OFF(max_body), 1, UINT32_MAX, "largest record body in bytes"},
    {"max_key", T_SIZE, "1024", OFF(max_key), 1, MDX_KEY_LIMIT, "largest key in bytes"},
    {"max_limit", T_UINT, "10000", OFF(max_limit), 1, 1000000, "most records per find/scan page"},
    {"output_pause", T_SIZE, "1048576", OFF(output_pause), 1, UINT64_MAX / 4,
     "stop reading a client whose unsent output exceeds this many bytes"},
    {"output_limit", T_SIZE, "67108864", OFF(output_limit), 1, UINT64_MAX / 4,
     "disconnect a client whose unsent output exceeds this many bytes"},
    {"expire_interval_ms", T_UINT, "10", OFF(expire_interval_ms), 1, 3600000,
     "period of the TTL expiry step"},
    {"expire_budget_us", T_UINT, "1000", OFF(expire_budget_us), 1, 10000000,
     "time budget of one expiry step"},
    {"reclaim_slice_us", T_UINT, "250", OFF(reclaim_slice_us), 10, 1000000,
     "time per loop iteration spent freeing a backlog of expired or invalidated records"},
    {"maxmemory", T_SIZE, "0", OFF(maxmemory), 0, UINT64_MAX / 4,
     "bytes of records and indexes before the policy evicts (0: no limit)"},
    {"maxmemory_policy", T_POLICY, "s3fifo", OFF(maxmemory_policy), 0, 0,
     "noeviction, s3fifo, sieve or lru: what makes room at maxmemory"},
    {"ttl_class", T_TTLCLASS, "", 0, 0, 0,
     "NAME=MS defines or changes a TTL class; repeatable (built in: short=60000, "
     "medium=600000, long=3600000, very_long=86400000)"},
    {"shutdown_timeout_ms", T_UINT, "5000", OFF(shutdown_timeout_ms), 1, 3600000,
     "on SIGINT/SIGTERM, wait this long for clients to take their replies"},
    {"log_level", T_LEVEL, "info", OFF(log_level), 0, 0, "debug, info, warn or error"},
    {"log_file", T_PATH, "", OFF(log_file), 0, 0, "log file (empty: stderr)"},
    {"snapshot_rules", T_RULES, "3600:1,300:100,60:10000", 0, 0, 0,
     "automatic snapshots: SECONDS:CHANGES,... (snapshot when both have passed) or off"},
    {"snapshot_keep", T_UINT, "2", OFF(snapshot_keep), 1, 1000,
     "complete snapshots kept in data_dir"},
    {"snapshot_step_records", T_UINT, "2000", OFF(snapshot_step_records), 1, 100000000,
     "records a snapshot serializes per loop iteration, at most"},
    {"snapshot_step_us", T_UINT, "50", OFF(snapshot_step_us), 10, 1000000,
     "microseconds a snapshot serializes per loop iteration, at most"},
    {"snapshot_fallback", T_BOOL, "no", OFF(snapshot_fallback), 0, 0,
     "at start, load an older snapshot when the newest is corrupt (yes/no)"},
    {"snapshot_on_shutdown", T_BOOL, "yes", OFF(snapshot_on_shutdown), 0, 0,
     "take a snapshot on SIGINT/SIGTERM before exiting (yes/no)"},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *mdx_log_level_name(int level)
{
    return level >= 0 && level <= MDX_LOG_ERROR ? level_names[level] : "?";
}

static void errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* Key lookup that treats '-' and '_' alike, over exactly len bytes. */
static const cfg_key *key_find(const char *name, size_t len)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const char *k = keys[i].name;
        if (strlen(k) != len)
            continue;
        size_t j = 0;
        for (; j < len; j++) {
            char c = name[j] == '-' ? '_' : name[j];
            if (c != k[j])
                break;
        }
        if (j == len)
            return &keys[i];
    }
    return NULL;
}

static int parse_u64(const char *s, int allow_suffix, uint64_t *out)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (*s && allow_suffix) {
        unsigned shift;
        switch (tolower((unsigned char)*s)) {
        case 'k':
            shift = 10;
            break;
        case 'm':
            shift = 20;
            break;
        case 'g':
            shift = 30;
            break;
        default:
            return -1;
        }
        s++;
        if (tolower((unsigned char)*s) == 'i')
            s++;
        if (tolower((unsigned char)*s) == 'b')
            s++;
        if (v > (UINT64_MAX >> shift))
            return -1;
        v <<= shift;
    }
    if (*s)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"yes", "on", "true", "1"}, *const no[] = {"no", "off",
                                                                                "false", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* "off", or SECONDS:CHANGES pairs separated by commas (spaces around items allowed). */
static int parse_rules(mdx_config_t *cfg, const char *v, char *why, size_t whylen)
{
    mdx_snap_rule_t rules[MDX_CFG_MAX_RULES];
    size_t n = 0;
    if (strcmp(v, "off") == 0) {
        cfg->snapshot_nrules = 0;
        return 0;
    }
    const char *p = v;
    for (;;) {
        char item[64];
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, ",");
        while (len && p[len - 1] == ' ')
            len--;
        if (len == 0 || len >= sizeof(item)) {
            snprintf(why, whylen, "expected SECONDS:CHANGES[,SECONDS:CHANGES...] or off");
            return -1;
        }
        if (n == MDX_CFG_MAX_RULES) {
            snprintf(why, whylen, "at most %d rules", MDX_CFG_MAX_RULES);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        char *colon = strchr(item, ':');
        int ok = colon != NULL;
        if (ok) {
            *colon = '\0';
            ok = parse_u64(item, 0, &rules[n].seconds) == 0 &&
                 parse_u64(colon + 1, 0, &rules[n].changes) == 0 && rules[n].seconds > 0 &&
                 rules[n].changes > 0;
        }
        if (!ok) {
            snprintf(why, whylen, "each rule is SECONDS:CHANGES, both at least 1");
            return -1;
        }
        n++;
        p += strcspn(p, ",");
        if (!*p)
            break;
        p++;
    }
    memcpy(cfg->snapshot_rules, rules, n * sizeof(rules[0]));
    cfg->snapshot_nrules = n;
    return 0;
}

static int parse_listen(mdx_config_t *cfg, const char *v, char *why, size_t whylen)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v) {
        snprintf(why, whylen, "expected host:port");
        return -1;
    }
    size_t hlen = (size_t)(colon - v);
    const char *h = v;
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(cfg->listen_host)) {
        snprintf(why, whylen, "expected host:port");
        return -1;
    }
    uint64_t port;
    if (parse_u64(colon + 1, 0, &port) || port > 65535) {
        snprintf(why, whylen, "port must be 0..65535");
        return -1;
    }
    memcpy(cfg->listen_host, h, hlen);
    cfg->listen_host[hlen] = '\0';
    cfg->listen_port = (int)port;
    return 0;
}

/* NAME=MS: NAME as the engine wants it (1..64 of [A-Za-z0-9_.-], not "none"), MS at least 1
 * and at most about 31,700 years, like a ttl_ms on the wire. A repeated NAME changes it. */
static int parse_ttl_class(mdx_config_t *cfg, const char *v, char *why, size_t whylen)
{
    const char *eq = strchr(v, '=');
    size_t n = eq ? (size_t)(eq - v) : 0;
    uint64_t ms;
    if (!eq || n == 0 || n > 64 || parse_u64(eq + 1, 0, &ms) || ms == 0 ||
        ms > UINT64_C(1000000000000000)) {
        snprintf(why, whylen, "expected NAME=MS with MS between 1 and 1000000000000000");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)v[i]) && v[i] != '_' && v[i] != '.' && v[i] != '-') {
            snprintf(why, whylen, "a class name is 1 to 64 of A-Z a-z 0-9 _ . -");
            return -1;
        }
    if (n == 4 && memcmp(v, "none", 4) == 0) {
        snprintf(why, whylen, "'none' means no expiry and cannot be redefined");
        return -1;
    }
    size_t i = 0;
    while (i < cfg->nttl_classes &&
           (strlen(cfg->ttl_classes[i].name) != n || memcmp(cfg->ttl_classes[i].name, v, n)))
        i++;
    if (i == MDX_CFG_MAX_TTL_CLASSES) {
        snprintf(why, whylen, "at most %d classes", MDX_CFG_MAX_TTL_CLASSES);
        return -1;
    }
    if (i == cfg->nttl_classes) {
        memcpy(cfg->ttl_classes[i].name, v, n);
        cfg->ttl_classes[i].name[n] = '\0';
        cfg->nttl_classes++;
    }
    cfg->ttl_classes[i].ttl_ms = ms;
    return 0;
}

/* Sets one key. `where` prefixes messages ("--max-clients" or "memdexd.conf:3"). */
static int set_key(mdx_config_t *cfg, const cfg_key *k, const char *v, const char *where,
                   char *errbuf, size_t errlen)
{
    char why[128] = "";
    char *field = (char *)cfg + k->off;
    switch (k->type) {
    case T_ADDR:
        if (strlen(v) >= sizeof(cfg->listen) || parse_listen(cfg, v, why, sizeof(why)))
            goto bad;
        strcpy(field, v);
        return 0;
    case T_SOCK:
        if (strlen(v) >= sizeof(cfg->unix_path)) {
            snprintf(why, sizeof(why), "longer than %zu bytes", sizeof(cfg->unix_path) - 1);
            goto bad;
        }
        strcpy(field, v);
        return 0;
    case T_PATH:
        if (strlen(v) >= MDX_CFG_PATH_MAX) {
            snprintf(why, sizeof(why), "path too long");
            goto bad;
        }
        strcpy(field, v);
        return 0;
    case T_SIZE:
    case T_UINT: {
        uint64_t u;
        if (parse_u64(v, k->type == T_SIZE, &u)) {
            snprintf(why, sizeof(why), "expected %s",
                     k->type == T_SIZE ? "a size in bytes (suffix k, m or g allowed)"
                                       : "a non-negative integer");
            goto bad;
        }
        if (u < k->min || u > k->max) {
            snprintf(why, sizeof(why), "must be between %llu and %llu", (unsigned long long)k->min,
                     (unsigned long long)k->max);
            goto bad;
        }
        memcpy(field, &u, sizeof(u));
        return 0;
    }
    case T_LEVEL:
        for (int i = 0; i <= MDX_LOG_ERROR; i++) {
            if (strcmp(v, level_names[i]) == 0) {
                cfg->log_level = i;
                return 0;
            }
        }
        snprintf(why, sizeof(why), "expected debug, info, warn or error");
        goto bad;
    case T_BOOL:
        if (parse_bool(v, (int *)(void *)field)) {
            snprintf(why, sizeof(why), "expected yes or no");
            goto bad;
        }
        return 0;
    case T_RULES:
        if (parse_rules(cfg, v, why, sizeof(why)))
            goto bad;
        return 0;
    case T_POLICY: {
        mdx_evict_policy_t p;
        if (mdx_evict_policy_parse(v, strlen(v), 0, &p)) {
            snprintf(why, sizeof(why), "expected noeviction, s3fifo, sieve or lru");
            goto bad;
        }
        memcpy(field, &(int){(int)p}, sizeof(int));
        return 0;
    }
    case T_TTLCLASS:
        if (parse_ttl_class(cfg, v, why, sizeof(why)))
            goto bad;
        return 0;
    }
bad:
    errf(errbuf, errlen, "%s: bad value for %s: '%s' (%s)", where, k->name, v, why);
    return -1;
}

static int load_file(mdx_config_t *cfg, const char *path, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        errf(errbuf, errlen, "cannot read config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[8192];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char where[MDX_CFG_PATH_MAX + 32];
        snprintf(where, sizeof(where), "%s:%d", path, lineno);
        size_t n = strlen(line);
        if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
            errf(errbuf, errlen, "%s: line too long", where);
            rc = -1;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        char *e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
            *--e = '\0';
        if (!*s)
            continue;
        char *kend = s;
        while (*kend && !isspace((unsigned char)*kend) && *kend != '=')
            kend++;
        const cfg_key *k = key_find(s, (size_t)(kend - s));
        if (!k) {
            errf(errbuf, errlen, "%s: unknown key '%.*s'", where, (int)(kend - s), s);
            rc = -1;
            break;
        }
        char *v = kend;
        while (isspace((unsigned char)*v))
            v++;
        if (*v == '=') {
            v++;
            while (isspace((unsigned char)*v))
                v++;
        }
        /* An empty value is allowed only where it means "off" (paths). */
        if (!*v && k->type != T_PATH && k->type != T_SOCK) {
            errf(errbuf, errlen, "%s: %s needs a value", where, k->name);
            rc = -1;
            break;
        }
        if (set_key(cfg, k, v, where, errbuf, errlen)) {
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

static void set_defaults(mdx_config_t *cfg)
{
    char scratch[256];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].type != T_TTLCLASS) /* no classes beyond the engine's built-in ones */
            (void)set_key(cfg, &keys[i], keys[i].def, "default", scratch, sizeof(scratch));
}

void mdx_config_usage(void)
{
    printf("usage: memdexd [--config FILE] [--KEY VALUE]...\n"
           "\n"
           "memdex server: an in-memory indexed data store.\n"
           "Every key may be given as a flag (--max-clients 100 or --max_clients=100) or as a\n"
           "line 'key value' / 'key = value' in the config file (# starts a comment).\n"
           "Flags override the file. Sizes accept a k, m or g suffix (binary multiples).\n"
           "ttl_class may be given several times.\n"
           "\n"
           "  --config FILE            read keys from FILE first\n"
           "  --check-snapshot FILE    verify a snapshot file, print what it holds, and exit\n"
           "                           (0: valid, 1: corrupt or truncated, 2: cannot read)\n"
           "  --help                   print this text\n"
           "  --version                print the version\n"
           "\n"
           "keys (default in brackets):\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_key *k = &keys[i];
        printf("  %-20s %s [%s]\n", k->name, k->help,
               *k->def                 ? k->def
               : k->type == T_TTLCLASS ? "built-in only"
                                       : "off");
    }
}

int mdx_config_load(mdx_config_t *cfg, int argc, char **argv, char *errbuf, size_t errlen)
{
    set_defaults(cfg);
    errbuf[0] = '\0';
    /* First pass: help, version and the config file, so flags can override the file whatever
     * their position. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            mdx_config_usage();
            return MDX_CFG_EXIT_OK;
        }
        if (strcmp(a, "--version") == 0) {
            printf("memdexd %s\n", MDX_SERVER_VERSION);
            return MDX_CFG_EXIT_OK;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *file = NULL;
        if (strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                errf(errbuf, errlen, "--config needs a file name");
                return MDX_CFG_EXIT_ERR;
            }
            file = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            file = a + 9;
        }
        if (file && load_file(cfg, file, errbuf, errlen))
            return MDX_CFG_EXIT_ERR;
    }
    int check = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            errf(errbuf, errlen, "unexpected argument '%s' (see memdexd --help)", a);
            return MDX_CFG_EXIT_ERR;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen == 6 && strncmp(name, "config", 6) == 0) {
            if (!eq)
                i++;
            continue;
        }
        if (nlen == 14 && (strncmp(name, "check-snapshot", 14) == 0 ||
                           strncmp(name, "check_snapshot", 14) == 0)) {
            const char *f = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
            if (!f || !*f) {
                errf(errbuf, errlen, "--check-snapshot needs a file name");
                return MDX_CFG_EXIT_ERR;
            }
            if (strlen(f) >= sizeof(cfg->check_snapshot)) {
                errf(errbuf, errlen, "--check-snapshot: path too long");
                return MDX_CFG_EXIT_ERR;
            }
            strcpy(cfg->check_snapshot, f);
            check = 1;
            continue;
        }
        const cfg_key *k = key_find(name, nlen);
        if (!k) {
            errf(errbuf, errlen, "unknown option '--%.*s' (see memdexd --help)", (int)nlen, name);
            return MDX_CFG_EXIT_ERR;
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (k->type == T_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
            v = "yes"; /* a bare boolean flag: --snapshot-fallback */
        } else {
            if (i + 1 >= argc) {
                errf(errbuf, errlen, "option --%.*s needs a value", (int)nlen, name);
                return MDX_CFG_EXIT_ERR;
            }
            v = argv[++i];
        }
        char where[128];
        snprintf(where, sizeof(where), "--%.*s", (int)(nlen > 100 ? 100 : nlen), name);
        if (set_key(cfg, k, v, where, errbuf, errlen))
            return MDX_CFG_EXIT_ERR;
    }
    if (cfg->output_limit < cfg->output_pause) {
        errf(errbuf, errlen, "output_limit (%llu) must be at least output_pause (%llu)",
             (unsigned long long)cfg->output_limit, (unsigned long long)cfg->output_pause);
        return MDX_CFG_EXIT_ERR;
    }
    return check ? MDX_CFG_CHECK : MDX_CFG_RUN;
}
