"""IPython magics for interactive parallel work: IPython 0.10's ``%px``,
``%result`` and ``%autopx``, and ipyparallel's ``%%px``, ``%pxresult`` and
``%pxconfig``, for IPython 8 (terminal and Jupyter kernels).

::

    In [1]: from plexa import client
    In [2]: mec = client.MultiEngineClient()
    In [3]: mec.activate()          # registers the magics in this IPython
    In [4]: %px a = 5               # 0.10's line magic (automagic: px a = 5)
    Parallel execution on engines: all
    Out[4]:
    <Results List>
    [0] In [1]: a = 5
    [1] In [1]: a = 5

    In [5]: %%px --targets ::2      # a cell, ipyparallel's way
       ...: print(a * id)
    [stdout:0] 0

    In [6]: %pxresult               # the last %px / %%px's outputs, again
    In [7]: %pxconfig --noblock     # defaults of these magics
    In [8]: %result                 # the engines' last command (0.10)
    In [9]: %autopx                 # every cell now runs on the engines

``%%px`` options (ipyparallel's): ``--targets T`` (``all``, ``0``,
``0,1``, a slice of the engine ids such as ``::2`` or ``1:``), ``--block``
/ ``--noblock`` (then the PendingResult is returned; ``%pxresult`` waits
for it and shows it), ``--local`` (the cell also runs here, while the
engines run it), ``--group-outputs=type|engine|order`` (see plexa._pxrender,
which shows the outputs) and ``--stream`` / ``--no-stream``. With
``--stream`` (the default when blocking) what the engines print and
display shows as it arrives (live output, in arrival order); with
``--no-stream`` it shows, grouped, once the cell is done. A remote error
is raised after the outputs: IPython shows the engines' tracebacks, not
the client's frames.
``%px`` on one line, led by one of these options, is ``%%px``'s short form
(``%px --targets 1 a = 2``); without one it is 0.10's: it prints
"Parallel execution on engines: ..." and returns the Results List (or a
PendingResult).

Defaults: ``%pxconfig`` sets ``--targets``, ``--block``,
``--group-outputs`` and ``--stream`` for these magics only (not for the
client's own calls, unlike ipyparallel's, which sets the view's targets);
unset ones follow the client's ``targets`` and ``block``. Without options
it prints them.

The magics use the *active* client (the last whose ``activate()`` was
called). ``activate(suffix='_a')`` gives a client magics of its own with
that suffix (``%px_a``, ``%%px_a``, ``%pxresult_a``, ``%pxconfig_a``,
``%autopx_a``), as ipyparallel does, beside the plain ones. ``%load_ext
plexa`` (or ``plexa.magics``), and importing ``plexa.client`` in IPython,
register the plain magics without a client; they then print 0.10's "No
Controller is activated" message until one is activated.

In ``%autopx`` mode (0.10's: each cell's Results List is printed) a cell
made of IPython syntax alone (``%magic``, ``!cmd``, ``obj?``) still runs
locally, so ``%autopx`` (or ``autopx``) turns the mode off. One client's
autopx mode is on at a time.
"""

import re
import sys

from plexa import _pxrender
from plexa._pxrun import PxState, Run, parse_targets as _parse_targets, \
    usage_error as _usage_error

__all__ = ['activate', 'active_controller', 'load_ipython_extension',
           'unload_ipython_extension', 'NO_ACTIVE_CONTROLLER']

NO_ACTIVE_CONTROLLER = """
Error:  No Controller is activated
Use activate() on a RemoteController object to activate it for magics.
"""

NO_ACTIVE_AUTOPX = "No active RemoteController found, use RemoteController.activate()."

NO_LAST_RESULT = "No %px result yet: run %%px (or %px) first."

# The client of the plain magics (0.10: __IPYTHON__.activeController), and
# those of suffixed ones ({'_a': client}).
_active = None
_suffixed = {}
# Per suffix: the magics' defaults and last run (PxState).
_states = {}
# The suffix whose %autopx mode is on (None: off).
_autopx_suffix = None


def active_controller():
    """The active client, or None."""
    return _active


def _client_for(suffix):
    return _active if suffix == '' else _suffixed.get(suffix)


def _get_ipython():
    if 'IPython' not in sys.modules:
        return None          # IPython cannot be running if it was never imported
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def activate(client, suffix=''):
    """Make ``client`` the one of the magics named with ``suffix`` (the
    plain ones by default) and register them in the running IPython
    (``MultiEngineClient.activate()`` calls this)."""
    global _active
    if not isinstance(suffix, str) or not re.fullmatch(r'\w*', suffix):
        raise ValueError('suffix must be letters, digits and underscores, not %r' % (suffix,))
    if suffix:
        _suffixed[suffix] = client
    else:
        _active = client
    ip = _get_ipython()
    if ip is None:
        print("The IPython Controller magics only work within IPython.")
        return
    _register(ip, suffix)


