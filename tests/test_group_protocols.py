"""
What a change of membership costs the members that stay, under each group protocol, against a real broker.

One scenario per protocol (the classic one with the app's cooperative-sticky assignment, and
KIP-848's ``consumer``): two members consume a paced stream, a third joins (a scale-up), then
each of the three is stopped with SIGTERM and replaced in turn (a rolling restart). Each phase
prints one line::

    FIGURES group-protocol=<name> <phase>: longest_pause=<s> longest_handover=<s> settled=<s> duplicates=N

``longest_pause`` is the longest gap between two messages handled by one member that kept running
through the change (the phase's start and end count as messages, so a member handling nothing at
all pauses the whole phase); ``longest_handover`` is the same for one partition, whoever handles
it: how long a partition that moved went unhandled. ``settled`` is how long after the new member's
start (its Django start included) the group held every partition again with it. Nothing is asserted
about these: a busy machine moves them. Every message must still be handled.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from .kafka_utils import ConsumerProcess, ConsumerProcesses, GroupProtocol, duplicates, report_figures, wait_for
from .test_fault_injection import PacedProducer, handled_ids, read_tries, stable_split, topic_records

pytestmark = pytest.mark.broker

PARTITIONS = 6
#: Messages a second, with a receiver that takes 2 ms: every member always has work in hand.
RATE = 150
#: Seconds the group runs undisturbed before and after each change, so that a pause shows in full.
STEADY = 2.0


def longest_pause(times: Iterable[float], start: float, end: float) -> float:
    """The longest gap in ``times`` (seconds since the epoch) between ``start`` and ``end``, both included."""
    points = sorted([start, end, *(t for t in times if start <= t <= end)])
    return max(later - earlier for earlier, later in itertools.pairwise(points))


class Scenario:
    """The group of one run: its members, their record files, and the phase figures."""

    def __init__(self, servers: str, topic: str, group: str, directory: Path, consumers: ConsumerProcesses) -> None:
        self.servers, self.topic, self.group = servers, topic, group
        self.record = directory / "records.txt"
        self.tries = directory / "tries.txt"
        self.consumers = consumers
        self.members: list[ConsumerProcess] = []

    def start(self) -> ConsumerProcess:
        """Start one more member."""
        member = self.consumers.start(
            self.servers, self.topic, self.record, group=self.group, env={"TESTAPP_TRIES": str(self.tries)}
        )
        self.members.append(member)
        return member

    def settle(self, members: int) -> float:
        """Wait for ``members`` members to share every partition; return when that was seen (time.time())."""
        wait_for(
            lambda: stable_split(self.servers, self.group, self.topic, members, PARTITIONS),
            timeout=60,
            what=f"{members} members sharing every partition",
            interval=0.25,
        )
        return time.time()

    def pause_of(self, staying: list[ConsumerProcess], start: float, end: float) -> float:
        """The longest pause of the members in ``staying`` between ``start`` and ``end``."""
        tries = read_tries(self.tries)
        return max(longest_pause((t.started for t in tries if t.pid == m.pid), start, end) for m in staying)

    def handover(self, start: float, end: float) -> float:
        """The longest pause of a partition, whoever handled it, between ``start`` and ``end``."""
        tries = read_tries(self.tries)
        return max(
            longest_pause((t.started for t in tries if t.partition == partition), start, end)
            for partition in range(PARTITIONS)
        )


def scale_up(scenario: Scenario) -> tuple[float, float, float]:
    """From two members to three: the longest pause of the first two, the longest handover, the seconds to settle."""
    staying = [scenario.start(), scenario.start()]
    scenario.settle(2)
    time.sleep(STEADY)  # the steady state before the change, so that its pause is measured in full
    start = time.time()
    scenario.start()
    settled = scenario.settle(3)
    time.sleep(STEADY)
    end = time.time()
    return scenario.pause_of(staying, start, end), scenario.handover(start, end), settled - start


def rolling_restart(scenario: Scenario) -> tuple[float, float, float]:
    """Each member stopped and replaced in turn: the longest pause of those running through a step, the longest
    handover, the slowest step."""
    pauses, handovers, steps = [], [], []
    for old in list(scenario.members):
        staying = [member for member in scenario.members if member is not old and member.process.poll() is None]
        start = time.time()
        old.send(signal.SIGTERM)
        assert old.wait(30) == 0, old.output()
        scenario.members.remove(old)
        scenario.start()
        settled = scenario.settle(3)
        time.sleep(STEADY)
        end = time.time()
        pauses.append(scenario.pause_of(staying, start, end))
        handovers.append(scenario.handover(start, end))
        steps.append(settled - start)
    return max(pauses), max(handovers), max(steps)


def test_a_scale_up_and_a_rolling_restart_lose_nothing_and_report_the_pauses_of_the_members_that_stay(
    kafka_broker, make_topic, group_id, tmp_path, group_protocol: GroupProtocol, consumers
):
    servers = kafka_broker.bootstrap_servers
    topic = make_topic(partitions=PARTITIONS)
    scenario = Scenario(servers, topic, group_id, tmp_path, consumers)
    producer = PacedProducer(servers, topic, rate=RATE, extra={"sleep": 0.002}).start()
    try:
        pause, handover, settled = scale_up(scenario)
        after_scale_up = duplicates(topic_records(scenario.record))
        report_figures(
            f"FIGURES group-protocol={group_protocol.name} scale-up-2-to-3: longest_pause={pause:.2f}s "
            f"longest_handover={handover:.2f}s settled={settled:.2f}s duplicates={after_scale_up}"
        )
        pause, handover, settled = rolling_restart(scenario)
        produced = producer.stop()
    finally:
        producer.halt(30)
    wanted = set(range(produced))
    wait_for(lambda: wanted <= handled_ids(scenario.record), timeout=60, what="every produced id to be handled")
    for member in scenario.members:
        member.send(signal.SIGTERM)
    for member in scenario.members:
        assert member.wait(30) == 0, member.output()
    records = topic_records(scenario.record)
    lost = len(wanted - {r.id for r in records})
    report_figures(
        f"FIGURES group-protocol={group_protocol.name} rolling-restart-of-3: longest_pause={pause:.2f}s "
        f"longest_handover={handover:.2f}s settled={settled:.2f}s "
        f"duplicates={duplicates(records) - after_scale_up} lost={lost} produced={produced}"
    )
    assert lost == 0
