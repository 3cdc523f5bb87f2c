"""plexa: interactive parallel computing for Python, with a C core.

A re-creation of IPython 0.10's parallel system: ``plexa.client`` holds
``MultiEngineClient``; ``plexa.error`` the exceptions; ``plexa.magics`` the
IPython magics: 0.10's ``%px``, ``%result`` and ``%autopx``, ipyparallel's
``%%px``, ``%pxresult`` and ``%pxconfig`` (``mec.activate()`` or
``%load_ext plexa``); ``plexa.cluster`` starts and stops clusters
from Python (``with Cluster(n=4) as c: mec = c.client()``). ``plexa.wait``
and ``plexa.as_completed`` wait for many futures (non-blocking calls'
PendingResults) at once (see plexa.futures). ``plexa.shared_array`` makes
an array in shared memory, which pushes send without a copy (see
plexa.shared). ``plexa.ref('a', engine=0)``, pushed, gives engines
another engine's value without it passing through the client (see
plexa._refs). Importing the package is
cheap: it loads neither the C extension nor any submodule.
"""

try:
    from plexa._version import __version__
except ImportError:   # running from a source tree that was never built
    __version__ = 'unknown'

__all__ = ['__version__', 'wait', 'as_completed', 'ALL_COMPLETED', 'FIRST_COMPLETED',
           'FIRST_EXCEPTION', 'shared_array', 'ref']

_FUTURES = ('wait', 'as_completed', 'ALL_COMPLETED', 'FIRST_COMPLETED', 'FIRST_EXCEPTION')


def load_ipython_extension(ip):
    """``%load_ext plexa``: the magics (see plexa.magics)."""
    from plexa import magics
    magics.load_ipython_extension(ip)


def unload_ipython_extension(ip):
    from plexa import magics
    magics.unload_ipython_extension(ip)


def __getattr__(name):
    # plexa.wait and friends load plexa.futures on first use only.
    if name in _FUTURES:
        from plexa import futures
        return getattr(futures, name)
    if name == 'ref':
        from plexa._refs import ref
        return ref
    if name in ('shared_array', 'shared_regions'):
        from plexa import shared
        return getattr(shared, name)
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
