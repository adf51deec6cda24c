"""The OpenAPI description of the study server: valid, complete both ways, and fuzzed (no 5xx)."""

from __future__ import annotations

import http.client
import itertools
import json
import re
from pathlib import Path

import jsonschema
import pytest
import studyserver_support
from xmanager.xm_local.studyserver import api as studyapi
from xmanager.xm_local.studyserver import http as studyhttp
from xmanager.xm_local.studyserver.openapi import DESTRUCTIVE, openapi_document

pytestmark = pytest.mark.integration

STUDY = """\
[configuration]
order = [["a", "b"]]
init_blocks = ["intro"]
final_blocks = ["outro"]
random_seed = 3

[[blocks]]
name = "intro"
config = { text = "welcome" }

[[blocks]]
name = "a"
config = { hand = "left", speed = 2.5 }

[[blocks]]
name = "b"
config = { hand = "right", targets = [1, 2] }

[[blocks]]
name = "outro"
config = { text = "bye" }
"""

METHODS = ("get", "post", "put")
NOT_FOUND_BODIES = ("N/A", "n/a")


def _not_answered(method: str, status: int, body: str) -> bool:
    """The answers the document leaves out on purpose (see its description): 404s and the no-op PUTs."""
    if status == 404:
        return body in NOT_FOUND_BODIES or body.startswith("unknown second parameter ")
    return method == "put" and status == 200 and body == ""


def _request(port: int, method: str, path: str) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method.upper(), path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read().decode()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    config = tmp_path_factory.mktemp("openapi") / "study.toml"
    config.write_text(STUDY)
    proc, port = studyserver_support.start(config, default_participant_index=1, host="127.0.0.1")
    yield port
    if proc.is_alive():
        status, content_type, body = _request(port, "post", "/api/shutdown")
        # The shutdown answer is the documented one.
        op = openapi_document()["paths"]["/api/shutdown"]["post"]
        assert str(status) in op["responses"]
        assert content_type in op["responses"][str(status)]["content"]
        assert json.loads(body) == {"message": "shutting down"}
    proc.join(10)
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
    assert proc.exitcode == 0


def _documented() -> set[tuple[str, str, int]]:
    """(method, action, number of ids) of every documented operation."""
    out = set()
    for path, item in openapi_document()["paths"].items():
        parts = path.split("/")[2:]
        assert all(re.fullmatch(r"\{\w+\}", p) for p in parts[1:]), path
        for method in item:
            out.add((method, parts[0], len(parts) - 1))
    return out


def _server_actions() -> set[str]:
    """Every action the server routes or its code names (so endpoints added later are probed too)."""
    routed = {route.path.split("/")[2] for route in studyapi.api_routes(None) if not route.path.startswith("/api/{")}
    source = Path(studyapi.__file__).read_text()
    named = set(re.findall(r'action == "([a-z-]+)"', source))
    for group in re.findall(r"action in \(([^)]*)\)", source):
        named |= set(re.findall(r'"([a-z-]+)"', group))
    assert "move-all-to-block" in named and "config" in routed
    return routed | named


def _concrete(path: str) -> str:
    # Valid ids for the study above: participant 1 exists, block 0 exists.
    return re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1) == "pid" else "0", path)


def test_document_is_valid_openapi():
    from openapi_spec_validator import validate

    document = openapi_document()
    validate(document)
    assert document["openapi"].startswith("3.0")
    for path, item in document["paths"].items():
        assert path.startswith("/api/")
        for method, op in item.items():
            for param in op.get("parameters", []):
                assert param["in"] == "path" and param["schema"] == {"type": "integer", "minimum": 0}
            assert ("security" in op) == (method in ("post", "put")), (method, path)


def test_served_document(server):
    status, content_type, body = _request(server, "get", "/openapi.json")
    assert (status, content_type) == (200, studyhttp.JSON)
    assert json.loads(body) == openapi_document()


