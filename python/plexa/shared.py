"""Arrays in shared memory: ``plexa.shared_array``.

Clients and engines on the controller's host, running as its user, reach
it through the shm transport (see docs/shared-memory.md): payloads of
256 KiB and more then travel as shared-memory regions, passed by
descriptor. An ordinary array is copied once into a region on its way
out; an array made here already lives in one and is sent with no copy at
all, whatever its size.

What the receiver gets is a copy-on-write view: its writes stay its own.
The sender's array, though, *is* the shared memory: writes made to it
after a push are seen by engines that have not written to their view of
those pages yet. Push a copy (``a.copy()``) when that matters.
"""

import sys

__all__ = ['shared_array', 'shared_regions']


def _module():
    # In an engine the regions are the engine's own (plexa._enginehost
    # embeds the core); elsewhere libplexa's, through the client extension.
    if '_plexa_engine' in sys.modules:
        return sys.modules['_plexa_engine']
    from plexa import _native
    return _native


def shared_array(shape, dtype=float, order='C'):
    """A new zero-filled numpy array of ``shape`` and ``dtype`` in shared
    memory of this process. Pushing it (or returning it from an engine)
    sends it without copying it."""
    import numpy
    dt = numpy.dtype(dtype)
    if dt.hasobject:
        raise TypeError('shared_array: dtype %s holds Python objects, which cannot '
                        'live in shared memory' % dt)
    shape = (shape,) if isinstance(shape, int) else tuple(int(n) for n in shape)
    if any(n < 0 for n in shape):
        raise ValueError('shared_array: negative dimension in %r' % (shape,))
    count = 1
    for n in shape:
        count *= n
    buf = _module().shared_buffer(max(count * dt.itemsize, 1))
    flat = numpy.frombuffer(buf, dtype=dt, count=count)
    return flat.reshape(shape, order=order)


# Below this a plain concatenate is as fast: the region is for big joins.
_JOIN_MIN = 1 << 20


def joinable(parts):
    """Whether join_arrays takes parts: C-contiguous numpy arrays of one
    plain dtype and one trailing shape, of 1 MiB and more together."""
    np = sys.modules.get('numpy')
    if np is None or not parts or not all(type(p) is np.ndarray for p in parts):
        return False
    first = parts[0]
    if first.ndim == 0 or first.dtype.hasobject or any(
            p.dtype != first.dtype or p.shape[1:] != first.shape[1:] or
            not p.flags.c_contiguous for p in parts):
        return False
    return sum(p.nbytes for p in parts) >= _JOIN_MIN


def join_arrays(parts):
    """numpy.concatenate(parts), parts being joinable(), into pooled shared
    memory of this process.

    For a gather's partitions, received through shared memory: the result
    goes into a region whose pages are mapped already (a fresh array's
    first touch costs more than the copy), and each part is read from its
    region's file rather than faulted in through its fresh mapping. The
    result is the caller's own: a push of it is copied, like any array."""
    np = sys.modules['numpy']
    first = parts[0]
    total = sum(p.nbytes for p in parts)
    mod = _module()
    buf = mod.scratch_buffer(total)
    off = 0
    for p in parts:
        if p.nbytes:
            mod.read_into(buf, off, p)
            off += p.nbytes
    rows = sum(p.shape[0] for p in parts)
    out = np.frombuffer(buf, dtype=first.dtype, count=total // first.itemsize)
    return out.reshape((rows,) + first.shape[1:])


def shared_regions():
    """How many shared-memory regions this process maps now: received
    values and shared arrays that are still alive (for checking that none
    is left behind)."""
    return _module().shared_regions()
