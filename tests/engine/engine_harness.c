/* The fake controller and the tests' shared fixtures; see engine_harness.h. */
#include "engine_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plexa/version.h"
#include "plx_envelope.h"
#include "plx_test.h"
#include "plx_time.h"

#ifndef PLX_TEST_BUILD_DIR_DEFAULT
#define PLX_TEST_BUILD_DIR_DEFAULT "."
#endif

#define TOKEN "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static const char *build_dir(void)
{
    const char *d = getenv("PLX_TEST_BUILD_DIR");
    return d && *d ? d : PLX_TEST_BUILD_DIR_DEFAULT;
}

int engine_test_init(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    unsetenv("PLEXA_URL");
    return PLX_TEST_RUN;
}

int fake_init(fake_t *f)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->stdin_fd = -1;
    f->next_id = 1000;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sa;
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(f->lfd, 4) < 0 || getsockname(f->lfd, (struct sockaddr *)&sa, &sl) < 0) {
        perror("fake controller: listen");
        return -1;
    }
    f->port = ntohs(sa.sin_port);
    snprintf(f->url, sizeof f->url, "plx+tcp://127.0.0.1:%u/%s", (unsigned)f->port, TOKEN);
    snprintf(f->dir, sizeof f->dir, "/tmp/plx-engine-test-XXXXXX");
    if (!mkdtemp(f->dir)) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(f->log, sizeof f->log, "%s/engine.log", f->dir);
    f->dec = plx_decoder_new(NULL);
    return f->dec ? 0 : -1;
}

