"""JWT verification and minting with a pinned algorithm family (PyJWT).

A verifier is either symmetric (HS*, one shared secret) or asymmetric (RS*/PS*/ES*/EdDSA,
a PEM public key or a JWKS file). Mixing the two families in one verifier is refused,
because that is what makes HS/RS key confusion possible.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from jwt.algorithms import Algorithm, HMACAlgorithm, get_default_algorithms
from jwt.exceptions import InvalidSubjectError

from auth.principal import ROLE_SCOPES, Principal, Role

log = logging.getLogger("tollgate.auth")

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "MAX_TOKEN_LENGTH",
    "REQUIRED_CLAIMS",
    "SYMMETRIC_ALGORITHMS",
    "AuthError",
    "JWTSettings",
    "TokenVerifier",
    "mint_token",
    "parse_bearer",
]

SYMMETRIC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub", "tenant")
VERIFIED_CACHE_SIZE = 4096  # tokens whose verification is remembered until they expire
MIN_SECRET_BYTES = 32
# Real tokens are well under 2 KB; the cap bounds the work done on hostile input.
MAX_TOKEN_LENGTH = 8192

_BEARER = re.compile(r"\A[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)\Z")
_TIER = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"\A[\x21\x23-\x5b\x5d-\x7e]+\Z")


class AuthError(Exception):
    """A token or Authorization header was rejected; `reason` is short and safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class JWTSettings:
    """How tokens are verified (and minted in development).

    Args:
        secret: shared secret for HS* algorithms (at least 32 bytes, more for HS384/HS512).
        algorithms: the pinned algorithm list; one family only (HS*, or asymmetric).
        issuer: required `iss`.
        audience: required `aud`.
        leeway_seconds: clock skew allowed for `exp`, `nbf` and `iat`.
        public_key_pem: verification key for asymmetric algorithms.
        jwks_path: a JWKS JSON file for asymmetric algorithms; keys are chosen by `kid`.
        jwks_url: a JWKS URL (http or https) for asymmetric algorithms, read with PyJWT's
            `PyJWKClient`: the key set is cached `jwks_cache_seconds`, and a token naming an
            unknown `kid` refetches it at most once per `jwks_cooldown_seconds`.
    """

    secret: str | None = field(repr=False)
    algorithms: tuple[str, ...] = ("HS256",)
    issuer: str = "tollgate"
    audience: str = "tollgate-api"
    leeway_seconds: int = 30
    public_key_pem: str | None = None
    jwks_path: str | None = None
    jwks_url: str | None = None
    jwks_cache_seconds: float = 300.0
    jwks_cooldown_seconds: float = 30.0
    jwks_timeout_seconds: float = 2.0

    def __post_init__(self) -> None:
        algorithms = self.algorithms
        if isinstance(algorithms, str) or not algorithms:
            raise ValueError("JWT algorithms must be a non-empty tuple of algorithm names")
        unknown = [a for a in algorithms if a not in SYMMETRIC_ALGORITHMS | ASYMMETRIC_ALGORITHMS]
        if unknown:
            raise ValueError(f"unsupported JWT algorithm(s): {', '.join(map(repr, unknown))}")
        symmetric = [a for a in algorithms if a in SYMMETRIC_ALGORITHMS]
        if symmetric and len(symmetric) != len(algorithms):
            raise ValueError(
                "JWT algorithms mix HS* with asymmetric algorithms; "
                "use one family per verifier (prevents key confusion)"
            )
        if not self.issuer or not self.audience:
            raise ValueError("JWT issuer and audience must be non-empty")
        if self.leeway_seconds < 0 or self.leeway_seconds > 300:
            raise ValueError("JWT leeway_seconds must be between 0 and 300")
        if symmetric:
            self._check_symmetric()
        else:
            self._check_asymmetric()

    @property
    def symmetric(self) -> bool:
        """Whether this configuration uses a shared secret (HS*)."""
        return self.algorithms[0] in SYMMETRIC_ALGORITHMS

    def _check_symmetric(self) -> None:
        if self.public_key_pem is not None or self.jwks_path is not None or self.jwks_url:
            raise ValueError(
                "HS* algorithms take only a secret; public_key_pem/jwks_path/jwks_url must be unset"
            )
        if not self.secret:
            raise ValueError("HS* algorithms need a secret")
        secret = self.secret.encode()
        for name in self.algorithms:
            algorithm = _algorithm(name)
            minimum = max(MIN_SECRET_BYTES, _hmac_digest_size(algorithm))
            if len(secret) < minimum:
                raise ValueError(
                    f"JWT secret is {len(secret)} bytes; {name} needs at least {minimum}"
                )
            try:
                algorithm.prepare_key(secret)
            except jwt.InvalidKeyError:
                raise ValueError(
                    "JWT secret looks like an asymmetric key or certificate; "
                    "never use a public key as an HMAC secret"
                ) from None

    def _check_asymmetric(self) -> None:
        if self.secret is not None:
            raise ValueError("asymmetric JWT algorithms take no secret; secret must be unset")
        sources = [self.public_key_pem, self.jwks_path, self.jwks_url]
        if sum(source is not None for source in sources) != 1:
            raise ValueError(
                "asymmetric JWT algorithms need exactly one of public_key_pem, jwks_path "
                "or jwks_url"
            )
        if self.jwks_url is not None and not self.jwks_url.startswith(("https://", "http://")):
            raise ValueError("jwks_url must be an http(s) URL")
        if self.jwks_cache_seconds <= 0 or self.jwks_cooldown_seconds < 0:
            raise ValueError("jwks_cache_seconds must be positive, jwks_cooldown_seconds >= 0")


