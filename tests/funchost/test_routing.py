"""Route templates of HTTP triggers, matched as ASP.NET Core routing does
(https://learn.microsoft.com/azure/azure-functions/functions-bindings-http-webhook-trigger#customize-the-http-endpoint,
https://learn.microsoft.com/aspnet/core/fundamentals/routing#route-constraints)."""

from __future__ import annotations

import pytest

from tools.funchost.routing import RouteError, match_route, parse_route

pytestmark = pytest.mark.unit


def m(template: str, path: str) -> dict[str, str] | None:
    return parse_route(template).match(path)


def test_literal_segments_match_case_insensitively_and_ignore_trailing_slash() -> None:
    assert m("users/me", "Users/ME/") == {}
    assert m("users/me", "users/you") is None
    assert m("users/me", "users/me/extra") is None
    assert m("users/me", "users") is None


def test_parameters_capture_decoded_segment_values() -> None:
    assert m("users/{id}", "users/a%20b") == {"id": "a b"}
    assert m("users/{id}", "users") is None
    assert m("users/{id}", "users/1/2") is None


def test_optional_parameter_may_be_omitted() -> None:
    assert m("docs/{section}/{page?}", "docs/a") == {"section": "a"}
    assert m("docs/{section}/{page?}", "docs/a/b") == {"section": "a", "page": "b"}
    assert m("docs/{section}/{page=intro}", "docs/a") == {"section": "a", "page": "intro"}


def test_catch_all_takes_the_remainder_including_slashes_or_nothing() -> None:
    assert m("files/{*path}", "files/a/b/c.txt") == {"path": "a/b/c.txt"}
    assert m("files/{**path}", "files/a/b") == {"path": "a/b"}
    assert m("files/{*path}", "files") == {}


@pytest.mark.parametrize(
    ("constraint", "good", "bad"),
    [
        ("int", ["1", "-5", "2147483647"], ["x", "1.5", "2147483648", ""]),
        ("long", ["9223372036854775807"], ["9223372036854775808", "a"]),
        ("bool", ["true", "FALSE"], ["yes", "1"]),
        ("guid", ["0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5bd9cb469fa16570867728950e"], ["123", "zz"]),
        ("alpha", ["abcXYZ"], ["abc1", "ä"]),
        ("double", ["1.5", "-2", "1e3"], ["abc", "1.2.3"]),
        ("decimal", ["1.5", "10"], ["1e3", "x"]),
        ("datetime", ["2024-01-31", "2024-01-31T10:00:00Z"], ["2024-13-01", "soon"]),
        ("min(10)", ["10", "11"], ["9", "x"]),
        ("range(1,3)", ["1", "3"], ["0", "4"]),
        ("length(2)", ["ab"], ["a", "abc"]),
        ("minlength(2)", ["ab", "abc"], ["a"]),
        ("regex(^\\d{{3}}$)", ["123"], ["12", "1234"]),
    ],
)
def test_constraints_accept_and_reject_values(constraint: str, good: list[str], bad: list[str]) -> None:
    template = parse_route(f"v/{{x:{constraint}}}")
    for value in good:
        assert template.match(f"v/{value}") == {"x": value}, value
    for value in bad:
        assert template.match(f"v/{value}") is None, value


def test_chained_constraints_must_all_hold() -> None:
    assert m("n/{id:int:min(1)}", "n/5") == {"id": "5"}
    assert m("n/{id:int:min(1)}", "n/0") is None


def test_complex_segment_splits_like_aspnet_right_to_left() -> None:
    assert m("f/{name}.{ext}", "f/archive.tar.gz") == {"name": "archive.tar", "ext": "gz"}
    assert m("f/{name}.{ext}", "f/noext") is None


def test_most_specific_route_wins_regardless_of_declaration_order() -> None:
    routes = [
        (parse_route("items/{*rest}"), "catchall"),
        (parse_route("items/{id}"), "param"),
        (parse_route("items/{id:int}"), "int"),
        (parse_route("items/new"), "literal"),
    ]
    assert next(t for t, _ in match_route(routes, "items/new")) == "literal"
    assert next(t for t, _ in match_route(routes, "items/5")) == "int"
    assert next(t for t, _ in match_route(routes, "items/abc")) == "param"
    assert [t for t, _ in match_route(routes, "items/a/b")] == ["catchall"]


@pytest.mark.parametrize(
    "template",
    ["a/{*rest}/b", "a/{id}/{id}", "a/{x:unknown}", "a/{x", "a/x}", "a/{b?}/c", "a/{1x}", "a/{x}{y}"],
)
def test_invalid_templates_are_refused(template: str) -> None:
    with pytest.raises(RouteError):
        parse_route(template)
