/*
 * The controller's status page: a read-only view on loopback HTTP,
 * guarded by the status capability's token (the same one
 * ipcontroller-status.url carries; revoked and renewed with it).
 *
 *   GET /?token=T              the page (self-contained HTML + JS, no CDN)
 *   GET /status.json?token=T   engines, queues, task counts, a history of
 *                              task rate and queue length, recent errors,
 *                              uptime, memory
 *   GET /status.txt?token=T    the same for a terminal (ipcluster status)
 *
 * The token may also come as "Authorization: Bearer T". Anything else is
 * 403. The page's URL (with the token) is written to
 * security/ipcontroller-status.http, mode 0600. Building the JSON walks the
 * engine table once per request; nothing here runs on the request path of
 * engines or clients.
 */
#include "plx_controller_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "plx_http.h"
#include "plx_log.h"
#include "plx_time.h"
#include "plx_status_page.h"
#include "plx_strbuf.h"

#define HISTORY 300   /* samples, one per heartbeat tick */

typedef struct sample {
    double   t;          /* unix time */
    uint64_t finished;   /* tasks finished so far */
    uint64_t queued;     /* queued + waiting tasks */
    uint32_t busy;       /* engines running something */
} sample_t;

struct status {
    plx_http_t *http;
    sample_t    hist[HISTORY];
    unsigned    nhist;   /* ever sampled */
};

/* ---- JSON strings -------------------------------------------------------- */

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_str(plx_strbuf_t *b, const char *s)
{
    plx_strbuf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            plx_strbuf_printf(b, "\\%c", *p);
        else if (*p < 0x20)
            plx_strbuf_printf(b, "\\u%04x", *p);
        else
            plx_strbuf_putc(b, (char)*p);
    }
    plx_strbuf_putc(b, '"');
}

/* ---- the JSON ------------------------------------------------------------- */

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static unsigned count_subs(const sub_t *s)
{
    unsigned n = 0;
    for (; s; s = s->next)
        n++;
    return n;
}

static void engine_json(plx_controller_t *c, const engine_t *e, plx_strbuf_t *b)
{
    char current[160] = "";
    if (e->ihead && e->ihead->req)
        snprintf(current, sizeof current, "%s", e->ihead->req->desc);
    else if (e->trun.n)
        snprintf(current, sizeof current, "%llu task%s", (unsigned long long)e->trun.n,
                 e->trun.n == 1 ? "" : "s");
    double now = ev_now(c->loop);
    plx_strbuf_printf(b, "{\"id\":%d,\"host\":", e->id);
    json_str(b, e->host);
    plx_strbuf_printf(b, ",\"pid\":%d,\"state\":\"%s\",\"current\":", (int)e->pid,
                      current[0] ? "busy" : "idle");
    json_str(b, current);
    plx_strbuf_printf(b, ",\"queued\":%u,\"tasks_done\":%llu,\"requests_done\":%llu,"
                      "\"bytes_sent\":%llu,\"bytes_received\":%llu,"
                      "\"last_heartbeat_s\":%.3f,\"up_s\":%.1f}",
                      count_subs(e->qhead), (unsigned long long)e->tasks_done,
                      (unsigned long long)e->requests_done,
                      (unsigned long long)plx_conn_bytes_sent(e->peer->conn),
                      (unsigned long long)plx_conn_bytes_received(e->peer->conn),
                      now - e->last_seen, now - e->registered);
}

static void history_json(const struct status *st, plx_strbuf_t *b)
{
    unsigned n = st->nhist < HISTORY ? st->nhist : HISTORY;
    plx_strbuf_putc(b, '[');
    for (unsigned i = 0; i < n; i++) {
        const sample_t *s = &st->hist[(st->nhist - n + i) % HISTORY];
        const sample_t *p = i ? &st->hist[(st->nhist - n + i - 1) % HISTORY] : NULL;
        double rate = p && s->t > p->t ? (double)(s->finished - p->finished) / (s->t - p->t) : 0;
        plx_strbuf_printf(b, "%s{\"t\":%.3f,\"task_rate\":%.2f,\"queued\":%llu,\"busy\":%u}",
                          i ? "," : "", s->t, rate, (unsigned long long)s->queued, s->busy);
    }
    plx_strbuf_putc(b, ']');
}

