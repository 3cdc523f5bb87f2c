"""The rich displays of results (issue 20): IPython's pretty printer shows
0.10's text, notebooks a table whose user text is escaped. (Real results
from a cluster: tests/integration/test_tracebacks.py.)"""
from html.parser import HTMLParser

from IPython.lib.pretty import pretty

from plexa.client import QueueStatusList, ResultList
from plexa.cluster import StatusReport

EVIL = '<script>alert("x")</script> & <b>'


class Cells(HTMLParser):
    """The text of each table cell by row, and every tag met."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.rows, self.tags, self.cell = [], [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == 'tr':
            self.rows.append([])
        elif tag in ('td', 'th'):
            self.cell = ''

    def handle_endtag(self, tag):
        if tag in ('td', 'th'):
            self.rows[-1].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def results():
    return ResultList([
        {'id': 0, 'number': 3, 'input': {'translated': 'print(%r)' % EVIL, 'raw': ''},
         'stdout': EVIL + '\n', 'stderr': ''},
        {'id': 1, 'number': 7, 'input': {'translated': 'a = 1', 'raw': ''},
         'stdout': '', 'stderr': 'warned\n'},
    ])


class PlainResults(list):
    """What IPython showed before _repr_pretty_: a list with 0.10's repr."""
    __repr__ = ResultList.__repr__


class PlainQueue(list):
    __repr__ = QueueStatusList.__repr__


def test_result_list_pretty_is_0_10s_text():
    r = results()
    assert pretty(r) == pretty(PlainResults(r)) == '\n'.join(repr(r).splitlines())
    assert repr(r) == str(r) and repr(r).startswith('<Results List>\n[0] In [3]: print(')


def test_result_list_html_table_escapes_user_text():
    text = results()._repr_html_()
    assert '<script>' not in text and '&lt;script&gt;' in text
    cells = Cells(text)
    assert 'script' not in cells.tags and set(cells.tags) <= {
        'table', 'caption', 'thead', 'tbody', 'tr', 'th', 'td', 'pre'}
    assert cells.rows == [
        ['engine', 'In', 'input', 'stdout', 'stderr'],
        ['0', 'In [3]', 'print(%r)' % EVIL, EVIL + '\n', ''],
        ['1', 'In [7]', 'a = 1', '', 'warned\n'],
    ]


def test_queue_status_list_displays():
    q = QueueStatusList([(0, {'pending': 'execute: ' + EVIL, 'queue': ['pull: a', 'push']}),
                         (1, {'pending': 'None', 'queue': []})])
    assert pretty(q) == pretty(PlainQueue(q)) == repr(q).rstrip('\n')
    assert repr(q) == ("<Queue Status List>\nEngine: 0\n    Pending: "
                       "'execute: %s'\n    Command: 'pull: a'\n    Command: "
                       "'push'\nEngine: 1\n    Pending: 'None'\n" % EVIL)
    text = q._repr_html_()
    assert '<script>' not in text
    assert Cells(text).rows == [['engine', 'pending', 'queue'],
                                ['0', 'execute: ' + EVIL, 'pull: apush'],
                                ['1', 'None', '']]


def test_status_report_displays():
    s = StatusReport('controller: running\nengine 0 <host&>: up')
    assert repr(s) == pretty(s) == str(s)
    assert s._repr_html_() == ('<pre class="plexa-status">controller: running\n'
                               'engine 0 &lt;host&amp;&gt;: up</pre>')
