"""plexa: interactive parallel computing for Python, with a C core.

A re-creation of IPython 0.10's parallel system: ``plexa.client`` holds
``MultiEngineClient``; ``plexa.error`` the exceptions; ``plexa.magics`` the
IPython magics ``%px``, ``%result`` and ``%autopx`` (``mec.activate()`` or
``%load_ext plexa.magics``); ``plexa.cluster`` starts and stops clusters
from Python (``with Cluster(n=4) as c: mec = c.client()``). Importing the package is cheap: it loads
neither the C extension nor any submodule.
"""

try:
    from plexa._version import __version__
except ImportError:   # running from a source tree that was never built
    __version__ = 'unknown'

__all__ = ['__version__']
