"""/openapi.json: an OpenAPI 3.1 document made from the registered operations and schemas/."""
from __future__ import annotations

import copy

from .operations import OPERATIONS

SECURITY = {"PAYMENT": [{"PLKEY": []}], "SEARCH": [{"PLKEY": []}], "ANY": [{"PLKEY": []}],
            "GLOBAL": [{"GPLKEY": []}, {"POQAPI": []}]}  # Payletter Global (web/global_api.py)
ERROR_STATUSES = {"400": "a body that is not UTF-8 (997)", "401": "missing or unknown key (998)", "403": "wrong key type or client (993)",
                  "405": "wrong HTTP method (995)", "406": "rule or validation failure (2000-5000)",
                  "500": "internal error (999)"}

GLOBAL_ERROR_STATUSES = {"400": "an unreadable body (997)", "401": "missing key, wrong key or signature (998)",
                         "403": "storeid not the key's store (993)", "404": "unknown path or paytoken route (996)",
                         "405": "wrong HTTP method (995)", "406": "a field or business rule (995)",
                         "500": "internal error (999)"}


def _component(name: str) -> str:
    return name.replace("/", "_")


def _schema(document: dict) -> dict:
    schema = copy.deepcopy(document)
    schema.pop("$schema", None)
    # Local refs (#/$defs/...) are rewritten to the schema's place among the components.
    return schema


def _rewrite_refs(node, prefix: str):
    if isinstance(node, dict):
        return {k: (prefix + v[1:] if k == "$ref" and isinstance(v, str) and v.startswith("#/") else
                    _rewrite_refs(v, prefix)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(v, prefix) for v in node]
    return node


def build(schemas, version: str) -> dict:
    components = {}
    for name, document in schemas.documents.items():
        components[_component(name)] = _rewrite_refs(_schema(document), f"#/components/schemas/{_component(name)}")
    error_ref = {"$ref": "#/components/schemas/responses_error"}
    paths: dict = {}
    for op in OPERATIONS:
        item = {"summary": op.summary, "operationId": f"{op.method.lower()}{op.path.replace('/', '_').replace('.', '_').replace('{', '').replace('}', '')}"}
        params = [{"name": p.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
                  for p in op.path.split("/") if p.startswith("{")]
        if op.request and op.query:
            doc = schemas.documents[op.request]
            params += [{"name": n, "in": "query", "required": n in doc.get("required", []), "schema": s}
                       for n, s in doc["properties"].items()]
        elif op.request:
            body = {"schema": {"$ref": f"#/components/schemas/{_component(op.request)}"}}
            types = ("application/json", "application/x-www-form-urlencoded") if op.key == "GLOBAL" else ("application/json",)
            item["requestBody"] = {"required": op.key is not None, "content": {kind: body for kind in types}}
        if params:
            item["parameters"] = params
        ok = {"description": "OK"}
        if op.response:
            ok["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{_component(op.response)}"}}}
        else:
            ok["content"] = {"application/json": {"schema": {"type": "object"}}}
        responses = {op.status: ok}
        if op.key:
            item["security"] = SECURITY[op.key]
            item["tags"] = ["gateway"]
            errors, ref = ((GLOBAL_ERROR_STATUSES, {"$ref": "#/components/schemas/global_error"}) if op.key == "GLOBAL"
                           else (ERROR_STATUSES, error_ref))
            responses.update({status: {"description": text, "content": {"application/json": {"schema": ref}}}
                              for status, text in errors.items()})
        else:
            item["tags"] = ["control"]
            responses["default"] = {"description": "error envelope", "content": {"application/json": {"schema": error_ref}}}
        item["responses"] = responses
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "payletter-emulator", "version": version,
                 "description": "The Payletter REST API as the emulator serves it, and the emulator's control API."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"PLKEY": {
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": "`PLKEY <key>`: the client's PAYMENT or SEARCH key"},
            "GPLKEY": {"type": "apiKey", "in": "header", "name": "Authorization",
                       "description": "Payletter Global: `GPLKEY <key>`, the store's key"},
            "POQAPI": {"type": "apiKey", "in": "header", "name": "Authorization",
                       "description": "Payletter Global: `POQAPI <storeid>:<signature>:<nonce>:<timestamp>`"}}},
    }
