from tests.jobs.conftest import blob_service, container, db, queue, repos  # noqa: F401
