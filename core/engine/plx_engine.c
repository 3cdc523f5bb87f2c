/*
 * plx_engine_run: the engine's life from URL to exit, on the Python
 * (main) thread. See plx_engine.h, and plx_engine_int.h for the threads.
 */
#include "plx_bufpool.h"
#include "plx_engine_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plx_envelope.h"
#include "plx_log.h"
#include "plx_relay.h"
#include "plx_tunnel.h"
#include "plx_plugin_loader.h"

/* ---- deferred buffer releases ------------------------------------------- */

/* plx_pyvalue's hook: an export whose last reference goes on the I/O
 * thread (after its frame was written) is queued for the Python thread;
 * the I/O thread must never wait for the GIL. */
static int defer_export(plx_pyexport_t *x, void *ud)
{
    plx_engine_t *e = ud;
    if (pthread_equal(pthread_self(), e->py_thread))
        return 1;   /* release here: this thread runs Python */
    pthread_mutex_lock(&e->mu);
    *plx_pyexport_next(x) = e->deferred;
    e->deferred = x;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

static void drain_deferred(plx_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    plx_pyexport_t *list = e->deferred;
    e->deferred = NULL;
    pthread_mutex_unlock(&e->mu);
    plx_engine_release_exports(list);
}

/* ---- waiting on the Python thread (GIL released while blocked) ---------- */

typedef enum wait_for { WAIT_WELCOME, WAIT_REQUEST } wait_for_t;

/* sending: the last reply's writable exports are still being written (see
 * plx_pyvalue_writable_exports): the next request waits for them. */
static int ready_locked(const plx_engine_t *e, wait_for_t what, int sending)
{
    if (e->deferred || e->closed || e->refused || e->stop_signal)
        return 1;
    return what == WAIT_WELCOME ? e->registered
                                : (e->req_head != NULL && !sending) || e->id_news;
}

/* The engine came back under another id: tell user code (GIL held). */
static void py_new_id(plx_engine_t *e, int32_t id)
{
    PyObject *r = PyObject_CallFunction(e->fn_set_id, "i", (int)id);
    if (!r) {
        PLX_WARN("setting the new engine id %d failed", (int)id);
        PyErr_Clear();
    }
    Py_XDECREF(r);
}

/* Tell the controller the Python thread has taken task r and runs it now
 * (the scheduler's view of what an engine holds; see TaskStarted). Queued
 * behind the previous reply, so one wake-up of the I/O thread sends both. */
static void post_started(plx_engine_t *e, const plx_engine_req_t *r)
{
    Plexa__TaskStarted ts = PLEXA__TASK_STARTED__INIT;
    ts.has_task_id = 1;
    ts.task_id = r->env->task_run->task_id;
    Plexa__Envelope env;
    plx_envelope_set(&env, plx_engine_next_id(e), 0, PLEXA__ENVELOPE__BODY_TASK_STARTED, &ts);
    plx_err_t err = {0};
    plx_msg_t *m = plx_envelope_pack(&env, &err);
    if (!m) {
        PLX_WARN("cannot tell the controller task %llu started: %s",
                 (unsigned long long)ts.task_id, err.msg);
        return;
    }
    plx_engine_io_post(e, m, r->session);
}

/* How long an engine waits with nothing to do before it warms up: late
 * enough to stay out of a cluster's start-up (64 engines starting on two
 * cores), early enough to be done before a user's first call. */
#define WARM_UP_IDLE_S 1

/* Wait on cv; the first time the engine has been idle for WARM_UP_IDLE_S
 * while waiting for a request, return 1 instead (mu held either way). */
static int wait_or_warm_locked(plx_engine_t *e, wait_for_t what, const struct timespec *dl)
{
    if (what != WAIT_REQUEST || e->warmed || !e->fn_warm_up) {
        pthread_cond_wait(&e->cv, &e->mu);
        return 0;
    }
    return pthread_cond_timedwait(&e->cv, &e->mu, dl) == ETIMEDOUT;
}

/* What the engine's first calls would otherwise pay inside the user's
 * timed call (importing cloudpickle for a function sent by value: ~18 ms),
 * paid once while idle (GIL held). Failure costs nothing but the saving. */
static void py_warm_up(plx_engine_t *e)
{
    e->warmed = 1;
    PyObject *r = PyObject_CallNoArgs(e->fn_warm_up);
    if (!r)
        PyErr_Clear();
    Py_XDECREF(r);
}

/* Block until something for us happens. Returns the next request (its
 * run marked busy), or NULL when the wait ended otherwise: registration
 * news, a closed connection, or a stop signal (the caller looks at which).
 * Deferred exports are released on the way. */
static plx_engine_req_t *py_wait(plx_engine_t *e, wait_for_t what)
{
    for (;;) {
        plx_engine_req_t *r = NULL;
        plx_pyexport_t *dls;
        int done, id_news = 0, warm = 0;
        int32_t new_id = -1;
        /* Only this thread exports and releases: stable while it waits. */
        int sending = plx_pyvalue_writable_exports() > 0;
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += WARM_UP_IDLE_S;
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&e->mu);
        while (!warm && !ready_locked(e, what, sending))
            warm = wait_or_warm_locked(e, what, &dl);
        warm = warm && !ready_locked(e, what, sending);   /* work first, if it just came */
        dls = e->deferred;
        e->deferred = NULL;
        done = !warm && (e->closed || e->refused || e->stop_signal ||
                         (what == WAIT_WELCOME && e->registered));
        if (!done && what == WAIT_REQUEST && e->id_news) {
            id_news = 1;
            new_id = e->engine_id;
            e->id_news = 0;
        } else if (!done && !warm && what == WAIT_REQUEST && e->req_head && !sending) {
            r = e->req_head;
            e->req_head = r->next;
            if (!e->req_head)
                e->req_tail = NULL;
            e->busy = 1;
            e->running_task = r->env->body_case == PLEXA__ENVELOPE__BODY_TASK_RUN
                                  ? r->env->task_run->task_id : 0;
            e->running_req = r->env->id;
        }
        pthread_mutex_unlock(&e->mu);
        Py_END_ALLOW_THREADS
        plx_engine_release_exports(dls);
        if (warm)
            py_warm_up(e);
        if (id_news)
            py_new_id(e, new_id);
        if (r && r->env->body_case == PLEXA__ENVELOPE__BODY_TASK_RUN)
            post_started(e, r);
        if (done || r)
            return r;
    }
}