def _register(ip, suffix=''):
    if not suffix:
        if getattr(ip, '_plexa_magics', None) is None:
            magics = _magics_class()(shell=ip)
            ip.register_magics(magics)
            ip._plexa_magics = magics
        return
    registered = getattr(ip, '_plexa_suffixed_magics', None)
    if registered is None:
        registered = ip._plexa_suffixed_magics = {}
    if suffix not in registered:
        magics = _magics_class()(shell=ip, suffix=suffix)
        ip.register_magics(magics)
        registered[suffix] = magics


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


# ---- per-suffix state: defaults and the last run ------------------------------------

def _state(suffix):
    """The state of the magics with suffix, or None with no client (a new
    one when another client was activated for them)."""
    client = _client_for(suffix)
    if client is None:
        return None
    st = _states.get(suffix)
    if st is None or st.client is not client:
        st = _states[suffix] = PxState(client)
    return st


# ---- the magics ------------------------------------------------------------------

def magic_px(parameter_s='', suffix=''):
    """0.10's %px: run the command on the client's targets; print them first."""
    st = _state(suffix)
    if st is None:
        print(NO_ACTIVE_CONTROLLER)
        return None
    targets = st.find_targets()
    print("Parallel execution on engines: %s" % (targets,))
    st.last = run = Run(st.client, parameter_s, targets, st.find_block())
    return run.returned()


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


# Options that, leading a %px line, make it %%px's short form.
_VALUED = r'--targets|-t|--group-outputs'
_FLAGS = r'--block|--noblock|--local|--stream|--no-stream'
_LEADING_OPTION = re.compile(r'\s*(?:(?:%s)(?:=|\s+)\S+|(?:%s))(?=\s|$)' % (_VALUED, _FLAGS))


def _split_options(line):
    """(options, code) of a %px line led by %%px options; (None, line)
    otherwise."""
    end = 0
    while True:
        m = _LEADING_OPTION.match(line, end)
        if not m:
            break
        end = m.end()
    if end == 0:
        return None, line
    return line[:end], line[end:].strip()


def _exec_args(f):
    from IPython.core import magic_arguments as ma
    for deco in reversed([
        ma.argument('-t', '--targets', type=str, default=None,
                    help="the engines: 'all', an id, ids with commas (0,1) or a slice "
                         "of the ids (::2)"),
        ma.argument('--block', action='store_const', const=True, dest='block', default=None,
                    help='wait for the engines and show their outputs'),
        ma.argument('--noblock', action='store_const', const=False, dest='block',
                    help='return the PendingResult at once (%%pxresult shows it)'),
    ]):
        f = deco(f)
    return f


def _group_arg(f):
    from IPython.core import magic_arguments as ma
    return ma.argument('--group-outputs', dest='group_outputs', default=None,
                       choices=list(_pxrender.GROUP_MODES),
                       help="'type': all stdout, then all stderr, then displays; "
                            "'engine': engine by engine; 'order': as they came")(f)


def _output_args(f):
    from IPython.core import magic_arguments as ma
    f = _group_arg(f)
    for deco in reversed([
        ma.argument('--stream', action='store_const', const=True, dest='stream', default=None,
                    help='show outputs as they arrive (the default when blocking)'),
        ma.argument('--no-stream', action='store_const', const=False, dest='stream',
                    help='show outputs when the engines are done'),
    ]):
        f = deco(f)
    return f