static void child_exec(const fake_t *f, const char *const *url_args)
{
    char exe[4096], plugins[4096];
    snprintf(exe, sizeof exe, "%s/bin/ipengine", build_dir());
    snprintf(plugins, sizeof plugins, "%s/lib/plexa/plugins", build_dir());
    setenv("PLX_PLUGIN_PATH", plugins, 1);
    int fd = open(f->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int null = open("/dev/null", O_RDONLY);
    if (fd < 0 || null < 0 || chdir(f->dir) < 0)
        _exit(127);
    dup2(fd, 2);
    dup2(f->stdin_fd >= 0 ? f->stdin_fd : null, 0);
    /* The token goes in the environment, never on the command line. */
    setenv("PLEXA_URL", f->url_env ? f->url_env : f->url, 1);
    const char *argv[20] = { exe };
    int n = 1;
    while (url_args && *url_args && n < 14)
        argv[n++] = *url_args++;
    argv[n++] = "--reconnect";
    argv[n++] = f->reconnect ? f->reconnect : "0";
    argv[n++] = "--log-level";
    argv[n++] = "debug";
    argv[n] = NULL;
    execv(exe, (char *const *)argv);
    dprintf(2, "exec %s: %s\n", exe, strerror(errno));
    _exit(127);
}

int fake_spawn(fake_t *f, const char *const *url_args)
{
    /* A module next to the engine's start directory: it must import. */
    char mod[128];
    snprintf(mod, sizeof mod, "%s/engmod.py", f->dir);
    FILE *m = fopen(mod, "w");
    if (m) {
        fputs("VALUE = 'from the start directory'\n", m);
        fclose(m);
    }
    f->pid = fork();
    if (f->pid < 0)
        return -1;
    if (f->pid == 0)
        child_exec(f, url_args);
    return 0;
}

int fake_accept(fake_t *f, double timeout_s)
{
    struct pollfd p = { .fd = f->lfd, .events = POLLIN };
    if (poll(&p, 1, (int)(timeout_s * 1000)) != 1)
        return -1;
    f->fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
    return f->fd < 0 ? -1 : 0;
}

/* Blocking gather write of the whole frame; iov is consumed. */
static int write_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t w = writev(fd, iov, cnt < 1024 ? cnt : 1024);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        while (cnt > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

uint64_t fake_send(fake_t *f, Plexa__Envelope *env, plx_buf_t **bufs, uint32_t nbufs)
{
    if (!env->has_id || env->id == 0) {
        env->has_id = 1;
        env->id = f->next_id++;
    }
    plx_err_t err = {0};
    plx_msg_t *m = plx_envelope_pack(env, &err);
    for (uint32_t i = 0; m && i < nbufs; i++)
        plx_msg_add_buf(m, bufs[i]);
    struct iovec *iov = m ? calloc((size_t)plx_msg_iovcnt(m), sizeof *iov) : NULL;
    int cnt = iov ? plx_msg_iov(m, iov) : -1;
    int rc = cnt > 0 ? write_all(f->fd, iov, cnt) : -1;
    free(iov);
    plx_msg_destroy(&m);
    if (rc < 0)
        fprintf(stderr, "fake controller: send failed\n");
    return env->id;
}

/* env (an id given if it has none) and bufs as one frame's bytes, in
 * *total; NULL on ENOMEM. Caller frees. */
static uint8_t *flat_frame(fake_t *f, Plexa__Envelope *env, plx_buf_t **bufs, uint32_t nbufs,
                           size_t *total)
{
    if (!env->has_id || env->id == 0) {
        env->has_id = 1;
        env->id = f->next_id++;
    }
    plx_err_t err = {0};
    plx_msg_t *m = plx_envelope_pack(env, &err);
    for (uint32_t i = 0; m && i < nbufs; i++)
        plx_msg_add_buf(m, bufs[i]);
    int cnt = m ? plx_msg_iovcnt(m) : 0;
    struct iovec *iov = cnt > 0 ? calloc((size_t)cnt, sizeof *iov) : NULL;
    *total = 0;
    if (iov && plx_msg_iov(m, iov) == cnt)
        for (int i = 0; i < cnt; i++)
            *total += iov[i].iov_len;
    uint8_t *flat = *total ? malloc(*total) : NULL;
    for (size_t i = 0, at = 0; flat && i < (size_t)cnt; at += iov[i].iov_len, i++)
        memcpy(flat + at, iov[i].iov_base, iov[i].iov_len);
    free(iov);
    plx_msg_destroy(&m);
    return flat;
}

uint64_t fake_send_slowly(fake_t *f, Plexa__Envelope *env, int pieces, double seconds)
{
    size_t total;
    uint8_t *flat = flat_frame(f, env, NULL, 0, &total);
    size_t step = flat ? (total + (size_t)pieces - 1) / (size_t)pieces : 0;
    for (size_t at = 0; flat && at < total; at += step) {
        struct iovec one = { flat + at, total - at < step ? total - at : step };
        if (write_all(f->fd, &one, 1) < 0) {
            fprintf(stderr, "fake controller: slow send failed at byte %zu\n", at);
            break;
        }
        usleep((useconds_t)(seconds / pieces * 1e6));
    }
    free(flat);
    return env->id;
}

uint64_t fake_send_halves(fake_t *f, Plexa__Envelope *env, plx_buf_t **bufs, uint32_t nbufs,
                          void (*between)(void *ud), void *ud)
{
    size_t total;
    uint8_t *flat = flat_frame(f, env, bufs, nbufs, &total);
    struct iovec half[2] = { { flat, total / 2 }, { flat + total / 2, total - total / 2 } };
    for (int i = 0; flat && i < 2; i++) {
        if (write_all(f->fd, &half[i], 1) < 0) {
            fprintf(stderr, "fake controller: send failed\n");
            break;
        }
        if (i == 0)
            between(ud);
    }
    free(flat);
    return env->id;
}

Plexa__Envelope *fake_recv(fake_t *f, double timeout_s, plx_msg_t **msg)
{
    double deadline = plx_now_s() + timeout_s;
    for (;;) {
        while (f->rpos < f->rlen) {
            size_t used = 0;
            plx_msg_t *m = NULL;
            plx_err_t err = {0};
            int rc = plx_decoder_feed(f->dec, f->rbuf + f->rpos, f->rlen - f->rpos, &used, &m,
                                      &err);
            f->rpos += used;
            if (rc < 0) {
                fprintf(stderr, "fake controller: bad frame: %s\n", err.msg);
                return NULL;
            }
            if (rc == 1) {
                Plexa__Envelope *env = plx_envelope_unpack(m, &err);
                if (msg)
                    *msg = m;
                else
                    plx_msg_destroy(&m);
                return env;
            }
        }
        double left = deadline - plx_now_s();
        struct pollfd p = { .fd = f->fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) != 1)
            return NULL;
        ssize_t n = read(f->fd, f->rbuf, sizeof f->rbuf);
        if (n <= 0)
            return NULL;
        f->rpos = 0;
        f->rlen = (size_t)n;
    }
}

int fake_wait_exit(fake_t *f, double timeout_s)
{
    double deadline = plx_now_s() + timeout_s;
    while (f->pid > 0) {
        pid_t r = waitpid(f->pid, &f->status, WNOHANG);
        if (r == f->pid) {
            f->pid = 0;
            return 0;
        }
        if (plx_now_s() > deadline)
            return -1;
        usleep(20000);
    }
    return 0;
}

void fake_close_conn(fake_t *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    /* A new connection starts a new byte stream. */
    f->rpos = f->rlen = 0;
    plx_decoder_destroy(&f->dec);
    f->dec = plx_decoder_new(NULL);
}

void fake_welcome(fake_t *f, int32_t id, uint32_t hb_ms)
{
    Plexa__Welcome w = PLEXA__WELCOME__INIT;
    w.has_engine_id = 1;
    w.engine_id = id;
    w.has_heartbeat_ms = 1;
    w.heartbeat_ms = hb_ms;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.has_reply_to = 1;
    env.reply_to = 1;
    env.body_case = PLEXA__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    fake_send(f, &env, NULL, 0);
    f->engine_id = id;
}

char *fake_log(const fake_t *f)
{
    FILE *fp = fopen(f->log, "r");
    char *s = calloc(1, 1 << 20);
    if (fp && s) {
        size_t n = fread(s, 1, (1 << 20) - 1, fp);
        s[n] = '\0';
    }
    if (fp)
        fclose(fp);
    return s;
}

void fake_fini(fake_t *f, int dump)
{
    if (f->pid > 0) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
    }
    fake_close_conn(f);
    if (f->lfd >= 0)
        close(f->lfd);
    plx_decoder_destroy(&f->dec);
    if (dump) {
        char *log = fake_log(f);
        fprintf(stderr, "---- engine log (%s) ----\n%s---- end ----\n", f->log, log ? log : "");
        free(log);
    }
    if (f->dir[0] && plx_test_rmtree(f->dir) != 0)
        fprintf(stderr, "could not remove %s: %s\n", f->dir, strerror(errno));
}

