"""
The validators of every input that can reach librdkafka: command-line options and setting values.

Each ``*_problem`` function returns None for a valid value, or the end of a sentence that
follows the input's name: ``f"--group-id {problem}"`` or ``f"KAFKA_CONSUMER['GROUP_ID'] {problem}"``
is one line naming the input, what is wrong and the fix. The command-line options use them
through :func:`argparse_type` (a usage error, exit 2); the settings checks of
:mod:`kafka_consumer_app.settings.topics` and the commands' re-checks of ``call_command`` keyword
options (which skip argparse) use them directly.

Only the standard library is imported: the Django-free probe uses this module too.
"""

from __future__ import annotations

import argparse
import math
import re
import unicodedata
from collections.abc import Callable
from typing import Any

#: Kafka's longest topic name (kafka.common.internals.Topic.MAX_NAME_LENGTH).
MAX_TOPIC_LENGTH = 249
#: Kafka sets no bound of its own on group ids below its protocol's 32767-byte strings. The same bound as
#: topic names keeps every group id usable where tools derive topic names from it (``<group>-changelog``,
#: Kafka Streams' application.id) and printable in the lag report and in logs.
MAX_GROUP_ID_LENGTH = 249
#: librdkafka's timeouts are 32-bit signed milliseconds: a longer wait overflows it (about 24.8 days).
MAX_SECONDS = 2_147_483
#: Kafka's legal topic names; ``\Z``, not ``$``, so that a trailing newline is not accepted.
KAFKA_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}\Z")
TOPIC_CHARACTERS = "letters a-z and A-Z, digits, '.', '_' and '-'"


def _kind(value: Any) -> str:
    return type(value).__name__


