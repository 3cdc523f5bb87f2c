"""bench/run's report: ratios, each issue's targets, and the tables it prints
and writes."""

import json
import os
import platform
import subprocess
import sys

from plxbench import hostile, hosts
from plxbench.common import (
    BCAST_ENGINES, BCAST_PP_CASE, BCAST_REF_CASE, BCAST_REF_RSS_CASE, ENGINES, LB_EXP_CASE,
    LB_LONG_CASE, MiB, NAP, NAP_NS, PEERS, PER_IDEAL, UNEVEN_SPEC, W10, W3, W7, exp_durations,
    fmt, log, nap_case, size_name, status_text
)


# ---- reporting -----------------------------------------------------------------------------

def ratios(R):
    """plexa / peer for every case both measured (medians)."""
    out = []
    rows = sorted_rows(R)
    for p in rows:
        if p['system'] != 'plexa' or p['status'] != 'ok':
            continue
        # every system's ideal is the same there: the ratio is the seconds row's
        if p['workload'] == W7 and p['case'].endswith(PER_IDEAL):
            continue
        for q in rows:
            if q['system'] not in PEERS or q['case'] != p['case'] or q['status'] != 'ok' \
                    or q['workload'] != p['workload'] or not q['median']:
                continue
            ratio = p['median'] / q['median']
            better = ratio if p['higher_better'] else (1.0 / ratio if ratio else float('inf'))
            out.append(dict(workload=p['workload'], case=p['case'], peer=q['system'],
                            peer_api=q['api'], plexa=p['median'], peer_value=q['median'],
                            unit=p['unit'], ratio=ratio, plexa_better_by=better))
    return out


# The issue's target for TLS: at most 20% less bandwidth than tcp (AES-GCM),
# checked on the largest push/pull.
TLS_COST_TARGET = 0.20


def plexa_paths(ctx):
    """{system: path} for plexa's clusters in this run, in the order of
    their rows: `plexa` (the default profile) 'shm' when its client used
    shared memory, else its transport; the comparison clusters ('tls',
    'tcp', shared memory off)."""
    t = getattr(ctx, 'plexa_transports', None) or {}
    out = {}
    if t.get('default'):
        out['plexa'] = 'shm' if t.get('shm') else t['default']
    for c in t.get('compared', []):
        out[c['system']] = c['transport']
    return out


def tls_vs_tcp(ctx, R):
    """plexa over tls against plexa over tcp, both with shared memory off,
    for every case both measured: the medians, tls/tcp, and what TLS costs
    (bandwidth lost, or time added, as a fraction of tcp's figure)."""
    by_path = {path: system for system, path in plexa_paths(ctx).items()
               if system != 'plexa'}
    if 'tls' not in by_path or 'tcp' not in by_path:
        return tls_limits(R)
    systems = {'tls': by_path['tls'], 'tcp': by_path['tcp']}
    big = size_name(max(R.params.push_sizes))
    out = []
    for r in sorted_rows(R):
        if r['system'] != systems['tls'] or r['status'] != 'ok':
            continue
        q = next((q for q in R.rows if q['system'] == systems['tcp'] and q['status'] == 'ok'
                  and q['case'] == r['case'] and q['workload'] == r['workload']), None)
        if q is None or not q['median']:
            continue
        ratio = r['median'] / q['median']
        cost = 1.0 - ratio if r['higher_better'] else ratio - 1.0
        target = None
        if r['workload'] == W3 and r['case'].endswith(' ' + big):
            target = 'met' if cost <= TLS_COST_TARGET else 'MISSED'
        out.append(dict(workload=r['workload'], case=r['case'], unit=r['unit'],
                        higher_better=r['higher_better'], tls=r['median'], tcp=q['median'],
                        tls_min=r['min'], tls_max=r['max'], tcp_min=q['min'], tcp_max=q['max'],
                        ratio=ratio, cost=cost, target=target))
    return out + tls_limits(R)


