"""
ShareGroupConsumer: the loop of a topic consumed through a Kafka share group (KIP-932), experimental.

A sibling of :class:`~kafka_consumer_app.engine.consumer.EventConsumer`'s sequential loop, with the same
parts: :class:`~kafka_consumer_app.engine.delivery.Delivery` converts and dispatches each message under
the watchdog and the hooks, :class:`~kafka_consumer_app.engine.policy.FailurePolicy` decides about a
failure, and :class:`~kafka_consumer_app.engine.outcomes.Outcomes` parks or skips. What differs is how
a message is let go: not an offset stored, but an acknowledgement of that message alone, through
:class:`ShareAcks`:

- handled: ACCEPT;
- a failure the retry policy retries: RELEASE, so the broker delivers it again, to any consumer of the
  group; its delivery count is the attempt number, so the retries are counted across consumers;
- the last failure: parked in the dead-letter topic (or skipped, per FAILURE_POLICY), then REJECT, so it
  is never delivered again; a Stop acknowledges nothing and the message is redelivered after the exit.

Acknowledgements go to the broker with the next poll, and synchronously before the client closes on a
clean stop. See docs/decisions/0014-share-groups.rst.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import AcknowledgeType, KafkaException, ShareConsumer
from confluent_kafka import Message as KafkaMessage
from confluent_kafka.admin import AdminClient
from django.db import close_old_connections

from kafka_consumer_app.engine.batch_dispatch import BatchDispatcher, require_receivers
from kafka_consumer_app.engine.client import ClientErrorHandler, admin_options, consumer_options
from kafka_consumer_app.engine.dead_letters import DeadLetterProducer
from kafka_consumer_app.engine.delivery import Delivery
from kafka_consumer_app.engine.dispatch import Dispatcher
from kafka_consumer_app.engine.hooks import HANDLED, ConsumerHooks, HookEmitter
from kafka_consumer_app.engine.outages import DatabaseOutage
from kafka_consumer_app.engine.outcomes import Outcomes
from kafka_consumer_app.engine.policy import Decision, FailurePolicy, Retry
from kafka_consumer_app.engine.progress import Progress, RunSummary
from kafka_consumer_app.engine.records import MessageConverter, locate, where
from kafka_consumer_app.engine.retries import RetryScheduler
from kafka_consumer_app.engine.share_setup import EXPERIMENTAL_WARNING, start_from_earliest
from kafka_consumer_app.engine.shutdown import StopRequest
from kafka_consumer_app.engine.topic_watch import TopicWatch, check_dead_letter_topic
from kafka_consumer_app.engine.watchdog import Watchdog
from kafka_consumer_app.exceptions import ConfigurationError, DeserializationError
from kafka_consumer_app.settings.topics import TopicConfig

logger = logging.getLogger(__name__)

#: Options of a consumer group's client that librdkafka refuses for a share consumer (the broker decides them).
NOT_FOR_SHARE_CONSUMERS = frozenset(
    {
        "auto.offset.reset",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "auto.commit.interval.ms",
        "group.protocol",
        "group.instance.id",
        "partition.assignment.strategy",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "isolation.level",
    }
)

#: Seconds the closing commit of acknowledgements may take.
COMMIT_TIMEOUT = 10.0


class ShareAcks:
    """The acknowledgements of one share consumer: each message is accepted, released or rejected once."""

    def __init__(self, client: ShareConsumer) -> None:
        self.client = client

    def accept(self, raw: KafkaMessage) -> None:
        """Handled: the broker archives it as delivered."""
        self.client.acknowledge(raw, AcknowledgeType.ACCEPT)

    def release(self, raw: KafkaMessage) -> None:
        """To be tried again: the broker delivers it again (to any consumer), its delivery count one higher."""
        self.client.acknowledge(raw, AcknowledgeType.RELEASE)

    def reject(self, partition: int, raw: KafkaMessage) -> None:
        """Given up (parked or skipped): the broker archives it and never delivers it again."""
        self.client.acknowledge(raw, AcknowledgeType.REJECT)

    def commit(self) -> None:
        """Send the acknowledgements made so far and wait for the broker's answer; log the partitions it refused."""
        try:
            results = self.client.commit_sync(COMMIT_TIMEOUT)
        except KafkaException as error:
            logger.warning("Committing acknowledgements failed (%s); unacknowledged messages are redelivered.", error)
            return
        for partition, refused in results.items():
            if refused is not None:
                logger.warning(
                    "The broker refused acknowledgements of %s (%s); they are redelivered.", partition, refused
                )


