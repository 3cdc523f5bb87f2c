"""Progress display for long waits: a text bar in terminals, a widget in
Jupyter when ipywidgets is installed (a text bar otherwise).

    [##########..........]  512/1000 tasks   51%   1,234/s  ETA 0:00:04

Used by ``PendingResult.wait_interactive()`` and by blocking maps, which
show it by themselves when the wait lasts more than a second and the user
can see it (stderr is a terminal, or an IPython kernel runs). Set
``plexa.progress.enabled = False`` (or ``PLEXA_PROGRESS=0``) to never show
it, ``True`` (``PLEXA_PROGRESS=1``) to show it also where output is not a
terminal. No dependencies: ipywidgets is used only if importable.
"""

import os
import sys
import time

__all__ = ['ProgressBar', 'enabled', 'auto_enabled']

_env = os.environ.get('PLEXA_PROGRESS', '').strip().lower()
#: None: automatic (terminals and notebooks); True: always; False: never.
enabled = {'1': True, 'true': True, 'yes': True, '0': False, 'false': False,
           'no': False}.get(_env)

# A blocking call shows a bar only once it has waited this long.
AUTO_DELAY_S = 1.0


def _in_kernel():
    """True inside a Jupyter/IPython kernel (output goes to a notebook)."""
    ip = sys.modules.get('IPython')
    if ip is None:
        return False
    try:
        shell = ip.get_ipython()
    except Exception:
        return False
    return shell is not None and hasattr(shell, 'kernel')


def auto_enabled(stream=None):
    """Whether an automatic bar should show on stream (default stderr)."""
    if enabled is not None:
        return enabled
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty or _in_kernel()


def _clock(seconds):
    seconds = int(seconds + 0.5)
    return '%d:%02d:%02d' % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def format_line(done, total, elapsed, unit='tasks', width=20):
    """The text of one bar update (no carriage return)."""
    frac = done / total if total else 1.0
    k = int(round(width * frac))
    rate = done / elapsed if elapsed > 0 else 0.0
    if done >= total:
        tail = 'in %s' % _clock(elapsed)
    elif rate > 0:
        tail = 'ETA %s' % _clock((total - done) / rate)
    else:
        tail = 'ETA ?'
    return '[%s%s] %*d/%d %s %4.0f%%  %s/s  %s' % (
        '#' * k, '.' * (width - k), len(str(total)), done, total, unit, 100 * frac,
        format(rate, ',.0f') if rate >= 10 else format(rate, '.1f'), tail)


class _TextBar(object):
    def __init__(self, total, unit, stream):
        self.total, self.unit, self.stream = total, unit, stream
        self.tty = hasattr(stream, 'isatty') and stream.isatty()
        self.last = ''

    def show(self, done, elapsed):
        line = format_line(done, self.total, elapsed, self.unit)
        if line == self.last:
            return
        # '\r' rewrites the line in terminals and notebooks; elsewhere
        # (a log file) each update would pile up, so only the end is written.
        if self.tty or _in_kernel():
            self.stream.write('\r' + line)
            self.stream.flush()
        self.last = line

    def close(self, done, elapsed):
        self.last = ''
        self.show(done, elapsed)
        if not (self.tty or _in_kernel()):
            self.stream.write(self.last)
        self.stream.write('\n')
        self.stream.flush()


class _WidgetBar(object):
    def __init__(self, total, unit, widgets, display):
        self.total, self.unit = total, unit
        self.bar = widgets.IntProgress(min=0, max=max(total, 1), value=0)
        self.label = widgets.Label(value='')
        display(widgets.HBox([self.bar, self.label]))

    def show(self, done, elapsed):
        self.bar.value = done
        self.label.value = format_line(done, self.total, elapsed, self.unit, width=0)[3:]

    def close(self, done, elapsed):
        self.show(done, elapsed)
        self.bar.bar_style = 'success' if done >= self.total else 'warning'


class ProgressBar(object):
    """``ProgressBar(total, unit='tasks')``; ``update(done)``, ``close()``.

    Elapsed time counts from construction (or ``start``, a time.monotonic()
    value, when given)."""

    def __init__(self, total, unit='tasks', stream=None, start=None, widget=None):
        self.total = total
        self.start = time.monotonic() if start is None else start
        self.done = 0
        self._bar = None
        if widget is None:
            widget = _in_kernel()
        if widget:
            try:
                import ipywidgets
                from IPython.display import display
                self._bar = _WidgetBar(total, unit, ipywidgets, display)
            except Exception:
                self._bar = None
        if self._bar is None:
            self._bar = _TextBar(total, unit, stream or sys.stderr)

    def update(self, done):
        self.done = done
        self._bar.show(done, time.monotonic() - self.start)

    def close(self):
        self._bar.close(self.done, time.monotonic() - self.start)