def tls_limits(R):
    """The same comparison with no plexa in between (the limits' rows): one
    raw loopback stream (netlimits), and plexa's transport plugins alone on
    one connection (tls_stream), a stream and round trips. The least TLS can
    cost on this machine."""
    size = size_name(R.params.tcp_bytes)
    psize = size_name(R.params.plugin_mib * MiB)
    pairs = (('TLS stream %s' % size, 'TCP stream %s' % size,
              'raw stream %s (limit, no plexa)' % size),
             ('plugin TLS stream %s' % psize, 'plugin TCP stream %s' % psize,
              'plugin stream %s (limit, the plugins alone)' % psize),
             ('plugin TLS round trip mean', 'plugin TCP round trip mean',
              'plugin round trip mean (limit, the plugins alone)'))
    rows = {r['case']: r for r in R.rows if r['system'] == 'limit' and r['status'] == 'ok'}
    out = []
    for tls_case, tcp_case, case in pairs:
        t, c = rows.get(tls_case), rows.get(tcp_case)
        if not t or not c or not c['median']:
            continue
        ratio = t['median'] / c['median']
        out.append(dict(workload=t['workload'], case=case, unit=t['unit'],
                        higher_better=t['higher_better'], tls=t['median'], tcp=c['median'],
                        tls_min=t['min'], tls_max=t['max'], tcp_min=c['min'], tcp_max=c['max'],
                        ratio=ratio, cost=1.0 - ratio if t['higher_better'] else ratio - 1.0,
                        target=None))
    return out


def verdict(better):
    if better >= 1:
        return '%s better' % times(better)
    return '%s worse' % times(1.0 / better if better else float('inf'))


def times(x):
    if x >= 100:
        return '%.0fx' % x
    if x >= 10:
        return '%.1fx' % x
    return '%.2fx' % x


class Targets(list):
    """One issue's targets, checked against this run (informational)."""

    def __init__(self, R, issue):
        list.__init__(self)
        self.R, self.issue = R, issue

    def med(self, system, case):
        r = self.R.find(system, case)
        return r['median'] if r else None

    def why_not(self, system, case):
        for r in self.R.rows:
            if r['system'] == system and r['case'] == case:
                return status_text(r) if r['status'] != 'ok' else 'not measured'
        return 'not measured'

    def add(self, name, value, ok, how, system='plexa', case=None):
        self.append(dict(issue=self.issue, target=name,
                         measured=how if value is not None else self.why_not(system, case),
                         wanted=None,
                         status=('met' if ok else 'MISSED') if value is not None else '-'))

    def at_least(self, name, system, case, factor, ref, ref_name):
        """The target `system`'s `case` >= factor x ref (a median of this
        run, or None if it was not measured: then the target is '-')."""
        v = self.med(system, case)
        wanted = ('≥ %s MB/s (%g × %s MB/s)' % (fmt(factor * ref), factor, fmt(ref)) if ref
                  else 'not measured: %s (system limits)' % ref_name)
        got = ('%s MB/s = %.2f× the stream' % (fmt(v), v / ref) if ref else '%s MB/s' % fmt(v)) \
            if v is not None else self.why_not(system, case)
        self.append(dict(issue=self.issue, target=name, measured=got, wanted=wanted,
                         status=('met' if v >= factor * ref else 'MISSED')
                         if v is not None and ref else '-'))


def off(want, got):
    """--quick measures smaller maps than the targets are set for."""
    return '' if got == want else '; indicative: the target is for N=%d' % want


def targets(R, ctx=None):
    """Issues 7's, 16's, 17's and 22's targets, in one list (each says its issue)."""
    return (issue7_targets(R, ctx) + issue16_targets(R) + issue17_targets(R)
            + issue22_targets(R, ctx))


