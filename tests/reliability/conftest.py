"""The e2e fixtures (the real app on the local host, failure watch), the job-test
repositories and the inference harness, for the reliability tests."""

from tests.e2e.conftest import app_host, no_silent_failures  # noqa: F401
from tests.jobs.conftest import db, repos  # noqa: F401
from tests.models.test_inference import harness  # noqa: F401
