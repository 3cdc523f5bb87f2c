/*
 * ipengine's command line: parse arguments, set up logging, run the engine
 * and turn its result into the exit status: 0 when it ended as engines do
 * (controller gone, shutdown, SIGINT/SIGTERM), 1 on errors, 2 on usage.
 * Shared by the ipengine executable (embedded interpreter) and the
 * plexa._enginehost extension (the engine hosted by python3 itself).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plexa/version.h"
#include "plx_engine.h"
#include "plx_engine_cli.h"
#include "plx_log.h"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: ipengine [options]\n"
        "\n"
        "Start a plexa engine: a Python interpreter that registers with the\n"
        "controller and runs the code, pushes and pulls it receives, in its own\n"
        "__main__ namespace. It runs in the current directory, which is first on\n"
        "sys.path, and exits when the controller goes away (after trying to\n"
        "reconnect for a while when the connection was lost unexpectedly).\n"
        "\n"
        "The controller's engine URL (plx+tls://HOST:PORT/TOKEN#sha256=...) holds\n"
        "the engine token, so it never goes on the command line, where every user\n"
        "of the host could read it. It is taken from, in this order: standard\n"
        "input (--url -), --url-file, --profile's connection file, $PLEXA_URL,\n"
        "the file $PLEXA_URL_FILE names, and the default profile's connection\n"
        "file ($PLEXA_DIR or ~/.plexa, then\n"
        "profile_NAME/security/ipcontroller-engine.url). Once read, it is removed\n"
        "from the engine's environment.\n"
        "\n"
        "Options:\n"
        "  --url -               read the URL from standard input (one line)\n"
        "  --url-file FILE       read the URL from this connection file (mode 0600)\n"
        "                        (--furl-file is accepted too, as in IPython 0.10)\n"
        "  --profile NAME        use this profile's connection file (default: default)\n"
        "  --mpi KIND            set up MPI first; KIND: mpi4py (gives `mpi` in the namespace);\n"
        "                        the engine asks for its MPI rank as engine id\n"
        "  --id N                ask the controller for engine id N (granted while free)\n"
        "  --register-timeout S  give up when the controller has not accepted us\n"
        "                        within S seconds (default: 30)\n"
        "  --reconnect S         after losing the controller connection unexpectedly,\n"
        "                        try to reconnect (keeping the engine id) for S\n"
        "                        seconds before exiting (default: 10; 0: exit at once)\n"
        "  --controller-timeout S  presume the controller dead when nothing at all\n"
        "                        has come from it for S seconds (default: 30, or 20\n"
        "                        of its heartbeat periods when that is longer)\n"
        "  --enginessh HOST      reach the controller through an ssh tunnel to HOST\n"
        "                        ([user@]host[:port]; the system's OpenSSH, in BatchMode,\n"
        "                        $PLEXA_SSH for another command): for engines that cannot\n"
        "                        open connections to the controller (--ssh too)\n"
        "  --no-ipython          run cells as a plain interpreter: no magics, shell\n"
        "                        escapes, get_ipython() or display data, even where\n"
        "                        IPython is installed\n"
        "  --show-secrets        leave every profile's security/ directory (other\n"
        "                        capabilities' tokens, the controller's key) visible to\n"
        "                        the code the engine runs; by default it is hidden\n"
        "  --log-level LEVEL     debug, info, warn or error (default: info)\n"
        "  -l, --logfile PATH    write the log there instead of stderr\n"
        "  -h, --help            show this help and exit\n"
        "  --version             show the version and exit\n"
        "\n"
        "Environment: PLEXA_URL, PLEXA_URL_FILE, PLEXA_DIR, PLX_PLUGIN_PATH (transport\n"
        "plugins).\n");
}

typedef struct args {
    plx_engine_opts_t opts;
    const char       *log_level;
    const char       *logfile;
    int               url_stdin;     /* --url - */
    char              url[4096];     /* read from stdin */
} args_t;

/* --url - : the URL is the first line of standard input. */
static int read_url_stdin(args_t *a)
{
    if (!fgets(a->url, sizeof a->url, stdin)) {
        fprintf(stderr, "ipengine: --url -: nothing on standard input\n");
        return 2;
    }
    a->url[strcspn(a->url, "\r\n")] = '\0';
    a->opts.url = a->url;
    return -1;
}

