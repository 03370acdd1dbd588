"""
The operator console's Consumer groups page: the consumer groups of the configured topics, with Pause and Resume.

The "Consumer groups" page (the changelist of :class:`~kafka_consumer_app.models.ConsumerControl`)
shows, for each topic of ``KAFKA_CONSUMER['TOPICS']``, what ``./manage.py consumer_status`` shows
(:func:`~kafka_consumer_app.operations.status.read_status`: the group's state, its members and their
partitions, each partition's committed offset, end offset, lag and the time of the last committed
message) and whether an operator has the
topic paused. Viewing needs the model's view permission; Pause and Resume need
``kafka_consumer_app.pause_consumers``, and each writes a ``LogEntry``. The consumers read the row
every ``CONTROL_INTERVAL`` (docs/decisions/0011-pausing-from-the-admin.rst).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from kafka_consumer_app.exceptions import KafkaConsumerAppError
from kafka_consumer_app.models import ConsumerControl
from kafka_consumer_app.operations.status import GroupStatus, read_status
from kafka_consumer_app.settings.base import raw_settings
from kafka_consumer_app.settings.topics import TopicConfig, get_topic_config

if TYPE_CHECKING:
    _ControlAdmin = admin.ModelAdmin[ConsumerControl]
else:  # ModelAdmin takes no type argument at run time
    _ControlAdmin = admin.ModelAdmin

#: The permission of Pause and Resume.
PAUSE_PERMISSION = "kafka_consumer_app.pause_consumers"


@dataclass(frozen=True)
class GroupRow:
    """One configured topic on the page: its group's status (or why it could not be read) and its pause."""

    config: TopicConfig
    status: GroupStatus | None
    error: str
    control: ConsumerControl | None

    @property
    def paused(self) -> bool:
        """Whether an operator has the topic paused."""
        return self.control is not None and self.control.paused


def configured_topics() -> list[str]:
    """The topics of ``KAFKA_CONSUMER['TOPICS']``, sorted: the ones the service consumes."""
    topics = raw_settings().get("TOPICS") or {}
    return sorted(topics) if isinstance(topics, dict) else []


def group_row(topic: str) -> GroupRow:
    """Read one topic's group from the cluster; a failure becomes the row's one-line error."""
    config = get_topic_config(topic)
    control = ConsumerControl.objects.filter(topic=config.kafka_topic).first()
    try:
        return GroupRow(config, read_status(config), "", control)
    except KafkaConsumerAppError as error:
        return GroupRow(config, None, str(error), control)


@admin.register(ConsumerControl)
class ConsumerGroupsAdmin(_ControlAdmin):
    """The Consumer groups page, and its Pause and Resume of a topic's consumers."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Rows are written by Pause and Resume only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: ConsumerControl | None = None) -> bool:
        """Rows are written by Pause and Resume only."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ConsumerControl | None = None) -> bool:
        """A row is the last word on its topic: it is resumed, never deleted."""
        return False

    def get_urls(self) -> list[URLPattern]:
        """The page's own URLs (Pause, Resume) before the model's."""
        wrap = self.admin_site.admin_view
        return [
            path("<str:topic>/pause/", wrap(self.pause_view), name="kafka_consumer_app_pause"),
            path("<str:topic>/resume/", wrap(self.resume_view), name="kafka_consumer_app_resume"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Every configured topic's group, members, partitions and lag, and whether it is paused."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Consumer groups",
            "opts": self.model._meta,
            "rows": [group_row(topic) for topic in configured_topics()],
            "can_pause": request.user.has_perm(PAUSE_PERMISSION),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/kafka_consumer_app/consumer_groups.html", context)

    def pause_view(self, request: HttpRequest, topic: str) -> HttpResponse:
        """POST: pause every consumer of ``topic``."""
        return self._set_paused(request, topic, True)

    def resume_view(self, request: HttpRequest, topic: str) -> HttpResponse:
        """POST: resume every consumer of ``topic``."""
        return self._set_paused(request, topic, False)

    def _set_paused(self, request: HttpRequest, topic: str, paused: bool) -> HttpResponse:
        """Write the topic's row (idempotent: a second click changes and logs nothing); LogEntry and message."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(PAUSE_PERMISSION):
            raise PermissionDenied
        if topic not in configured_topics():
            raise Http404(f"topic {topic!r} is not in KAFKA_CONSUMER['TOPICS']")
        config = get_topic_config(topic)
        control, _ = ConsumerControl.objects.get_or_create(topic=config.kafka_topic)
        verb = "Paused" if paused else "Resumed"
        if control.paused == paused:
            messages.info(request, f"The consumers of {topic} are {verb.lower()} already.")
        else:
            control.paused, control.changed_by, control.changed_at = paused, request.user.get_username(), timezone.now()
            control.save()
            self.log_change(
                request, control, f"{verb} the consumers of {config.kafka_topic} (group {config.group_id})."
            )
            interval = config.control.interval + config.poll_timeout
            messages.success(request, f"{verb} the consumers of {topic}; every replica follows within {interval:g}s.")
        return HttpResponseRedirect(reverse("admin:kafka_consumer_app_consumercontrol_changelist"))
