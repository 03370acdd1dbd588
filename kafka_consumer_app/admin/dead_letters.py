"""
The operator console's Dead letters pages: the parked messages of each dead-letter topic, Replay and Resolve.

The list (the changelist of :class:`~kafka_consumer_app.models.DeadLetterMark`) shows, for one
dead-letter topic of the configured topics at a time, the parked messages newest first, paged and
filtered (:func:`~kafka_consumer_app.operations.dead_letters.scan`), each with what an operator did
with it. A letter's detail shows its headers, its failure and its payload, masked and capped unless
the user holds ``view_dead_letter_payload``. Replay and Resolve (POST only, each with its own
permission) act on the selected letters or on all that match the filter, each letter at most once
(:mod:`kafka_consumer_app.operations.dead_letter_marks`), and write a ``LogEntry`` with the counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import urlencode

from kafka_consumer_app.admin.groups import configured_topics
from kafka_consumer_app.exceptions import ConfigurationError, KafkaConsumerAppError
from kafka_consumer_app.models import DeadLetterMark
from kafka_consumer_app.operations import dead_letter_marks
from kafka_consumer_app.operations.dead_letters import DeadLetter, DeadLetterFilter, fetch, scan
from kafka_consumer_app.redaction import masked_payload, whole_payload
from kafka_consumer_app.settings.topics import TopicConfig, get_topic_config

if TYPE_CHECKING:
    _MarkAdmin = admin.ModelAdmin[DeadLetterMark]
else:  # ModelAdmin takes no type argument at run time
    _MarkAdmin = admin.ModelAdmin

VIEW_PERMISSION = "kafka_consumer_app.view_deadlettermark"
PAYLOAD_PERMISSION = "kafka_consumer_app.view_dead_letter_payload"
REPLAY_PERMISSION = "kafka_consumer_app.replay_dead_letters"
RESOLVE_PERMISSION = "kafka_consumer_app.resolve_dead_letters"
#: Dead letters on one page of the list.
PAGE_SIZE = 20
FILTER_FIELDS = ("reason", "receiver", "original_topic", "since", "until")
_LIST = "admin:kafka_consumer_app_deadlettermark_changelist"


def dead_letter_topics() -> dict[str, TopicConfig]:
    """Each dead-letter topic of the configured topics (Kafka name), with the settings of the first topic using it."""
    found: dict[str, TopicConfig] = {}
    for topic in configured_topics():
        config = get_topic_config(topic)
        if config.failure.dead_letter_topic:
            found.setdefault(config.failure.dead_letter_topic, config)
    return found


def parse_filter(data: Mapping[str, str]) -> tuple[DeadLetterFilter, str]:
    """The filter of a query or form, and a one-line problem ('' if none); a bad time is left out."""
    times: dict[str, datetime | None] = {}
    problem = ""
    for name in ("since", "until"):
        text = (data.get(name) or "").strip()
        try:
            times[name] = datetime.fromisoformat(text).replace(tzinfo=UTC) if text else None
        except ValueError:
            times[name], problem = None, f"{name} {text!r} is not a time: use YYYY-MM-DDTHH:MM (UTC)"
    wanted = DeadLetterFilter(
        reason=(data.get("reason") or "").strip(),
        receiver=(data.get("receiver") or "").strip(),
        original_topic=(data.get("original_topic") or "").strip(),
        since=times["since"],
        until=times["until"],
    )
    return wanted, problem


@admin.register(DeadLetterMark)
class DeadLettersAdmin(_MarkAdmin):
    """The Dead letters pages: list, detail, Replay and Resolve."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Rows are written by Replay and Resolve only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: DeadLetterMark | None = None) -> bool:
        """Rows are written by Replay and Resolve only."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: DeadLetterMark | None = None) -> bool:
        """A row is what keeps a letter from being replayed twice: it is never deleted by hand."""
        return False

    def get_urls(self) -> list[URLPattern]:
        """The pages' own URLs (detail, Replay, Resolve) before the model's."""
        wrap = self.admin_site.admin_view
        return [
            path("replay/", wrap(self.replay_view), name="kafka_consumer_app_dead_letters_replay"),
            path("resolve/", wrap(self.resolve_view), name="kafka_consumer_app_dead_letters_resolve"),
            path(
                "<str:dlq>/<int:partition>/<int:offset>/",
                wrap(self.letter_view),
                name="kafka_consumer_app_dead_letter",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """One dead-letter topic's parked messages, newest first, filtered and paged."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        topics = dead_letter_topics()
        dlq = request.GET.get("dlq") or next(iter(topics), "")
        if dlq and dlq not in topics:
            raise Http404(f"{dlq!r} is not the dead-letter topic of a topic of KAFKA_CONSUMER['TOPICS']")
        wanted, problem = parse_filter(request.GET)
        letters: tuple[DeadLetter, ...] = ()
        error, truncated = "", False
        if dlq:
            try:
                found = scan(topics[dlq], dlq, wanted)
                letters, truncated = found.letters, found.truncated
            except KafkaConsumerAppError as failure:
                error = str(failure)
        page = Paginator(letters, PAGE_SIZE).get_page(request.GET.get("page"))
        marks = dead_letter_marks.marks_of(dlq, list(page.object_list))
        query = {name: request.GET.get(name, "") for name in FILTER_FIELDS if request.GET.get(name)}
        context = {
            **self._context(request, "Dead letters"),
            "topics": list(topics),
            "dlq": dlq,
            "rows": [(letter, marks.get((letter.partition, letter.offset))) for letter in page.object_list],
            "page": page,
            "matching": len(letters),
            "truncated": truncated,
            "error": error,
            "problem": problem,
            "filters": {name: request.GET.get(name, "") for name in FILTER_FIELDS},
            "query": urlencode({"dlq": dlq, **query}),
            "can_replay": request.user.has_perm(REPLAY_PERMISSION),
            "can_resolve": request.user.has_perm(RESOLVE_PERMISSION),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/kafka_consumer_app/dead_letters.html", context)

    def letter_view(self, request: HttpRequest, dlq: str, partition: int, offset: int) -> HttpResponse:
        """One dead letter: its headers, failure and payload (masked and capped without the payload permission)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        config = self._config(dlq)
        try:
            found = fetch(config, dlq, [(partition, offset)])
        except KafkaConsumerAppError as failure:
            raise Http404(str(failure)) from failure
        if not found:
            raise Http404(f"{dlq}[{partition}]@{offset} is not in the topic (never written, or deleted by retention)")
        letter = found[0]
        whole = request.user.has_perm(PAYLOAD_PERMISSION)
        payload, cut = (whole_payload(letter.value), False) if whole else masked_payload(letter.value)
        context = {
            **self._context(request, f"Dead letter {dlq}[{partition}]@{offset}"),
            "dlq": dlq,
            "letter": letter,
            "headers": [(name, (value or b"").decode("utf-8", "replace")) for name, value in letter.headers],
            "mark": dead_letter_marks.marks_of(dlq, [letter]).get((partition, offset)),
            "payload": payload,
            "payload_whole": whole,
            "payload_cut": cut,
        }
        return TemplateResponse(request, "admin/kafka_consumer_app/dead_letter.html", context)

    def replay_view(self, request: HttpRequest) -> HttpResponse:
        """POST: republish the chosen letters to their original topics, each at most once."""
        return self._act(request, REPLAY_PERMISSION, "Replayed", dead_letter_marks.replay)

    def resolve_view(self, request: HttpRequest) -> HttpResponse:
        """POST: mark the chosen letters resolved; nothing is produced."""
        return self._act(
            request,
            RESOLVE_PERMISSION,
            "Resolved",
            lambda _config, letters, user: dead_letter_marks.resolve(letters, user),
        )

    def _act(
        self,
        request: HttpRequest,
        permission: str,
        verb: str,
        action: Callable[[TopicConfig, list[DeadLetter], str], dead_letter_marks.Outcome],
    ) -> HttpResponse:
        """Check the method and permission, read the chosen letters, act, log and say what happened."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(permission):
            raise PermissionDenied
        dlq = request.POST.get("dlq", "")
        config = self._config(dlq)
        try:
            letters = self._chosen(request, config, dlq)
            outcome = action(config, letters, request.user.get_username())
        except KafkaConsumerAppError as failure:
            messages.error(request, f"Nothing was done: {failure}")
            return self._back(request, dlq)
        text = (
            f"{verb} {outcome.done} dead letter(s) of {dlq}; {outcome.skipped} were replayed or resolved already"
            + (f"; {len(outcome.failed)} failed ({'; '.join(outcome.failed)})" if outcome.failed else "")
            + "."
        )
        LogEntry.objects.create(
            user_id=cast(int, request.user.pk),  # an admin view: the user is signed in
            content_type=ContentType.objects.get_for_model(DeadLetterMark),
            object_repr=dlq[:200],
            action_flag=CHANGE,
            change_message=text,
        )
        messages.add_message(request, messages.ERROR if outcome.failed else messages.SUCCESS, text)
        return self._back(request, dlq)

    def _chosen(self, request: HttpRequest, config: TopicConfig, dlq: str) -> list[DeadLetter]:
        """All the letters matching the posted filter, or those whose ``partition:offset`` was selected."""
        if request.POST.get("scope") == "matching":
            wanted, problem = parse_filter(request.POST)
            if problem:
                raise ConfigurationError(problem)
            return list(scan(config, dlq, wanted).letters)
        positions = []
        for selected in request.POST.getlist("selected"):
            partition, _, offset = selected.partition(":")
            if not (partition.isdigit() and offset.isdigit()):
                raise ConfigurationError(f"{selected!r} is not a dead letter's partition:offset")
            positions.append((int(partition), int(offset)))
        return fetch(config, dlq, positions)

    def _config(self, dlq: str) -> TopicConfig:
        topics = dead_letter_topics()
        if dlq not in topics:
            raise Http404(f"{dlq!r} is not the dead-letter topic of a topic of KAFKA_CONSUMER['TOPICS']")
        return topics[dlq]

    def _back(self, request: HttpRequest, dlq: str) -> HttpResponse:
        query = {name: request.POST.get(name, "") for name in FILTER_FIELDS if request.POST.get(name)}
        return HttpResponseRedirect(f"{reverse(_LIST)}?{urlencode({'dlq': dlq, **query})}")

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "title": title, "opts": self.model._meta}
