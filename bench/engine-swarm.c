/*
 * engine-swarm: N real engine connections from one process, to measure the
 * controller alone (issue 9). Each connection speaks the engine protocol
 * through the same transport plugin engines use (tls by default, with the
 * pinned certificate): Hello as an engine, heartbeat answers, and real
 * replies: an Execute gets an EngineReply with an ExecuteResult (In [n],
 * empty output), a TaskRun a successful TaskResult, anything else an empty
 * EngineReply. No Python runs, so what is measured is the controller.
 *
 *   engine-swarm [--profile NAME | --url-file FILE] -n N [--hold SECONDS]
 *                [--report FILE]
 *
 * Prints (and with --report writes as JSON) how long registration took:
 * the first and the last Welcome after the first connect, for all N. Then
 * serves for --hold seconds (default: until SIGINT/SIGTERM) and exits.
 */
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "plexa/version.h"
#include "plx_conn.h"
#include "plx_envelope.h"
#include "plx_plugin_loader.h"
#include "plx_url.h"

typedef struct swarm swarm_t;

typedef struct fake {
    swarm_t    *sw;
    plx_conn_t *conn;
    int32_t     id;         /* -1 until welcomed */
    int         number;     /* In [n] counter */
    int         closed;
} fake_t;

struct swarm {
    struct ev_loop          *loop;
    const plx_transport_ops *tops;
    plx_url_t                url;
    char                     pin[80];
    fake_t                  *fakes;
    int                      n, welcomed, closed;
    double                   t_start, t_first, t_last;
    int                      stop;      /* SIGINT/SIGTERM seen */
    uint64_t                 next_id, executes, tasks;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void send_env(fake_t *f, Plexa__Envelope *env)
{
    env->has_id = 1;
    env->id = ++f->sw->next_id;
    plx_msg_t *m = plx_envelope_pack(env, NULL);
    if (m)
        plx_conn_send(f->conn, m);
}

/* A reply like a real engine's, without running anything. */
static void answer(fake_t *f, const Plexa__Envelope *in)
{
    Plexa__Envelope out;
    Plexa__Heartbeat hb = PLEXA__HEARTBEAT__INIT;
    Plexa__EngineReply er = PLEXA__ENGINE_REPLY__INIT;
    Plexa__ExecuteResult ex = PLEXA__EXECUTE_RESULT__INIT;
    Plexa__TaskResult tr = PLEXA__TASK_RESULT__INIT;
    Plexa__Value none = PLEXA__VALUE__INIT, *vals[1] = {&none};
    switch (in->body_case) {
    case PLEXA__ENVELOPE__BODY_HEARTBEAT:
        plx_envelope_set(&out, 0, in->id, PLEXA__ENVELOPE__BODY_HEARTBEAT, &hb);
        break;
    case PLEXA__ENVELOPE__BODY_TASK_RUN:
        f->sw->tasks++;
        tr.has_task_id = tr.has_status = 1;
        tr.task_id = in->task_run->task_id;
        tr.status = PLEXA__TASK_STATUS__TASK_OK;
        none.kind_case = PLEXA__VALUE__KIND_NONE;   /* a null task returns None */
        none.none = 1;
        tr.n_values = 1;
        tr.values = vals;
        plx_envelope_set(&out, 0, in->id, PLEXA__ENVELOPE__BODY_TASK_RESULT, &tr);
        break;
    case PLEXA__ENVELOPE__BODY_EXECUTE:
        f->sw->executes++;
        ex.has_number = 1;
        ex.number = ++f->number;
        ex.input = in->execute->code;
        ex.stdout = ex.stderr = "";
        er.execute = &ex;
        er.method = "execute";
        er.has_engine_id = 1;
        er.engine_id = f->id;
        plx_envelope_set(&out, 0, in->id, PLEXA__ENVELOPE__BODY_ENGINE_REPLY, &er);
        break;
    case PLEXA__ENVELOPE__BODY_INTERRUPT:
        return;
    default:
        er.method = "call";
        er.has_engine_id = 1;
        er.engine_id = f->id;
        plx_envelope_set(&out, 0, in->id, PLEXA__ENVELOPE__BODY_ENGINE_REPLY, &er);
        break;
    }
    send_env(f, &out);
}

static void on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    fake_t *f = ud;
    Plexa__Envelope *env = plx_envelope_unpack(m, NULL);
    if (env && env->body_case == PLEXA__ENVELOPE__BODY_WELCOME) {
        swarm_t *sw = f->sw;
        f->id = env->welcome->has_engine_id ? env->welcome->engine_id : 0;
        double t = now_s() - sw->t_start;
        if (sw->welcomed++ == 0)
            sw->t_first = t;
        sw->t_last = t;
        if (sw->welcomed == sw->n)
            ev_break(sw->loop, EVBREAK_ONE);   /* registration is complete: report */
    } else if (env && env->body_case == PLEXA__ENVELOPE__BODY_REJECT) {
        fprintf(stderr, "engine-swarm: rejected: %s\n", env->reject->reason);
    } else if (env) {
        answer(f, env);
    }
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
}

static void on_open(plx_conn_t *c, void *ud)
{
    fake_t *f = ud;
    Plexa__Hello h = PLEXA__HELLO__INIT;
    h.has_role = h.has_version = h.has_pid = 1;
    h.role = PLEXA__ROLE__ROLE_ENGINE;
    h.token = f->sw->url.token;
    h.version = PLX_PROTOCOL_VERSION;
    h.hostname = "swarm";
    h.pid = (int32_t)getpid();
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    send_env(f, &env);
}

