"""The read-only status client (part of :mod:`plexa.client`, which
re-exports StatusClient)."""

from plexa._results import _queue_status_value
from plexa._tb import hide_frames
from plexa.multiengine import _native_targets
from plexa.taskclient import _queue_status_dict


@hide_frames
class StatusClient(object):
    """A read-only view of a running cluster through the ``status``
    capability (``ipcontroller-status.url``): it can list the engines and
    see what they and the task queue hold, and nothing else. Give it to
    monitoring scripts and dashboards instead of the ``mec`` or ``task``
    connection file, which can run code on every engine.

    ``url_or_file`` is a ``plx+...`` URL or a connection file; by default the
    profile's ``security/ipcontroller-status.url`` (profile ``default``).
    ``sshserver``, ``sshkey``: through an ssh tunnel, as MultiEngineClient."""

    def __init__(self, url_or_file='', profile=None, timeout=10.0, sshserver=None, sshkey=None):
        from plexa import _native
        self._client = _native.Client(url_or_file, profile, timeout, role='status',
                                      sshserver=sshserver, sshkey=sshkey)

    def get_ids(self):
        """The ids of the registered engines."""
        return list(self._client.get_ids())

    def queue_status(self, targets='all'):
        """What each engine runs and what waits for it, as
        MultiEngineClient.queue_status shows it."""
        req = self._client.submit_queue_status(_native_targets(targets))
        return _queue_status_value(req.result())

    def task_queue_status(self, verbose=False):
        """The task queue's counts (or task ids with ``verbose``), as
        TaskClient.queue_status shows them."""
        raw = self._client.submit_task_queue_status(bool(verbose)).result()
        return _queue_status_dict(raw, verbose)

    def close(self):
        self._client.close()

    def __repr__(self):
        peer = getattr(self._client, 'peer', None)
        return '<StatusClient %s>' % (peer if peer else 'closed')
