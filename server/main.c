/*
 * memdexd: start-up, listeners, timers, signals and shutdown.
 *
 * Start-up either succeeds completely or exits non-zero with one line on stderr that names the
 * problem (bad flag, unusable data_dir, port in use, a snapshot that cannot be loaded). The
 * newest snapshot in data_dir is loaded once the listeners are bound and before the loop runs.
 * Once the loop runs, nothing exits the process but a signal: SIGINT or SIGTERM stop
 * accepting, answer what every client had already sent, flush, close, take a final snapshot
 * once the last handle is closed, and return 0 from main (1 when that snapshot failed). A
 * second signal, or shutdown_timeout_ms, closes whatever client is left without waiting; a
 * signal during the final snapshot kills the process (the previous snapshot stays).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/jemalloc_conf.h"
#include "server/log.h"
#include "server/server.h"

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("memdexd: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* 1000+ clients need 1000+ descriptors; the soft limit is often 1024. */
static void raise_nofile(const mdx_config_t *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        struct rlimit n = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &n) == 0)
            rl.rlim_cur = want;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < cfg->max_clients + 32)
        mdx_log_warn("open file limit %llu is below max_clients (%llu) + 32; clients beyond it "
                     "will be dropped",
                     (unsigned long long)rl.rlim_cur, (unsigned long long)cfg->max_clients);
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char buf[MDX_CFG_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) && errno != EEXIST)
            return -1;
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st))
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
    mdx_server_t *srv = listener->data;
    if (status < 0) {
        mdx_log_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    mdx_conn_accept(srv, listener);
}

static void listen_tcp(mdx_server_t *srv, const mdx_config_t *cfg)
{
    char portstr[8];
    uv_getaddrinfo_t gai;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", cfg->listen_port);
    int rc = uv_getaddrinfo(srv->loop, &gai, NULL, cfg->listen_host, portstr, &hints);
    if (rc)
        die("cannot listen on %s: cannot resolve '%s': %s", cfg->listen, cfg->listen_host,
            uv_strerror(rc));
    rc = uv_tcp_init(srv->loop, &srv->tcp);
    if (rc == 0)
        rc = uv_tcp_bind(&srv->tcp, gai.addrinfo->ai_addr, 0);
    uv_freeaddrinfo(gai.addrinfo);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->tcp, 511, on_connection);
    if (rc)
        die("cannot listen on %s: %s", cfg->listen, uv_strerror(rc));
    srv->tcp.data = srv;
    srv->tcp_on = 1;
}

/* "listening on HOST:PORT" with the port the kernel chose: the line tests look for, written
 * once every listener is up. */
