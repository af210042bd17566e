"""When a test whose requirement is missing skips, and when it fails instead.

A browser or PostgreSQL test skips with the reason on a machine without Chromium or
PostgreSQL, so a developer's quick run stays green; CI sets ``COSMICS_REQUIRE_BROWSER=1``
and ``COSMICS_REQUIRE_POSTGRES=1`` (see ``.ci/run``) so a missing requirement fails there.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_BROWSER = "COSMICS_REQUIRE_BROWSER"
REQUIRE_POSTGRES = "COSMICS_REQUIRE_POSTGRES"


def required(variable: str) -> bool:
    """Whether the environment says the tests needing this must run rather than skip."""
    return os.environ.get(variable, "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str, variable: str):
    """Skip with ``reason``, or fail with it when ``variable`` requires these tests."""
    if required(variable):
        pytest.fail(f"{reason}; {variable} requires these tests to run", pytrace=False)
    pytest.skip(reason)
