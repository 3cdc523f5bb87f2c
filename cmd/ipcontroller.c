/*
 * ipcontroller: parse arguments, run the controller loop until SIGINT or
 * SIGTERM. Everything else lives in core/controller.
 */
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "plexa/version.h"
#include "plx_conf.h"
#include "plx_controller.h"
#include "plx_log.h"
#include "plx_profile.h"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: ipcontroller [options]\n"
        "\n"
        "Start the plexa controller: engines register with it and clients send it\n"
        "work. It writes its connection files (capability URLs) into the profile's\n"
        "security/ directory and removes them when it stops. It runs in the\n"
        "foreground until SIGINT or SIGTERM; ipcluster starts it for you.\n"
        "\n"
        "Options:\n"
        "  --profile NAME       profile to use (default: default)\n"
        "  --ip HOST            address to listen on (default from cluster.conf, else 127.0.0.1)\n"
        "  --port PORT          port to listen on (default: any free port)\n"
        "  --location HOST      address written into connection files, for engines and\n"
        "                       clients on other hosts (default: the listen address)\n"
        "  --transport NAME     transport plugin: tls or tcp (default from cluster.conf)\n"
        "  --client-ip HOST, --client-port PORT\n"
        "                       a second listener for clients (IPython 0.10's separate\n"
        "                       client port): the mec, tc and status files name it, the\n"
        "                       engine file names --ip/--port/--location (also spelled\n"
        "                       --engine-ip, --engine-port, --engine-location)\n"
        "  --client-location HOST\n"
        "                       address written into the clients' files (mec, tc,\n"
        "                       status), with or without a second listener\n"
        "  --reuse              restart of a controller that died: keep the port and the\n"
        "                       capability tokens of the connection files it left, so\n"
        "                       engines and clients reconnect with what they have\n"
        "  -r, --reuse-furls    IPython 0.10's -r: --reuse, and leave the connection\n"
        "                       files at exit, so every later -r start (same ports)\n"
        "                       takes the same files\n"
        "  --log-level LEVEL    debug, info, warn or error (default: info)\n"
        "  -l, --logfile PATH   write the log there instead of stderr\n"
        "  -h, --help           show this help\n"
        "  --version            show the version\n"
        "\n"
        "Either listener accepts every capability: the token in each connection\n"
        "decides what it may do. Capability tokens cannot be turned off: 0.10's\n"
        "-x/-y are accepted and ignored, with a warning. TLS with a pinned\n"
        "certificate is the default transport.\n"
        "\n"
        "Files: <profile>/security/ipcontroller-{engine,mec,tc,status}.url (mode\n"
        "0600), <profile>/log/ipcontroller.log when started by ipcluster.\n"
        "Environment: PLEXA_DIR (instead of ~/.plexa), PLX_PLUGIN_PATH (plugins).\n");
}

typedef struct args {
    const char *profile, *ip, *location, *transport, *logfile, *log_level;
    const char *client_ip, *client_location;
    long port, client_port;
    int reuse, keep_files;
} args_t;