def _algorithm(name: str) -> Algorithm:
    return get_default_algorithms()[name]


def _hmac_digest_size(algorithm: Algorithm) -> int:
    hash_alg = getattr(algorithm, "hash_alg", None)
    return int(hash_alg().digest_size) if hash_alg is not None else 0


class _PreparedHMAC(HMACAlgorithm):
    """HMAC that skips re-checking the one secret already vetted at construction."""

    def __init__(self, hash_alg: Any, vetted: bytes) -> None:
        super().__init__(hash_alg)
        self._vetted = vetted

    def prepare_key(self, key: str | bytes) -> bytes:
        # Identity, not equality: only the exact object the verifier vetted skips the
        # (slow, x509-parsing) asymmetric-key sniffing; anything else takes the full path.
        if key is self._vetted:
            return self._vetted
        return super().prepare_key(key)


class _PinnedJWT(jwt.PyJWT):
    """PyJWT whose signature layer knows only the pinned algorithms (never `none`).

    This sets PyJWT's private ``_jws`` and calls its private ``_get_sig_options``: pyproject
    caps PyJWT at the minor version this was tested with (docs/decisions.md).
    """

    def __init__(self, algorithms: list[str], options: Any, secret: bytes | None) -> None:
        super().__init__(options)
        jws = jwt.PyJWS(algorithms=algorithms, options=self._get_sig_options())
        if secret is not None:
            for name in algorithms:
                hash_alg = getattr(_algorithm(name), "hash_alg", None)
                jws.unregister_algorithm(name)
                jws.register_algorithm(name, _PreparedHMAC(hash_alg, secret))
        self._jws = jws
        self.jws = jws


def _prepare_checked(name: str, key: Any) -> Any:
    """Prepare `key` for algorithm `name`, refusing weak keys; raise ValueError if unusable."""
    algorithm = _algorithm(name)
    try:
        prepared = algorithm.prepare_key(key)
    except (jwt.InvalidKeyError, TypeError, ValueError) as exc:
        raise ValueError(f"key is not usable with {name}: {exc}") from None
    weak = algorithm.check_key_length(prepared)
    if weak:
        raise ValueError(weak)
    return prepared