def _magics_class():
    from IPython.core import magic_arguments as ma
    from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

    @magics_class
    class ParallelMagics(Magics):
        """%px, %%px, %pxresult, %pxconfig, %result and %autopx on plexa's
        active MultiEngineClient (or, with a suffix, on the client
        activated with that suffix)."""

        def __init__(self, shell=None, suffix=''):
            super().__init__(shell=shell)
            self.suffix = suffix
            if suffix:
                # ipyparallel's renaming: %px_a, %%px_a, ...; %result stays plain
                line = self.magics['line']
                line.pop('result')
                for name in ('px', 'pxresult', 'pxconfig', 'autopx'):
                    line[name + suffix] = line.pop(name)
                cell = self.magics['cell']
                cell['px' + suffix] = cell.pop('px')

        def _state_or_hint(self):
            st = _state(self.suffix)
            if st is None:
                print(NO_ACTIVE_CONTROLLER)
            return st

        @line_magic('px')
        def px(self, line=''):
            """Executes the given python command on the active plexa
            MultiEngineClient's engines (0.10's %px); led by %%px's options
            it is %%px on one line.

            Call ``activate()`` on a MultiEngineClient first; then::

                %px a = 5                   # runs a = 5 on all engines (its targets)
                %px --targets 0 print(a)    # as %%px --targets 0
            """
            options, code = _split_options(line)
            if options is None:
                return magic_px(code, self.suffix)
            st = self._state_or_hint()
            if st is None:
                return None
            return self._px(st, ma.parse_argstring(self.cell_px, options), code)

        @ma.magic_arguments()
        @_exec_args
        @ma.argument('--local', action='store_true',
                     help='also run the cell here, while the engines run it')
        @_output_args
        @cell_magic('px')
        def cell_px(self, line='', cell=None):
            """Executes the cell on the engines; their outputs show prefixed
            with the engine (``[stdout:0] text``), and a remote error is
            raised with the engines' tracebacks."""
            st = self._state_or_hint()
            if st is None:
                return None
            return self._px(st, ma.parse_argstring(self.cell_px, line), cell)

        def _px(self, st, args, code):
            targets = st.find_targets(args.targets)
            block = st.find_block(args.block)
            mode = args.group_outputs or st.group_outputs
            stream = block and (args.stream if args.stream is not None else
                                st.stream if st.stream is not None else True)
            # --local: the engines start first; this IPython runs the cell
            # meanwhile, then the outputs are waited for. --stream: shown as
            # they come (live output), so the run does not block either.
            st.last = run = Run(st.client, code, targets,
                                False if args.local or stream else block)
            if args.local:
                self.shell.run_cell(code)
            if not block:
                return run.pending
            if stream:
                run.stream()
            else:
                run.show(mode)
            return None

        @ma.magic_arguments()
        @_group_arg
        @line_magic('pxresult')
        def pxresult(self, line=''):
            """Shows the last %px / %%px result's outputs again (waits for
            a non-blocking one); raises its remote error, if any."""
            st = self._state_or_hint()
            if st is None:
                return None
            args = ma.parse_argstring(self.pxresult, line)
            if st.last is None:
                raise _usage_error(NO_LAST_RESULT)
            st.last.show(args.group_outputs or st.group_outputs)
            return None

        @ma.magic_arguments()
        @_exec_args
        @_output_args
        @line_magic('pxconfig')
        def pxconfig(self, line=''):
            """Sets the defaults of these magics (%px, %%px, %pxresult,
            %autopx); without options, prints them."""
            st = self._state_or_hint()
            if st is None:
                return None
            args = ma.parse_argstring(self.pxconfig, line)
            given = False
            if args.targets is not None:
                _parse_targets(args.targets)        # refuse a bad one now
                st.targets = args.targets.strip()
                given = True
            for name in ('block', 'group_outputs', 'stream'):
                if getattr(args, name) is not None:
                    setattr(st, name, getattr(args, name))
                    given = True
            if not given:
                print(st.describe())

        @line_magic('result')
        def result(self, parameter_s=''):
            """Print the result of command i on all engines of the active
            MultiEngineClient (the latest one if i is not given)::

                %result         # the latest result
                %result 3       # the result of In [3]
            """
            return magic_result(parameter_s)

        @line_magic('autopx')
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
            if _autopx_enabled(self.shell) and _autopx_suffix == self.suffix:
                _disable_autopx(self.shell)
            else:
                _enable_autopx(self.shell, self.suffix)

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
    return ["__import__('plexa.magics', fromlist=['_autopx_run'])._autopx_run(%r, %r)\n"
            % (source.rstrip('\n'), _autopx_suffix or '')]


def _autopx_enabled(shell):
    return _autopx_transform in shell.input_transformers_post


def _enable_autopx(shell, suffix=''):
    global _autopx_suffix
    if _client_for(suffix) is None:
        print(NO_ACTIVE_AUTOPX)
        return
    _autopx_suffix = suffix
    if not _autopx_enabled(shell):
        shell.input_transformers_post.append(_autopx_transform)
    print("Auto Parallel Enabled\nType %%autopx%s to disable" % suffix)


def _disable_autopx(shell, quiet=False):
    global _autopx_suffix
    if _autopx_enabled(shell):
        while _autopx_transform in shell.input_transformers_post:
            shell.input_transformers_post.remove(_autopx_transform)
        _autopx_suffix = None
        if not quiet:
            print("Auto Parallel Disabled")


def _autopx_run(source, suffix=''):
    """Run one %autopx cell on the engines of the suffix's client (with
    its magics' defaults) and print the result, as 0.10 did; a syntax error
    is reported without sending it."""
    st = _state(suffix)
    ip = _get_ipython()
    if st is None:
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
        st.last = run = Run(st.client, source, st.find_targets(), st.find_block())
        result = run.returned()
    except Exception:
        if ip is None:
            raise
        ip.showtraceback()
        return
    print(repr(result))
