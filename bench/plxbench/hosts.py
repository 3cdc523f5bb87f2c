"""Workload 12: bulk data across hosts, on the field test bed of network
namespaces (tests/field/testbed.py): the controller and the client on
login, two engines on each of node1 and node2, started by the ssh
launcher. Engines reach each other and login over a bridge of veth links,
so the rows measure what crosses which host, not a real network's speed.

Each repetition, from a client on login:
  - gather a float64 array from the four engines, fetched straight from
    them (direct pulls) and, with ``direct=False``, through the
    controller; how many MiB the controller received from its engines
    meanwhile (the status page's bytes_received);
  - scatter it back, fetched from the client by each engine and, with
    ``direct=False``, through the controller; how many MiB the controller
    sent its engines meanwhile (bytes_sent);
  - move an array from an engine on node1 to the two on node2 by
    plexa.ref, against a pull to the client and a push; how many MiB
    crossed the controller (received and sent) for the ref.

Only plexa: ipyparallel and Dask have no launcher for this bed.
"""

import json
import os
import sys
import traceback

from plxbench.common import (
    REPO, Spec, reraise_if_interrupted, log, size_name
)

W12 = '12 cross-host'
GATHER_CASE = 'gather %s from 4 engines on 2 hosts, %s'
GATHER_CTL_CASE = 'gather %s, direct: the controller received'
SCATTER_CASE = 'scatter %s over 4 engines on 2 hosts, %s'
SCATTER_CTL_CASE = 'scatter %s, direct: the controller sent'
REF_CASE = 'plexa.ref %s from node1 to 2 engines on node2'
REF_PP_CASE = 'pull %s to the client + push to 2 engines on node2'
REF_CTL_CASE = 'plexa.ref %s: bytes through the controller'

# Runs on login; argv: bytes, repetitions, the status page's file.
SCRIPT = r'''
import json, sys, time, urllib.request
import numpy, plexa
from plexa import client

size, repeat, status = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
url = open(status).read().strip().replace('/?', '/status.json?')


def ctl():
    with urllib.request.urlopen(url, timeout=10) as r:
        es = json.load(r)['engines']
    return sum(e['bytes_received'] for e in es), sum(e['bytes_sent'] for e in es)


direct, relay = client.MultiEngineClient(), client.MultiEngineClient(direct=False)
direct.execute("import subprocess\n"
               "where = subprocess.run(['ip', '-o', '-4', 'addr', 'show', 'cluster'], "
               "capture_output=True, text=True).stdout.split()[3].split('/')[0]")
w = dict(zip(direct.get_ids(), direct.pull('where')))
src = min(i for i in w if w[i] == '10.231.2.11')
dst = sorted(i for i in w if w[i] == '10.231.2.12')
n = size // 8
want = numpy.arange(n, dtype='f8')
direct.scatter('x', want)
direct.execute('import numpy; big = numpy.arange(%d, dtype="f8")' % n, targets=src)
out = dict(gather_direct=[], gather_relay=[], gather_ctl=[], scatter_direct=[],
           scatter_relay=[], scatter_ctl=[], ref=[], pull_push=[], ref_ctl=[])
for rep in range(repeat + 1):          # the first is a warm-up
    got = {}
    for name, m in (('direct', direct), ('relay', relay)):
        r0, _ = ctl()
        t0 = time.perf_counter()
        g = m.gather('x')
        t = time.perf_counter() - t0
        r1, _ = ctl()
        assert (g == want).all()
        got[name] = (size / t / 1e6, (r1 - r0) / 2**20)
        _, s0 = ctl()
        t0 = time.perf_counter()
        m.scatter('y', want)
        t = time.perf_counter() - t0
        _, s1 = ctl()
        got['scatter ' + name] = (size / t / 1e6, (s1 - s0) / 2**20)
    r0, s0 = ctl()
    t0 = time.perf_counter()
    direct.push({'c': plexa.ref('big', engine=src)}, targets=dst)
    t_ref = time.perf_counter() - t0
    r1, s1 = ctl()
    t0 = time.perf_counter()
    v = direct.pull('big', targets=src)[0]
    direct.push({'d': v}, targets=dst)
    t_pp = time.perf_counter() - t0
    del v
    direct.execute('ok = bool((c == d).all() and c[-1] == %d)' % (n - 1), targets=dst)
    assert direct.pull('ok', targets=dst) == [True, True]
    if rep:
        out['gather_direct'].append(got['direct'][0])
        out['gather_relay'].append(got['relay'][0])
        out['gather_ctl'].append(got['direct'][1])
        out['scatter_direct'].append(got['scatter direct'][0])
        out['scatter_relay'].append(got['scatter relay'][0])
        out['scatter_ctl'].append(got['scatter direct'][1])
        out['ref'].append(t_ref)
        out['pull_push'].append(t_pp)
        out['ref_ctl'].append((r1 - r0 + s1 - s0) / 2**20)
print(json.dumps(out))
'''