class TokenVerifier:
    """Verifies bearer JWTs into `Principal`s; keys are loaded once, at construction.

    Example:
        verifier = TokenVerifier(JWTSettings(secret=secret))
        principal = verifier.verify(token)  # raises AuthError
    """

    def __init__(self, settings: JWTSettings) -> None:
        self.settings = settings
        self._algorithms = list(settings.algorithms)
        self._leeway = settings.leeway_seconds
        secret = settings.secret.encode() if settings.secret is not None else None
        self._jwt = _PinnedJWT(
            self._algorithms,
            {
                "verify_signature": True,
                "verify_exp": True,
                "verify_nbf": True,
                "verify_iat": True,
                "verify_iss": True,
                "verify_aud": True,
                "verify_sub": True,
                "require": list(REQUIRED_CLAIMS),
                "enforce_minimum_key_length": True,
            },
            secret,
        )
        self._key: Any = None
        self._jwks: dict[str, jwt.PyJWK] = {}
        self._only_jwk: jwt.PyJWK | None = None
        self._jwks_client: jwt.PyJWKClient | None = None
        # Keys the JWKS URL served (by kid), kept while the URL is unreachable, and when its
        # last fetch failed: no token waits on a fetch again within the cooldown.
        self._seen: dict[str, jwt.PyJWK] = {}
        self._failed_at: float | None = None
        if settings.jwks_url is not None:
            self._jwks_client = jwt.PyJWKClient(
                settings.jwks_url,
                cache_jwk_set=True,
                lifespan=settings.jwks_cache_seconds,
                cooldown_duration=settings.jwks_cooldown_seconds,
                timeout=settings.jwks_timeout_seconds,
            )
        if secret is not None:
            self._key = secret
        elif settings.public_key_pem is not None:
            self._key = self._load_pem(settings.public_key_pem)
        elif settings.jwks_path is not None:
            self._load_jwks(settings.jwks_path)
        # Tokens verified before, with their principal and the time they stop being valid
        # (``exp`` plus the leeway): a client sends the same token on every request, and a
        # signature check plus claim parsing is most of an authentication's cost. Only with
        # keys fixed for the process (a JWKS URL can drop a key); bounded, emptied when full.
        self._verified: dict[str, tuple[Principal, float]] | None = (
            {} if self._jwks_client is None else None
        )

    def _load_pem(self, pem: str) -> Any:
        # One PEM is one key, so every pinned algorithm must accept it; this also keeps a
        # token's header from steering an RSA key into the EC code path, or vice versa.
        prepared: Any = None
        for name in self._algorithms:
            prepared = _prepare_checked(name, pem.encode())
        if hasattr(prepared, "private_bytes") or not hasattr(prepared, "verify"):
            raise ValueError("public_key_pem must be a public key, not a private key")
        return prepared

    def _load_jwks(self, path: str) -> None:
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read JWKS file {path!r}: {exc}") from None
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValueError(f"JWKS file {path!r} has no 'keys' list")
        usable: list[jwt.PyJWK] = []
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            if entry.get("kty") == "oct" or "d" in entry:
                raise ValueError("JWKS for verification must hold only public keys")
            try:
                jwk = jwt.PyJWK(entry)
            except jwt.PyJWTError as exc:
                raise ValueError(f"unusable key in JWKS file {path!r}: {exc}") from None
            if jwk.algorithm_name not in self._algorithms:
                continue
            weak = jwk.Algorithm.check_key_length(jwk.key)
            if weak:
                raise ValueError(weak)
            usable.append(jwk)
        if not usable:
            raise ValueError(
                f"JWKS file {path!r} has no signing key for {', '.join(self._algorithms)}"
            )
        for jwk in usable:
            kid = jwk.key_id
            if kid is None:
                if len(usable) > 1:
                    raise ValueError("every key in a multi-key JWKS needs a 'kid'")
                continue
            if kid in self._jwks:
                raise ValueError(f"duplicate kid {kid!r} in JWKS file {path!r}")
            self._jwks[kid] = jwk
        if len(usable) == 1:
            self._only_jwk = usable[0]

    def _remote_jwk(self, client: jwt.PyJWKClient, kid: Any) -> jwt.PyJWK:
        """The key ``kid`` from the JWKS URL (cached; an unknown kid refetches, rate-limited)."""
        if not isinstance(kid, str) or not kid:
            raise AuthError("unknown signing key")
        if self._cooling_down():
            return self._stale(kid)
        try:
            jwk = client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError:
            self._failed_at = time.monotonic()
            log.warning("JWKS URL unreachable; keys seen before are used until it answers")
            return self._stale(kid)
        except jwt.PyJWKClientError:
            raise AuthError("unknown signing key") from None
        self._failed_at = None
        if jwk.algorithm_name not in self._algorithms:
            raise AuthError("algorithm not allowed")
        if hasattr(jwk.key, "private_bytes") or jwk.Algorithm.check_key_length(jwk.key):
            log.warning("JWKS URL served a private or weak key; refused")
            raise AuthError("unknown signing key")
        self._seen[kid] = jwk  # kept for an outage only once it passed
        return jwk

    def _cooling_down(self) -> bool:
        failed = self._failed_at
        return failed is not None and (
            time.monotonic() - failed < self.settings.jwks_cooldown_seconds
        )

    def _stale(self, kid: str) -> jwt.PyJWK:
        """A key the JWKS URL served before (it is unreachable now), or a refusal."""
        jwk = self._seen.get(kid)
        if jwk is None:
            raise AuthError("signing keys unavailable")
        return jwk

    def may_fetch(self, token: str) -> bool:
        """Whether verifying ``token`` may fetch the JWKS URL (blocking I/O): the cached key
        set has expired, or does not hold the token's ``kid``."""
        client = self._jwks_client
        if client is None or self._cooling_down():
            return False
        try:
            kid = self._jwt.jws.get_unverified_header(token).get("kid")
        except (jwt.PyJWTError, ValueError, TypeError):
            return False
        cache = client.jwk_set_cache
        cached = cache.get() if cache is not None else None
        if cached is None:
            return True
        return not any(key.key_id == kid for key in cached.keys)

    async def verify_async(self, token: str, *, client_ip: str | None = None) -> Principal:
        """``verify`` for the event loop: a verification that may fetch the JWKS URL runs in a
        thread (one fetch at a time: PyJWKClient's lock), every other one inline."""
        if isinstance(token, str) and len(token) <= MAX_TOKEN_LENGTH and self.may_fetch(token):
            return await asyncio.to_thread(self.verify, token, client_ip=client_ip)
        return self.verify(token, client_ip=client_ip)

    def _jwk_for(self, token: str) -> jwt.PyJWK:
        kid = self._jwt.jws.get_unverified_header(token).get("kid")
        if self._jwks_client is not None:
            return self._remote_jwk(self._jwks_client, kid)
        if kid is None:
            if self._only_jwk is not None:
                return self._only_jwk
            raise AuthError("unknown signing key")
        jwk = self._jwks.get(kid)
        if jwk is None:
            raise AuthError("unknown signing key")
        return jwk

    def verify(self, token: str, *, client_ip: str | None = None) -> Principal:
        """Verify `token` (signature, exp/nbf/iat, iss, aud, required claims) into a Principal.

        Raises:
            AuthError: for any problem with the token; the reason never includes the token.
        """
        if not isinstance(token, str) or not token:
            raise AuthError("invalid token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthError("token too large")
        verified = self._verified
        if verified is not None and client_ip is None:
            found = verified.get(token)
            if found is not None:
                if time.time() < found[1]:
                    return found[0]
                verified.pop(token, None)
        try:
            key = self._key if self._key is not None else self._jwk_for(token)
            claims = self._jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self._leeway,
            )
        except AuthError:
            raise
        except jwt.PyJWTError as exc:
            # `from None`: PyJWT's messages can quote pieces of the token.
            raise AuthError(_reason(exc)) from None
        except (ValueError, TypeError, KeyError, OverflowError):
            raise AuthError("invalid token") from None
        principal = _principal_from_claims(claims, client_ip)
        exp = claims.get("exp")
        if verified is not None and client_ip is None and isinstance(exp, int | float):
            if len(verified) >= VERIFIED_CACHE_SIZE:
                verified.clear()
            verified[token] = (principal, exp + self._leeway)
        return principal


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token not yet valid"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        claim = exc.claim if exc.claim in REQUIRED_CLAIMS else "required claim"
        return f"missing claim: {claim}"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "invalid audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "invalid issuer"
    if isinstance(exc, InvalidSubjectError):
        return "invalid claim: sub"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "algorithm not allowed"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "invalid signature"
    return "invalid token"