void plx_engine_req_free(plx_engine_req_t *r)
{
    if (!r)
        return;
    plx_envelope_free(&r->env);
    plx_msg_destroy(&r->msg);
    if (r->relay)
        plx_relay_finish(r->relay, 0);   /* if its fetch never came to an end */
    plx_relay_unref(&r->relay);
    free(r);
}

static void free_queued_requests(plx_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    plx_engine_req_t *r = e->req_head;
    e->req_head = e->req_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    while (r) {
        plx_engine_req_t *next = r->next;
        plx_engine_req_free(r);
        r = next;
    }
}

/* ---- phases ------------------------------------------------------------- */

extern char **environ;

/* Take NAME=value out of the environment, and blank the value where it
 * was: /proc/PID/environ shows the environment the process started with,
 * to processes of the same user, whatever unsetenv did since. */
static void scrub_env(const char *name)
{
    size_t n = strlen(name);
    for (char **v = environ; v && *v; v++)
        if (strncmp(*v, name, n) == 0 && (*v)[n] == '=')
            memset(*v + n + 1, 0, strlen(*v + n + 1));
    unsetenv(name);
}

/* Where the engine URL comes from: --url - or --url-file, the profile,
 * $PLEXA_URL, the file $PLEXA_URL_FILE names (batch jobs: the token stays
 * out of the job script and its environment), the default profile. */
static const char *url_source(const plx_engine_t *e)
{
    if (e->opts.url || e->opts.url_file)
        return e->opts.url ? e->opts.url : e->opts.url_file;
    const char *env = getenv("PLEXA_URL"), *file = getenv("PLEXA_URL_FILE");
    if ((!e->opts.profile || !*e->opts.profile) && !(env && *env) && file && *file)
        return file;
    return "";
}

static int engine_resolve(plx_engine_t *e, plx_err_t *err)
{
    int rc = plx_url_resolve(url_source(e), e->opts.profile, "ipcontroller-engine.url",
                             &e->url, err);
    /* The token is read: user code and its children must not find it. */
    scrub_env("PLEXA_URL");
    if (rc != PLX_OK)
        return rc;
    snprintf(e->url_shown, sizeof e->url_shown, "plx+%s://%s%s%s:%u", e->url.transport,
             strchr(e->url.host, ':') ? "[" : "", e->url.host,
             strchr(e->url.host, ':') ? "]" : "", (unsigned)e->url.port);
    e->ops = plx_transport_find(e->url.transport, err);
    if (!e->ops)
        return plx_err_prefix(err, e->url_shown);
    return PLX_OK;
}

