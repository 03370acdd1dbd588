"""
An Open edX event sent as edx-event-bus-kafka's consumer sends it, without a log line nobody reads.

edx-event-bus-kafka's consumer calls ``signal.send_event_with_custom_metadata(metadata, **data)``.
In openedx-events that ends a robust send with
``log.info(f"Responses of the Open edX Event <...>: \\n{format_responses(responses, depth=2)}")``
on the ``openedx_events.tooling`` logger: the f-string pretty-prints every response (and the
traceback of every failed receiver) before ``log.info`` looks at the level, so the text is
built even when that logger is not enabled for INFO, as in most deployments. On a no-op
receiver that formatting was a tenth of the consumer's CPU time.

:func:`send_from_event_bus` therefore calls openedx-events' own method whenever anything but
the plain robust send could happen: the logger enabled for INFO (the line is then openedx-events'
own, on its logger), events disabled, ``settings.DEBUG`` or ``allow_send_event_failure()`` (a
plain ``send``, which formats nothing), data that its sender validation might refuse (it then
raises its own ``SenderValidationError``), a subclass or a patched method. Otherwise it does the
one thing left, Django's ``send_robust`` with the arguments openedx-events would pass: the data,
``metadata`` and ``from_event_bus=True``, with ``sender=None``.

One difference remains, by design: formatting that is skipped cannot fail. When openedx-events'
printer raises on a response (say, an answer whose ``repr()`` raises), its send raises after
every receiver ran, even with INFO off; here that send returns the responses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.dispatch import Signal
from openedx_events.data import EventsMetadata
from openedx_events.tooling import SIGNAL_PROCESSED_FROM_EVENT_BUS, OpenEdxPublicSignal

#: openedx-events' own logger for its send (``openedx_events.tooling.log``).
TOOLING_LOGGER = logging.getLogger("openedx_events.tooling")


def send_from_event_bus(
    signal: OpenEdxPublicSignal, metadata: EventsMetadata, data: dict[str, Any]
) -> list[tuple[Callable[..., Any], Any]]:
    """
    What ``signal.send_event_with_custom_metadata(metadata, **data)`` returns or raises, the same way.

    Its INFO line is logged, exactly, when openedx-events would write it out; it is not formatted otherwise.
    """
    if TOOLING_LOGGER.isEnabledFor(logging.INFO) or not _plain_robust_send(signal, data):
        return list(signal.send_event_with_custom_metadata(metadata, **data))
    responses: list[tuple[Callable[..., Any], Any]] = Signal.send_robust(
        signal, None, **data, metadata=metadata, **{SIGNAL_PROCESSED_FROM_EVENT_BUS: True}
    )
    return responses


def _plain_robust_send(signal: OpenEdxPublicSignal, data: dict[str, Any]) -> bool:
    """
    True when openedx-events' ``_send_event_with_metadata`` would validate ``data`` and then ``send_robust``.

    It reads two private attributes of OpenEdxPublicSignal (openedx-events 10.x), set by
    ``disable()`` and ``allow_send_event_failure()``; tests/test_openedx_send.py pins both, and
    the validation, against openedx-events' own send.
    """
    if type(signal) is not OpenEdxPublicSignal or "send_event_with_custom_metadata" in signal.__dict__:
        return False
    if not signal._allow_events or signal._allow_send_event_failure or settings.DEBUG:
        return False
    # Its sender validation passes exactly when this holds; when it does not, openedx-events raises its own error.
    init_data: dict[str, type] = signal.init_data
    if len(data) != len(init_data):
        return False
    for key, kind in init_data.items():
        value = data.get(key)
        if not value or not isinstance(value, kind):
            return False
    return True
