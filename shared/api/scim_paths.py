"""A SCIM source's mapping keys are SCIM attribute paths: checked with scim2-models when a source is written (the
models are imported only then, never at the app's start)."""

from __future__ import annotations

from collections.abc import Mapping


def check_source_mapping(kind: str, mapping: Mapping[str, str]) -> None:
    """``ValueError`` naming the first mapping key that is no writable string attribute of SCIM's User."""
    if kind != "scim":
        return
    from shared.api.scim.mapping import check_paths

    check_paths(mapping)
