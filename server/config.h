/*
 * memdexd configuration: one table of keys, read from an optional config file (`key value` or
 * `key = value` lines, # comments) and then from command-line flags (`--key value`,
 * `--key=value`; dashes and underscores are interchangeable), so flags override the file.
 * Every key has a default; `memdexd --help` prints the table. Parsing never exits by itself:
 * it reports a one-line message and lets main() choose the exit status.
 */
#ifndef MDX_SERVER_CONFIG_H
#define MDX_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define MDX_CFG_PATH_MAX   4096
#define MDX_SERVER_VERSION "0.1.0"
#define MDX_CFG_MAX_RULES  16

/* One automatic snapshot rule: snapshot when at least `changes` writes happened and at least
 * `seconds` passed since the last successful snapshot began (Redis' "save <s> <n>"). */
typedef struct {
    uint64_t seconds;
    uint64_t changes;
} mdx_snap_rule_t;

/* One ttl_class NAME=MS line: defines or changes a named TTL class of the store. */
#define MDX_CFG_MAX_TTL_CLASSES 16 /* memdex/store.h MDX_TTL_CLASSES_MAX */
typedef struct {
    char name[65];
    uint64_t ttl_ms;
} mdx_cfg_ttl_class_t;

typedef enum { MDX_LOG_DEBUG = 0, MDX_LOG_INFO, MDX_LOG_WARN, MDX_LOG_ERROR } mdx_log_level_t;

typedef struct {
    char listen[256]; /* "host:port" as given */
    char listen_host[256];
    int listen_port;     /* 0: the kernel picks one */
    char unix_path[108]; /* empty: no Unix socket */
    char data_dir[MDX_CFG_PATH_MAX];
    uint64_t max_clients;         /* connections served at once; more are refused */
    uint64_t max_frame;           /* bytes of frame payload */
    uint64_t max_body;            /* bytes of a record body */
    uint64_t max_key;             /* bytes of a key */
    uint64_t max_limit;           /* records per find/scan page */
    uint64_t output_pause;        /* unsent output above which a connection stops being read */
    uint64_t output_limit;        /* unsent output above which a connection is closed */
    uint64_t expire_interval_ms;  /* period of the expiry step */
    uint64_t expire_budget_us;    /* time budget of one expiry step */
    uint64_t shutdown_timeout_ms; /* graceful shutdown gives up on slow readers after this */
    uint64_t reclaim_slice_us;    /* time per loop iteration spent reclaiming a backlog */
    uint64_t maxmemory;           /* bytes of collection memory; 0: no limit */
    int maxmemory_policy;         /* mdx_evict_policy_t, never MDX_EVICT_DEFAULT */
    mdx_cfg_ttl_class_t ttl_classes[MDX_CFG_MAX_TTL_CLASSES];
    size_t nttl_classes;             /* in the order first given; a repeated name changes its TTL */
    int log_level;                   /* mdx_log_level_t */
    char log_file[MDX_CFG_PATH_MAX]; /* empty: stderr */
    mdx_snap_rule_t snapshot_rules[MDX_CFG_MAX_RULES];
    size_t snapshot_nrules;                /* 0: automatic snapshots off */
    uint64_t snapshot_keep;                /* complete snapshots kept in data_dir */
    uint64_t snapshot_step_records;        /* records serialized per loop iteration, at most */
    uint64_t snapshot_step_us;             /* time spent serializing per loop iteration, at most */
    int snapshot_fallback;                 /* load an older snapshot when the newest is bad */
    int snapshot_on_shutdown;              /* blocking snapshot on SIGINT/SIGTERM */
    char check_snapshot[MDX_CFG_PATH_MAX]; /* --check-snapshot FILE: check, print, exit */
} mdx_config_t;

typedef enum {
    MDX_CFG_RUN = 0,  /* configuration complete: start the server */
    MDX_CFG_EXIT_OK,  /* --help or --version was printed: exit 0 */
    MDX_CFG_EXIT_ERR, /* errbuf holds a one-line message: exit non-zero */
    MDX_CFG_CHECK,    /* --check-snapshot FILE was given: check_snapshot names the file */
} mdx_cfg_result_t;

/** Fills cfg with defaults, then the config file named by --config (if any), then the flags.
 *  Returns MDX_CFG_RUN, MDX_CFG_EXIT_OK (help/version printed to stdout), MDX_CFG_CHECK
 *  (--check-snapshot FILE) or MDX_CFG_EXIT_ERR with a one-line message (no trailing newline)
 *  in errbuf. */
int mdx_config_load(mdx_config_t *cfg, int argc, char **argv, char *errbuf, size_t errlen);

/** Prints the usage text with every key and its default to stdout. */
void mdx_config_usage(void);

/** Name of a log level ("info"). */
const char *mdx_log_level_name(int level);

#endif