uint64_t fake_execute(fake_t *f, const char *code)
{
    Plexa__Execute ex = PLEXA__EXECUTE__INIT;
    ex.code = (char *)code;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_EXECUTE;
    env.execute = &ex;
    return fake_send(f, &env, NULL, 0);
}

/* Live output: kept in order, each chunk as "name:text" on its own. */
static void fake_keep_output(fake_t *f, const Plexa__Envelope *r)
{
    const char *name = r->output->name ? r->output->name : "?";
    const char *text = r->output->text ? r->output->text : "";
    if (f->nlive_msgs++ == 0)
        f->live_first_at = plx_now_s();
    f->live_reply_to = r->reply_to;
    size_t room = sizeof f->live - f->nlive;
    int n = snprintf(f->live + f->nlive, room, "%s:%s|", name, text);
    if (n > 0)
        f->nlive += (size_t)n < room ? (size_t)n : room - 1;
}

Plexa__Envelope *fake_recv_reply(fake_t *f, double timeout_s, plx_msg_t **msg)
{
    double deadline = plx_now_s() + timeout_s;
    for (;;) {
        double left = deadline - plx_now_s();
        Plexa__Envelope *r = fake_recv(f, left > 0 ? left : 0, msg);
        if (r && r->body_case == PLEXA__ENVELOPE__BODY_TASK_STARTED) {
            if (f->nstarted < sizeof f->started / sizeof f->started[0])
                f->started[f->nstarted] = r->task_started->task_id;
            f->nstarted++;
        } else if (r && r->body_case == PLEXA__ENVELOPE__BODY_OUTPUT) {
            fake_keep_output(f, r);
        } else if (!r || r->body_case != PLEXA__ENVELOPE__BODY_HEARTBEAT || r->has_reply_to) {
            return r;
        }
        plx_envelope_free(&r);   /* the engine's keepalive, or a TaskStarted */
        if (msg)
            plx_msg_destroy(msg);
    }
}

Plexa__Envelope *fake_call(fake_t *f, Plexa__Envelope *req, plx_buf_t **bufs, uint32_t nbufs,
                           double timeout_s, plx_msg_t **msg)
{
    uint64_t id = fake_send(f, req, bufs, nbufs);
    Plexa__Envelope *r = fake_recv_reply(f, timeout_s, msg);
    if (r && (r->body_case != PLEXA__ENVELOPE__BODY_ENGINE_REPLY || r->reply_to != id))
        fprintf(stderr, "fake controller: unexpected %s (reply_to %llu, wanted %llu)\n",
                plx_envelope_body_name(r), (unsigned long long)r->reply_to,
                (unsigned long long)id);
    return r;
}

