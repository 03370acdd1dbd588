"""
Database connection hygiene for the long-running consume loop.

A consumer process lives for weeks, far longer than any request, so the loop does what
Django does around each request: before and after every message it closes the database
connections that are broken or older than ``CONN_MAX_AGE``, as
``django.db.close_old_connections()`` does.
"""

from __future__ import annotations

from django.db import connections


class OldConnectionCloser:
    """
    ``close_old_connections()`` for the thread that creates it, at a fraction of the cost.

    Django's function looks up the thread's connections through ``asgiref.Local`` on every
    call (about 5 µs, a third of the loop's own cost per message). The loop runs on one
    thread, so its connection wrappers are fetched once, here; each call then asks each
    wrapper to close itself if unusable or obsolete, which is all Django's function does.
    Creating a wrapper opens no connection.
    """

    def __init__(self) -> None:
        self._wrappers = [connections[alias] for alias in connections]

    def __call__(self) -> None:
        """Close this thread's connections that are unusable or older than CONN_MAX_AGE."""
        for wrapper in self._wrappers:
            if wrapper.connection is not None:  # no connection, nothing to close: the common case between uses
                wrapper.close_if_unusable_or_obsolete()