static void errors_json(plx_strbuf_t *b)
{
    static char lines[PLX_LOG_RECENT_MAX][PLX_LOG_RECENT_LEN];
    size_t n = plx_log_recent(lines, PLX_LOG_RECENT_MAX);
    plx_strbuf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            plx_strbuf_putc(b, ',');
        json_str(b, lines[i]);
    }
    plx_strbuf_putc(b, ']');
}

static void status_json(plx_controller_t *c, plx_strbuf_t *b)
{
    sched_stats_t ts;
    sched_stats(c, &ts);
    plx_strbuf_puts(b, "{\"profile\":");
    json_str(b, c->profile.name);
    plx_strbuf_printf(b, ",\"pid\":%d,\"transport\":", (int)getpid());
    json_str(b, c->opts.transport);
    plx_strbuf_printf(b, ",\"time\":%.3f,\"uptime_s\":%.1f,\"rss_kib\":%ld,\"engines\":[",
                      plx_unix_now(), ev_now(c->loop) - c->started, rss_kib());
    int first = 1;
    for (int32_t i = 0; i < c->engines_cap; i++) {
        if (!c->engines[i])
            continue;
        if (!first)
            plx_strbuf_putc(b, ',');
        first = 0;
        engine_json(c, c->engines[i], b);
    }
    plx_strbuf_printf(b, "],\"tasks\":{\"queued\":%llu,\"waiting\":%llu,\"running\":%llu,"
                      "\"succeeded\":%llu,\"failed\":%llu,\"held_bytes\":%llu},\"history\":",
                      (unsigned long long)ts.queued, (unsigned long long)ts.waiting,
                      (unsigned long long)ts.running, (unsigned long long)ts.succeeded,
                      (unsigned long long)ts.failed, (unsigned long long)ts.held_bytes);
    history_json(c->status, b);
    plx_strbuf_puts(b, ",\"recent_errors\":");
    errors_json(b);
    plx_strbuf_puts(b, "}\n");
}

/* The same, as text for a terminal (`ipcluster status`). */
static void status_text(plx_controller_t *c, plx_strbuf_t *b)
{
    sched_stats_t ts;
    sched_stats(c, &ts);
    double now = ev_now(c->loop);
    plx_strbuf_printf(b, "  controller: pid %d, %s, up %.0f s, %.1f MiB\n", (int)getpid(),
                      c->opts.transport, now - c->started, (double)rss_kib() / 1024);
    plx_strbuf_printf(b, "  engines:    %d registered [", c->nengines);
    int first = 1;
    for (int32_t i = 0; i < c->engines_cap; i++)
        if (c->engines[i]) {
            plx_strbuf_printf(b, "%s%d", first ? "" : ", ", i);
            first = 0;
        }
    plx_strbuf_puts(b, "]\n");
    plx_strbuf_printf(b, "    %4s  %-16s %8s  %-5s %6s %10s %9s  %s\n", "id", "host", "pid",
                      "state", "queued", "tasks done", "heartbeat", "running");
    for (int32_t i = 0; i < c->engines_cap; i++) {
        const engine_t *e = c->engines[i];
        if (!e)
            continue;
        const char *cur = e->ihead && e->ihead->req ? e->ihead->req->desc : "";
        int busy = cur[0] || e->trun.n;
        plx_strbuf_printf(b, "    %4d  %-16.16s %8d  %-5s %6u %10llu %7.1fs  %.60s%s\n", e->id,
                          e->host, (int)e->pid, busy ? "busy" : "idle", count_subs(e->qhead),
                          (unsigned long long)e->tasks_done, now - e->last_seen,
                          cur[0] ? cur : (e->trun.n ? "tasks" : ""),
                          strlen(cur) > 60 ? "..." : "");
    }
    const struct status *st = c->status;
    double rate = 0;
    if (st->nhist >= 2) {
        const sample_t *a = &st->hist[(st->nhist - 2) % HISTORY];
        const sample_t *z = &st->hist[(st->nhist - 1) % HISTORY];
        rate = z->t > a->t ? (double)(z->finished - a->finished) / (z->t - a->t) : 0;
    }
    plx_strbuf_printf(b, "  tasks:      %llu queued, %llu waiting, %llu running, %llu succeeded, "
                      "%llu failed; %.0f tasks/s\n",
                      (unsigned long long)ts.queued, (unsigned long long)ts.waiting,
                      (unsigned long long)ts.running, (unsigned long long)ts.succeeded,
                      (unsigned long long)ts.failed, rate);
    static char lines[PLX_LOG_RECENT_MAX][PLX_LOG_RECENT_LEN];
    size_t n = plx_log_recent(lines, 5);
    for (size_t i = 0; i < n; i++)
        plx_strbuf_printf(b, "%s    %s\n", i ? "" : "  recent warnings and errors:\n", lines[i]);
}

