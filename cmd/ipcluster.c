/*
 * ipcluster: start, stop and watch a controller plus engines.
 *
 *   ipcluster local|ssh|mpiexec|mpirun|pbs|sge|slurm -n N [--daemonize]
 *                                        0.10 modes: foreground, Ctrl-C stops all
 *   ipcluster start [-n N]               background; returns once engines registered
 *   ipcluster engines -n N               more engines in the running cluster
 *   ipcluster stop                       stop the profile's cluster
 *
 * All commands take --profile=NAME (default "default"). A mode's 0.10
 * options (--clusterfile, --sshx, -e, --mpi, -q, -s) become settings of
 * its launcher's cluster.conf section, applied over the profile's file.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "plexa/version.h"
#include "plx_cluster.h"
#include "plx_log.h"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: ipcluster <command> [options]\n"
        "\n"
        "Commands:\n"
        "  local     start a controller and -n engines on this host, in the foreground\n"
        "            (Ctrl-C stops them all); with --daemonize return once the engines\n"
        "            are registered and leave the cluster running\n"
        "  ssh       the same with engines on other hosts over ssh ([ssh] hosts in\n"
        "            cluster.conf, or --clusterfile)\n"
        "  mpiexec   the same with the engines as one MPI job (mpiexec -n N ipengine);\n"
        "            mpirun: the same with mpirun\n"
        "  pbs, sge, slurm\n"
        "            the same with the engines submitted to the batch system\n"
        "  start     start the profile's cluster in the background; returns once all\n"
        "            engines are registered (launchers from the profile's cluster.conf)\n"
        "  engines   start -n more engines in the profile's running cluster, with its\n"
        "            engine launcher; returns once they are registered\n"
        "  stop      stop the profile's cluster: engines, controller, everything\n"
        "  status    show whether the profile's cluster runs, and its engines\n"
        "  list      list the profiles and which of them run\n"
        "  plugins   list the launcher and transport plugins found (PLX_PLUGIN_PATH,\n"
        "            then the built-in directory): kind, name, version, ABI, file,\n"
        "            and why the loader refuses any\n"
        "  tokens    print the running controller's capability tokens and files\n"
        "  revoke CAPABILITY\n"
        "            revoke engine, mec, task or status: a new token replaces the old\n"
        "            one, and connections that used the old one are dropped\n"
        "  profile create NAME [--launcher=L]\n"
        "            create profile NAME with a commented cluster.conf\n"
        "\n"
        "Options:\n"
        "  -n, --num N          number of engines (default: cluster.conf, else 2)\n"
        "  --profile NAME       profile directory ~/.plexa/profile_NAME (default: default)\n"
        "  --daemonize          (modes) detach once the engines are registered\n"
        "  --clusterfile FILE   (ssh) 0.10 cluster file: engines = {'host': N, ...};\n"
        "                       -n defaults to the sum of its counts\n"
        "  --sshx FILE          (ssh) launcher script: sent to each host, the engines\n"
        "                       run as `sh FILE ipengine ARGS...` ([ssh] sshx)\n"
        "  -e, --copyenvs       (ssh) pass the local environment on to the engines\n"
        "                       ([ssh] copy_env = true)\n"
        "  --mpi KIND           (mpiexec, mpirun) mpi4py: engines import mpi4py and\n"
        "                       their ids follow the MPI ranks\n"
        "  -q, --queue NAME     (pbs, sge, slurm) queue (Slurm: partition)\n"
        "  -s, --pbs-script, --sge-script, --slurm-script FILE\n"
        "                       (pbs, sge, slurm) job script template\n"
        "  --timeout SECONDS    how long start may take (default: cluster.conf, else 60)\n"
        "  -r, --reuse-furls    (start, modes) IPython 0.10's -r: the controller keeps its\n"
        "                       connection files when it stops and the next -r start\n"
        "                       reuses them (give it fixed ports)\n"
        "  --ip HOST, --listen HOST\n"
        "                       (start, modes) the address the controller listens on\n"
        "                       ([cluster] listen; 0.0.0.0 for every interface)\n"
        "  --location HOST      (start, modes) the address engines and clients use to\n"
        "                       reach it, written into the connection files\n"
        "                       ([cluster] location). With engines on other hosts and\n"
        "                       neither set, ipcluster picks this host's address on the\n"
        "                       network that reaches them, and says which\n"
        "  --sshserver HOST     (status) look at a cluster that runs on another host,\n"
        "                       through ssh to HOST (its login node), with this host's\n"
        "                       copy of the profile's connection files\n"
        "  --engine-port PORT, --client-port PORT\n"
        "                       (start, modes) the controller's port for engines, and a\n"
        "                       second one for clients (default: cluster.conf's port)\n"
        "  --log-level LEVEL    debug, info, warn or error\n"
        "  --launcher NAME      (profile create) engine launcher: local, ssh, mpiexec,\n"
        "                       pbs, sge, slurm or a site plugin\n"
        "  -h, --help           show this help\n"
        "  --version            show the version\n"
        "\n"
        "Logs are written to the profile's log/ directory; connection files to its\n"
        "security/ directory. PLEXA_DIR overrides ~/.plexa. 0.10's -x and -y are\n"
        "accepted and ignored: capability tokens cannot be turned off.\n");
}

typedef struct args {
    const char *command;
    const char *subcommand;   /* profile create */
    const char *name;         /* profile create NAME; revoke CAPABILITY */
    const char *launcher;
    const char *clusterfile;  /* ssh */
    const char *sshx;         /* ssh */
    int         copyenvs;     /* ssh */
    const char *mpi;          /* mpiexec, mpirun */
    const char *queue;        /* pbs, sge, slurm */
    const char *script;       /* pbs, sge, slurm */
    const char *listen;       /* --ip / --listen */
    const char *location;     /* --location */
    const char *sshserver;    /* status --sshserver */
    const char *ctl[8];       /* 0.10's controller options, passed on to ipcontroller */
    int         nctl;
    plx_cluster_opts_t o;
} args_t;

