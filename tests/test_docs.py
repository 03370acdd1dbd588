"""
The documentation stays true: every page parses, every setting is in the rendered reference, every page is reachable.

``make docs`` builds the whole site with warnings as errors; these tests are the fast part of it that
``pytest`` runs on its own: the pages' reStructuredText, the reference rendered from the code (with the
site's own directives, docs/_ext/settings_tables.py) and the README's size and links.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import docutils.core
import docutils.utils
import pytest
from docutils import nodes
from docutils.parsers.rst import Directive, directives, roles

from kafka_consumer_app.settings.failures import RETRY_DOC
from kafka_consumer_app.settings.manifests import MANIFESTS_DOC
from kafka_consumer_app.settings.schema_registry import SCHEMA_REGISTRY_DOC
from kafka_consumer_app.settings.topics import SETTINGS_DOC, TOPIC_SETTINGS_DOC

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.rst"
PAGES = sorted(path for path in DOCS.rglob("*.rst") if "_build" not in path.parts)
DOCUMENTS = [README, ROOT / "CHANGELOG.rst", *PAGES]
#: The README stays a first read; everything else lives in docs/.
README_MAX_LINES = 250
#: Sphinx's own roles and directives that the pages use, which docutils alone does not know.
SPHINX_ROLES = ("ref", "doc", "mod", "class", "func")
SPHINX_DIRECTIVES = ("toctree", "automodule")


def _extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_tables", DOCS / "_ext" / "settings_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


settings_tables = _extension()


class _Ignored(Directive):
    """Stands for a Sphinx directive: its arguments and content are accepted and render nothing."""

    optional_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = None

    def run(self) -> list[nodes.Node]:
        return []


@pytest.fixture(scope="module", autouse=True)
def sphinx_names() -> None:
    """Let docutils parse the pages: the site's directives for real, Sphinx's own ones as no-ops."""
    for role in SPHINX_ROLES:
        roles.register_local_role(
            role,
            lambda name, rawtext, text, lineno, inliner, options=None, content=None: (
                [nodes.literal(rawtext, text)],
                [],
            ),
        )
    for name in SPHINX_DIRECTIVES:
        directives.register_directive(name, _Ignored)
    directives.register_directive("kafka-consumer-settings", settings_tables.SettingsTable)
    directives.register_directive("kafka-consumer-command", settings_tables.CommandOptions)


def _doctree(path: Path) -> nodes.document:
    return docutils.core.publish_doctree(
        path.read_text(encoding="utf-8"),
        source_path=str(path),
        settings_overrides={"report_level": 2, "halt_level": 2, "file_insertion_enabled": True},
    )


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_document_parses_without_warnings(path):
    try:
        _doctree(path)
    except docutils.utils.SystemMessage as error:
        pytest.fail(f"{path.relative_to(ROOT)}: {error}")


def _rendered_settings() -> set[str]:
    """The keys that the pages' kafka-consumer-settings directives render, through the directive's own code."""
    keys: set[str] = set()
    pattern = re.compile(r"^\.\. kafka-consumer-settings:: (\S+)\n(?:   :exclude: (\S+)\n)?", re.MULTILINE)
    for path in PAGES:
        for spec, exclude in pattern.findall(path.read_text(encoding="utf-8")):
            for node in settings_tables.settings_nodes(settings_tables.rendered_table(spec, exclude or None)):
                keys |= {term.astext() for term in node.findall(nodes.term)}
    return keys


@pytest.mark.parametrize(
    "key", sorted({*SETTINGS_DOC, *TOPIC_SETTINGS_DOC, *RETRY_DOC, *MANIFESTS_DOC, *SCHEMA_REGISTRY_DOC})
)
def test_every_setting_is_in_the_rendered_reference(key):
    assert key in _rendered_settings()


def test_a_rendered_setting_shows_its_description_and_default():
    text = nodes.container(
        "", *settings_tables.settings_nodes({"POLL_TIMEOUT": (1.0, "Seconds one poll waits.")})
    ).astext()

    assert tuple(text.split("\n\n")) == ("POLL_TIMEOUT", "Seconds one poll waits.", "Default: 1.0")


def test_a_directive_naming_a_missing_table_fails_with_what_to_write():
    with pytest.raises(ValueError, match="no DocTable named NOPE"):
        settings_tables.load_table("topics:NOPE")
    with pytest.raises(ValueError, match="expected '<module>:<TABLE>'"):
        settings_tables.load_table("SETTINGS_DOC")


@pytest.mark.parametrize("command", ["consume_events", "consumer_status", "replay_dead_letters", "consumer_manifests"])
def test_every_command_option_is_rendered_with_its_help(command):
    parser = settings_tables.command_parser(command)
    text = nodes.container("", *settings_tables.command_nodes(parser)).astext()

    for action in parser._actions:
        if action.dest not in settings_tables.DJANGO_OPTIONS:
            assert all(option in text for option in action.option_strings), action.option_strings
    assert "--settings" not in text.split("\n\n", 1)[1]


def _toctree_entries() -> set[Path]:
    """Every page named by a toctree, globs expanded, as it is on disk."""
    entries: set[Path] = set()
    for path in PAGES:
        for block in re.findall(r"^\.\. toctree::\n((?:   .*\n|\n)*)", path.read_text(encoding="utf-8"), re.MULTILINE):
            for line in block.splitlines():
                name = line.strip()
                if name and not name.startswith(":"):
                    entries |= set(path.parent.glob(f"{name}.rst"))
    return entries


@pytest.mark.parametrize("path", PAGES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_page_is_reachable_from_a_toctree(path):
    if path == DOCS / "index.rst":
        return
    assert path in _toctree_entries(), f"add {path.relative_to(DOCS).with_suffix('')} to a toctree"


def test_the_readme_stays_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) < README_MAX_LINES


def test_the_readme_starts_with_make_demo_and_make_test():
    commands = re.findall(r"^    (\S.*)$", README.read_text(encoding="utf-8"), re.MULTILINE)

    assert commands[:2] == ["make demo", "make test"]


def _readme_links() -> set[str]:
    return set(re.findall(r"<([^<>\s]+)>`_", README.read_text(encoding="utf-8")))


@pytest.mark.parametrize("link", sorted(_readme_links()))
def test_every_readme_link_names_a_file_of_the_repository(link):
    assert (ROOT / link).exists()


@pytest.mark.parametrize(
    "path",
    [path for path in PAGES if path.parent.name in {"how-to", "concepts", "reference"}],
    ids=lambda path: path.name,
)
def test_every_guide_concept_and_reference_page_is_linked_from_the_readme(path):
    assert str(path.relative_to(ROOT)) in _readme_links()
