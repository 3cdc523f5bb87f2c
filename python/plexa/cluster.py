"""Start and stop a plexa cluster from Python.

    from plexa.cluster import Cluster

    with Cluster(n=4) as cluster:          # ipcluster start -n 4, engines ready
        mec = cluster.client()
        mec.execute('import numpy')
    # ipcluster stop: engines and controller are gone

    async with Cluster(n=4) as cluster:    # the same from asyncio: the
        tc = cluster.task_client()         # event loop runs while ipcluster
        ...                                # starts and stops the cluster

A Cluster drives plexa's own ``ipcluster`` command (never another
program of that name on PATH, such as ipyparallel's): ``start()`` returns
once every engine has registered, or raises :class:`ClusterError` with
ipcluster's own words; ``stop()`` stops everything the cluster started,
batch jobs included. The cluster runs detached from this process, so one
started here survives it until ``stop()`` or ``ipcluster stop``.
"""

import asyncio
import os
import subprocess

__all__ = ['Cluster', 'ClusterError', 'StatusReport']

# The launchers ipcluster knows as modes (`ipcluster slurm -n 4 ...`).
MODES = ('local', 'ssh', 'mpiexec', 'mpirun', 'pbs', 'sge', 'slurm')

_PKG = os.path.dirname(os.path.abspath(__file__))
# build tree: build/python/plexa -> build/bin; installed:
# <prefix>/lib/python3/dist-packages/plexa -> <prefix>/bin
_CANDIDATES = (os.path.join(_PKG, '..', '..', 'bin', 'ipcluster'),
               os.path.join(_PKG, '..', '..', '..', '..', 'bin', 'ipcluster'))


class StatusReport(str):
    """ipcluster status's text, shown as it reads: ``repr`` (the REPL, a
    notebook's Out) is the text itself rather than a quoted string with
    escaped newlines; a notebook shows it as preformatted HTML."""

    def __repr__(self):
        return str(self)

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))

    def _repr_html_(self):
        """A notebook shows the report as preformatted text (escaped)."""
        import html
        return '<pre class="plexa-status">%s</pre>' % html.escape(str(self))


class ClusterError(RuntimeError):
    """ipcluster failed; the message is what it said (its stderr)."""


def find_ipcluster():
    """The path of plexa's ipcluster: $PLEXA_IPCLUSTER, else the one installed
    or built beside this package."""
    env = os.environ.get('PLEXA_IPCLUSTER')
    if env:
        if not os.access(env, os.X_OK):
            raise ClusterError('PLEXA_IPCLUSTER=%s is not an executable file' % env)
        return env
    for path in _CANDIDATES:
        if os.access(path, os.X_OK):
            return os.path.normpath(path)
    raise ClusterError('plexa\'s ipcluster is not beside the plexa package (looked for %s); '
                       'set PLEXA_IPCLUSTER to its path'
                       % ' and '.join(os.path.normpath(p) for p in _CANDIDATES))


