"""The README stays true: valid reStructuredText, and every setting documented."""

from __future__ import annotations

from pathlib import Path

import docutils.core
import docutils.utils
import pytest

from kafka_consumer_app.settings.failures import RETRY_DOC
from kafka_consumer_app.settings.topics import SETTINGS_DOC, TOPIC_SETTINGS_DOC

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.rst", ROOT / "CHANGELOG.rst", *sorted((ROOT / "docs" / "decisions").glob("*.rst"))]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.name)
def test_the_document_parses_without_warnings(path):
    try:
        docutils.core.publish_doctree(
            path.read_text(encoding="utf-8"), settings_overrides={"report_level": 2, "halt_level": 2}
        )
    except docutils.utils.SystemMessage as error:
        pytest.fail(f"{path.name}: {error}")


@pytest.mark.parametrize("key", sorted({*SETTINGS_DOC, *TOPIC_SETTINGS_DOC, *RETRY_DOC}))
def test_every_setting_is_documented_in_the_readme(key):
    assert f"``{key}``" in (ROOT / "README.rst").read_text(encoding="utf-8")