def _principal_from_claims(claims: Mapping[str, Any], client_ip: str | None) -> Principal:
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 255:
        raise AuthError("invalid claim: sub")
    tenant = claims["tenant"]
    try:
        tenant_id = uuid.UUID(tenant) if isinstance(tenant, str) else None
    except ValueError:
        tenant_id = None
    if tenant_id is None or str(tenant_id) != tenant.lower():
        raise AuthError("invalid claim: tenant")
    role_claim = claims.get("role")
    role: Role | None = None
    if role_claim is not None:
        try:
            role = Role(role_claim)
        except ValueError:
            raise AuthError("invalid claim: role") from None
    scope_claim = claims.get("scope")
    if scope_claim is None:
        scopes: frozenset[str] = frozenset()
    elif isinstance(scope_claim, str):
        scopes = frozenset(scope_claim.split())
    else:
        raise AuthError("invalid claim: scope")
    tier = claims.get("tier")
    if tier is None:
        tier = "default"
    elif not isinstance(tier, str) or not _TIER.match(tier):
        raise AuthError("invalid claim: tier")
    return Principal(
        subject=subject,
        tenant_id=tenant_id,
        role=role,
        scopes=scopes,
        tier=tier,
        client_ip=client_ip,
    )


def mint_token(
    settings: JWTSettings,
    *,
    subject: str,
    tenant_id: uuid.UUID,
    role: Role,
    scopes: Iterable[str] | None = None,
    tier: str | None = None,
    ttl_seconds: int = 3600,
    now: int | None = None,
    private_key_pem: str | None = None,
    kid: str | None = None,
) -> str:
    """Sign a token that `TokenVerifier(settings)` accepts (dev CLI, tests, benchmarks).

    Args:
        scopes: granted scopes; defaults to `ROLE_SCOPES[role]`.
        now: issue time as a Unix timestamp; defaults to the current time.
        private_key_pem: the signing key for asymmetric settings (ignored for HS*).
        kid: the `kid` header, to select a key from a JWKS.
    """
    role = Role(role)
    granted = sorted(set(ROLE_SCOPES[role] if scopes is None else scopes))
    bad = [s for s in granted if not _SCOPE_TOKEN.match(s)]
    if bad:
        raise ValueError(f"invalid scope token(s): {bad!r}")
    if tier is not None and not _TIER.match(tier):
        raise ValueError(f"invalid tier {tier!r}")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    issued = int(time.time()) if now is None else int(now)
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": subject,
        "tenant": str(tenant_id),
        "role": role.value,
        "scope": " ".join(granted),
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }
    if tier is not None:
        claims["tier"] = tier
    headers = {"kid": kid} if kid is not None else None
    if settings.secret is not None:
        return jwt.encode(
            claims, settings.secret, algorithm=settings.algorithms[0], headers=headers
        )
    if private_key_pem is None:
        raise ValueError("asymmetric settings need private_key_pem to mint a token")
    for name in settings.algorithms:
        try:
            key = _prepare_checked(name, private_key_pem.encode())
        except ValueError:
            continue
        if hasattr(key, "sign"):
            return jwt.encode(claims, key, algorithm=name, headers=headers)
    raise ValueError(
        f"private_key_pem is not a private key for any of {', '.join(settings.algorithms)}"
    )


def parse_bearer(header_value: str | None) -> str | None:
    """The token from an `Authorization: Bearer <token>` value; None when there is no header.

    Raises:
        AuthError: "malformed Authorization header" for any other scheme or shape.
    """
    if header_value is None:
        return None
    match = _BEARER.match(header_value.strip(" \t"))
    if match is None:
        raise AuthError("malformed Authorization header")
    return match.group(1)
