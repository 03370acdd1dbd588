"""
The operator console in the Django admin, under the app's section.

- "Consumer groups" (:mod:`.groups`): each configured topic's group, its lag, Pause and Resume;
- "Dead letters" (:mod:`.dead_letters`): the parked messages of each dead-letter topic, their
  detail, Replay and Resolve.

Both read the cluster with the app's own settings and need no other service; every action is a
POST, checks its own permission and writes a ``LogEntry``.
"""

from kafka_consumer_app.admin import dead_letters, groups

__all__ = ["dead_letters", "groups"]