/* An engine id the controller can grant: 0..65535. */
static int parse_id(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

/* Under --mpi without --id the engine asks for its rank, so that engine
 * ids follow ranks. The rank comes from the launcher's environment (Open
 * MPI, PMIx, MPICH/Hydra), before MPI is initialised. */
static void rank_as_id(plx_engine_opts_t *o)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
    if (!o->mpi || o->has_requested_id)
        return;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && parse_id(v, &o->requested_id) == 0) {
            o->has_requested_id = 1;
            return;
        }
    }
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {
        {"url", required_argument, 0, 'u'},       {"url-file", required_argument, 0, 'f'},
        {"furl-file", required_argument, 0, 'f'}, {"profile", required_argument, 0, 'p'},
        {"mpi", required_argument, 0, 'm'},       {"register-timeout", required_argument, 0, 't'},
        {"reconnect", required_argument, 0, 'r'}, {"id", required_argument, 0, 'i'},
        {"log-level", required_argument, 0, 'v'}, {"logfile", required_argument, 0, 'l'},
        {"help", no_argument, 0, 'h'},            {"version", no_argument, 0, 'V'},
        {"show-secrets", no_argument, 0, 'S'},
        {"controller-timeout", required_argument, 0, 'C'},
        {"no-ipython", no_argument, 0, 'N'},
        {"enginessh", required_argument, 0, 'H'}, {"ssh", required_argument, 0, 'H'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "l:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'u':
            if (strcmp(optarg, "-") != 0) {
                fprintf(stderr, "ipengine: --url would put the engine token on the command line, "
                        "where every user of this host can read it (ps, /proc/PID/cmdline); "
                        "give it in a file (--url-file FILE, mode 0600), in the environment "
                        "(PLEXA_URL or PLEXA_URL_FILE), or on standard input (--url -)\n");
                return 2;
            }
            a->url_stdin = 1;
            break;
        case 'f': a->opts.url_file = optarg; break;
        case 'p': a->opts.profile = optarg; break;
        case 'm': a->opts.mpi = optarg; break;
        case 'v': a->log_level = optarg; break;
        case 'l': a->logfile = optarg; break;
        case 't': {
            char *end;
            a->opts.register_timeout_s = strtod(optarg, &end);
            if (*end || end == optarg || a->opts.register_timeout_s <= 0) {
                fprintf(stderr, "ipengine: --register-timeout: '%s' is not a positive number\n",
                        optarg);
                return 2;
            }
            break;
        }
        case 'r': {
            char *end;
            double s = strtod(optarg, &end);
            if (*end || end == optarg || s < 0) {
                fprintf(stderr, "ipengine: --reconnect: '%s' is not a number >= 0\n", optarg);
                return 2;
            }
            a->opts.reconnect_s = s > 0 ? s : -1;   /* the library's 0 means the default */
            break;
        }
        case 'C': {
            char *end;
            a->opts.silence_s = strtod(optarg, &end);
            if (*end || end == optarg || !(a->opts.silence_s > 0)) {
                fprintf(stderr, "ipengine: --controller-timeout: '%s' is not a positive number\n",
                        optarg);
                return 2;
            }
            break;
        }
        case 'i':
            if (parse_id(optarg, &a->opts.requested_id) != 0) {
                fprintf(stderr, "ipengine: --id: '%s' is not an engine id (0..65535)\n", optarg);
                return 2;
            }
            a->opts.has_requested_id = 1;
            break;
        case 'S': a->opts.show_secrets = 1; break;
        case 'N': a->opts.no_ipython = 1; break;
        case 'H': a->opts.enginessh = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ipengine (plexa) %s\n", PLX_VERSION_STRING); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ipengine: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    rank_as_id(&a->opts);
    return a->url_stdin ? read_url_stdin(a) : -1;
}

static int setup_log(const args_t *a)
{
    plx_log_set_component("engine");
    if (a->log_level) {
        int level = plx_log_parse_level(a->log_level);
        if (level < 0) {
            fprintf(stderr, "ipengine: --log-level: '%s' is not debug, info, warn or error\n",
                    a->log_level);
            return 2;
        }
        plx_log_set_level((plx_log_level)level);
    } else {
        plx_log_set_level(PLX_LOG_INFO);
    }
    if (a->logfile) {
        int fd = open(a->logfile, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            fprintf(stderr, "ipengine: cannot open log file %s: %s\n", a->logfile,
                    strerror(errno));
            return 1;
        }
        plx_log_set_fd(fd);   /* kept open until exit */
    }
    return -1;
}

int plx_ipengine_main(int argc, char **argv)
{
    args_t a = {0};
    int status = parse_args(argc, argv, &a);
    if (status < 0)
        status = setup_log(&a);
    if (status >= 0)
        return status;
    plx_err_t err = {0};
    int rc = plx_engine_run(&a.opts, &err);
    if (rc == PLX_OK)
        return 0;
    if (a.logfile)   /* keep the reason in the log file too */
        PLX_ERROR("%s", err.msg);
    fprintf(stderr, "ipengine: %s\n", err.msg);
    return 1;
}
