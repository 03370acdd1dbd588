"""
The Django signals that carry Kafka messages to receivers; the only place they are defined.

Connect receivers the Django way, in ``<app>/kafka_handlers.py`` (autodiscovered) or in
``AppConfig.ready()``::

    from django.dispatch import receiver
    from kafka_consumer_app.signals import event_signal, topic_signal

    @receiver(topic_signal("user-events"))
    def on_user_event(sender, message, **kwargs):
        ...

    @receiver(event_signal("org.openedx.learning.course.enrollment.created.v1"))
    def on_enrollment(sender, message, **kwargs):
        ...

Every receiver is called with these keyword arguments:

- ``sender``: the :class:`~kafka_consumer_app.engine.consumer.EventConsumer` class. Do not pass
  ``sender=`` to ``@receiver``: Django matches senders by identity, never by name.
- ``signal``: the signal itself.
- ``message``: a :class:`~kafka_consumer_app.message.Message`.

A receiver that raises marks the message as failed: its offset is not committed.

Batch receivers get up to ``BATCH_SIZE`` messages of one partition in one call::

    from kafka_consumer_app.signals import batch_signal

    @receiver(batch_signal("page-views"))
    def on_page_views(sender, messages, **kwargs):
        PageView.objects.bulk_create(PageView(**message.value) for message in messages)

They get ``sender``, ``signal`` and ``messages``, a sequence of
:class:`~kafka_consumer_app.message.Message` of one partition in offset order. A topic has either
batch receivers or per-message ones (``topic_signal``, ``event_signal``), never both. A batch receiver
raises :class:`~kafka_consumer_app.exceptions.BatchFailed` to say which message failed.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref

from django.dispatch import Signal

_lock = threading.Lock()
_topic_signals: dict[str, Signal] = {}
_event_signals: dict[str, Signal] = {}
_batch_signals: dict[str, Signal] = {}
#: Counts the changes that :func:`receivers_generation` reports (next() on it is atomic, so no change is lost).
_changes = itertools.count(1)
_generation = 0


def receivers_generation() -> int:
    """
    A number that changes whenever a receiver of a topic or event signal is connected, disconnected
    or garbage-collected, or a signal is created: what the consumer's dispatcher caches is valid while
    it stays the same.
    """
    return _generation


def _receivers_changed() -> None:
    global _generation
    _generation = next(_changes)


class _MessageSignal(Signal):
    """A Django signal that tells :func:`receivers_generation` when a weakly held receiver died."""

    def _remove_receiver(self, receiver: object = None) -> None:
        super()._remove_receiver(receiver)  # type: ignore[misc]  # Django's private hook, untyped in the stubs
        _receivers_changed()


class _SenderCache(weakref.WeakKeyDictionary):  # type: ignore[type-arg]
    """
    Django's per-sender cache of live receivers, for senders a weak reference can hold.

    With ``use_caching`` Django keeps each sender's receivers in a WeakKeyDictionary and
    clears it on every connect and disconnect, so the consumer's per-message lookup is a
    dictionary hit instead of a walk over every receiver. A plain WeakKeyDictionary would
    make ``send(sender=None)`` (common in tests) raise TypeError; such senders are simply
    not cached.
    """

    def get(self, key: object, default: object = None) -> object:
        try:
            return super().get(key, default)
        except TypeError:
            return default

    def __setitem__(self, key: object, value: object) -> None:
        with contextlib.suppress(TypeError):
            super().__setitem__(key, value)

    def clear(self) -> None:
        # Django clears the cache on every connect and disconnect.
        super().clear()
        _receivers_changed()


def _get(registry: dict[str, Signal], name: str, kind: str) -> Signal:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{kind} signal name must be a non-empty string, not {name!r}")
    with _lock:
        signal = registry.get(name)
        if signal is None:
            signal = registry[name] = _MessageSignal(use_caching=True)
            signal.sender_receivers_cache = _SenderCache()
            _receivers_changed()
        return signal


def topic_signal(topic: str) -> Signal:
    """
    Return the signal sent for every message of ``topic`` (the name given to ``--topic``).

    Receivers get ``sender``, ``signal`` and ``message``. The same name always returns the same signal.
    """
    return _get(_topic_signals, topic, "topic")


def event_signal(event_type: str) -> Signal:
    """
    Return the signal sent for every message whose CloudEvents ``ce_type`` header is ``event_type``.

    It is sent after the topic signal, on whatever topic the message arrives. Receivers get
    ``sender``, ``signal`` and ``message``. The same name always returns the same signal.
    """
    return _get(_event_signals, event_type, "event")


def batch_signal(topic: str) -> Signal:
    """
    Return the signal sent with batches of the messages of ``topic`` (the name given to ``--topic``).

    Receivers get ``sender``, ``signal`` and ``messages``: up to ``BATCH_SIZE`` messages of one
    partition, in offset order, gathered for at most ``BATCH_WAIT`` seconds. The same name always
    returns the same signal.
    """
    return _get(_batch_signals, topic, "batch")


def existing_event_signal(event_type: str) -> Signal | None:
    """The ``event_signal`` of ``event_type`` if something asked for it already (so it may have receivers)."""
    return _event_signals.get(event_type)


def any_event_receivers(sender: object) -> bool:
    """Return True when some ``event_signal`` has a receiver that would get messages from ``sender``."""
    with _lock:
        signals = list(_event_signals.values())
    return any(signal.has_listeners(sender) for signal in signals)
