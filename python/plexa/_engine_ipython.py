"""IPython on the engine (issue 20): cells may use IPython's syntax and
API, and rich output goes back to the client as display data.

  install()         get_ipython() and display() as builtins, loading IPython
                    only when they are first called
  parse(code, fn)   the AST of a cell in IPython's syntax (%magic, %%cell
                    magic, !cmd, x = !cmd, obj?), or None
  show_rich(value)  a final expression with rich reprs (_repr_html_, ...)
                    is also published as display data

Nothing here runs, and IPython is not imported, until a cell needs it: an
engine that only runs plain Python starts and serves as fast as before.
Display data travels as live output (core/engine/plx_engine_output.c:
_plexa_engine.display); where no client takes it (a task), its text/plain
form is printed instead. ``ipengine --no-ipython`` (profile key
``engine_ipython = false``) turns all of it off.
"""

import ast
import base64
import builtins
import json
import sys

__all__ = ['install', 'parse', 'show_rich']

_RICH = ('_repr_html_', '_repr_markdown_', '_repr_svg_', '_repr_png_', '_repr_jpeg_',
         '_repr_latex_', '_repr_json_', '_repr_javascript_', '_repr_pdf_',
         '_repr_mimebundle_', '_ipython_display_')

_shell = None
_installed = False


def _jsonable(x):
    if isinstance(x, (bytes, bytearray)):
        return base64.b64encode(bytes(x)).decode('ascii')   # as Jupyter sends images
    return str(x)


def _publisher_class():
    from IPython.core.displaypub import DisplayPublisher

    class EnginePublisher(DisplayPublisher):
        """Display data to the client of the running request."""

        def publish(self, data, metadata=None, source=None, *, transient=None, update=False,
                    **kwargs):
            text = json.dumps({'data': data, 'metadata': metadata or {}}, default=_jsonable)
            try:
                from _plexa_engine import display as send
            except ImportError:                 # outside an engine
                send = None
            if send is None or not send(text):
                plain = data.get('text/plain')
                if plain:
                    print(plain)

        def clear_output(self, wait=False):
            pass

    return EnginePublisher


def shell():
    """The engine's InteractiveShell on __main__, made on first use. The
    names IPython adds to the namespace (In, Out, _ih, exit, ...) are taken
    out again: keys() and reset() see the engine's namespace as before."""
    global _shell
    if _shell is None:
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config
        main = sys.modules['__main__']
        before = set(main.__dict__)
        cfg = Config()
        cfg.HistoryManager.enabled = False      # no sqlite file per engine
        cfg.InteractiveShell.colors = 'NoColor'
        sh = InteractiveShell.instance(config=cfg, user_module=main, user_ns=main.__dict__)
        sh.display_pub = _publisher_class()(shell=sh)
        sh.system = _system
        for name in set(main.__dict__) - before:
            if not (name.startswith('__') and name.endswith('__')):
                main.__dict__.pop(name, None)
        _shell = sh
    return _shell


def _system(cmd):
    """``!cmd`` on an engine: its output goes to the captured sys.stdout
    and sys.stderr (IPython's own runs it on a terminal, and the engine's
    file descriptors lead to its log, not to the client)."""
    import subprocess
    cmd = _shell.var_expand(cmd, depth=1)
    p = subprocess.run(cmd, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, errors='replace')
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    _shell.user_ns['_exit_code'] = p.returncode


def _get_ipython():
    """The engine's InteractiveShell (IPython's get_ipython)."""
    return shell()


def _display(*objs, **kwargs):
    """IPython.display.display on the engine: rich reprs go to the client."""
    shell()
    from IPython.display import display
    return display(*objs, **kwargs)


class _ShellOnImport(object):
    """A sys.meta_path finder that makes the shell as soon as user code
    imports IPython: IPython's own display() (``from IPython.display import
    display``) shows rich output only once a shell exists."""

    def find_spec(self, name, path=None, target=None):
        if name != 'IPython' or _shell is not None:
            return None
        from importlib.machinery import PathFinder
        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        real = spec.loader.exec_module

        def exec_module(module):
            real(module)
            sys.modules[name] = module   # shell() imports from the package
            try:
                shell()
            except Exception:
                pass                     # IPython without a usable shell: plain engine
        spec.loader.exec_module = exec_module
        return spec


def install():
    """get_ipython and display as builtins (once; never over a builtin
    that exists already), and a shell as soon as IPython is imported."""
    global _installed
    if _installed:
        return
    _installed = True
    for name, fn in (('get_ipython', _get_ipython), ('display', _display)):
        if not hasattr(builtins, name):
            setattr(builtins, name, fn)
    if 'IPython' in sys.modules:
        shell()
    else:
        sys.meta_path.insert(0, _ShellOnImport())


def parse(code, filename):
    """The module AST of code in IPython's syntax, or None when IPython is
    missing or the transformed code does not parse either."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return None
    try:
        python = TransformerManager().transform_cell(code)
        if python == code:
            return None
        return ast.parse(python, filename=filename, mode='exec')
    except (SyntaxError, ValueError):
        return None


def show_rich(value):
    """Publish value's display data when it has a rich repr beyond text."""
    cls = type(value)
    if not any(hasattr(cls, a) for a in _RICH):
        return
    data, metadata = shell().display_formatter.format(value)
    if set(data) - {'text/plain'}:
        shell().display_pub.publish(data, metadata)