/* 0.10's -r, --client-port and --engine-port belong to the controller. */
static void add_controller_arg(args_t *a, const char *opt, const char *value)
{
    if (a->nctl + 2 >= (int)(sizeof a->ctl / sizeof a->ctl[0]))
        return;   /* each option is kept once, so this never fills */
    a->ctl[a->nctl++] = opt;
    if (value)
        a->ctl[a->nctl++] = value;
    a->ctl[a->nctl] = NULL;
    a->o.controller_args = a->ctl;
}

static int parse_num(const char *s, const char *what, double *out)
{
    char *end;
    *out = strtod(s, &end);
    if (*end || *out <= 0) {
        fprintf(stderr, "ipcluster: %s: '%s' is not a positive number\n", what, s);
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {
        {"num", required_argument, 0, 'n'},     {"n", required_argument, 0, 'n'},
        {"profile", required_argument, 0, 'p'}, {"daemonize", no_argument, 0, 'd'},
        {"daemon", no_argument, 0, 'd'},        {"timeout", required_argument, 0, 't'},
        {"log-level", required_argument, 0, 'v'}, {"help", no_argument, 0, 'h'},
        {"launcher", required_argument, 0, 'L'},
        {"clusterfile", required_argument, 0, 'c'}, {"mpi", required_argument, 0, 'm'},
        {"sshx", required_argument, 0, 'X'},    {"copyenvs", no_argument, 0, 'e'},
        {"queue", required_argument, 0, 'q'},   {"pbs-script", required_argument, 0, 's'},
        {"sge-script", required_argument, 0, 's'}, {"slurm-script", required_argument, 0, 's'},
        {"version", no_argument, 0, 'V'},       {"reuse-furls", no_argument, 0, 'r'},
        {"client-port", required_argument, 0, 'C'}, {"engine-port", required_argument, 0, 'E'},
        {"ip", required_argument, 0, 'I'},      {"listen", required_argument, 0, 'I'},
        {"location", required_argument, 0, 'O'}, {"sshserver", required_argument, 0, 'S'},
        {0, 0, 0, 0}};
    int ch, reuse = 0;
    const char *client_port = NULL, *engine_port = NULL;
    double v;
    while ((ch = getopt_long(argc, argv, "n:q:s:herxy", opts, NULL)) != -1) {
        switch (ch) {
        case 'r': reuse = 1; break;
        case 'I': a->listen = optarg; break;
        case 'O': a->location = optarg; break;
        case 'S': a->sshserver = optarg; break;
        case 'C': client_port = optarg; break;
        case 'E': engine_port = optarg; break;
        case 'x':
        case 'y':
            fprintf(stderr, "ipcluster: ignoring -%c: plexa always checks capability tokens "
                    "(0.10's -x/-y turned security off)\n", ch);
            break;
        case 'n':
            if (parse_num(optarg, "-n", &v) || v != (int)v)
                return 2;
            a->o.engines = (int)v;
            break;
        case 'p': a->o.profile = optarg; break;
        case 'L': a->launcher = optarg; break;
        case 'c': a->clusterfile = optarg; break;
        case 'X': a->sshx = optarg; break;
        case 'e': a->copyenvs = 1; break;
        case 'm': a->mpi = optarg; break;
        case 'q': a->queue = optarg; break;
        case 's': a->script = optarg; break;
        case 'd': a->o.daemonize = 1; break;
        case 't':
            if (parse_num(optarg, "--timeout", &a->o.timeout))
                return 2;
            break;
        case 'v':
            if (plx_log_parse_level(optarg) < 0) {
                fprintf(stderr, "ipcluster: --log-level: unknown level '%s'\n", optarg);
                return 2;
            }
            a->o.log_level = optarg;
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ipcluster (plexa) %s\n", PLX_VERSION_STRING); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (reuse)
        add_controller_arg(a, "--reuse-furls", NULL);
    if (client_port)
        add_controller_arg(a, "--client-port", client_port);
    if (engine_port)
        add_controller_arg(a, "--engine-port", engine_port);
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    a->command = argv[optind++];
    if (strcmp(a->command, "profile") == 0 && optind + 2 <= argc) {
        a->subcommand = argv[optind++];
        a->name = argv[optind++];
    } else if (strcmp(a->command, "revoke") == 0 && optind < argc) {
        a->name = argv[optind++];
    }
    if (optind < argc) {
        fprintf(stderr, "ipcluster: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return -1;
}

/* The 0.10 modes and the launcher each one uses for the engines. */
static const struct mode {
    const char *name, *launcher;
} modes[] = {
    {"local", "local"}, {"ssh", "ssh"},   {"mpiexec", "mpiexec"}, {"mpirun", "mpiexec"},
    {"pbs", "pbs"},     {"sge", "sge"},   {"slurm", "slurm"},
};

static const struct mode *find_mode(const char *name)
{
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(name, modes[i].name) == 0)
            return &modes[i];
    return NULL;
}

/* A mode's own options, turned into {section, key, value} settings. */
typedef struct settings {
    const char *v[3 * 8 + 1];
    int         n;
    char        hosts[8192];
    char        script[PATH_MAX];
    char        sshx[PATH_MAX];
} settings_t;

static void add_setting(settings_t *s, const char *section, const char *key, const char *value)
{
    s->v[s->n++] = section;
    s->v[s->n++] = key;
    s->v[s->n++] = value;
    s->v[s->n] = NULL;
}

static int refuse(const char *option, const char *modes_list)
{
    fprintf(stderr, "ipcluster: %s is an option of the %s mode%s\n", option, modes_list,
            strchr(modes_list, ',') || strstr(modes_list, " and ") ? "s" : "");
    return 2;
}

/* --clusterfile, --sshx, -e: settings of [ssh]. -1 to go on, else an
 * exit status. */
static int ssh_settings(args_t *a, settings_t *s)
{
    if (a->clusterfile) {
        plx_err_t err = {0};
        int total = 0;
        if (plx_cluster_read_clusterfile(a->clusterfile, s->hosts, sizeof s->hosts, &total,
                                         &err) != PLX_OK) {
            fprintf(stderr, "ipcluster: %s\n", err.msg);
            return 1;
        }
        add_setting(s, "ssh", "hosts", s->hosts);
        if (a->o.engines <= 0)
            a->o.engines = total;
    }
    if (a->sshx) {
        /* Relative to where the user typed it, not to the profile; checked
         * here so that nothing starts with a script that cannot be sent. */
        FILE *f = realpath(a->sshx, s->sshx) ? fopen(s->sshx, "re") : NULL;
        if (!f) {
            fprintf(stderr, "ipcluster: --sshx: cannot read %s: %m\n", a->sshx);
            return 1;
        }
        fclose(f);
        add_setting(s, "ssh", "sshx", s->sshx);
    }
    if (a->copyenvs)
        add_setting(s, "ssh", "copy_env", "true");
    return -1;
}

/* Returns -1 to go on, else an exit status. */
static int mode_settings(const struct mode *m, args_t *a, settings_t *s)
{
    int ssh = strcmp(m->launcher, "ssh") == 0, mpi = strcmp(m->launcher, "mpiexec") == 0;
    int batch = !strcmp(m->name, "pbs") || !strcmp(m->name, "sge") || !strcmp(m->name, "slurm");
    if ((a->clusterfile || a->sshx || a->copyenvs) && !ssh)
        return refuse(a->clusterfile ? "--clusterfile" : a->sshx ? "--sshx" : "-e/--copyenvs",
                      "ssh");
    if (a->mpi && !mpi)
        return refuse("--mpi", "mpiexec and mpirun");
    if ((a->queue || a->script) && !batch)
        return refuse(a->queue ? "--queue" : "--pbs-script", "pbs, sge and slurm");
    int rc = ssh ? ssh_settings(a, s) : -1;
    if (rc >= 0)
        return rc;
    if (strcmp(m->name, "mpirun") == 0)
        add_setting(s, "mpiexec", "mpiexec", "mpirun");
    if (a->mpi)
        add_setting(s, "mpiexec", "mpi", a->mpi);
    if (a->queue)
        add_setting(s, m->name, strcmp(m->name, "slurm") == 0 ? "partition" : "queue", a->queue);
    if (a->script) {
        /* Relative to where the user typed it, not to the profile. */
        if (!realpath(a->script, s->script)) {
            fprintf(stderr, "ipcluster: job script template %s: %m\n", a->script);
            return 1;
        }
        add_setting(s, m->name, "template", s->script);
    }
    a->o.set = s->n ? s->v : NULL;
    return -1;
}

/* --ip / --listen and --location: [cluster] settings, for start and the
 * modes alike. */
static void address_settings(args_t *a, settings_t *s)
{
    if (a->listen)
        add_setting(s, "cluster", "listen", a->listen);
    if (a->location)
        add_setting(s, "cluster", "location", a->location);
    a->o.set = s->n ? s->v : NULL;
}

int main(int argc, char **argv)
{
    args_t a;
    memset(&a, 0, sizeof a);
    a.o.profile = "default";
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    /* It holds the engine token: other processes of the owner (the code
     * engines run) must not read its memory through /proc or ptrace. */
    prctl(PR_SET_DUMPABLE, 0);
    plx_err_t err = {0};
    if (a.sshserver && strcmp(a.command, "status") != 0) {
        fprintf(stderr, "ipcluster: --sshserver is an option of status (clients take "
                        "sshserver= themselves)\n");
        return 2;
    }
    if (strcmp(a.command, "status") == 0) {
        rc = a.sshserver ? plx_cluster_status_via(a.o.profile, a.sshserver, stdout, &err)
                         : plx_cluster_status(a.o.profile, stdout, &err);
        if (rc != PLX_OK && rc != PLX_ENOTFOUND)
            fprintf(stderr, "ipcluster: %s\n", err.msg);
        return rc == PLX_OK ? 0 : 3;
    }
    if (strcmp(a.command, "tokens") == 0 || strcmp(a.command, "revoke") == 0) {
        if (strcmp(a.command, "revoke") == 0 && !a.name) {
            fprintf(stderr, "ipcluster: usage: ipcluster revoke engine|mec|task|status "
                            "[--profile=NAME]\n");
            return 2;
        }
        rc = a.name ? plx_cluster_revoke(a.o.profile, a.name, stdout, &err)
                    : plx_cluster_tokens(a.o.profile, stdout, &err);
        if (rc != PLX_OK)
            fprintf(stderr, "ipcluster: %s\n", err.msg);
        return rc == PLX_OK ? 0 : 1;
    }
    if (strcmp(a.command, "plugins") == 0) {
        if (plx_cluster_plugins(stdout, &err) != PLX_OK) {
            fprintf(stderr, "ipcluster: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (strcmp(a.command, "list") == 0) {
        if (plx_cluster_list(stdout, &err) != PLX_OK) {
            fprintf(stderr, "ipcluster: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (strcmp(a.command, "profile") == 0) {
        if (!a.subcommand || strcmp(a.subcommand, "create") != 0) {
            fprintf(stderr, "ipcluster: usage: ipcluster profile create NAME [--launcher=L]\n");
            return 2;
        }
        if (plx_cluster_profile_create(a.name, a.launcher, stdout, &err) != PLX_OK) {
            fprintf(stderr, "ipcluster: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (strcmp(a.command, "engines") == 0) {
        if (a.o.engines <= 0) {
            fprintf(stderr, "ipcluster: engines: say how many to add with -n N\n");
            return 2;
        }
        if (plx_cluster_add_engines(a.o.profile, a.o.engines,
                                    a.o.timeout > 0 ? a.o.timeout : 60.0, stdout, &err)) {
            fprintf(stderr, "ipcluster: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (strcmp(a.command, "stop") == 0) {
        /* A batch stop waits for the cancelled jobs to leave the queue. */
        if (plx_cluster_stop(a.o.profile, a.o.timeout > 0 ? a.o.timeout : 60.0, &err)) {
            fprintf(stderr, "ipcluster: %s\n", err.msg);
            return 1;
        }
        printf("[ipcluster] stopped the cluster for profile '%s'\n", a.o.profile);
        return 0;
    }
    settings_t settings;
    const struct mode *m = find_mode(a.command);
    memset(&settings, 0, sizeof settings);
    if (m) {
        /* 0.10: the controller runs here, the engines where the mode says. */
        a.o.engine_launcher = m->launcher;
        a.o.controller_launcher = "local";
        if ((rc = mode_settings(m, &a, &settings)) >= 0)
            return rc;
    } else if (strcmp(a.command, "start") == 0) {
        a.o.daemonize = 1;
        if (a.clusterfile || a.sshx || a.copyenvs || a.mpi || a.queue || a.script) {
            fprintf(stderr, "ipcluster: --clusterfile, --sshx, -e, --mpi, --queue and the "
                            "script options belong to the 0.10 modes (ssh, mpiexec, pbs, "
                            "...); with start, set them in the profile's cluster.conf\n");
            return 2;
        }
    } else {
        fprintf(stderr, "ipcluster: unknown command '%s' (try ipcluster --help)\n", a.command);
        return 2;
    }
    address_settings(&a, &settings);
    rc = plx_cluster_run(&a.o, &err);
    if (rc != 0)
        fprintf(stderr, "ipcluster: %s\n", err.msg[0] ? err.msg : "failed");
    return rc;
}
