"""
Sphinx directives that render the reference from the code, so the code stays the one source.

``.. kafka-consumer-settings:: <module>:<TABLE>`` renders a settings table (a ``DocTable``: a dict of
key -> (default, description)) of ``kafka_consumer_app.settings.<module>``. ``.. kafka-consumer-command::
<name>`` renders the options of a management command from its argparse parser.
Both are plain docutils directives, so a test can render them without building the site.
"""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive, directives

#: The settings modules live in this package.
SETTINGS_PACKAGE = "kafka_consumer_app.settings"
#: Options every Django command has; the command pages leave them to Django's documentation.
DJANGO_OPTIONS = {"help", "version", "settings", "pythonpath", "traceback", "no_color", "force_color", "skip_checks"}


def load_table(spec: str) -> dict[str, tuple[Any, str]]:
    """Return the DocTable that ``<module>:<TABLE>`` names, or raise ValueError saying what is wrong."""
    module_name, _, table_name = spec.partition(":")
    if not module_name or not table_name:
        raise ValueError(f"expected '<module>:<TABLE>' (e.g. 'topics:SETTINGS_DOC'), got {spec!r}")
    module = importlib.import_module(f"{SETTINGS_PACKAGE}.{module_name}")
    table = getattr(module, table_name, None)
    if not isinstance(table, dict):
        raise ValueError(f"{SETTINGS_PACKAGE}.{module_name} has no DocTable named {table_name}")
    return table


def default_text(default: Any, description: str) -> str | None:
    """The default to show, or None when the description says it already (or the key is required)."""
    if description.startswith("Required") or "default" in description.lower():
        return None
    return repr(default)


def settings_nodes(table: dict[str, tuple[Any, str]], anchor: str = "setting") -> list[nodes.Node]:
    """Render a DocTable as a definition list: each key (with an id ``<anchor>-<key>``), its description and default."""
    items = nodes.definition_list()
    for key, (default, description) in table.items():
        definition = nodes.definition("", nodes.paragraph(text=description))
        shown = default_text(default, description)
        if shown is not None:
            definition += nodes.paragraph("", "Default: ", nodes.literal(text=shown))
        term = nodes.term("", "", nodes.literal(text=key))
        items += nodes.definition_list_item("", term, definition, ids=[nodes.make_id(f"{anchor}-{key}")])
    return [items]


def command_parser(name: str) -> argparse.ArgumentParser:
    """The argparse parser of the app's management command ``name``."""
    from django.core.management import load_command_class

    return load_command_class("kafka_consumer_app", name).create_parser("manage.py", name)


def command_nodes(parser: argparse.ArgumentParser) -> list[nodes.Node]:
    """Render a parser's usage and its options (Django's common ones left out), with their help."""
    formatter = parser._get_formatter()
    items = nodes.definition_list()
    for action in parser._actions:
        if action.dest in DJANGO_OPTIONS or action.help == argparse.SUPPRESS:
            continue
        metavar = formatter._format_args(action, action.dest.upper()) if action.nargs != 0 else ""
        names = ", ".join(f"{option} {metavar}".strip() for option in action.option_strings) or metavar
        help_text = formatter._expand_help(action) if action.help else ""
        term = nodes.term("", "", nodes.literal(text=names))
        items += nodes.definition_list_item("", term, nodes.definition("", nodes.paragraph(text=help_text)))
    usage = parser.format_usage().removeprefix("usage: ").strip()
    return [nodes.literal_block(usage, usage), items]


def rendered_table(spec: str, exclude: str | None = None) -> dict[str, tuple[Any, str]]:
    """The keys a directive renders: the table ``spec`` names, less the keys of the table ``exclude`` names."""
    table, left_out = load_table(spec), load_table(exclude) if exclude else {}
    return {key: entry for key, entry in table.items() if key not in left_out}


class SettingsTable(Directive):
    """``.. kafka-consumer-settings:: <module>:<TABLE>``: a settings table of the code.

    ``:exclude: <module>:<TABLE>`` leaves out the keys of another table (documented on another page).
    """

    required_arguments = 1
    option_spec = {"exclude": directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        spec = self.arguments[0]
        try:
            return settings_nodes(rendered_table(spec, self.options.get("exclude")), anchor=spec)
        except (ImportError, ValueError) as error:
            raise self.error(f"kafka-consumer-settings: {error}") from error


class CommandOptions(Directive):
    """``.. kafka-consumer-command:: <name>``: the usage and options of a management command."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        columns = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "100"  # argparse wraps the usage to the terminal: keep the page the same anywhere
        try:
            return command_nodes(command_parser(self.arguments[0]))
        except (ImportError, KeyError) as error:
            raise self.error(f"kafka-consumer-command: no command {self.arguments[0]!r} ({error})") from error
        finally:
            if columns is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = columns


def setup(app: Any) -> dict[str, Any]:
    """Register the directives with Sphinx."""
    app.add_directive("kafka-consumer-settings", SettingsTable)
    app.add_directive("kafka-consumer-command", CommandOptions)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
