"""What the machine allows: the field test bed (workload 9) and the limits
(loopback TCP, TLS on one connection) that plexa's figures are read against."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback

from plxbench.common import (
    BENCH_DIR, EXAMPLES, Interrupted, MiB, NotAvailable, Spec, W2, W3, W4, W9, array,
    check_array, close_quietly, deadline, interleaved, latencies, log, prime_inputs,
    reraise_if_interrupted, serial_primes, shielded, size_name, timed, warm_up
)
from plxbench.plexa import Plexa


# ---- physical limits -------------------------------------------------------------------

class Field(object):
    """Issue 21's field rows: plexa's round trip and bulk transfer through
    an ssh tunnel (a client's ``sshserver=``), against the same cluster
    reached directly (over TLS: its profile turns shared memory off). The
    ssh server is a private sshd on 127.0.0.1 with keys made for the run,
    so the rows measure what the tunnel itself costs (ssh's own encryption
    around plexa's TLS), not a network."""
    name = 'field'

    def __init__(self, ctx):
        self.ctx = ctx
        self.dir = os.path.join(ctx.tmp, 'field-ssh')
        self.sshd = None

    def specs(self):
        P = self.ctx.params
        s = []
        for how in ('direct', 'ssh tunnel'):
            s.append(Spec(W9, 'execute mean, %s' % how, 'plexa', "mec.execute('a=1', targets=0)",
                          'us', False))
        for how in ('direct', 'ssh tunnel'):
            for d in ('push', 'pull'):
                s.append(Spec(W9, '%s %s, %s' % (d, size_name(P.field_bytes), how), 'plexa',
                              '', 'MB/s', True))
        return s

    def start_sshd(self):
        if not os.path.exists('/usr/sbin/sshd') or not shutil.which('ssh'):
            raise NotAvailable('openssh-server / openssh-client not installed')
        os.makedirs(self.dir, mode=0o700)
        key, hostkey = os.path.join(self.dir, 'id'), os.path.join(self.dir, 'host')
        for k in (key, hostkey):
            subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', k], check=True)
        auth = os.path.join(self.dir, 'authorized_keys')
        shutil.copy(key + '.pub', auth)
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        conf = os.path.join(self.dir, 'sshd_config')
        with open(conf, 'w') as f:
            f.write('Port %d\nListenAddress 127.0.0.1\nHostKey %s\nPidFile none\n'
                    'AuthorizedKeysFile %s\nPermitRootLogin prohibit-password\n'
                    'PasswordAuthentication no\nStrictModes no\nUsePAM no\nLogLevel ERROR\n'
                    % (port, hostkey, auth))
        config = os.path.join(self.dir, 'ssh_config')
        with open(config, 'w') as f:
            f.write('Host benchhost\n  HostName 127.0.0.1\n  Port %d\n  IdentityFile %s\n'
                    '  IdentitiesOnly yes\n  StrictHostKeyChecking no\n'
                    '  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n' % (port, key))
        os.makedirs('/run/sshd', mode=0o755, exist_ok=True)
        self.sshd = subprocess.Popen(['/usr/sbin/sshd', '-D', '-f', conf])
        os.environ['PLEXA_SSH'] = 'ssh -F %s' % config
        end = time.time() + 10
        while subprocess.run(['ssh', '-F', config, '-o', 'BatchMode=yes', 'benchhost', 'true'],
                             capture_output=True).returncode != 0:
            if time.time() > end or self.sshd.poll() is not None:
                raise RuntimeError('the private sshd does not answer')
            time.sleep(0.1)

    def stop_sshd(self):
        os.environ.pop('PLEXA_SSH', None)
        if self.sshd is not None:
            with shielded():
                self.sshd.kill()
                self.sshd.wait()

    def run(self, R):
        P = self.ctx.params
        cluster = Plexa(self.ctx, profile='field')
        # The direct client would otherwise take shared memory, which no
        # client beyond an ssh tunnel can: the tunnel's cost is measured
        # against the network path.
        cluster.write_conf('# written by bench/run: the field rows, on the network path\n'
                           '[controller]\nshm = false\n')
        mecs = []
        try:
            try:
                self.start_sshd()
                with deadline(P.timeout):
                    cluster.start(2)
                from plexa import client
                mecs = [client.MultiEngineClient(profile='field'),
                        client.MultiEngineClient(profile='field', sshserver='benchhost')]
            except NotAvailable as e:
                R.fail_all(self.specs(), 'n/a', 'not available: %s' % e)
                return
            except (KeyboardInterrupt, Interrupted):
                raise
            except Exception as e:
                reraise_if_interrupted(e)
                log(traceback.format_exc().rstrip())
                R.fail_all(self.specs(), 'error', 'set-up failed: %s' % e)
                return
            self.measure(R, mecs)
        finally:
            for m in mecs:
                close_quietly(m)
            cluster.stop()
            self.stop_sshd()

    def measure(self, R, mecs):
        P = self.ctx.params
        arr = array(P.field_bytes)
        runs = []
        for how, m in zip(('direct', 'ssh tunnel'), mecs):
            runs.append((Spec(W9, 'execute mean, %s' % how, 'plexa',
                              "mec.execute('a=1', targets=0)", 'us', False),
                         lambda m=m: latencies(lambda: m.execute('a=1', targets=0),
                                               P.rtt_n)[0], ''))
        R.measure_side_by_side(runs)

        def transfer(m):
            def one():
                tp, _r = timed(m.push, {'a': arr}, targets=0)
                tg, got = timed(m.pull, 'a', targets=0)
                check_array(got[0], arr)
                return arr.nbytes / tp / 1e6, arr.nbytes / tg / 1e6
            return one
        for m in mecs:
            warm_up(transfer(m))
        R.measure_side_by_side([
            ([Spec(W9, '%s %s, %s' % (d, size_name(P.field_bytes), how), 'plexa',
                   "mec.%s(..., targets=0)" % d, 'MB/s', True) for d in ('push', 'pull')],
             transfer(m), '') for how, m in zip(('direct', 'ssh tunnel'), mecs)])


class Limits(object):
    name = 'limits'

    def __init__(self, ctx):
        self.ctx = ctx

    def compile(self):
        cc = shutil.which('cc') or shutil.which('gcc') or shutil.which('clang')
        if not cc:
            raise NotAvailable('no C compiler (cc) for the loopback helper')
        exe = os.path.join(self.ctx.tmp, 'netlimits')
        p = subprocess.run([cc, '-O2', '-o', exe, os.path.join(BENCH_DIR, 'netlimits.c'),
                            '-lssl', '-lcrypto'],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            raise RuntimeError('cc netlimits.c failed: %s' % p.stdout.strip()[-300:])
        return exe

    def helper(self, exe, *args):
        if isinstance(exe, Exception):
            raise exe
        p = subprocess.run([exe] + [str(a) for a in args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=self.ctx.params.timeout)
        if p.returncode != 0:
            raise RuntimeError('netlimits %s: %s' % (' '.join(map(str, args)), p.stderr.strip()))
        return tuple(float(x) for x in p.stdout.split())

    def tls_stream(self):
        """bench/tls_stream from the build tree: the tcp and tls plugins
        alone on one loopback connection (no plx_conn, no controller). One
        run gives every plugin row: (tcp MB/s, tls MB/s, tcp us, tls us)."""
        P = self.ctx.params
        exe = os.path.join(self.ctx.build, 'bench', 'tls_stream')
        if not os.path.exists(exe):
            raise NotAvailable('%s not built' % exe)
        p = subprocess.run([exe, '--mb', str(P.plugin_mib), '--rtt', str(P.plugin_rtt_n),
                            '--plugins', os.path.join(self.ctx.build, 'lib', 'plexa', 'plugins')],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=P.timeout)
        if p.returncode != 0:
            why = (p.stderr.strip().splitlines() or ['exit status %d' % p.returncode])[-1]
            raise RuntimeError(why)
        j = json.loads(p.stdout)
        s, r = j['stream'], j['round_trip']
        return (s['tcp']['mb_per_s'], s['tls']['mb_per_s'], r['tcp']['mean_us'],
                r['tls']['mean_us'])

    def prime(self):
        """The speedup this machine gives right now: prime1_mec's two halves
        (interleaved inputs) in two plain python3 processes, no framework;
        released together once both have imported prime1."""
        inputs = prime_inputs()
        order, shuffled = interleaved(inputs, 2)
        half = (len(shuffled) + 1) // 2
        code = ('import sys, prime1\n'
                'xs = [int(v) for v in sys.argv[1:]]\n'
                'print("ready", flush=True)\n'
                'sys.stdin.readline()\n'
                'print(sum(map(prime1.sum_primes, xs)), flush=True)\n')
        ts, want = serial_primes(inputs)
        procs = []
        try:
            for part in (shuffled[:half], shuffled[half:]):
                procs.append(subprocess.Popen(
                    [sys.executable, '-c', code] + [str(v) for v in part], cwd=EXAMPLES,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            for p in procs:
                if p.stdout.readline().strip() != 'ready':
                    raise RuntimeError('prime helper process did not start')
            t0 = time.perf_counter()
            for p in procs:
                p.stdin.write('go\n')
                p.stdin.flush()
            total = sum(int(p.stdout.readline()) for p in procs)
            tp = time.perf_counter() - t0
        finally:
            with shielded():
                for p in procs:
                    try:
                        p.kill()
                    except OSError:
                        pass
                    p.wait()
        if total != sum(want):
            raise AssertionError('wrong sums')
        return ts / tp

    def run(self, R):
        P = self.ctx.params
        try:
            exe = self.compile()
        except Exception as e:
            exe = e
        ncpu = os.cpu_count() or 1
        for label, a, b in (('same CPU', 0, 0), ('cross-CPU', 0, 1)):
            specs = [Spec(W2, 'TCP ping-pong %s mean' % label, 'limit',
                          '1-byte loopback, C, CPUs %d/%d' % (a, b), 'us', False),
                     Spec(W2, 'TCP ping-pong %s p99' % label, 'limit',
                          '1-byte loopback, C, CPUs %d/%d' % (a, b), 'us', False)]
            if b >= ncpu:
                R.fail_all(specs, 'n/a', 'not available: only %d CPU' % ncpu)
                continue
            R.measure(specs, lambda a=a, b=b: self.helper(exe, 'rtt', P.pingpong_n, a, b))
        R.measure(Spec(W3, 'TCP stream %s' % size_name(P.tcp_bytes), 'limit',
                       'loopback, C, 1 MiB writes, unpinned', 'MB/s', True),
                  lambda: self.helper(exe, 'bw', P.tcp_bytes, -1, -1)[0])
        # What TLS itself costs here, with no plexa in between: plexa's
        # TLS/TCP ratio cannot beat this one (tls_vs_tcp shows both).
        R.measure(Spec(W3, 'TLS stream %s' % size_name(P.tcp_bytes), 'limit',
                       'loopback, C, OpenSSL TLS 1.3 AES-128-GCM, 1 MiB writes, unpinned',
                       'MB/s', True),
                  lambda: self.helper(exe, 'tlsbw', P.tcp_bytes, -1, -1)[0])
        # The same through plexa's transport plugins, with nothing else of
        # plexa: what its own TLS costs on one connection (tls_vs_tcp too).
        how = ('plexa-transport-%s plugin alone, one loopback connection, '
               'sender and receiver threads, 4 MiB frames (bench/tls_stream)')
        rtt = ('plexa-transport-%s plugin alone, a 200-byte message, client and server '
               'threads (bench/tls_stream)')
        R.measure([Spec(W3, 'plugin TCP stream %s' % size_name(P.plugin_mib * MiB), 'limit',
                        how % 'tcp', 'MB/s', True),
                   Spec(W3, 'plugin TLS stream %s' % size_name(P.plugin_mib * MiB), 'limit',
                        how % 'tls', 'MB/s', True),
                   Spec(W2, 'plugin TCP round trip mean', 'limit', rtt % 'tcp', 'us', False),
                   Spec(W2, 'plugin TLS round trip mean', 'limit', rtt % 'tls', 'us', False)],
                  self.tls_stream)

        R.measure(Spec(W4, 'speedup, 2 engines', 'limit',
                       '2 plain python3 processes, one half each', 'x', True), self.prime)

        def memcpy():
            import numpy as np
            src = array(P.memcpy_bytes)
            dst = np.empty_like(src)
            dst[:] = 0.0                              # fault the pages in first
            t, _r = timed(np.copyto, dst, src)
            return src.nbytes / t / 1e6
        R.measure(Spec(W3, 'memcpy %s' % size_name(P.memcpy_bytes), 'limit',
                       'numpy.copyto', 'MB/s', True), memcpy)