static int parse_port(const char *opt, const char *s, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 65535) {
        fprintf(stderr, "ipcontroller: %s: '%s' is not a port number\n", opt, s);
        return 2;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, args_t *a)
{
    /* 0.10's engine-side names are the listener's own; its client-side
     * ones make a second listener for the clients. */
    static const struct option opts[] = {
        {"profile", required_argument, 0, 'p'}, {"ip", required_argument, 0, 'i'},
        {"port", required_argument, 0, 'P'},    {"location", required_argument, 0, 'L'},
        {"engine-ip", required_argument, 0, 'i'}, {"engine-port", required_argument, 0, 'P'},
        {"engine-location", required_argument, 0, 'L'},
        {"client-ip", required_argument, 0, 'I'}, {"client-port", required_argument, 0, 'C'},
        {"client-location", required_argument, 0, 'O'},
        {"transport", required_argument, 0, 't'}, {"log-level", required_argument, 0, 'v'},
        {"logfile", required_argument, 0, 'l'}, {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},       {"reuse", no_argument, 0, 'R'},
        {"reuse-furls", no_argument, 0, 'r'},   {0, 0, 0, 0}};
    int ch;
    a->port = a->client_port = -1;
    while ((ch = getopt_long(argc, argv, "l:hrxy", opts, NULL)) != -1) {
        switch (ch) {
        case 'p': a->profile = optarg; break;
        case 'i': a->ip = optarg; break;
        case 'L': a->location = optarg; break;
        case 'I': a->client_ip = optarg; break;
        case 'O': a->client_location = optarg; break;
        case 't': a->transport = optarg; break;
        case 'v': a->log_level = optarg; break;
        case 'l': a->logfile = optarg; break;
        case 'R': a->reuse = 1; break;
        case 'r': a->reuse = a->keep_files = 1; break;
        case 'x':
        case 'y':
            fprintf(stderr, "ipcontroller: ignoring -%c: plexa always checks capability "
                    "tokens (0.10's -x/-y turned security off)\n", ch);
            break;
        case 'P':
            if (parse_port("--port", optarg, &a->port))
                return 2;
            break;
        case 'C':
            if (parse_port("--client-port", optarg, &a->client_port))
                return 2;
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ipcontroller (plexa) %s\n", PLX_VERSION_STRING); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ipcontroller: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return -1;
}

/* `ipcluster revoke` left a request in security/ and signalled us. */
static void on_usr1(struct ev_loop *loop, ev_signal *w, int revents)
{
    plx_controller_serve_requests(w->data);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    PLX_INFO("received signal %d; shutting down", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

/* Options from cluster.conf, overridden by the command line. */
static int load_options(const args_t *a, plx_conf_t *conf, plx_controller_opts_t *o)
{
    plx_err_t err = {0};
    plx_profile_t prof;
    char path[4096];
    if (plx_profile_open(o->profile, 1, &prof, &err) != PLX_OK ||
        plx_profile_file(&prof, NULL, "cluster.conf", path, sizeof path) != PLX_OK ||
        plx_conf_load(conf, path, &err) != PLX_OK) {
        fprintf(stderr, "ipcontroller: %s\n", err.msg);
        return 1;
    }
    const plx_cluster_conf_t *cc = plx_conf_cluster(conf);
    o->transport = a->transport ? a->transport : cc->transport;
    o->listen_host = a->ip ? a->ip : cc->listen;
    o->location = a->location ? a->location : (cc->location[0] ? cc->location : NULL);
    o->port = (uint16_t)(a->port >= 0 ? a->port : cc->port);
    o->allow_insecure = cc->allow_insecure;
    o->heartbeat_period = cc->heartbeat_period;
    o->heartbeat_misses = cc->heartbeat_misses;
    const plx_controller_conf_t *ctl = plx_conf_controller(conf);
    o->limits.max_envelope = (uint32_t)ctl->max_envelope;
    o->limits.max_bufs = (uint32_t)ctl->max_buffers;
    o->max_memory = ctl->max_memory;
    o->results_max = (uint64_t)ctl->results_max;
    o->results_max_bytes = ctl->results_max_bytes;
    o->task_inflight = ctl->task_inflight;
    o->scheduler = strcmp(ctl->scheduler, "leastload") == 0 ? PLX_SCHED_LEASTLOAD
                   : strcmp(ctl->scheduler, "fifo") == 0    ? PLX_SCHED_FIFO
                                                            : PLX_SCHED_ADAPTIVE;
    o->token_lifetime = ctl->token_lifetime;
    o->status_port = ctl->status_port;
    o->shm = ctl->shm;
    o->direct_transfers = ctl->direct_transfers;
    /* Engines serving each other's pushes: not where the profile says
     * engines are not to be trusted with the clients' data. */
    o->broadcast_min = plx_conf_client(conf)->trust_engine_pickles ? ctl->broadcast_min
                                                                   : UINT64_MAX;
    o->reuse = a->reuse;
    o->keep_files = a->keep_files;
    o->client_host = a->client_ip;
    o->client_port = (int)a->client_port;
    o->client_location = a->client_location;
    if (!a->log_level)
        plx_log_set_level((plx_log_level)cc->log_level);
    return 0;
}

/* Every engine and client is a descriptor: a controller for thousands of
 * engines needs more than the usual soft limit of 1024. */
static void raise_fd_limit(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &r) != 0)
            PLX_WARN("cannot raise the open-file limit: %s", strerror(errno));
    }
}

int main(int argc, char **argv)
{
    args_t a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    /* It holds every token and the key: other processes of the owner (the
     * code engines run) must not read its memory through /proc or ptrace. */
    prctl(PR_SET_DUMPABLE, 0);
    plx_log_set_component("controller");
    raise_fd_limit();
    if (a.logfile) {
        int fd = open(a.logfile, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            perror(a.logfile);
            return 1;
        }
        plx_log_set_fd(fd);
    }
    if (a.log_level) {
        int lvl = plx_log_parse_level(a.log_level);
        if (lvl < 0) {
            fprintf(stderr, "ipcontroller: --log-level: unknown level '%s'\n", a.log_level);
            return 2;
        }
        plx_log_set_level((plx_log_level)lvl);
    }
    plx_controller_opts_t o = plx_controller_opts_default();
    o.profile = a.profile ? a.profile : "default";
    plx_conf_t *conf = plx_conf_new_defaults();
    if (!conf || load_options(&a, conf, &o) != 0) {
        plx_conf_destroy(&conf);
        return 1;
    }
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    plx_err_t err = {0};
    plx_controller_t *ctl = plx_controller_new(loop, &o, &err);
    if (!ctl) {
        fprintf(stderr, "ipcontroller: %s\n", err.msg);
        PLX_ERROR("%s", err.msg);
        plx_conf_destroy(&conf);
        return 1;
    }
    ev_signal sint, sterm, susr1;
    ev_signal_init(&sint, on_signal, SIGINT);
    ev_signal_init(&sterm, on_signal, SIGTERM);
    ev_signal_init(&susr1, on_usr1, SIGUSR1);
    susr1.data = ctl;
    ev_signal_start(loop, &sint);
    ev_signal_start(loop, &sterm);
    ev_signal_start(loop, &susr1);
    /* A revocation asked for while we were starting is served now. */
    plx_controller_serve_requests(ctl);
    ev_run(loop, 0);
    plx_controller_destroy(&ctl);
    plx_conf_destroy(&conf);
    PLX_INFO("controller stopped");
    return 0;
}