static void on_close(plx_conn_t *c, int code, const char *why, void *ud)
{
    fake_t *f = ud;
    if (!f->closed++ && f->sw->closed++ < 5)
        fprintf(stderr, "engine-swarm: connection %ld closed: %s\n", (long)(f - f->sw->fakes),
                why);
}

static int connect_all(swarm_t *sw, plx_err_t *err)
{
    plx_security sec = {.fingerprint = sw->pin[0] ? sw->pin : NULL};
    static const plx_conn_cbs_t cbs = {.on_open = on_open, .on_msg = on_msg,
                                       .on_close = on_close};
    for (int i = 0; i < sw->n; i++) {
        fake_t *f = &sw->fakes[i];
        f->sw = sw;
        f->id = -1;
        void *h = NULL;
        int fd = -1;
        if (sw->tops->connect(sw->url.host, sw->url.port, &sec, &h, &fd, err) != PLX_OK)
            return plx_err_prefix(err, "connecting");
        f->conn = plx_conn_new(sw->loop, sw->tops, h, fd, NULL, &cbs, f, "swarm");
        if (!f->conn)
            return plx_err_set(err, PLX_ENOMEM, "out of memory");
    }
    return PLX_OK;
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
    ((swarm_t *)w->data)->stop = 1;
    ev_break(loop, EVBREAK_ALL);
}
static void on_hold(struct ev_loop *loop, ev_timer *w, int revents) { ev_break(loop, EVBREAK_ALL); }

static void raise_fd_limit(int n)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < (rlim_t)n + 64) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

static void report(const swarm_t *sw, const char *path)
{
    printf("engine-swarm: %d of %d engines registered; first Welcome after %.3f s, last "
           "after %.3f s\n", sw->welcomed, sw->n, sw->t_first, sw->t_last);
    fflush(stdout);
    if (!path)
        return;
    /* Written beside it and renamed: whoever waits for the file to appear
     * reads it whole. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "{\"engines\": %d, \"registered\": %d, \"first_s\": %.4f, \"all_s\": %.4f}\n",
            sw->n, sw->welcomed, sw->t_first, sw->t_last);
    if (fclose(f) == 0)
        rename(tmp, path);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"profile", required_argument, 0, 'p'}, {"url-file", required_argument, 0, 'f'},
        {"hold", required_argument, 0, 'H'},    {"report", required_argument, 0, 'r'},
        {0, 0, 0, 0}};
    const char *profile = NULL, *url_file = "", *report_path = NULL;
    double hold = -1;
    swarm_t sw = {0};
    int ch;
    while ((ch = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
        switch (ch) {
        case 'n': sw.n = atoi(optarg); break;
        case 'p': profile = optarg; break;
        case 'f': url_file = optarg; break;
        case 'H': hold = atof(optarg); break;
        case 'r': report_path = optarg; break;
        default:
            fprintf(stderr, "usage: engine-swarm [--profile NAME | --url-file FILE] -n N "
                            "[--hold SECONDS] [--report FILE]\n");
            return 2;
        }
    }
    plx_err_t err = {0};
    if (sw.n <= 0 ||
        plx_url_resolve(url_file, profile, "ipcontroller-engine.url", &sw.url, &err) != PLX_OK) {
        fprintf(stderr, "engine-swarm: %s\n", sw.n <= 0 ? "-n N (N > 0) is required" : err.msg);
        return 2;
    }
    if (sw.url.fingerprint[0])
        snprintf(sw.pin, sizeof sw.pin, "sha256:%s", sw.url.fingerprint);
    raise_fd_limit(sw.n);
    signal(SIGPIPE, SIG_IGN);
    sw.loop = ev_default_loop(EVFLAG_AUTO);
    sw.tops = plx_transport_find(sw.url.transport, &err);
    sw.fakes = calloc((size_t)sw.n, sizeof *sw.fakes);
    sw.t_start = now_s();
    if (!sw.tops || !sw.fakes || connect_all(&sw, &err) != PLX_OK) {
        fprintf(stderr, "engine-swarm: %s\n", err.msg[0] ? err.msg : "out of memory");
        return 1;
    }
    ev_signal sint, sterm;
    ev_signal_init(&sint, on_stop, SIGINT);
    ev_signal_init(&sterm, on_stop, SIGTERM);
    sint.data = sterm.data = &sw;
    ev_signal_start(sw.loop, &sint);
    ev_signal_start(sw.loop, &sterm);
    ev_run(sw.loop, 0);   /* until every engine is welcomed, or a signal */
    report(&sw, report_path);
    ev_timer hold_w;
    if (hold >= 0) {
        ev_timer_init(&hold_w, on_hold, hold, 0.);
        ev_timer_start(sw.loop, &hold_w);
    }
    if (hold != 0 && !sw.stop)
        ev_run(sw.loop, 0);
    printf("engine-swarm: answered %llu executes and %llu tasks\n",
           (unsigned long long)sw.executes, (unsigned long long)sw.tasks);
    for (int i = 0; i < sw.n; i++)
        plx_conn_destroy(&sw.fakes[i].conn);
    free(sw.fakes);
    return sw.welcomed == sw.n ? 0 : 1;
}