class ShareGroupConsumer:
    """
    Consumes one topic in one share group and hands each message to its signal receivers.

    ``run()`` returns normally on a clean stop (a stop request, ``max_messages`` or ``idle_timeout``)
    and raises a :class:`KafkaConsumerAppError` for anything fatal, as ``EventConsumer.run()`` does.
    """

    def __init__(
        self, config: TopicConfig, options: Any, stop: StopRequest | None = None, hooks: Sequence[ConsumerHooks] = ()
    ) -> None:
        if options.reset is not None:
            raise ConfigurationError(
                "--from-beginning and --offset-time do not apply to a share group (E123): where a new share "
                "group starts is its share.auto.offset.reset; drop the option, or consume without --share-group."
            )
        self.config, self.options = config, options
        self.stop = stop or StopRequest()
        self.hooks = list(hooks)
        self.emitter = HookEmitter(self.hooks, self)
        emit = self.emitter.emit
        timed = self.emitter.wants("after_receiver")
        self.dispatcher = Dispatcher(config.topic, sender=ShareGroupConsumer, timed=timed)
        self.batches = BatchDispatcher(config.topic, sender=ShareGroupConsumer, timed=timed)
        self.summary = RunSummary()
        self.progress = Progress(config, self.summary, emit)
        self.delivery = Delivery(MessageConverter(config), self.dispatcher, self.emitter)
        self.outage = DatabaseOutage(config.outage, emit)
        self.progress.outage_state = self.outage.state
        self.policy = FailurePolicy(config.failure, can_park=False, outage=self.outage)
        self.watchdog = Watchdog(config.failure.soft_timeout, config.failure.hard_timeout)
        self.topic_watch = TopicWatch(config, emit)
        self.client_errors = ClientErrorHandler(config, on_missing_topic=self.topic_watch.check_soon)
        # The retry scheduler stays empty: a retry is a release, and the broker schedules the redelivery.
        retries = RetryScheduler(config.kafka_topic, lambda: self.outage.active, lambda client, parts: None)
        self.outcomes = Outcomes(config, retries, self.summary, emit, self._reject)
        self.acks: ShareAcks | None = None
        #: Answers the metadata requests (the topic's existence): a share consumer has no list_topics.
        self._admin: Any = None
        self._joined = False
        self._last_message_at = time.monotonic()

    def _reject(self, partition: int, raw: KafkaMessage) -> None:
        assert self.acks is not None
        self.acks.reject(partition, raw)
        self.summary.processed += 1

    def client_config(self) -> dict[str, Any]:
        """The share consumer's configuration: the pass-through options it accepts, explicit acknowledgements."""
        options = consumer_options(self.config, self.client_errors.on_error, {"share.acknowledgement.mode": "explicit"})
        return {key: value for key, value in options.items() if key not in NOT_FOR_SHARE_CONSUMERS}

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Consume until a clean stop; raise KafkaConsumerAppError on anything fatal."""
        require_receivers(self.config.topic, self.dispatcher.has_receivers(), False, self.options.allow_no_handlers)
        if self.batches.has_receivers():
            raise ConfigurationError(
                f"batch_signal({self.config.topic!r}) has receivers, which a share group does not support "
                "(E124): use topic_signal receivers, or consume without --share-group / SHARE_GROUP."
            )
        logger.warning(EXPERIMENTAL_WARNING, self.config.kafka_topic, self.config.group_id)
        client = ShareConsumer(self.client_config())
        acks = self.acks = ShareAcks(client)
        try:
            self._start(client)
            while not self._should_stop():
                self._poll_once(client, acks)
            acks.commit()
        finally:
            self.emitter.emit("after_stop")
            self.watchdog.stop()
            self._close(client)
        self.progress.log_stopped()
        return self.summary

    def _start(self, client: ShareConsumer) -> None:
        """Start the producer, the watchdog and the hooks; wait for the topic; set the group's start; subscribe."""
        admin = self._admin = AdminClient(admin_options(self.config, self.client_errors.on_error))
        if self.config.failure.policy == "dead-letter":
            self.outcomes.dead_letters = DeadLetterProducer(self.config)
            self.policy.can_park = True
        self.watchdog.start()
        self.emitter.emit("before_start")
        # The admin client answers metadata requests as a consumer does (a share consumer has no list_topics).
        metadata_client: Any = admin
        self.topic_watch.wait_for_topic(metadata_client, self.client_errors.errors, self.stop.is_set)
        dead_letter_topic = self.config.failure.dead_letter_topic
        if self.outcomes.dead_letters is not None and dead_letter_topic and not self.stop.is_set():
            check_dead_letter_topic(metadata_client, dead_letter_topic)
        start_from_earliest(admin, self.config)
        client.subscribe([self.config.kafka_topic])
        logger.info(
            "Consuming topic %s as share group %s from %s; each message is acknowledged after handling.",
            self.config.kafka_topic,
            self.config.group_id,
            self.config.bootstrap_servers,
        )
        self._last_message_at = time.monotonic()
        self.progress.restart()

    def _close(self, client: ShareConsumer) -> None:
        try:
            client.close()  # leaves the group; messages acquired and not acknowledged are released
        except (KafkaException, RuntimeError) as error:
            logger.warning(
                "Closing the share consumer failed (%s); its acquired messages are released by timeout.", error
            )
        if self.outcomes.dead_letters is not None:
            self.outcomes.dead_letters.close()

    # -- the loop --------------------------------------------------------------------------

    def _should_stop(self) -> bool:
        options, summary = self.options, self.summary
        if self.stop.is_set():
            summary.stop_reason = f"stop requested ({self.stop.reason})"
        elif options.max_messages is not None and summary.processed >= options.max_messages:
            summary.stop_reason = f"--max-messages {options.max_messages} reached"
        elif (
            options.idle_timeout is not None
            and self._joined
            and time.monotonic() - self._last_message_at >= options.idle_timeout
            and not self.outage.active
        ):
            summary.stop_reason = f"no message for --idle-timeout {options.idle_timeout:g}s"
        else:
            return False
        return True

    def _poll_once(self, client: ShareConsumer, acks: ShareAcks) -> None:
        """Poll (which also sends the acknowledgements made so far), then handle what came, one at a time."""
        batch = list(client.poll(self.config.poll_timeout))
        self.emitter.emit("after_poll")
        self.client_errors.raise_if_fatal()
        if not self._joined:
            # No partitions are assigned in a share group: a first answer from the group is membership enough.
            self._joined = True
            self.emitter.emit("after_assign", [])
        for index, raw in enumerate(batch):
            error = raw.error()
            if error is not None:
                self.client_errors.on_message_error(error)
                continue
            if index and self._should_stop():
                # Released at once rather than held until the close: another consumer may take them now.
                for rest in batch[index:]:
                    if rest.error() is None:
                        acks.release(rest)
                break
            self._last_message_at = time.monotonic()
            self._handle(raw, acks)
        self.progress.report()
        self.topic_watch.check_still_exists(self._admin)

    def _handle(self, raw: KafkaMessage, acks: ShareAcks) -> None:
        """Dispatch one message; accept it if every receiver returned, else carry out the policy's decision."""
        location = locate(raw)
        attempt = raw.delivery_count() or 1
        while True:
            close_old_connections()
            try:
                result = self.delivery.attempt(raw, location, None, self.watchdog)
            except DeserializationError as error:
                self.outcomes.carry_out(None, raw, self.policy.decide_malformed(error))
                return
            finally:
                close_old_connections()
            if result.ok:
                break
            decision = self.policy.decide(result.failures, attempt)
            if not self._wait_out_outage(raw, decision):
                self._failed(raw, decision, acks)
                return
        self.policy.record_success()
        acks.accept(raw)
        self.summary.handled += 1
        self.summary.processed += 1
        if "after_message" in self.emitter.wanted:
            self.emitter.emit("after_message", raw, HANDLED)

    def _wait_out_outage(self, raw: KafkaMessage, decision: Decision) -> bool:
        """
        A database outage: wait here and try again, the message kept, as its try does not count. A
        release would use up one of the broker's deliveries per try. Return False for anything else.
        """
        if not (isinstance(decision, Retry) and decision.outage_for is not None):
            return False
        self.outcomes.retrying(raw, decision, "the message kept by this consumer meanwhile")
        deadline = time.monotonic() + decision.delay
        while time.monotonic() < deadline and not self.stop.is_set():
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            self.emitter.emit("after_poll")
        return not self.stop.is_set()

    def _failed(self, raw: KafkaMessage, decision: Decision, acks: ShareAcks) -> None:
        """A retry releases the message for redelivery; a park or skip rejects it after; a stop raises."""
        if isinstance(decision, Retry):
            if decision.outage_for is not None:
                return  # stopping during an outage: unacknowledged, the message is released at the close
            retry = dataclasses.replace(decision, delay=0.0)
            self.outcomes.retrying(raw, retry, "released to the share group for redelivery to any of its consumers")
            acks.release(raw)
            return
        logger.debug("Giving up %s after delivery %d.", where(raw), raw.delivery_count() or 1)
        self.outcomes.carry_out(None, raw, decision)