static void log_listening(mdx_server_t *srv)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    if (uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
        mdx_log_info("listening on [%s]:%d", ip, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
        mdx_log_info("listening on %s:%d", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
    if (srv->pipe_on)
        mdx_log_info("listening on unix:%s", srv->cfg->unix_path);
}

static void listen_unix(mdx_server_t *srv, const mdx_config_t *cfg)
{
    struct stat st;
    /* A socket file left by a previous run would make bind fail; anything else is kept. */
    if (lstat(cfg->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(cfg->unix_path);
    int rc = uv_pipe_init(srv->loop, &srv->pipe, 0);
    if (rc == 0)
        rc = uv_pipe_bind(&srv->pipe, cfg->unix_path);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->pipe, 511, on_connection);
    if (rc)
        die("cannot listen on unix socket %s: %s", cfg->unix_path, uv_strerror(rc));
    srv->pipe.data = srv;
    srv->pipe_on = 1;
}

/* Reclaim: the expiry timer frees what came due since its last run within expire_budget_us.
 * When more is left (a mass expiry, a large invalidation), an idle handle keeps going in
 * slices of reclaim_slice_us, one per loop iteration, with requests served in between, until
 * nothing is left; then it stops, so an idle server does not spin. */
/* One bounded run of the store's reclaim step, timed for stats. Returns 1 when work is left.
 * The wall-clock time of a run includes any time the thread was descheduled (other processes,
 * a virtual machine's steal time, page-fault work in the kernel); its CPU time does not. Both
 * are kept: the first is what a request waited, the second what memdex spent. */
static int reclaim_run(mdx_server_t *srv, uint64_t budget_us)
{
    uint64_t t0 = uv_hrtime(), c0 = mdx_srv_thread_cpu_ns(), freed = 0;
    int more = mdx_store_expire(srv->store, 0, budget_us, &freed);
    if (freed) {
        uint64_t us = (uv_hrtime() - t0) / 1000, cpu = (mdx_srv_thread_cpu_ns() - c0) / 1000;
        srv->stats.reclaim_runs++;
        srv->stats.reclaim_freed += freed;
        if (us > srv->stats.reclaim_max_us)
            srv->stats.reclaim_max_us = us;
        if (cpu > srv->stats.reclaim_max_cpu_us)
            srv->stats.reclaim_max_cpu_us = cpu;
    }
    return more;
}

static void on_reclaim(uv_idle_t *h)
{
    mdx_server_t *srv = h->data;
    if (!reclaim_run(srv, srv->cfg->reclaim_slice_us))
        uv_idle_stop(h);
}

void mdx_srv_reclaim_kick(mdx_server_t *srv)
{
    if (!srv->shutting_down && !uv_is_active((uv_handle_t *)&srv->reclaim_idle))
        uv_idle_start(&srv->reclaim_idle, on_reclaim);
}

static void on_expire(uv_timer_t *t)
{
    mdx_server_t *srv = t->data;
    if (uv_is_active((uv_handle_t *)&srv->reclaim_idle))
        return; /* already reclaiming in slices */
    if (reclaim_run(srv, srv->cfg->expire_budget_us))
        mdx_srv_reclaim_kick(srv);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void mdx_server_conns_gone(mdx_server_t *srv)
{
    if (srv->shutting_down != 1)
        return;
    srv->shutting_down = 2; /* handles below closed once */
    close_handle((uv_handle_t *)&srv->shutdown_timer);
    close_handle((uv_handle_t *)&srv->sigint);
    close_handle((uv_handle_t *)&srv->sigterm);
    mdx_srv_snap_close(srv); /* the final snapshot is taken once the loop has ended */
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    mdx_server_t *srv = t->data;
    mdx_log_warn("shutdown: clients still connected after %llu ms; closing them",
                 (unsigned long long)srv->cfg->shutdown_timeout_ms);
    mdx_conn_kill_all(srv);
}

static void on_signal(uv_signal_t *h, int signum)
{
    mdx_server_t *srv = h->data;
    if (srv->shutting_down) {
        mdx_log_warn("%s again: closing every connection now", strsignal(signum));
        mdx_conn_kill_all(srv);
        return;
    }
    mdx_log_info("%s: shutting down", strsignal(signum));
    srv->shutting_down = 1;
    if (srv->tcp_on)
        close_handle((uv_handle_t *)&srv->tcp);
    if (srv->pipe_on) {
        close_handle((uv_handle_t *)&srv->pipe);
        unlink(srv->cfg->unix_path);
    }
    close_handle((uv_handle_t *)&srv->expire_timer);
    close_handle((uv_handle_t *)&srv->reclaim_idle);
    uv_timer_start(&srv->shutdown_timer, on_shutdown_timeout, srv->cfg->shutdown_timeout_ms, 0);
    mdx_conn_shutdown_all(srv);
    if (!srv->conns)
        mdx_server_conns_gone(srv);
}

int main(int argc, char **argv)
{
    static mdx_config_t cfg;
    static mdx_server_t srv;
    static uv_loop_t loop;
    char err[MDX_CFG_PATH_MAX + 256];

    switch (mdx_config_load(&cfg, argc, argv, err, sizeof(err))) {
    case MDX_CFG_EXIT_OK:
        return 0;
    case MDX_CFG_EXIT_ERR:
        fprintf(stderr, "memdexd: %s\n", err);
        return 2;
    case MDX_CFG_CHECK:
        return mdx_srv_snap_check_file(cfg.check_snapshot);
    default:
        break;
    }
    if (mdx_log_open(cfg.log_level, cfg.log_file))
        die("cannot open log_file %s: %s", cfg.log_file, strerror(errno));
    signal(SIGPIPE, SIG_IGN); /* a peer that vanished is an error return, not a signal */
    signal(SIGXFSZ, SIG_IGN); /* a file size limit fails a snapshot (EFBIG), not the server */
    raise_nofile(&cfg);
    if (make_dirs(cfg.data_dir))
        die("cannot create data_dir %s: %s", cfg.data_dir, strerror(errno));

    mdx_store_opts_t so = {0};
    so.max_key = (uint32_t)cfg.max_key;
    so.max_body = (uint32_t)cfg.max_body;
    so.max_limit = (uint32_t)cfg.max_limit;
    so.maxmemory = (size_t)cfg.maxmemory;
    so.policy = (mdx_evict_policy_t)cfg.maxmemory_policy;
    int rc = mdx_store_new(&so, &srv.store);
    if (rc)
        die("cannot create the store: %s", mdx_strerror(rc));
    /* Before the snapshot is loaded: its records carry absolute expiry times, but collection
     * defaults and later writes resolve classes by these definitions. */
    for (size_t i = 0; i < cfg.nttl_classes; i++)
        if (mdx_ttl_class_set(srv.store, cfg.ttl_classes[i].name,
                              (int64_t)cfg.ttl_classes[i].ttl_ms))
            die("ttl_class %s: %s", cfg.ttl_classes[i].name, mdx_store_errmsg(srv.store));
    srv.cfg = &cfg;
    srv.rbuf = mdx_malloc(MDX_READ_CHUNK);
    if (!srv.rbuf)
        die("out of memory");
    rc = uv_loop_init(&loop);
    if (rc)
        die("cannot create the event loop: %s", uv_strerror(rc));
    srv.loop = &loop;
    srv.stats.start_ms = uv_now(&loop);

    listen_tcp(&srv, &cfg);
    if (cfg.unix_path[0])
        listen_unix(&srv, &cfg);
    /* After binding (a port in use is refused before anything is read or logged), before
     * the loop runs: clients that connect meanwhile wait in the backlog, and none ever sees
     * a half-loaded store. */
    if (mdx_srv_snap_load(&srv, err, sizeof(err)))
        die("%s", err);

    uv_timer_init(&loop, &srv.expire_timer);
    srv.expire_timer.data = &srv;
    uv_timer_start(&srv.expire_timer, on_expire, cfg.expire_interval_ms, cfg.expire_interval_ms);
    uv_idle_init(&loop, &srv.reclaim_idle);
    srv.reclaim_idle.data = &srv;
    uv_timer_init(&loop, &srv.shutdown_timer);
    srv.shutdown_timer.data = &srv;
    mdx_srv_snap_init(&srv);
    uv_signal_init(&loop, &srv.sigint);
    uv_signal_init(&loop, &srv.sigterm);
    srv.sigint.data = srv.sigterm.data = &srv;
    uv_signal_start(&srv.sigint, on_signal, SIGINT);
    uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
    /* Last, once signals are handled: whoever reads this line may connect and signal. */
    log_listening(&srv);
    mdx_log_info("memdexd %s ready (pid %d, max_clients %llu, data_dir %s)", MDX_SERVER_VERSION,
                 (int)getpid(), (unsigned long long)cfg.max_clients, cfg.data_dir);

    uv_run(&loop, UV_RUN_DEFAULT);

    /* Every client has had its answers: now the final snapshot (blocking). */
    int status = mdx_srv_snap_shutdown(&srv) ? 1 : 0;
    rc = uv_loop_close(&loop);
    if (rc)
        mdx_log_warn("event loop closed with handles still open: %s", uv_strerror(rc));
    mdx_store_free(srv.store);
    mdx_free(srv.rbuf);
    mdx_log_info("bye");
    mdx_log_close();
    return status;
}