def _unprintable(text: str) -> str | None:
    """The first control, surrogate or other unprintable character of ``text`` (repr'd), or None."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn") or char in "\u2028\u2029":
            return repr(char)
    return None


def text_problem(value: Any, what: str) -> str | None:
    """Why ``value`` is not a non-empty, printable string without surrounding whitespace; None when it is."""
    if not isinstance(value, str):
        return f"must be {what} (a string), not {_kind(value)} {value!r}"
    if not value.strip():
        return f"must be {what}, not an empty or blank value {value!r}"
    if value != value.strip():
        return f"must be {what} without leading or trailing whitespace, not {value!r}"
    char = _unprintable(value)
    if char:
        return f"must be {what} without control characters, not {value!r} (it contains {char})"
    return None


def topic_name_problem(value: Any) -> str | None:
    """Why ``value`` is not a legal Kafka topic name (Kafka's rules), or None when it is."""
    problem = text_problem(value, "a Kafka topic name")
    if problem:
        return problem
    if len(value) > MAX_TOPIC_LENGTH:
        return f"must be a Kafka topic name of at most {MAX_TOPIC_LENGTH} characters, not {len(value)} characters"
    if value in (".", ".."):
        return f"must be a Kafka topic name; Kafka forbids {value!r}"
    if not KAFKA_TOPIC_NAME.match(value):
        bad = next(char for char in value if not KAFKA_TOPIC_NAME.match(char))
        return f"must be a Kafka topic name of {TOPIC_CHARACTERS} only, not {value!r} (it contains {bad!r})"
    return None


def group_id_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable consumer group id, or None when it is."""
    problem = text_problem(value, "a consumer group name")
    if problem:
        return problem
    if len(value) > MAX_GROUP_ID_LENGTH:
        return f"must be a consumer group name of at most {MAX_GROUP_ID_LENGTH} characters, not {len(value)}"
    return None


def positive_int_problem(value: Any) -> str | None:
    """Why ``value`` is not an integer greater than zero (a bool is not one), or None."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return f"must be a positive integer, not {value!r}"
    return None


def seconds_problem(value: Any, allow_zero: bool = False) -> str | None:
    """Why ``value`` is not a finite number of seconds above zero (or at least zero), at most MAX_SECONDS."""
    what = "a number of seconds of at least 0" if allow_zero else "a positive number of seconds"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be {what}, not {_kind(value)} {value!r}"
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        return f"must be {what}, not {value!r}"
    if value > MAX_SECONDS:
        return f"must be {what} of at most {MAX_SECONDS} (librdkafka's longest timeout), not {value!r}"
    return None


def port_problem(value: Any) -> str | None:
    """Why ``value`` is not a TCP port from 1 to 65535 (0, "any free port", is refused: probes need a known port)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return f"must be a port number from 1 to 65535, not {value!r}"
    return None


def path_problem(value: Any, what: str = "a file path") -> str | None:
    """Why ``value`` is not a usable path: a non-empty string without NUL or control characters."""
    return text_problem(value, what)


def argparse_type(convert: Callable[[str], Any], check: Callable[[Any], str | None], what: str) -> Callable[[str], Any]:
    """
    An argparse ``type=``: ``convert`` the text, then ``check`` it; either failing is a one-line usage error.

    A number is refused quoting the text as typed (``not '-3'``), a text with ``check``'s own reason.
    """

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}") from None
        problem = check(value)
        if problem and convert is not str and "at most" not in problem:
            problem = f"must be {what}, not {text!r}"
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = getattr(check, "__name__", "value").removesuffix("_problem")
    return parse


def _integer(text: str) -> int:
    """int() of a decimal integer only, its digits bounded so that a huge one is refused at once."""
    if not re.fullmatch(r"\s*[+-]?[0-9]{1,30}\s*", text):
        raise ValueError(text)
    return int(text)


#: argparse types shared by every command's options.
positive_int = argparse_type(_integer, positive_int_problem, "a positive integer")
port_number = argparse_type(_integer, port_problem, "a port number from 1 to 65535")
positive_seconds = argparse_type(float, seconds_problem, "a positive number of seconds")
topic_name = argparse_type(str, topic_name_problem, "a Kafka topic name")
group_name = argparse_type(str, group_id_problem, "a consumer group name")


def non_empty_text(what: str) -> Callable[[str], str]:
    """An argparse type for free text that must not be empty, blank or hold control characters."""
    return argparse_type(str, lambda value: text_problem(value, what), what)


def first_problem(checks: dict[str, tuple[Any, Callable[[Any], str | None]]]) -> str | None:
    """``"<name> <problem>"`` for the first of ``{name: (value, check)}`` given (not None) and invalid; else None."""
    for name, (value, check) in checks.items():
        if value is None:
            continue
        problem = check(value)
        if problem:
            return f"{name} {problem}"
    return None


def valid_port(value: Any) -> bool:
    """True for a TCP port a server can be told to bind: an integer from 1 to 65535 (0 would pick one at random)."""
    return port_problem(value) is None


#: confluent-kafka options whose value is a Python object, not a librdkafka property: callbacks and a logger.
PYTHON_OBJECT_OPTIONS = ("logger",)


def librdkafka_value_problem(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be passed as librdkafka option ``key``, or None. Never quotes the value (secrets)."""
    if key in PYTHON_OBJECT_OPTIONS or (callable(value) and (key.endswith("_cb") or key == "on_commit")):
        return None
    if not isinstance(value, (str, int, float)):  # bool is an int; librdkafka takes "true"/"false"
        return f"must be a string, a number or a boolean, not {_kind(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number, not NaN or an infinity"
    if isinstance(value, str) and "\x00" in value:
        return "must not contain a NUL character"
    return None


def one_line_usage_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """
    Make ``parser``'s usage errors one line: ``prog: error: <what is wrong>``, exit 2.

    argparse prints its usage block before the error; a bad option is then told on one line,
    as every other error is, and the usage stays in ``--help``.
    """

    def print_usage_for_help_only(file: Any = None) -> None:
        """The usage block is printed only on an error; --help prints it with print_help()."""

    parser.print_usage = print_usage_for_help_only  # type: ignore[method-assign]
    return parser


def key_list(keys: Any) -> str:
    """Keys of a settings dict for a one-line message: printable names as they are, any other key repr'd, sorted."""
    return ", ".join(sorted(key if isinstance(key, str) and key.isprintable() else repr(key) for key in keys))
