"""``EntraTokenValidator`` against the simulated cloud directly: real client-credentials tokens of the demo
world's dev clients, the tenant's JWKS over TLS, and Entra's signing-key rollover.

https://learn.microsoft.com/en-us/entra/identity-platform/signing-key-rollover : the validator caches the key
set and re-reads it once when a token names an unknown ``kid``, at most once per cooldown.

The rotation tests run on a simulator of their own (``cloud``): a rotation is global to a simulator, and the
session's demo simulator already rotates once (tests/e2e/test_admin_auth_e2e.py); a second rotation there
would stop publishing the key that signed the tokens the e2e host caches for the session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.adapters.admin_auth import EntraTokenValidator
from shared.service.access import ADMIN_ROLE, READER_ROLE, Principal, Unauthenticated
from tests.conftest import DemoStack, Sim, running_sim
from tools import demo, procs


def validator(sim: Sim, **kw: Any) -> EntraTokenValidator:
    """The validator as Warden builds it for the demo world, over ``sim``."""
    return EntraTokenValidator(
        authority_host=sim.url,
        tenant_id=demo.HOME_TENANT_ID,
        audiences=[demo.API_URI, demo.API_CLIENT_ID],
        ca_bundle=Path(sim.ca),
        **kw,
    )


def count_fetches(v: EntraTokenValidator) -> list[int]:
    """Counts the validator's JWKS downloads (the simulator does not log its discovery endpoints)."""
    fetches: list[int] = []
    fetch = v.jwks.fetch_data

    def counted() -> Any:
        fetches.append(1)
        return fetch()

    v.jwks.fetch_data = counted  # type: ignore[method-assign]
    return fetches


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def rotate(sim: Sim) -> str:
    response = sim.control("POST", "/_sim/keys/rotate")
    response.raise_for_status()
    new_kid: str = response.json()["kid"]
    return new_kid


@pytest.fixture(scope="module")
def cloud(tls_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sim, demo.DemoWorld]]:
    """A simulator of this module's own, seeded with the demo world: its keys may be rotated at will."""
    with running_sim(tls_dir, tmp_path_factory.mktemp("auth-sim")) as sim:
        yield sim, demo.seed(sim.url, Path(sim.ca), seed_users=0)


# --------------------------------------------------------------------------- real tokens, one key
async def test_a_real_admin_token_validates_to_an_admin_principal(demo_stack: DemoStack) -> None:
    token = demo_stack.world.token("admin")
    principal = await validator(demo_stack.sim, jwks_cooldown_seconds=0).validate(token)
    assert isinstance(principal, Principal)
    assert principal.roles == frozenset({ADMIN_ROLE})
    assert principal.may("admin") and principal.may("reader")
    assert principal.app_id == demo.DEV_ADMIN_CLIENT_ID
    assert principal.object_id == claims(token)["oid"] and principal.actor == f"admin:{principal.object_id}"


async def test_a_real_reader_token_may_read_but_not_write(demo_stack: DemoStack) -> None:
    principal = await validator(demo_stack.sim, jwks_cooldown_seconds=0).validate(
        demo_stack.world.token("reader")
    )
    assert principal.roles == frozenset({READER_ROLE})
    assert principal.may("reader")
    assert not principal.may("admin")
    assert principal.app_id == demo.DEV_READER_CLIENT_ID


async def test_a_real_token_without_roles_validates_to_a_principal_that_may_nothing(
    demo_stack: DemoStack,
) -> None:
    """Authentication and authorisation are separate: the local identity holds no role on Warden's API."""
    world = demo_stack.world
    token = demo.admin_token(
        world.sim_url, world.ca_bundle, demo.LOCAL_IDENTITY_CLIENT_ID, world.local_identity_secret
    )
    principal = await validator(demo_stack.sim, jwks_cooldown_seconds=0).validate(token)
    assert principal.roles == frozenset()
    assert not principal.may("reader") and not principal.may("admin")


async def test_the_validator_reads_the_key_set_once_for_many_tokens(demo_stack: DemoStack) -> None:
    v = validator(demo_stack.sim, jwks_cooldown_seconds=0)
    fetches = count_fetches(v)
    for role in ("admin", "reader", "admin"):
        await v.validate(demo_stack.world.token(role))
    assert len(fetches) == 1


async def test_a_token_signed_by_an_unpublished_key_is_unauthenticated(demo_stack: DemoStack) -> None:
    own_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        claims(demo_stack.world.token("admin")),
        own_key,
        algorithm="RS256",
        headers={"kid": f"not-published-{uuid.uuid4().hex}"},
    )
    with pytest.raises(Unauthenticated, match="signing key is not one of the tenant's") as raised:
        await validator(demo_stack.sim, jwks_cooldown_seconds=0).validate(forged)
    assert not raised.value.missing


async def test_an_unreachable_key_set_is_unauthenticated_and_says_to_retry(demo_stack: DemoStack) -> None:
    closed = Sim(
        url=f"https://127.0.0.1:{procs.free_port()}", ca=demo_stack.sim.ca, client=demo_stack.sim.client
    )
    with pytest.raises(Unauthenticated, match="could not be fetched; try again"):
        await validator(closed, jwks_cooldown_seconds=0).validate(demo_stack.world.token("admin"))


# ---------------------------------------------------------------------------------- key rotation
async def test_after_rotation_a_token_signed_by_the_new_key_validates_with_the_same_validator(
    cloud: tuple[Sim, demo.DemoWorld],
) -> None:
    sim, world = cloud
    v = validator(sim, jwks_cooldown_seconds=0)
    fetches = count_fetches(v)
    before = world.token("admin")
    assert (await v.validate(before)).may("admin")
    assert len(fetches) == 1

    new_kid = rotate(sim)
    after = world.token("admin")
    assert kid(after) == new_kid != kid(before)

    principal = await v.validate(after)
    assert principal.may("admin") and principal.app_id == demo.DEV_ADMIN_CLIENT_ID
    assert len(fetches) == 2, "the unknown kid forced exactly one refresh of the key set"
    assert (await v.validate(before)).may("admin"), "the previous key is still published"
    assert (await v.validate(world.token("reader"))).may("reader")
    assert len(fetches) == 2, "both keys are now cached"


async def test_with_the_default_cooldown_a_validator_that_just_fetched_refuses_a_new_kid(
    cloud: tuple[Sim, demo.DemoWorld],
) -> None:
    """PyJWKClient re-reads the key set for an unknown kid at most once per cooldown (30 s by default), every
    fetch starting one: a token signed by a key rolled just after a fetch is refused until the cooldown ends
    (then the next unknown kid refreshes the set; not waited for here)."""
    sim, world = cloud
    v = validator(sim)
    fetches = count_fetches(v)
    before = world.token("admin")
    await v.validate(before)
    assert len(fetches) == 1

    new_kid = rotate(sim)
    after = world.token("admin")
    assert kid(after) == new_kid
    with pytest.raises(Unauthenticated, match="signing key is not one of the tenant's"):
        await v.validate(after)
    assert len(fetches) == 1, "inside the cooldown the unknown kid did not trigger a refresh"
    assert (await v.validate(before)).may("admin"), "the cached key still validates its tokens"

    fresh = validator(sim)
    assert (await fresh.validate(after)).may("admin"), (
        "the token itself is valid: only the cooldown refused it"
    )