/* Wait for Welcome or its failure; translate failures for the user. */
static int engine_register(plx_engine_t *e, plx_err_t *err)
{
    (void)py_wait(e, WAIT_WELCOME);   /* takes no request: they wait for Welcome */
    pthread_mutex_lock(&e->mu);
    int opened = e->opened, registered = e->registered, refused = e->refused;
    int closed = e->closed;
    int sig = e->stop_signal, code = e->close_code;
    char why[PLX_ERR_MSG_MAX];
    snprintf(why, sizeof why, "%s", e->why);
    pthread_mutex_unlock(&e->mu);
    if (refused)
        return plx_err_set(err, PLX_EAUTH, "controller refused registration: %s", why);
    if (sig)
        return 1;   /* stopped before registering: a clean end */
    if (registered)
        closed = 0;   /* welcomed, then lost (Python was slow to start): serving ends it */
    if (closed && code == PLX_ETIMEDOUT)
        return plx_err_set(err, PLX_ETIMEDOUT, "%s", why);
    if (!opened)
        return plx_err_set(err, PLX_ECONNECT, "cannot connect to the controller at %s: %s",
                           e->url_shown, why);
    if (closed || !registered)
        return plx_err_set(err, PLX_ECONNECT,
                           "the controller at %s closed the connection before accepting "
                           "the engine: %s", e->url_shown, why);
    PLX_INFO("registered as engine %d with the controller at %s", (int)e->engine_id,
             e->url_shown);
    return plx_engine_py_registered(e, e->engine_id, err);
}

/* After answering a shutdown: wait (bounded) until the controller closes
 * the connection, which it does once it has read the "kill" reply. Closing
 * first could lose the reply: a close with unread input (a heartbeat that
 * crossed the reply) makes the kernel send a reset instead of a FIN. */
#define KILL_LINGER_S 3.0

static void linger_after_kill(plx_engine_t *e)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)KILL_LINGER_S;
    int timed_out = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&e->mu);
    while (!e->closed && !e->stop_signal && !timed_out)
        timed_out = pthread_cond_timedwait(&e->cv, &e->mu, &dl) == ETIMEDOUT;
    pthread_mutex_unlock(&e->mu);
    Py_END_ALLOW_THREADS
    if (timed_out)
        PLX_WARN("the controller did not close the connection within %.0f s of the kill "
                 "reply; exiting anyway", KILL_LINGER_S);
}