class Cluster(object):
    """One profile's cluster: a controller and ``n`` engines.

    ``n``: engines (None: the profile's cluster.conf, else 2).
    ``profile``: the profile (``~/.plexa/profile_NAME``; created with a
    default cluster.conf when it does not exist).
    ``launcher``: None starts the launchers the profile's cluster.conf names
    (``ipcluster start``); one of ``local``, ``ssh``, ``mpiexec``,
    ``mpirun``, ``pbs``, ``sge``, ``slurm`` starts the engines that way
    whatever the profile says (``ipcluster slurm -n N --daemonize``).
    ``timeout``: seconds start() may take (None: cluster.conf, else 60).
    ``args``: more ipcluster options, e.g. ``['--queue', 'debug']``.
    ``plexa_dir``: where profiles live (None: $PLEXA_DIR, else ~/.plexa).
    ``ipcluster``: the program's path (None: :func:`find_ipcluster`).
    """

    def __init__(self, n=None, profile='default', launcher=None, timeout=None, args=(),
                 plexa_dir=None, ipcluster=None):
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ValueError('n must be a positive number of engines, not %r' % (n,))
        if launcher is not None and launcher not in MODES:
            raise ValueError('launcher must be None (the profile\'s) or one of %s, not %r'
                             % (', '.join(MODES), launcher))
        if not profile or os.sep in profile:
            raise ValueError('profile must be a name, not %r' % (profile,))
        self.n = n
        self.profile = profile
        self.launcher = launcher
        self.timeout = timeout
        self.args = [str(a) for a in args]
        self.plexa_dir = plexa_dir
        self.output = ''   # what the last start() printed: its progress lines
        self._ipcluster = ipcluster
        self._started = False

    # -- running ipcluster ---------------------------------------------------

    def _env(self):
        env = dict(os.environ)
        if self.plexa_dir is not None:
            env['PLEXA_DIR'] = os.path.abspath(self.plexa_dir)
        return env

    def _argv(self, command, args):
        exe = self._ipcluster or find_ipcluster()
        return [exe] + list(command) + list(args) + ['--profile=%s' % self.profile]

    def _run(self, command, *args, timeout=None):
        argv = self._argv(command, args)
        try:
            return subprocess.run(argv, env=self._env(), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ClusterError('%s did not finish within %.0f s' % (' '.join(argv), timeout))

    async def _run_async(self, command, *args, timeout=None):
        """_run without blocking the event loop: ipcluster as an asyncio
        subprocess. A cancelled or timed-out wait kills it."""
        argv = self._argv(command, args)
        proc = await asyncio.create_subprocess_exec(
            *argv, env=self._env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            raise ClusterError('%s did not finish within %.0f s' % (' '.join(argv), timeout))
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        return subprocess.CompletedProcess(argv, proc.returncode, out.decode(errors='replace'),
                                           err.decode(errors='replace'))

    @staticmethod
    def _said(p):
        return (p.stderr.strip() or p.stdout.strip() or 'exit status %d' % p.returncode)

    def _start_command(self):
        if self.launcher is None:
            command = ['start']
        else:
            command = [self.launcher, '--daemonize']
        if self.n is not None:
            command += ['-n', str(self.n)]
        if self.timeout is not None:
            command += ['--timeout', '%g' % self.timeout]
        # ipcluster enforces --timeout itself; ours only guards against a
        # hung program.
        limit = (self.timeout if self.timeout is not None else 600) + 60
        return command + self.args, limit

    def _started_by(self, p):
        self.output = p.stdout
        if p.returncode != 0:
            raise ClusterError(self._said(p))
        self._started = True
        return self

    def start(self):
        """Start the controller and the engines; return self once every engine
        has registered. Raises ClusterError (ipcluster's message) if they do
        not, having stopped whatever had started."""
        command, limit = self._start_command()
        return self._started_by(self._run(command, timeout=limit))

    async def start_async(self):
        """start() for asyncio: the event loop runs on while the cluster
        starts."""
        command, limit = self._start_command()
        return self._started_by(await self._run_async(command, timeout=limit))

    def add_engines(self, n, timeout=None):
        """Start ``n`` more engines in the running cluster, with its engine
        launcher (a new job for batch launchers); return once they have
        registered. ``stop()`` stops them with the rest."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError('n must be a positive number of engines, not %r' % (n,))
        args = ['-n', str(n)]
        if timeout is not None:
            args += ['--timeout', '%g' % timeout]
        p = self._run(['engines'], *args,
                      timeout=(timeout if timeout is not None else 60) + 60)
        self.output = p.stdout
        if p.returncode != 0:
            raise ClusterError(self._said(p))
        if self.n is not None:
            self.n += n

    def stop(self):
        """Stop the engines and the controller (and cancel batch jobs). A
        cluster that does not run is not an error."""
        p = self._run(['stop'], timeout=120)
        self._started = False
        if p.returncode != 0 and self.running:
            raise ClusterError(self._said(p))

    async def stop_async(self):
        """stop() for asyncio."""
        p = await self._run_async(['stop'], timeout=120)
        self._started = False
        if p.returncode != 0 and (await self._run_async(['status'], timeout=60)).returncode == 0:
            raise ClusterError(self._said(p))

    @property
    def running(self):
        """Does the profile's cluster run (whoever started it)?"""
        return self._run(['status'], timeout=60).returncode == 0

    def status(self):
        """ipcluster status's report: the controller and each engine (a str
        that shows as its lines, not as an escaped string, in IPython and
        notebooks)."""
        p = self._run(['status'], timeout=60)
        return StatusReport((p.stdout + p.stderr).strip())

    # -- clients ---------------------------------------------------------------

    def connection_file(self, capability='mec'):
        """The path of the running controller's connection file for a
        capability: ``mec``, ``task``, ``status`` or ``engine``."""
        names = {'mec': 'ipcontroller-mec.url', 'task': 'ipcontroller-tc.url',
                 'status': 'ipcontroller-status.url', 'engine': 'ipcontroller-engine.url'}
        if capability not in names:
            raise ValueError('capability must be one of %s, not %r'
                             % (', '.join(sorted(names)), capability))
        root = self.plexa_dir or os.environ.get('PLEXA_DIR') or \
            os.path.join(os.path.expanduser('~'), '.plexa')
        return os.path.join(os.path.abspath(root), 'profile_%s' % self.profile, 'security',
                            names[capability])

    def client(self, timeout=10.0, sshserver=None, sshkey=None):
        """A MultiEngineClient connected to this cluster (through an ssh
        server with ``sshserver``, ``sshkey``: see MultiEngineClient)."""
        from plexa.client import MultiEngineClient
        return MultiEngineClient(self.connection_file('mec'), timeout=timeout, sshserver=sshserver,
                                 sshkey=sshkey)

    def task_client(self, timeout=10.0, sshserver=None, sshkey=None):
        """A TaskClient connected to this cluster."""
        from plexa.client import TaskClient
        return TaskClient(self.connection_file('task'), timeout=timeout, sshserver=sshserver,
                          sshkey=sshkey)

    def status_client(self, timeout=10.0, sshserver=None, sshkey=None):
        """A StatusClient (read-only) connected to this cluster."""
        from plexa.client import StatusClient
        return StatusClient(self.connection_file('status'), timeout=timeout, sshserver=sshserver,
                            sshkey=sshkey)

    # -- with Cluster(...) as c: ----------------------------------------------

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self._started:
            self.stop()
        return False

    # -- async with Cluster(...) as c: ------------------------------------------

    async def __aenter__(self):
        return await self.start_async()

    async def __aexit__(self, *exc):
        if self._started:
            await self.stop_async()
        return False

    def __repr__(self):
        return '<Cluster profile=%r n=%s launcher=%s>' % (
            self.profile, self.n if self.n is not None else 'conf',
            self.launcher or 'profile')
