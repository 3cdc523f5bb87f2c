"""plexa.ref: another engine's value, pushed without passing through the
client.

``mec.push(dict(b=plexa.ref('a', engine=0)), targets=[1, 2, 3])`` makes
``b`` on engines 1, 2 and 3 the value ``a`` has on engine 0. The controller
fetches it from engine 0 after whatever engine 0 was sent before, and
hands it to the targets; the client sends a name and receives only the
push's reply. On one host the data goes by shared-memory descriptor: one
copy at most (none when engine 0's value already lives in shared memory),
the controller never touches it, and the targets' arrays are views of
one region. A ref is only valid as a pushed value itself.
"""


class ref:
    """The value named ``key`` on engine ``engine``, for ``mec.push``."""

    __slots__ = ('key', 'engine')

    def __init__(self, key, engine):
        if not isinstance(key, str) or not key:
            raise TypeError('plexa.ref: key must be a non-empty str, not %r' % (key,))
        if isinstance(engine, bool) or not isinstance(engine, int):
            raise TypeError('plexa.ref: engine must be an engine id (int), not %r' % (engine,))
        self.key = key
        self.engine = engine

    def __repr__(self):
        return 'plexa.ref(%r, engine=%d)' % (self.key, self.engine)

    def __eq__(self, other):
        return type(other) is ref and (other.key, other.engine) == (self.key, self.engine)

    def __hash__(self):
        return hash((ref, self.key, self.engine))

    def __reduce__(self):
        # Reached only when the ref is part of another value (a list, a
        # task's arguments): the controller resolves a push's own values.
        raise TypeError('%r can only be a value of mec.push itself, not part of another value '
                        'or of another request' % (self,))
