"""Magics for interactive parallel work: ``%px``, ``%result`` and
``%autopx`` (IPython 0.10's ``IPython.kernel.magic``), for IPython 8.

::

    In [1]: from plexa import client
    In [2]: mec = client.MultiEngineClient()
    In [3]: mec.activate()          # registers the magics in this IPython
    In [4]: %px a = 5               # or, through automagic: px a = 5
    Parallel execution on engines: all
    Out[4]:
    <Results List>
    [0] In [1]: a = 5
    [1] In [1]: a = 5

    In [5]: %result                 # the last command's result, again
    In [6]: %autopx                 # every cell now runs on the engines
    Auto Parallel Enabled
    Type %autopx to disable

The magics use the *active* client (the last one whose ``activate()`` was
called) with its ``targets`` and ``block`` attributes. ``%load_ext
plexa`` (or ``plexa.magics``), and importing ``plexa.client`` in IPython,
register them without a client; they then print 0.10's
"No Controller is activated" message until one is activated.

In ``%autopx`` mode a cell made of IPython syntax alone (``%magic``,
``!cmd``, ``obj?``) still runs locally, so ``%autopx`` (or ``autopx``)
turns the mode off.
"""

import sys

__all__ = ['activate', 'active_controller', 'load_ipython_extension',
           'unload_ipython_extension', 'NO_ACTIVE_CONTROLLER']

NO_ACTIVE_CONTROLLER = """
Error:  No Controller is activated
Use activate() on a RemoteController object to activate it for magics.
"""

NO_ACTIVE_AUTOPX = "No active RemoteController found, use RemoteController.activate()."

# The client the magics use (0.10: __IPYTHON__.activeController).
_active = None


def active_controller():
    """The active client, or None."""
    return _active


def _get_ipython():
    if 'IPython' not in sys.modules:
        return None          # IPython cannot be running if it was never imported
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def activate(client):
    """Make ``client`` the active one and register the magics in the running
    IPython (``MultiEngineClient.activate()`` calls this)."""
    global _active
    _active = client
    ip = _get_ipython()
    if ip is None:
        print("The IPython Controller magics only work within IPython.")
        return
    _register(ip)


def _register(ip):
    if getattr(ip, '_plexa_magics', None) is None:
        magics = _magics_class()(shell=ip)
        ip.register_magics(magics)
        ip._plexa_magics = magics


def load_ipython_extension(ip):
    """``%load_ext plexa.magics`` (or ``%load_ext plexa``)."""
    _register(ip)


def register_if_interactive():
    """Register the magics in the running IPython, if any, without
    activating a client: a %px typed before ``activate()`` then says how to
    activate, instead of IPython's bare "not found". Called when
    plexa.client is imported."""
    ip = _get_ipython()
    if ip is not None:
        _register(ip)


def unload_ipython_extension(ip):
    """``%unload_ext plexa.magics``: leaves %autopx mode; the magics stay."""
    _disable_autopx(ip, quiet=True)


# ---- the magics --------------------------------------------------------------

def magic_px(parameter_s=''):
    """Execute the given python command on the active controller's engines."""
    c = _active
    if c is None:
        print(NO_ACTIVE_CONTROLLER)
        return None
    print("Parallel execution on engines: %s" % (c.targets,))
    return c.execute(parameter_s)


def magic_result(parameter_s=''):
    """Print the result of command i (the last one by default) on the active
    controller's engines."""
    c = _active
    if c is None:
        print(NO_ACTIVE_CONTROLLER)
        return None
    try:
        index = int(parameter_s)
    except ValueError:
        index = None
    return c.get_result(index)


def _magics_class():
    from IPython.core.magic import Magics, line_magic, magics_class

    @magics_class
    class ParallelMagics(Magics):
        """%px, %result and %autopx on plexa's active MultiEngineClient."""

        @line_magic
        def px(self, parameter_s=''):
            """Executes the given python command on the active plexa
            MultiEngineClient's engines.

            Call ``activate()`` on a MultiEngineClient first; then::

                %px a = 5       # runs a = 5 on all engines (its targets)
            """
            return magic_px(parameter_s)

        @line_magic
        def result(self, parameter_s=''):
            """Print the result of command i on all engines of the active
            MultiEngineClient (the latest one if i is not given)::

                %result         # the latest result
                %result 3       # the result of In [3]
            """
            return magic_result(parameter_s)

        @line_magic
        def autopx(self, parameter_s=''):
            """Toggles auto parallel mode for the active MultiEngineClient:
            every cell is executed on its engines until %autopx is typed
            again::

                %autopx
                Auto Parallel Enabled
                Type %autopx to disable
                ...
                %autopx
                Auto Parallel Disabled
            """
            if _autopx_enabled(self.shell):
                _disable_autopx(self.shell)
            else:
                _enable_autopx(self.shell)

    return ParallelMagics


# ---- %autopx ---------------------------------------------------------------------
#
# A post input transformer (it sees cells after IPython's own transforms and
# automagic, as 0.10's runsource replacement did) rewrites each cell into a
# call of _autopx_run. It is not consulted by the terminal's "is this input
# complete?" check, so multi-line cells are typed as usual.

_LOCAL_PREFIX = 'get_ipython().'


def _autopx_transform(lines):
    source = ''.join(lines)
    stripped = source.strip()
    if not stripped or stripped.startswith(_LOCAL_PREFIX):
        return lines        # blank, or a magic / !cmd / help: run it here
    return ["__import__('plexa.magics', fromlist=['_autopx_run'])._autopx_run(%r)\n"
            % source.rstrip('\n')]


def _autopx_enabled(shell):
    return _autopx_transform in shell.input_transformers_post


def _enable_autopx(shell):
    if _active is None:
        print(NO_ACTIVE_AUTOPX)
        return
    if not _autopx_enabled(shell):
        shell.input_transformers_post.append(_autopx_transform)
    print("Auto Parallel Enabled\nType %autopx to disable")


def _disable_autopx(shell, quiet=False):
    if _autopx_enabled(shell):
        while _autopx_transform in shell.input_transformers_post:
            shell.input_transformers_post.remove(_autopx_transform)
        if not quiet:
            print("Auto Parallel Disabled")


def _autopx_run(source):
    """Run one %autopx cell on the active client's engines and print the
    result, as 0.10 did; a syntax error is reported without sending it."""
    c = _active
    ip = _get_ipython()
    if c is None:
        print(NO_ACTIVE_CONTROLLER)
        return
    try:
        compile(source, '<input>', 'exec')
    except (OverflowError, SyntaxError, ValueError):
        if ip is None:
            raise
        ip.showsyntaxerror()
        return
    try:
        result = c.execute(source)
    except Exception:
        if ip is None:
            raise
        ip.showtraceback()
        return
    print(repr(result))