Plexa__Envelope *fake_exec_call(fake_t *f, const char *code, double timeout_s)
{
    Plexa__Execute ex = PLEXA__EXECUTE__INIT;
    ex.code = (char *)code;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_EXECUTE;
    env.execute = &ex;
    return fake_call(f, &env, NULL, 0, timeout_s, NULL);
}

int fake_saw_started(const fake_t *f, uint64_t task_id)
{
    size_t n = f->nstarted < sizeof f->started / sizeof f->started[0]
                   ? f->nstarted : sizeof f->started / sizeof f->started[0];
    for (size_t i = 0; i < n; i++)
        if (f->started[i] == task_id)
            return 1;
    return 0;
}

/* ---- cmocka fixtures ------------------------------------------------------ */

int fake_setup(void **state)
{
    fake_t *f = calloc(1, sizeof *f);
    if (!f || fake_init(f) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

int fake_teardown(void **state)
{
    fake_t *f = *state;
    /* The log is printed for every test; ctest shows it on failure. */
    fake_fini(f, 1);
    free(f);
    return 0;
}

uint64_t fake_register(fake_t *f, int32_t claim, int32_t id)
{
    assert_int_equal(fake_accept(f, T_START), 0);
    Plexa__Envelope *h = fake_recv(f, T_START, NULL);
    assert_non_null(h);
    assert_int_equal(h->body_case, PLEXA__ENVELOPE__BODY_HELLO);
    assert_int_equal(h->hello->role, PLEXA__ROLE__ROLE_ENGINE);
    assert_string_equal(h->hello->token, strrchr(f->url, '/') + 1);
    assert_int_equal(h->hello->version, PLX_PROTOCOL_VERSION);
    assert_int_equal(h->hello->pid, f->pid);
    assert_non_null(h->hello->hostname);
    if (claim >= 0) {
        assert_true(h->hello->has_engine_id);
        assert_int_equal(h->hello->engine_id, claim);
    } else {
        assert_false(h->hello->has_engine_id);
    }
    uint64_t hello_id = h->id;
    plx_envelope_free(&h);
    fake_welcome(f, id, 1000);
    return hello_id;
}

void fake_start_registered(fake_t *f)
{
    assert_int_equal(fake_spawn(f, NULL), 0);
    assert_int_equal(fake_register(f, -1, 3), 1);
}

void fake_exec_ok(fake_t *f, const char *code, const char *out, int number)
{
    Plexa__Envelope *r = fake_exec_call(f, code, T_REPLY);
    assert_non_null(r);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_ENGINE_REPLY);
    Plexa__EngineReply *er = r->engine_reply;
    if (er->error)
        fprintf(stderr, "unexpected error for %s: %s: %s\n%s\n", code, er->error->ename,
                er->error->evalue, er->error->traceback ? er->error->traceback : "");
    assert_null(er->error);
    assert_int_equal(er->engine_id, f->engine_id);
    assert_string_equal(er->method, "execute");
    assert_non_null(er->execute);
    assert_string_equal(er->execute->input, code);
    if (number > 0)
        assert_int_equal(er->execute->number, number);
    if (out)
        assert_string_equal(er->execute->stdout ? er->execute->stdout : "", out);
    plx_envelope_free(&r);
}

/* ---- values --------------------------------------------------------------- */

Plexa__Value val_i64(int64_t n)
{
    Plexa__Value v = PLEXA__VALUE__INIT;
    v.kind_case = PLEXA__VALUE__KIND_I64;
    v.i64 = n;
    return v;
}

Plexa__Value val_str(const char *s)
{
    Plexa__Value v = PLEXA__VALUE__INIT;
    v.kind_case = PLEXA__VALUE__KIND_STR;
    v.str = (char *)s;
    return v;
}

Plexa__Value val_none(void)
{
    Plexa__Value v = PLEXA__VALUE__INIT;
    v.kind_case = PLEXA__VALUE__KIND_NONE;
    v.none = 1;
    return v;
}

Plexa__Value val_list(Plexa__ValueList *l, Plexa__Value **items, size_t n, int tuple)
{
    plexa__value_list__init(l);
    l->n_items = n;
    l->items = items;
    l->has_tuple = 1;
    l->tuple = tuple;
    Plexa__Value v = PLEXA__VALUE__INIT;
    v.kind_case = PLEXA__VALUE__KIND_LIST;
    v.list = l;
    return v;
}