def specs(P):
    sz = size_name(P.field_bytes)
    return [Spec(W12, GATHER_CASE % (sz, 'direct'), 'plexa', "mec.gather('x')", 'MB/s', True),
            Spec(W12, GATHER_CASE % (sz, 'through the controller'), 'plexa',
                 "MultiEngineClient(direct=False).gather('x')", 'MB/s', True),
            Spec(W12, GATHER_CTL_CASE % sz, 'plexa', 'status page bytes_received', 'MiB',
                 False),
            Spec(W12, SCATTER_CASE % (sz, 'direct'), 'plexa', "mec.scatter('y', a)", 'MB/s',
                 True),
            Spec(W12, SCATTER_CASE % (sz, 'through the controller'), 'plexa',
                 "MultiEngineClient(direct=False).scatter('y', a)", 'MB/s', True),
            Spec(W12, SCATTER_CTL_CASE % sz, 'plexa', 'status page bytes_sent', 'MiB', False),
            Spec(W12, REF_CASE % sz, 'plexa', "mec.push({'c': plexa.ref('big', engine=src)})",
                 's', False),
            Spec(W12, REF_PP_CASE % sz, 'plexa', 'mec.pull + mec.push', 's', False),
            Spec(W12, REF_CTL_CASE % sz, 'plexa', 'status page bytes', 'MiB', False)]


class Hosts(object):
    name = 'hosts'

    def __init__(self, ctx):
        self.ctx = ctx

    def run(self, R):
        P = self.ctx.params
        sys.path.insert(0, os.path.join(REPO, 'tests', 'field'))
        from testbed import Testbed, can_build
        why = can_build()
        if why:
            R.fail_all(specs(P), 'n/a', 'not available: %s' % why)
            return
        bed = Testbed(os.path.join(self.ctx.tmp, 'hosts'))
        try:
            bed.build()
            out = self.measure(bed)
        except Exception as e:
            reraise_if_interrupted(e)
            log(traceback.format_exc().rstrip())
            R.fail_all(specs(P), 'error', '%s: %s' % (type(e).__name__, str(e)[:200]))
            return
        finally:
            bed.teardown()
        for spec, key in zip(specs(P), ('gather_direct', 'gather_relay', 'gather_ctl',
                                        'scatter_direct', 'scatter_relay', 'scatter_ctl', 'ref',
                                        'pull_push', 'ref_ctl')):
            R.add(spec, out[key])

    def measure(self, bed):
        P = self.ctx.params
        root = os.path.join(self.ctx.tmp, 'hosts', 'plexa')
        profile = os.path.join(root, 'profile_default')
        os.makedirs(profile, mode=0o700)
        with open(os.path.join(profile, 'cluster.conf'), 'w') as f:
            f.write('# written by bench/run: workload 12\n'
                    '[cluster]\nengine_launcher = ssh\nengines = 4\nstart_timeout = 60\n'
                    '[ssh]\nhosts = node1:2, node2:2\nssh_options = -F %s\n'
                    'remote_env = PLEXA_DIR=%s PYTHONPATH=%s/python\n'
                    % (bed.ssh_config, root, self.ctx.build))
        env = dict(os.environ, PLEXA_DIR=root, PYTHONPATH=os.path.join(self.ctx.build, 'python'))
        env.pop('PLEXA_URL', None)
        ipcluster = os.path.join(self.ctx.build, 'bin', 'ipcluster')
        p = bed.run('login', [ipcluster, 'start'], env=env, timeout=120)
        if p.returncode != 0:
            raise RuntimeError('ipcluster start on login: %s' % (p.stderr or p.stdout)[-300:])
        try:
            status = os.path.join(profile, 'security', 'ipcontroller-status.http')
            p = bed.run('login', [sys.executable, '-c', SCRIPT, str(P.field_bytes),
                                  str(P.repeat), status], env=env, timeout=P.timeout)
            if p.returncode != 0:
                raise RuntimeError((p.stderr.strip().splitlines() or ['failed'])[-1])
            return json.loads(p.stdout)
        finally:
            bed.run('login', [ipcluster, 'stop'], env=env, timeout=120)
