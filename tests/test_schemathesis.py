"""Generated requests against the generated OpenAPI document (schemathesis): a bounded number of
cases per operation, with a valid key, and never a server error or an undocumented answer."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.test_api import RecordingQueue
from unmask.api import create_app
from unmask.core.settings import Settings
from unmask.migrations import upgrade


def served_app():  # noqa: ANN201
    """The API on SQLite and the local store; schemathesis loads its schema at collection."""
    data = Path(tempfile.mkdtemp(prefix="unmask-schemathesis-"))
    config = Settings(data_dir=data, secret_key="s", rate_limit="100000/second", max_upload_bytes=100_000)
    upgrade(config.resolved_database_url)
    app = create_app(config, queue=RecordingQueue())
    _, secret = app.extensions["unmask"].keys.create(tenant="fuzz")
    return app, secret


APP, SECRET = served_app()
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {SECRET}"},
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )
