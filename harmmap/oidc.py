"""OIDC bearer tokens, validated against the identity provider's JWKS (optional).

A token is accepted when its signature verifies with a key from the configured JWKS URL, it is not
expired, and its issuer and audience are the configured ones. The role and force come from two claims
(``harmmap_role`` and ``harmmap_force`` by default), so the identity provider decides who is an analyst
of which force; a token without a valid role is refused, never downgraded.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from geo.levels import FORCE_CODE
from harmmap.access import Principal, Role
from harmmap.errors import UnauthenticatedError


@dataclass(frozen=True)
class OidcConfig:
    """Where the keys are and what a token must say."""

    jwks_url: str
    issuer: str
    audience: str
    role_claim: str = "harmmap_role"
    force_claim: str = "harmmap_force"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_s: int = 30
    # An unknown key id re-fetches the JWKS at most this often, so a flood of made-up key ids cannot
    # hammer the identity provider; a newly rotated key can wait this long to be seen.
    refresh_cooldown_s: float = 30.0


class OidcVerifier:
    """Validates bearer tokens; the JWKS is cached for 5 minutes and re-fetched for an unknown key id."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._jwks = jwt.PyJWKClient(
            config.jwks_url,
            cache_keys=True,
            lifespan=300,
            timeout=5,
            cooldown_duration=config.refresh_cooldown_s,
        )

    def principal(self, token: str) -> Principal:
        """The principal a valid token names; UnauthenticatedError saying why otherwise."""
        cfg = self.config
        try:
            signing_key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=list(cfg.algorithms),
                audience=cfg.audience,
                issuer=cfg.issuer,
                leeway=cfg.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise UnauthenticatedError(f"the identity provider's keys cannot be fetched: {exc}") from None
        except jwt.PyJWTError as exc:
            raise UnauthenticatedError(f"the bearer token is not valid: {exc}") from None
        try:
            role = Role(str(claims.get(cfg.role_claim, "")))
        except ValueError:
            raise UnauthenticatedError(
                f"the bearer token's {cfg.role_claim!r} claim must be one of {', '.join(Role)}"
            ) from None
        force = claims.get(cfg.force_claim)
        if force is not None and not (isinstance(force, str) and FORCE_CODE.match(force)):
            raise UnauthenticatedError(f"the bearer token's {cfg.force_claim!r} claim is not a force code")
        if role == Role.ANALYST and force is None:
            raise UnauthenticatedError(f"an analyst token needs a {cfg.force_claim!r} claim")
        return Principal(
            subject=f"oidc:{claims['sub']}", role=role, force_code=force if role == Role.ANALYST else None
        )
