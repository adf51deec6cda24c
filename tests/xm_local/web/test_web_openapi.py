"""xm_local/web/openapi.py: an OpenAPI document from a Starlette route table."""

from __future__ import annotations

from starlette.convertors import Convertor
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from xmanager.xm_local.web.openapi import Operation, document


class _Documented:
    """An ASGI endpoint carrying its Operation."""

    def __init__(self, operation: Operation | None) -> None:
        self.openapi = operation

    async def __call__(self, scope, receive, send) -> None:
        await PlainTextResponse("x")(scope, receive, send)


class _Even(Convertor[int]):
    regex = "[0-9]*[02468]"
    openapi_schema = {"type": "integer", "multipleOf": 2}

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


OK = {"200": {"description": "ok", "content": {"text/plain": {"schema": {"type": "string"}}}}}


def test_document_lists_the_documented_routes_with_their_parameters():
    from openapi_spec_validator import validate

    routes = [
        Route("/items/{item:int}", _Documented(Operation("One item.", OK, "get_item", parameters={"item": "Its id."})),
              methods=["GET"]),
        Route("/items/{item:int}", _Documented(Operation("Drop it.", OK, tags=("admin",),
                                                         security=({"bearer": []},), extensions={"x-destructive": True})),
              methods=["DELETE"]),
        Route("/names/{name}/{half:path}", _Documented(Operation("By name.", OK)), methods=["GET", "PUT"]),
        Route("/undocumented", _Documented(None)),
        Mount("/static", routes=[]),
    ]  # fmt: skip
    doc = document(routes, title="t", version="2", description="d", components={"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"}}})
    validate(doc)
    assert doc["info"] == {"title": "t", "version": "2", "description": "d"}
    assert sorted(doc["paths"]) == ["/items/{item}", "/names/{name}/{half}"]
    item = doc["paths"]["/items/{item}"]
    assert sorted(item) == ["delete", "get"]  # HEAD, which Starlette adds to GET routes, is not an operation.
    assert item["get"] == {
        "operationId": "get_item",
        "summary": "One item.",
        "responses": OK,
        "parameters": [{"name": "item", "in": "path", "required": True, "description": "Its id.",
                        "schema": {"type": "integer", "minimum": 0}}],
    }  # fmt: skip
    assert item["delete"]["tags"] == ["admin"] and item["delete"]["security"] == [{"bearer": []}]
    assert item["delete"]["x-destructive"] is True
    names = doc["paths"]["/names/{name}/{half}"]
    assert sorted(names) == ["get", "put"]
    assert [p["schema"] for p in names["put"]["parameters"]] == [{"type": "string"}, {"type": "string"}]
    # Fresh on each call: changing one document leaves the next alone.
    names["put"]["responses"]["200"]["description"] = "changed"
    assert document(routes, title="t", version="2")["paths"]["/names/{name}/{half}"]["put"]["responses"] == OK


def test_a_convertor_s_own_schema_is_used():
    from starlette.convertors import register_url_convertor

    register_url_convertor("test_even", _Even())
    routes = [Route("/even/{n:test_even}", _Documented(Operation("Even.", OK)), methods=["GET"])]
    parameter = document(routes, title="t", version="1")["paths"]["/even/{n}"]["get"]["parameters"][0]
    assert parameter["schema"] == {"type": "integer", "multipleOf": 2}