/* Serve requests until the end; say why it ended. */
static void engine_serve(plx_engine_t *e)
{
    for (;;) {
        plx_engine_req_t *r = py_wait(e, WAIT_REQUEST);
        if (!r)
            break;
        int quit = plx_engine_py_serve(e, r);
        plx_engine_req_free(r);
        pthread_mutex_lock(&e->mu);
        e->busy = 0;
        e->running_task = 0;
        e->running_req = 0;
        atomic_store(&e->interrupt_wanted, 0);
        pthread_mutex_unlock(&e->mu);
        /* An interrupt that came as the request was ending (no user code
         * left to raise it in) must not hit the next one: from here on no
         * new one is raised, so run the pending KeyboardInterrupt and drop
         * it. */
        if (PyErr_CheckSignals() < 0)
            PyErr_Clear();
        if (quit) {
            linger_after_kill(e);
            return;
        }
    }
    pthread_mutex_lock(&e->mu);
    int sig = e->stop_signal;
    char why[PLX_ERR_MSG_MAX];
    snprintf(why, sizeof why, "%s", e->why);
    pthread_mutex_unlock(&e->mu);
    if (sig)
        PLX_INFO("stopped by %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    else
        PLX_INFO("controller connection closed (%s); exiting", why);
}

static int engine_init_sync(plx_engine_t *e, plx_err_t *err)
{
    int rc = pthread_mutex_init(&e->mu, NULL);
    if (rc == 0) {
        rc = pthread_cond_init(&e->cv, NULL);
        if (rc != 0)
            pthread_mutex_destroy(&e->mu);
    }
    if (rc == 0) {
        rc = plx_engine_output_init(e);
        if (rc == 0 && plx_engine_peer_init(e) != PLX_OK) {
            plx_engine_output_fini(e);
            rc = ENOMEM;
        }
        if (rc != 0) {
            pthread_cond_destroy(&e->cv);
            pthread_mutex_destroy(&e->mu);
        }
    }
    if (rc != 0)
        return plx_err_set(err, PLX_EIO, "pthread mutex/cond init: %s", strerror(rc));
    return PLX_OK;
}

/* --enginessh: the controller's address as the ssh server sees it, through
 * a local port that ssh forwards there (plx_tunnel.h); url_shown keeps
 * naming the controller. */
static int engine_tunnel(plx_engine_t *e, plx_err_t *err)
{
    uint16_t lport;
    double timeout = e->opts.register_timeout_s > 0 ? e->opts.register_timeout_s : 30.0;
    if (plx_tunnel_open(e->opts.enginessh, NULL, e->url.host, e->url.port, timeout, &e->tunnel,
                        &lport, err) != PLX_OK)
        return err->code;
    PLX_INFO("reaching the controller at %s through an ssh tunnel via %s (local port %u)",
             e->url_shown, e->opts.enginessh, (unsigned)lport);
    snprintf(e->url.host, sizeof e->url.host, "127.0.0.1");
    e->url.port = lport;
    return PLX_OK;
}

/* Stop the I/O thread, give back buffers, finalize Python. */
static void engine_teardown(plx_engine_t *e)
{
    plx_engine_signals_restore(e);
    plx_engine_io_stop(e);
    free_queued_requests(e);
    plx_engine_peer_fini(e);   /* its offers hold exports: before Python goes */
    if (Py_IsInitialized())
        drain_deferred(e);
    plx_pyvalue_set_release_defer(NULL, NULL);
    plx_engine_py_fini(e);
    plx_engine_output_fini(e);
    plx_tunnel_close(&e->tunnel);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
}

/* Freed payload memory the engine keeps for the next big push. */
#define POOL_MAX ((size_t)512 << 20)

int plx_engine_run(const plx_engine_opts_t *opts, plx_err_t *err)
{
    plx_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return plx_err_set(err, PLX_ENOMEM, "out of memory");
    e->opts = *opts;
    e->py_thread = pthread_self();
    atomic_init(&e->next_id, 2);   /* 1 is the Hello */
    /* A pushed array that replaces an old one frees the old one's memory:
     * the next big push reuses it instead of faulting in fresh pages
     * (plx_bufpool.h); the keepalive timer returns what stays idle. */
    plx_buf_pool_set_max(POOL_MAX);
    int rc = engine_init_sync(e, err);
    if (rc != PLX_OK) {
        free(e);
        return rc;
    }
    rc = engine_resolve(e, err);
    if (rc == PLX_OK && e->opts.enginessh)
        rc = engine_tunnel(e, err);   /* before the namespaces: ssh needs the user's ~/.ssh */
    if (rc == PLX_OK && !e->opts.show_secrets) {
        /* Before any thread starts: namespaces are per process. */
        plx_err_t herr = {0};
        if (plx_engine_hide_secrets(&herr) != PLX_OK)
            PLX_WARN("cannot hide the profiles' security directories from the code this "
                     "engine runs (%s): that code can read the other capabilities' tokens",
                     herr.msg);
    }
    if (rc == PLX_OK)
        rc = plx_engine_io_init(e, err);
    if (rc == PLX_OK) {
        plx_pyvalue_set_release_defer(defer_export, e);
        rc = plx_engine_io_start(e, err);   /* connects while Python starts */
    }
    if (rc == PLX_OK)
        rc = plx_engine_py_init(e, err);
    if (rc == PLX_OK) {
        plx_engine_signals_install(e);
        /* A SIGINT during Python's start-up only tripped its flag. */
        if (PyErr_CheckSignals() < 0) {
            PyErr_Clear();
            pthread_mutex_lock(&e->mu);
            e->stop_signal = SIGINT;
            pthread_mutex_unlock(&e->mu);
        }
        /* Register only now: an engine whose Python cannot start must
         * never look registered (ipcluster would count it ready). */
        plx_engine_io_python_ready(e);
        rc = engine_register(e, err);
    }
    if (rc == PLX_OK)
        engine_serve(e);
    engine_teardown(e);
    free(e);
    return rc < 0 ? rc : PLX_OK;
}
