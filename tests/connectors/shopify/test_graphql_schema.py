"""Every GraphQL document Clawback sends to Shopify is valid for the Admin API version it pins.

The schema is Shopify's own introspection result for that version, as published in the npm package
`@shopify/dev-mcp` (`dist/data/admin_<version>.json.gz`), copied into tests/fixtures/shopify/. The
documents are found, not listed: every module-level string constant in `connectors/shopify/` that
parses as a GraphQL operation, so a new mutation is validated the day it is written.
"""

from __future__ import annotations

import gzip
import importlib
import json
import pkgutil
from functools import cache
from pathlib import Path

import pytest
from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode, build_client_schema, parse, validate

import connectors.shopify
from connectors.shopify.domain import API_VERSION

FIXTURES = Path(__file__).parents[2] / "fixtures" / "shopify"


@cache
def admin_schema() -> GraphQLSchema:
    path = FIXTURES / f"admin_{API_VERSION}.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        introspection = json.load(f)
    # Shopify's published schema breaks one of graphql-core's own schema rules (an interface field
    # deprecated on some implementations only); that says nothing about our documents, so the schema
    # is taken as Shopify serves it and only the documents are validated.
    return build_client_schema(introspection["data"], assume_valid=True)


def _operations() -> dict[str, str]:
    """`module.NAME` → document, for each string constant of connectors/shopify that is an operation."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(connectors.shopify.__path__, "connectors.shopify."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if not name.isupper() or not isinstance(value, str):
                continue
            text = value.strip()
            if not text.startswith(("query", "mutation", "subscription")):
                continue
            try:
                document = parse(text)
            except GraphQLError:
                found[f"{info.name}.{name}"] = text  # unparseable: validation below reports it
                continue
            if any(isinstance(d, OperationDefinitionNode) for d in document.definitions):
                found[f"{info.name}.{name}"] = text
    return found


OPERATIONS = _operations()


def test_the_documents_are_found() -> None:
    # The connector writes tags, store credit, discount codes and reads orders: if discovery finds
    # fewer documents than that, it has stopped looking where the documents are.
    assert len(OPERATIONS) >= 6, sorted(OPERATIONS)
    assert "connectors.shopify.client.ORDERS_SINCE" in OPERATIONS


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_document_is_valid_for_the_pinned_admin_schema(name: str) -> None:
    errors = validate(admin_schema(), parse(OPERATIONS[name]))
    assert not errors, f"{name} against Admin API {API_VERSION}: " + "; ".join(e.message for e in errors)


def test_the_schema_refuses_what_shopify_would() -> None:
    """The check can fail: a field Shopify does not have and a wrong argument type are refused."""
    schema = admin_schema()
    unknown_field = parse("query { shop { name clawbackCoins } }")
    wrong_argument = parse("query($id: String!) { customer(id: $id) { id } }")
    assert validate(schema, unknown_field)
    assert validate(schema, wrong_argument)
    assert not validate(schema, parse("query($id: ID!) { customer(id: $id) { id } }"))