/* ---- HTTP ----------------------------------------------------------------- */

static int authorized(plx_controller_t *c, const plx_http_req_t *req)
{
    char token[160] = "", why[400];
    if (!plx_http_query_get(req->query, "token", token, sizeof token) &&
        strncmp(req->auth, "Bearer ", 7) == 0)
        snprintf(token, sizeof token, "%s", req->auth + 7);
    return token[0] && caps_check(c, PLEXA__ROLE__ROLE_STATUS, token, why, sizeof why);
}

static void on_request(void *ud, const plx_http_req_t *req, plx_http_resp_t *resp)
{
    plx_controller_t *c = ud;
    plx_strbuf_t b = PLX_STRBUF_INIT;
    if (!authorized(c, req)) {
        resp->status = 403;
        resp->type = "text/plain; charset=utf-8";
        plx_strbuf_puts(&b, "403: this page needs the status capability's token: open the URL "
                            "in the profile's security/ipcontroller-status.http\n");
    } else if (strcmp(req->path, "/status.json") == 0) {
        resp->status = 200;
        resp->type = "application/json";
        status_json(c, &b);
    } else if (strcmp(req->path, "/status.txt") == 0) {
        resp->status = 200;
        resp->type = "text/plain; charset=utf-8";
        status_text(c, &b);
    } else if (strcmp(req->path, "/") == 0) {
        resp->status = 200;
        resp->type = "text/html; charset=utf-8";
        plx_strbuf_puts(&b, plx_status_page_html);
    } else {
        resp->status = 404;
        resp->type = "text/plain; charset=utf-8";
        plx_strbuf_puts(&b, "404: only /, /status.json and /status.txt are served here\n");
    }
    if (b.oom) {
        plx_strbuf_free(&b);
        resp->status = 500;
        plx_strbuf_puts(&b, "out of memory\n");
    }
    resp->len = b.len;
    resp->body = plx_strbuf_take(&b);
}

void status_token_changed(plx_controller_t *c)
{
    if (!c->status || !c->status->http)
        return;
    char url[256], path[4096];
    plx_err_t err = {0};
    snprintf(url, sizeof url, "http://127.0.0.1:%u/?token=%s\n",
             (unsigned)plx_http_port(c->status->http), c->caps[PLEXA__ROLE__ROLE_STATUS].token);
    plx_profile_file(&c->profile, "security", "ipcontroller-status.http", path, sizeof path);
    if (plx_file_write_secret(path, url, &err) != PLX_OK)
        PLX_ERROR("writing the status page's URL: %s", err.msg);
}

int status_start(plx_controller_t *c, plx_err_t *err)
{
    c->started = ev_now(c->loop);
    c->status = calloc(1, sizeof *c->status);
    if (!c->status)
        return plx_err_set(err, PLX_ENOMEM, "out of memory");
    if (c->opts.status_port < 0)
        return PLX_OK;   /* the page is off */
    c->status->http = plx_http_new(c->loop, "127.0.0.1", (uint16_t)c->opts.status_port,
                                   on_request, c, err);
    if (!c->status->http)
        return err->code;
    status_token_changed(c);
    PLX_INFO("status page on http://127.0.0.1:%u/ (URL with its token in "
             "security/ipcontroller-status.http)", (unsigned)plx_http_port(c->status->http));
    return PLX_OK;
}

void status_stop(plx_controller_t *c)
{
    if (!c->status)
        return;
    if (c->status->http) {
        char path[4096];
        plx_profile_file(&c->profile, "security", "ipcontroller-status.http", path,
                         sizeof path);
        unlink(path);
        plx_http_destroy(&c->status->http);
    }
    free(c->status);
    c->status = NULL;
}

void status_tick(plx_controller_t *c)
{
    if (!c->status)
        return;
    sched_stats_t ts;
    sched_stats(c, &ts);
    sample_t *s = &c->status->hist[c->status->nhist++ % HISTORY];
    s->t = plx_unix_now();
    s->finished = ts.finished_total;
    s->queued = ts.queued + ts.waiting;
    s->busy = 0;
    for (int32_t i = 0; i < c->engines_cap; i++)
        if (c->engines[i] && (c->engines[i]->ihead || c->engines[i]->trun.n))
            s->busy++;
}
