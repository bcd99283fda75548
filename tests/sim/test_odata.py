"""The $filter / $select / $top parser of the simulated directory, without a directory."""

from __future__ import annotations

from typing import Any

import pytest

from tools.m365sim.backends.graph.odata import (
    QueryError,
    compile_filter,
    decode_token,
    encode_token,
    filter_ids,
    parse_select,
    parse_top,
)
from tools.m365sim.backends.graph.users import FILTER as USER_FILTER
from tools.m365sim.backends.graph.users import PROPERTIES as USER_PROPS

PEOPLE: list[dict[str, Any]] = [
    {
        "id": "a",
        "displayName": "Conor O'Brien",
        "userPrincipalName": "conor@contoso.com",
        "accountEnabled": True,
        "proxyAddresses": ["SMTP:conor@contoso.com", "smtp:cob@fabrikam.com"],
        "mail": "conor@contoso.com",
    },
    {
        "id": "b",
        "displayName": "Adele Vance",
        "userPrincipalName": "adele@contoso.com",
        "accountEnabled": False,
        "proxyAddresses": ["SMTP:adele@contoso.com"],
        "mail": None,
    },
    {
        "id": "c",
        "displayName": "Alex Wilber",
        "userPrincipalName": "alex@fabrikam.com",
        "accountEnabled": True,
        "proxyAddresses": [],
        "mail": "alex@fabrikam.com",
    },
]


def ids(text: str, *, advanced: bool = False) -> list[str]:
    predicate = compile_filter(text, USER_FILTER, advanced=advanced)
    return [p["id"] for p in PEOPLE if predicate(p)]


def test_string_literals_unescape_doubled_quotes() -> None:
    """https://learn.microsoft.com/en-us/graph/filter-query-parameter#escaping-single-quotes"""
    assert ids("displayName eq 'Conor O''Brien'") == ["a"]
    assert ids("startswith(displayName,'conor o''b')") == ["a"]


def test_eq_and_startswith_are_case_insensitive() -> None:
    """https://learn.microsoft.com/en-us/graph/filter-query-parameter (eq, startsWith on directory strings)"""
    assert ids("userPrincipalName eq 'ADELE@contoso.COM'") == ["b"]
    assert ids("startsWith(displayName,'al')") == ["c"]


def test_in_operator_and_boolean_eq() -> None:
    """https://learn.microsoft.com/en-us/graph/aad-advanced-queries: "in is supported by default whenever eq is"."""
    assert ids("userPrincipalName in ('alex@fabrikam.com','conor@contoso.com')") == ["a", "c"]
    assert ids("accountEnabled eq false") == ["b"]


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    """https://learn.microsoft.com/en-us/graph/filter-query-parameter (logical operators)"""
    assert ids("accountEnabled eq false or startswith(displayName,'A') and accountEnabled eq true") == [
        "b",
        "c",
    ]
    assert ids("(accountEnabled eq false or startswith(displayName,'A')) and accountEnabled eq true") == ["c"]


def test_proxy_addresses_any_eq_and_startswith() -> None:
    """https://learn.microsoft.com/en-us/graph/filter-query-parameter#filter-using-lambda-operators"""
    assert ids("proxyAddresses/any(p:p eq 'smtp:COB@fabrikam.com')") == ["a"]
    assert ids("proxyAddresses/any(x:startswith(x,'SMTP:adele'))") == ["b"]


def test_advanced_operators_need_consistency_level_and_count() -> None:
    """https://learn.microsoft.com/en-us/graph/aad-advanced-queries#error-handling-for-advanced-queries-on-directory-objects"""
    for text, operator in (
        ("accountEnabled ne true", "ne"),
        ("not(accountEnabled eq true)", "not"),
        ("endswith(mail,'@fabrikam.com')", "endsWith"),
    ):
        with pytest.raises(QueryError) as caught:
            ids(text)
        assert caught.value.code == "Request_UnsupportedQuery"
        assert caught.value.message == (
            f"Operator '{operator}' is not supported because the required parameters might be missing. "
            "Try adding $count=true query parameter and ConsistencyLevel:eventual header. "
            "Refer to https://aka.ms/graph-docs/advanced-queries for more information"
        )
    assert ids("accountEnabled ne true", advanced=True) == ["b"]
    assert ids("not startswith(displayName,'A')", advanced=True) == ["a"]
    assert ids("endswith(mail,'@FABRIKAM.com')", advanced=True) == ["c"]


def test_unsupported_property_and_operator() -> None:
    """https://learn.microsoft.com/en-us/graph/aad-advanced-queries ("Unsupported or invalid query filter clause")"""
    for text, prop in (
        ("city eq 'Paris'", "city"),
        ("displayName gt 'A'", "displayName"),
        ("startswith(id,'a')", "id"),
        ("endswith(displayName,'x')", "displayName"),
    ):
        with pytest.raises(QueryError) as caught:
            ids(text, advanced=True)
        assert (caught.value.code, caught.value.message) == (
            "Request_UnsupportedQuery",
            f"Unsupported or invalid query filter clause specified for property '{prop}' of resource 'User'.",
        )


def test_syntax_errors_are_bad_request() -> None:
    """https://learn.microsoft.com/en-us/graph/filter-query-parameter (malformed expressions → 400)"""
    for text in (
        "displayName eq",
        "displayName eq 'x' and",
        "(displayName eq 'x'",
        "displayName eq 'unterminated",
    ):
        with pytest.raises(QueryError) as caught:
            ids(text)
        assert caught.value.code == "BadRequest"
        assert caught.value.message.startswith("Invalid filter clause")


def test_top_range_and_message() -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-list ($top 1..999)"""
    assert parse_top(None) == 100
    assert parse_top("999") == 999
    for raw in ("1000", "0"):
        with pytest.raises(QueryError) as caught:
            parse_top(raw)
        assert (
            caught.value.message
            == f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive."
        )


def test_select_is_case_insensitive_and_refuses_unknown_properties() -> None:
    """https://learn.microsoft.com/en-us/graph/query-parameters#select-parameter"""
    assert parse_select("DisplayName, id,displayname", USER_PROPS, "microsoft.graph.user") == [
        "displayName",
        "id",
    ]
    with pytest.raises(QueryError) as caught:
        parse_select("displayName,shoeSize", USER_PROPS, "microsoft.graph.user")
    assert (
        caught.value.message == "Could not find a property named 'shoeSize' on type 'microsoft.graph.user'."
    )


def test_delta_filter_accepts_only_ids() -> None:
    """https://learn.microsoft.com/en-us/graph/api/user-delta ("The only supported $filter expression is ... id")"""
    assert filter_ids("id eq 'AAA' or id eq 'bbb'") == ["aaa", "bbb"]
    with pytest.raises(QueryError):
        filter_ids("displayName eq 'x'")
    with pytest.raises(QueryError):
        filter_ids("id eq 'a' and id eq 'b'")


def test_tokens_round_trip_and_reject_garbage() -> None:
    """https://learn.microsoft.com/en-us/graph/paging (tokens are opaque to the client)"""
    token = encode_token({"after": "x", "n": 3})
    assert "=" not in token and decode_token(token) == {"after": "x", "n": 3}
    assert decode_token("not a token!") is None
    assert decode_token(encode_token({"a": 1})[:-3]) is None
