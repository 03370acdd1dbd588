"""
tests.settings with the example service's ``orders`` app, for tests of its ORM receivers.

With ``TEST_DATABASE_URL`` set (the ``postgres_database`` fixture's ``env``), they write to PostgreSQL.
"""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "orders"]  # noqa: F405