def test_routes_match_document(server):
    documented = _documented()
    actions = _server_actions() | {action for _, action, _ in documented}
    answered = set()
    for action, method, count in itertools.product(sorted(actions), METHODS, range(3)):
        if action == "shutdown":
            continue  # Would stop the server; checked from the document below and in the fixture's teardown.
        path = "/api/" + "/".join([action, *(["1"] * count)])
        if (method, action, count) in documented:
            continue  # Called below with valid ids.
        status, _, body = _request(server, method, path)
        if not _not_answered(method, status, body):
            answered.add((method, action, count))
    assert answered == set(), f"answered but not documented: {sorted(answered)}"
    assert {("post", "shutdown", n) for n in range(3)} <= documented
    # Every documented operation is answered, with a documented status, content type and body.
    document = openapi_document()
    for path, item in document["paths"].items():
        for method, op in item.items():
            if op.get(DESTRUCTIVE):
                continue
            status, content_type, body = _request(server, method, _concrete(path))
            assert not _not_answered(method, status, body), (method, path)
            assert str(status) in op["responses"], (method, path, status, body)
            assert content_type in op["responses"][str(status)]["content"], (method, path, content_type)
            schema = dict(op["responses"][str(status)]["content"][content_type]["schema"])
            if content_type == studyhttp.JSON:
                schema["components"] = document["components"]
                jsonschema.validate(json.loads(body), schema)
            else:  # Text bodies: the documented pattern or values (schemathesis only validates JSON bodies).
                jsonschema.validate(body, schema)


def test_other_methods_are_405(server):
    for method in ("delete", "patch", "options"):
        status, _, _ = _request(server, method, "/api/config")
        assert status == 405


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "\n".join(_describe(e) for e in exc.exceptions)
    return str(exc)


def _fuzz(strategy, base_url: str, checks: list) -> None:
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):
        case.call_and_validate(base_url=base_url, checks=checks)

    run()


def test_fuzz_no_server_error(server):
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    conformance = [
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]

    schema = schemathesis.openapi.from_dict(openapi_document())
    base_url = f"http://127.0.0.1:{server}"
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(item) for item in openapi_document()["paths"].values())
    fuzzed = 0
    for operation in operations:
        if operation.definition.raw.get(DESTRUCTIVE):
            continue
        fuzzed += 1
        # Valid ids: no 5xx, and the status, content type, headers and body are the documented ones.
        runs = [(GenerationMode.POSITIVE, [not_a_server_error, *conformance])]
        if operation.path_parameters:  # Ids that are not non-negative integers: Tornado's 404 page, never a 5xx.
            runs.append((GenerationMode.NEGATIVE, [not_a_server_error]))
        for mode, checks in runs:
            try:
                _fuzz(operation.as_strategy(mode), base_url, checks)
            except (Exception, BaseExceptionGroup) as exc:  # Schemathesis' FailureGroup is a BaseExceptionGroup.
                failures.append(f"{mode} {operation.method.upper()} {operation.path}: {exc!r}\n{_describe(exc)}")
    assert fuzzed >= 25
    assert not failures, "\n".join(failures)
    # The server is still up and its state is readable.
    assert _request(server, "get", "/api/summary-data")[0] == 200


def test_unauthorized_is_documented(tmp_path):
    config = tmp_path / "study.toml"
    config.write_text(STUDY)
    proc, port = studyserver_support.start(config, host="127.0.0.1", token="secret")
    try:
        document = openapi_document()
        assert document["components"]["securitySchemes"]["bearerAuth"] == {
            "type": "http",
            "scheme": "bearer",
            "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
        }
        for path, item in document["paths"].items():
            for method, op in item.items():
                if method == "get":
                    continue
                status, content_type, body = _request(port, method, _concrete(path))
                assert status == 401, (method, path)
                assert content_type in op["responses"]["401"]["content"]
                assert body == "unauthorized"
        assert proc.is_alive()  # Not even shutdown goes through without the token.
    finally:
        proc.terminate()
        proc.join(10)