def issue7_targets(R, ctx=None):
    P = R.params
    out = Targets(R, 7)
    med, add = out.med, out.add
    n = max(P.null_ns)
    case = 'map N=%d' % n
    pm, im, dm = med('plexa', case), med('ipyparallel', case), med('dask', case)
    add('TaskClient.map ≥ 100 000 tasks/s (%s%s)' % (case, off(100000, n)), pm,
        pm is not None and pm >= 100000, '%s tasks/s' % fmt(pm), case=case)
    if im:
        add('TaskClient.map ≥ 250x ipyparallel lview.map (%s%s)' % (case, off(100000, n)), pm,
            pm is not None and pm / im >= 250, times(pm / im) if pm else '', case=case)
    if dm:
        add('TaskClient.map ≥ 150x Dask client.map (%s%s)' % (case, off(100000, n)), pm,
            pm is not None and pm / dm >= 150, times(pm / dm) if pm else '', case=case)
    case = 'submit N=%d' % P.submit_n
    ps, iS = med('plexa', case), med('ipyparallel', case)
    add('run(MapTask)+barrier ≥ 10 000 tasks/s (%s%s)' % (case, off(10000, P.submit_n)), ps,
        ps is not None and ps >= 10000, '%s tasks/s' % fmt(ps), case=case)
    if iS:
        add('run(MapTask)+barrier ≥ 30x ipyparallel apply_async (%s%s)'
            % (case, off(10000, P.submit_n)), ps,
            ps is not None and ps / iS >= 30, times(ps / iS) if ps else '', case=case)
    v = med('plexa', UNEVEN_SPEC)
    add('a map whose task times vary 100x within 10% of the ideal', v,
        v is not None and v <= 1.10, '%s x the ideal' % fmt(v), case=UNEVEN_SPEC)
    pe, lim = med('plexa', 'execute mean'), med('limit', 'TCP ping-pong cross-CPU mean')
    if lim:
        add('execute round trip ≤ 3x cross-CPU TCP ping-pong', pe,
            pe is not None and pe <= 3 * lim,
            '%s us = %s the ping-pong (%s us)' % (fmt(pe), times(pe / lim), fmt(lim))
            if pe else '', case='execute mean')
    tcp = med('limit', 'TCP stream %s' % size_name(P.tcp_bytes))
    tls = med('limit', 'TLS stream %s' % size_name(P.tcp_bytes))
    big = size_name(max(P.push_sizes))
    for system, transport in plexa_paths(ctx).items():
        for d in ('push', 'pull'):
            v = med(system, '%s %s' % (d, big))
            if not tcp:
                continue
            how = '%s MB/s = %.0f%% of %s MB/s' % (fmt(v), 100 * v / tcp, fmt(tcp)) if v else ''
            if v and transport == 'tls' and tls:
                # what one raw TLS stream reaches here, for scale
                how += ' (a raw TLS stream: %.0f%%)' % (100 * tls / tcp)
            add('%s %s ≥ 50%% of loopback TCP bandwidth%s' % (
                    d, big, ' (%s)' % transport if transport else ''), v,
                v is not None and v >= 0.5 * tcp, how, system=system,
                case='%s %s' % (d, big))
    v, lim = med('plexa', 'speedup, 2 engines'), med('limit', 'speedup, 2 engines')
    add('prime speedup ≥ 1.9 on 2 engines', v, v is not None and v >= 1.9,
        fmt(v) + (' (2 plain processes: %s)' % fmt(lim) if lim else ''),
        case='speedup, 2 engines')
    v = med('plexa', '2 engines')
    add('start-up of 2 engines ≤ 0.3 s', v, v is not None and v <= 0.3, '%s s' % fmt(v),
        case='2 engines')
    return out


