"""Claims on M365 objects, kept with the uniqueness claims (``Uniques``): one account or group is Warden's for one
Warden user or group at most, per directory."""

from __future__ import annotations


def claim_kind(directory_id: str) -> str:
    """The kind of claim that an M365 account of the directory is linked to a Warden user (rule 2)."""
    return f"m365:{directory_id}"


def group_claim_kind(directory_id: str) -> str:
    """The kind of claim that an M365 group of the directory mirrors a Warden group (rule 14)."""
    return f"m365group:{directory_id}"


def created_claim_kind(directory_id: str) -> str:
    """Which Warden group created an M365 group (it may delete it; one it adopted it never deletes)."""
    return f"m365group-created:{directory_id}"
