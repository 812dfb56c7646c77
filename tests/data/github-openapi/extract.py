#!/usr/bin/env python3
"""Extracts the REST operations leviathan-host calls from GitHub's published OpenAPI
description, for the conformance check in tests/src/openapi.rs.

Source: the npm package @octokit/openapi (GitHub's description from
github/rest-api-description with Octokit's extension, MIT), file
generated/api.github.com.deref.json (every $ref inlined). To refresh:

    npm pack @octokit/openapi@VERSION && tar xzf octokit-openapi-VERSION.tgz
    python3 tests/data/github-openapi/extract.py \
        package/generated/api.github.com.deref.json > tests/data/github-openapi/operations.json

Add an operation to OPERATIONS when the host starts calling it (the check refuses
any request that matches none). Descriptions and examples are dropped; what the
check reads is kept: parameters (name, in, required, schema) and the JSON request
body's schema.
"""

import json
import sys

# (method, path template) of every REST call the host makes (host/forge/src/github).
OPERATIONS = [
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("post", "/repos/{owner}/{repo}/pulls"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("get", "/installation/repositories"),
    ("post", "/app/installations/{installation_id}/access_tokens"),
    ("get", "/app"),
    ("get", "/users/{username}"),
]

KEPT = {
    "type", "properties", "required", "items", "enum", "oneOf", "anyOf", "allOf",
    "additionalProperties", "minItems", "maxItems", "minimum", "maximum", "nullable",
    "minLength", "maxLength", "pattern",
}


def trim(schema):
    """The schema with only the keywords the check reads."""
    if isinstance(schema, list):
        return [trim(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key not in KEPT:
            continue
        if key == "properties":
            out[key] = {name: trim(s) for name, s in value.items()}
        elif key in ("items", "additionalProperties", "oneOf", "anyOf", "allOf"):
            out[key] = trim(value)
        else:
            out[key] = value
    return out


def main():
    spec = json.load(open(sys.argv[1]))
    operations = []
    for method, path in OPERATIONS:
        op = spec["paths"][path][method]
        params = [
            {
                "name": p["name"],
                "in": p["in"],
                "required": p.get("required", False),
                "schema": trim(p.get("schema", {})),
            }
            for p in op.get("parameters", [])
        ]
        body = None
        if "requestBody" in op:
            content = op["requestBody"].get("content", {})
            body = {
                "required": op["requestBody"].get("required", False),
                "schema": trim(content.get("application/json", {}).get("schema", {})),
            }
        operations.append(
            {
                "method": method.upper(),
                "path": path,
                "operation_id": op.get("operationId"),
                "parameters": params,
                "request_body": body,
            }
        )
    json.dump(
        {
            "source": "@octokit/openapi " + spec["info"]["version"]
            + " generated/api.github.com.deref.json (GitHub's REST API description, MIT)",
            "operations": operations,
        },
        sys.stdout,
        indent=1,
        sort_keys=True,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