def issue16_targets(R):
    """Load balance: plexa's elapsed time against a bound derived from the
    ideal; the peers' times alongside, for comparison only."""
    P = R.params
    out = Targets(R, 16)
    med, add = out.med, out.add

    def peers(case):
        vs = [(p, med(p, case)) for p in PEERS]
        vs = ['%s %s s' % (p, fmt(v)) for p, v in vs if v is not None]
        return ' (%s)' % ', '.join(vs) if vs else ''

    def elapsed(case, bound, name):
        v, x = med('plexa', case), med('plexa', case + PER_IDEAL)
        how = '%s s = %s the ideal%s' % (fmt(v), times(x) if x else '?', peers(case)) \
            if v is not None else ''
        add(name, v, v is not None and v <= bound, how, case=case)

    for kind, api in (('map', 'tc.map(nap, [0.4]*n)'),
                      ('submit', 'n x tc.run(MapTask(nap, args=(0.4,))) + barrier')):
        for n in NAP_NS:
            ideal = -(-n // ENGINES) * NAP
            bound = 1.06 * ideal + 0.040
            elapsed(nap_case(kind, n), bound,
                    '%s, n = %d, on %d engines: ≤ 1.06 × %g s + 40 ms = %.3f s'
                    % (api, n, ENGINES, ideal, bound))
    elapsed(LB_LONG_CASE, 2.1, 'tc.map(nap, [2.0] + [0.1]*5) ≤ 2.1 s')
    d = exp_durations()
    ideal = max(sum(d) / ENGINES, max(d))
    elapsed(LB_EXP_CASE, 1.10 * ideal,
            'tc.map(nap, 300 exponential durations, mean 20 ms) ≤ 1.10 × max(sum/engines, '
            'longest) = 1.10 × %s s' % fmt(ideal))
    n = max(P.null_ns)
    case = 'map N=%d' % n
    v = med('plexa', case)
    add('TaskClient.map of null tasks ≥ 1 000 000 tasks/s (%s%s)' % (case, off(100000, n)),
        v, v is not None and v >= 1e6, '%s tasks/s' % fmt(v), case=case)
    case = 'submit N=%d' % P.submit_n
    v = med('plexa', case)
    add('tc.run(MapTask) + barrier of null tasks ≥ 15 000 tasks/s (%s%s)'
        % (case, off(10000, P.submit_n)),
        v, v is not None and v >= 15000, '%s tasks/s' % fmt(v), case=case)
    return out


def issue17_targets(R):
    """Serving clients under attack (workload 11): the threat model's
    figures, which the security suite does not time."""
    out = Targets(R, 17)
    for case, ok, unit, name in (
            (hostile.FLOOD_CASE % 'max', lambda v: v < 100, 'ms',
             'get_ids < 100 ms while 1 GiB unauthenticated frames arrive'),
            (hostile.FLOOD_RSS_CASE, lambda v: v < 64, 'MiB',
             'controller RSS grows < 64 MiB while they arrive'),
            (hostile.IDLE_CASE % hostile.IDLE_CONNECTIONS, lambda v: v <= 7, 'ms',
             'execute ≤ 7 ms with %d idle connections' % hostile.IDLE_CONNECTIONS)):
        v = out.med('plexa', case)
        out.add(name, v, v is not None and ok(v), '%s %s' % (fmt(v), unit), case=case)
    return out


def issue22_targets(R, ctx=None):
    """Bulk data at memory speed: push/pull and scatter/gather through
    shared memory (the default cluster's rows) against the loopback TCP
    stream of the same run (the limits)."""
    P = R.params
    out = Targets(R, 22)
    stream = 'TCP stream %s' % size_name(P.tcp_bytes)
    tcp = out.med('limit', stream)
    system = next((s for s, path in plexa_paths(ctx).items() if path == 'shm'), None)
    big, sg = size_name(max(P.push_sizes)), size_name(P.scatter_bytes)
    for case, factor, where in (('push ' + big, 1.5, 'to one engine'),
                                ('pull ' + big, 1.5, 'from one engine'),
                                ('scatter ' + sg, 1.0, 'over 2 engines'),
                                ('gather ' + sg, 1.0, 'from 2 engines')):
        name = '%s %s through shared memory ≥ %sthe loopback TCP stream' % (
            case, where, '%g × ' % factor if factor != 1 else '')
        if system is None:
            out.append(dict(issue=22, target=name, wanted=None, status='-',
                            measured='not measured: no plexa cluster of this run used '
                                     'shared memory'))
            continue
        out.at_least(name, system, case, factor, tcp, 'the loopback %s' % stream)
    sz, n = size_name(P.bcast_bytes), BCAST_ENGINES - 1
    ref, rss = BCAST_REF_CASE % (sz, n), BCAST_REF_RSS_CASE % sz
    pp = BCAST_PP_CASE % (sz, n)
    for system, path in (('plexa', 'shared memory'), ('plexa-tls', 'tls, engine to engine')):
        v, w = out.med(system, ref), out.med(system, pp)
        out.add('broadcast %s from engine 0 to %d engines by plexa.ref (%s) faster than a '
                'pull to the client and a push' % (sz, n, path), v,
                v is not None and w is not None and v < w,
                '%s s (pull + push: %s s)' % (fmt(v), fmt(w)), system=system, case=ref)
        v = out.med(system, rss)
        out.add('... the controller grows by < 64 MiB meanwhile', v, v is not None and v < 64,
                '%s MiB' % fmt(v), system=system, case=rss)
    cross_host_targets(out, P)
    return out


def cross_host_targets(out, P):
    """Workload 12's: what crosses the controller between hosts."""
    sz = size_name(P.field_bytes)
    for case, what in ((hosts.REF_CTL_CASE % sz, 'plexa.ref %s from node1 to node2' % sz),
                       (hosts.GATHER_CTL_CASE % sz,
                        'gather %s from engines on 2 hosts' % sz),
                       (hosts.SCATTER_CTL_CASE % sz, 'scatter %s to engines on 2 hosts' % sz)):
        v = out.med('plexa', case)
        out.add('cross-host: %s does not cross the controller (< 1 MiB through it)' % what, v,
                v is not None and v < 1, '%s MiB' % fmt(v), case=case)
    v = out.med('plexa', hosts.BCAST_CTL_CASE % sz)
    out.add('cross-host: a push of %s to 4 engines leaves the controller once (a tree)' % sz,
            v, v is not None and v < 1.5 * P.field_bytes / 2**20, '%s MiB' % fmt(v),
            case=hosts.BCAST_CTL_CASE % sz)
    v, w = out.med('plexa', hosts.REF_CASE % sz), out.med('plexa', hosts.REF_PP_CASE % sz)
    out.add('cross-host: plexa.ref %s from node1 to node2 is faster than a pull to the client '
            'and a push' % sz, v, v is not None and w is not None and v < w,
            '%s s (pull + push: %s s)' % (fmt(v), fmt(w)), case=hosts.REF_CASE % sz)


# Workload 10's table: the bulk cases on plexa's three paths and the peers.
SHM_COLUMNS = (('shm', 'shm'), ('tls', 'tls (shm off)'), ('tcp', 'tcp (shm off)'),
               ('ipyparallel', 'ipyparallel'), ('dask', 'dask'))


def shared_memory_table(ctx, R):
    """Workload 10 at a glance: push/pull of the largest size and
    scatter/gather on plexa's paths (shared memory, tls and tcp with it
    off) and on the peers, with the ratios shm/X and shm against the
    loopback TCP stream; then workload 10's own rows (the shared_array
    push, the broadcast). [] when no plexa cluster used shared memory."""
    P = R.params
    systems = {path: system for system, path in plexa_paths(ctx).items()}
    if 'shm' not in systems:
        return []
    systems.update(ipyparallel='ipyparallel', dask='dask')
    stream = R.find('limit', 'TCP stream %s' % size_name(P.tcp_bytes))
    stream = stream['median'] if stream else None
    big, sg = size_name(max(P.push_sizes)), size_name(P.scatter_bytes)
    cases = ['push ' + big, 'pull ' + big, 'scatter ' + sg, 'gather ' + sg]
    cases += [r['case'] for r in sorted_rows(R) if r['workload'] == W10
              and r['system'] == systems['shm']]
    out = []
    for case in cases:
        vals = {}
        for col, _title in SHM_COLUMNS:
            r = R.find(systems[col], case) if col in systems else None
            vals[col] = r['median'] if r else None
        row = R.find(systems['shm'], case)
        if row is None:
            continue
        shm = vals['shm']
        ratios = {col: shm / v for col, v in vals.items() if col != 'shm' and v and shm}
        out.append(dict(case=case, unit=row['unit'], values=vals, ratios=ratios,
                        min=row['min'], max=row['max'],
                        stream_ratio=shm / stream if stream and row['unit'] == 'MB/s'
                        else None))
    return out


SHM_HEADERS = (['case'] + [title for _col, title in SHM_COLUMNS] + ['unit'] +
               ['shm/%s' % col for col, _title in SHM_COLUMNS[1:]] + ['shm/TCP stream'])


def shm_rows(st):
    def ratio(x):
        return '%.2f' % x if x is not None else '-'
    return [[t['case']] + ['%s (%s–%s)' % (fmt(t['values']['shm']), fmt(t['min']),
                                          fmt(t['max']))] +
            [fmt(t['values'][col]) for col, _title in SHM_COLUMNS[1:]] + [t['unit']] +
            [ratio(t['ratios'].get(col)) for col, _title in SHM_COLUMNS[1:]] +
            [ratio(t['stream_ratio'])]
            for t in st]


def machine():
    try:
        uname = subprocess.run(['uname', '-a'], stdout=subprocess.PIPE, text=True).stdout.strip()
    except OSError:
        uname = ' '.join(platform.uname())
    cpu = 'unknown'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open('/proc/meminfo') as f:
            mem = '%.1f GiB' % (int(f.readline().split()[1]) / 1024.0 / 1024.0)
    except (OSError, ValueError, IndexError):
        mem = 'unknown'
    return dict(uname=uname, nproc=os.cpu_count(), cpu=cpu, memory=mem)


def versions(ctx):
    v = {'python': platform.python_version()}
    for mod in ('plexa', 'ipyparallel', 'distributed', 'numpy'):
        try:
            v[mod] = __import__(mod).__version__
        except Exception:
            pass
    return v


def table(rows, headers):
    cols = list(zip(*([headers] + rows))) if rows else [[h] for h in headers]
    widths = [max(len(str(c)) for c in col) for col in cols]
    lines = ['  '.join(str(c).ljust(w) for c, w in zip(headers, widths)).rstrip(),
             '  '.join('-' * w for w in widths)]
    for r in rows:
        lines.append('  '.join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return '\n'.join(lines)


def md_table(rows, headers):
    def esc(s):
        return str(s).replace('|', '\\|')
    lines = ['| ' + ' | '.join(headers) + ' |', '|' + '|'.join('---' for _ in headers) + '|']
    for r in rows:
        lines.append('| ' + ' | '.join(esc(c) for c in r) + ' |')
    return '\n'.join(lines)


RESULT_HEADERS = ['workload', 'case', 'system', 'median', 'min', 'max', 'unit', 'how']
RATIO_HEADERS = ['workload', 'case', 'peer', 'plexa', 'peer value', 'unit', 'plexa/peer',
                 'plexa is']
TARGET_ISSUES = ((7, 'Issue 7 targets'), (16, 'Issue 16 targets (load balance)'),
                 (17, 'Issue 17 targets (serving under attack)'),
                 (22, 'Issue 22 targets (bulk data at memory speed)'))


def target_headers(issue):
    if issue == 22:
        return ['target (issue 22)', 'got', 'wanted', 'verdict']
    return ['target (issue %d)' % issue, 'measured', 'status']
TLS_HEADERS = ['workload', 'case', 'tls', 'tcp', 'unit', 'tls/tcp', 'TLS costs',
               'target: costs ≤ %.0f%%' % (100 * TLS_COST_TARGET)]


SYSTEM_ORDER = {'plexa': 0, 'plexa-tls': 0.4, 'plexa-tcp': 0.5, 'ipyparallel': 1, 'dask': 2,
                'limit': 3}


def workload_key(workload):
    """'10 shared memory' after '9 field': by number (a runner's failure,
    workload '-', last)."""
    head = workload.split(' ', 1)[0]
    return (int(head), workload) if head.isdigit() else (1 << 30, workload)


def sorted_rows(R):
    """By workload, then plexa, ipyparallel, dask, limit; else as measured."""
    return [r for _i, r in sorted(enumerate(R.rows), key=lambda ir: (
        workload_key(ir[1]['workload']), SYSTEM_ORDER.get(ir[1]['system'], 9), ir[0]))]


def result_rows(R):
    """The table's rows, and the notes its [n] marks refer to."""
    out, notes = [], []
    for r in sorted_rows(R):
        if r['status'] == 'ok':
            cells = [fmt(r['median']), fmt(r['min']), fmt(r['max']), r['unit']]
        else:
            cells = [status_text(r), '', '', r['unit']]
        how = r['api']
        if r['note'] and r['status'] == 'ok':
            if r['note'] not in notes:
                notes.append(r['note'])
            how += ' [%d]' % (notes.index(r['note']) + 1)
        out.append([r['workload'], r['case'], r['system']] + cells + [how])
    return out, ['[%d] %s' % (i + 1, n) for i, n in enumerate(notes)]


def ratio_rows(rs):
    return [[r['workload'], r['case'], '%s (%s)' % (r['peer'], r['peer_api']), fmt(r['plexa']),
             fmt(r['peer_value']), r['unit'], '%.3g' % r['ratio'], verdict(r['plexa_better_by'])]
            for r in rs]


def tls_rows(ts):
    return [[t['workload'], t['case'],
             '%s (%s–%s)' % (fmt(t['tls']), fmt(t['tls_min']), fmt(t['tls_max'])),
             '%s (%s–%s)' % (fmt(t['tcp']), fmt(t['tcp_min']), fmt(t['tcp_max'])),
             t['unit'], '%.2f' % t['ratio'], '%+.0f%%' % (100 * t['cost']),
             t['target'] or '']
            for t in ts]


def transports_line(ctx):
    """Which path each plexa system's rows took."""
    t = getattr(ctx, 'plexa_transports', None)
    if not t:
        return None
    shm = t.get('shm')
    if shm:
        main = ('%s with shared memory (profile default; mec.shared_memory = True: on this '
                'host its messages take the shm transport and payloads of 256 KiB and more '
                'shared-memory regions)' % t['default'])
    else:
        main = '%s (profile default; mec.shared_memory = %r)' % (t['default'], shm)
    line = 'plexa paths: plexa rows: %s' % main
    for c in t.get('compared', []):
        line += ('; %s rows: %s, shared memory off (profile %s, its cluster.conf says '
                 'transport = %s, shm = false; mec.shared_memory = False)'
                 % (c['system'], c['transport'], c['profile'], c['transport']))
    if t.get('compared'):
        line += '; the clusters measured turn about in workloads 2, 3 and 6'
    if 'field' in ctx.systems:
        line += '; workload 9 (field): tls, shared memory off (profile field)'
    return line


def target_rows(ts, issue):
    if issue == 22:
        return [[t['target'], t['measured'], t['wanted'] or '', t['status']]
                for t in ts if t['issue'] == issue]
    return [[t['target'], t['measured'], t['status']] for t in ts if t['issue'] == issue]


def report(ctx, R, started, finished):
    rs = ratios(R)
    ts = targets(R, ctx)
    tt = tls_vs_tcp(ctx, R)
    st = shared_memory_table(ctx, R)
    doc = dict(
        date=started.isoformat(timespec='seconds'),
        duration_s=round((finished - started).total_seconds(), 1),
        machine=ctx.machine, load_average_before=ctx.load_before,
        load_average_after=list(os.getloadavg()), versions=versions(ctx),
        mode='quick' if R.params.quick else 'full', repeat=R.params.repeat,
        systems=ctx.systems, build=ctx.build, command=' '.join(sys.argv),
        plexa_transports=getattr(ctx, 'plexa_transports', None),
        results=R.rows, ratios=rs, targets=ts, tls_vs_tcp=tt, shared_memory=st,
        warnings=ctx.warnings)
    rows, notes = result_rows(R)
    print()
    print(table(rows, RESULT_HEADERS))
    for n in notes:
        print(n)
    if rs:
        print()
        print('Ratios plexa/peer (medians; "plexa is" accounts for whether higher is better):')
        print(table(ratio_rows(rs), RATIO_HEADERS))
    if tt:
        print()
        print('plexa over TLS against TCP, shared memory off (medians, min–max; "TLS costs" '
              'is the bandwidth lost or the time added):')
        print(table(tls_rows(tt), TLS_HEADERS))
    if st:
        print()
        print('Workload 10, shared memory: plexa\'s paths and the peers (medians; shm with '
              'min–max; shm/X > 1: shared memory is faster):')
        print(table(shm_rows(st), SHM_HEADERS))
    for issue, _title in TARGET_ISSUES:
        print()
        print(table(target_rows(ts, issue), target_headers(issue)))
    for w in ctx.warnings:
        print('WARNING: %s' % w)

    m = ctx.machine
    md = ['# plexa benchmark: %s run' % doc['mode'], '',
          '- date: %s (%.0f s)' % (doc['date'], doc['duration_s']),
          '- machine: `%s`' % m['uname'],
          '- nproc: %s; CPU: %s; memory: %s' % (m['nproc'], m['cpu'], m['memory']),
          '- load average before / after: %s / %s' % (
              ' '.join('%.2f' % x for x in ctx.load_before),
              ' '.join('%.2f' % x for x in doc['load_average_after'])),
          '- versions: %s' % ', '.join('%s %s' % kv for kv in doc['versions'].items()),
          '- systems: %s; repetitions: %d (median, min, max over them)' % (
              ', '.join(ctx.systems), R.params.repeat),
          '- command: `%s`' % doc['command']]
    if transports_line(ctx):
        md.append('- ' + transports_line(ctx))
    md += ['', '## Results', '', md_table(rows, RESULT_HEADERS), '']
    if notes:
        md += ['- ' + n for n in notes] + ['']
    if rs:
        md += ['## Ratios plexa/peer', '',
               'Medians; *plexa is* says how many times better or worse plexa is, '
               'whichever direction is better for the unit.', '',
               md_table(ratio_rows(rs), RATIO_HEADERS), '']
    if tt:
        md += ['## plexa: TLS against TCP', '',
               'Medians (min–max) of the same workloads on two plexa clusters, one per '
               'transport, both with shared memory off, measured turn about (see the paths '
               'line above). *TLS costs* '
               'is the bandwidth lost (1 − tls/tcp) or the time added (tls/tcp − 1).', '',
               md_table(tls_rows(tt), TLS_HEADERS), '']
    if st:
        md += ['## Workload 10: shared memory against TLS, TCP and the peers', '',
               'Medians (for shm also min–max) of the bulk cases of workloads 3 and 6 on '
               'plexa\'s three paths (see the paths line above) and on the peers (their '
               'defaults: TCP), then workload 10\'s own rows. *shm/X* is the ratio of the '
               'medians (above 1: shared memory is faster); *shm/TCP stream* compares with '
               'the loopback TCP stream of this run\'s limits.', '',
               md_table(shm_rows(st), SHM_HEADERS), '']
    for issue, title in TARGET_ISSUES:
        md += ['## %s' % title, '', md_table(target_rows(ts, issue), target_headers(issue)), '']
    if ctx.warnings:
        md += ['## Warnings', ''] + ['- %s' % w for w in ctx.warnings] + ['']

    os.makedirs(ctx.out, exist_ok=True)
    stamp = started.strftime('%Y%m%d-%H%M%S')
    js = json.dumps(doc, indent=1, sort_keys=False) + '\n'
    mdt = '\n'.join(md)
    # A quick run never replaces the full run's summary: latest.md is the one
    # file git keeps, and the README quotes it.
    latest = 'latest-quick' if R.params.quick else 'latest'
    for name, text in (('%s.json' % latest, js), ('%s.md' % latest, mdt),
                       ('%s.json' % stamp, js), ('%s.md' % stamp, mdt)):
        with open(os.path.join(ctx.out, name), 'w') as f:
            f.write(text)
    log('\nbench: wrote %s/%s.{json,md} and %s.{json,md}' % (ctx.out, latest, stamp))
