from tests.jobs.conftest import blob_service, container, db, repos  # noqa: F401
