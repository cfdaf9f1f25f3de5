"""Token verification, minting and bearer parsing, including attack row T18 (JWT forging)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from auth import AuthError, JWTSettings, Principal, Role, TokenVerifier, mint_token, parse_bearer
from auth.principal import ROLE_SCOPES
from auth.tokens import MAX_TOKEN_LENGTH, REQUIRED_CLAIMS
from tests.auth.jwt_helpers import (
    SECRET,
    TENANT,
    USER,
    KeyPair,
    b64json,
    b64url,
    claims,
    forge,
    public_jwk,
    sign_hs,
)

HS = JWTSettings(secret=SECRET)


@pytest.fixture(scope="module")
def hs_verifier() -> TokenVerifier:
    return TokenVerifier(HS)


def rejects(verifier: TokenVerifier, token: str) -> AuthError:
    """Assert the token is refused with an AuthError that does not leak the token."""
    with pytest.raises(AuthError) as info:
        verifier.verify(token)
    err = info.value
    assert err.reason == str(err)
    assert err.reason and len(err.reason) < 60
    if len(token) > 8:
        assert token not in err.reason
        for segment in token.split("."):
            if len(segment) > 8:
                assert segment not in err.reason
    # PyJWT's messages can quote parts of the token: they must not travel along as context.
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__
    return err


def write_jwks(tmp_path: Path, keys: list[dict[str, Any]]) -> str:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    return str(path)


# --- happy path ---------------------------------------------------------------------------


def test_minted_hs256_token_round_trips(hs_verifier: TokenVerifier) -> None:
    token = mint_token(HS, subject=str(USER), tenant_id=TENANT, role=Role.STAFF, tier="gold")
    p = hs_verifier.verify(token, client_ip="203.0.113.9")
    assert p == Principal(
        subject=str(USER),
        tenant_id=TENANT,
        role=Role.STAFF,
        scopes=ROLE_SCOPES[Role.STAFF],
        tier="gold",
        client_ip="203.0.113.9",
        anonymous=False,
    )
    assert p.user_id == USER


@pytest.mark.parametrize("role", list(Role))
def test_minted_scopes_default_to_role_scopes(hs_verifier: TokenVerifier, role: Role) -> None:
    token = mint_token(HS, subject=str(USER), tenant_id=TENANT, role=role)
    p = hs_verifier.verify(token)
    assert p.role is role
    assert p.scopes == ROLE_SCOPES[role]
    assert p.tier == "default"


def test_minted_explicit_scopes_replace_defaults(hs_verifier: TokenVerifier) -> None:
    token = mint_token(HS, subject="ci-bot", tenant_id=TENANT, role=Role.ADMIN, scopes=["pq:admin"])
    p = hs_verifier.verify(token)
    assert p.scopes == frozenset({"pq:admin"})
    assert p.subject == "ci-bot"
    assert p.user_id is None  # a service subject, not a user


def test_mint_refuses_bad_inputs() -> None:
    with pytest.raises(ValueError):
        mint_token(HS, subject="u", tenant_id=TENANT, role=Role.CUSTOMER, scopes=["a b"])
    with pytest.raises(ValueError):
        mint_token(HS, subject="u", tenant_id=TENANT, role=Role.CUSTOMER, tier="no spaces")
    with pytest.raises(ValueError):
        mint_token(HS, subject="u", tenant_id=TENANT, role=Role.CUSTOMER, ttl_seconds=0)


def test_claims_without_optional_fields(hs_verifier: TokenVerifier) -> None:
    p = hs_verifier.verify(sign_hs(claims(role=None, scope=None, iat=None, nbf=None)))
    assert p.role is None
    assert p.scopes == frozenset()
    assert p.tenant_id == TENANT


def test_scope_is_space_separated(hs_verifier: TokenVerifier) -> None:
    p = hs_verifier.verify(sign_hs(claims(scope="read:orders  graphql:adhoc")))
    assert p.scopes == frozenset({"read:orders", "graphql:adhoc"})
    assert p.has_scope("graphql:adhoc")
    assert not p.has_scope("read:orders graphql:adhoc")


def test_audience_list_containing_ours_is_accepted(hs_verifier: TokenVerifier) -> None:
    p = hs_verifier.verify(sign_hs(claims(aud=["other-api", "tollgate-api"])))
    assert p.tenant_id == TENANT


def test_uppercase_tenant_uuid_is_accepted(hs_verifier: TokenVerifier) -> None:
    p = hs_verifier.verify(sign_hs(claims(tenant=str(TENANT).upper())))
    assert p.tenant_id == TENANT


# --- T18: forging ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", None])
def test_alg_none_is_refused(hs_verifier: TokenVerifier, alg: str | None) -> None:
    header: dict[str, Any] = {"typ": "JWT"} if alg is None else {"typ": "JWT", "alg": alg}
    rejects(hs_verifier, forge(header, claims(role="ADMIN")))
    # ...also with a trailing garbage signature
    rejects(hs_verifier, forge(header, claims(role="ADMIN"), b"x" * 32))


def test_alg_none_is_refused_by_asymmetric_verifiers(rsa_keys: KeyPair, tmp_path: Path) -> None:
    pem = TokenVerifier(
        JWTSettings(secret=None, algorithms=("RS256",), public_key_pem=rsa_keys.public_pem)
    )
    jwks = TokenVerifier(
        JWTSettings(
            secret=None,
            algorithms=("RS256",),
            jwks_path=write_jwks(tmp_path, [public_jwk(rsa_keys, alg="RS256", kid="k1")]),
        )
    )
    for verifier in (pem, jwks):
        for header in ({"alg": "none"}, {"alg": "none", "kid": "k1"}):
            assert rejects(verifier, forge(header, claims())).reason == "algorithm not allowed"


def test_hs256_signed_with_rs_public_key_is_refused_by_rs256_pem_verifier(
    rsa_keys: KeyPair,
) -> None:
    """Classic key confusion: the attacker uses the known public key as an HMAC secret."""
    verifier = TokenVerifier(
        JWTSettings(secret=None, algorithms=("RS256",), public_key_pem=rsa_keys.public_pem)
    )
    for key in (rsa_keys.public_pem.encode(), rsa_keys.public_pem.strip().encode()):
        header = b64json({"alg": "HS256", "typ": "JWT"})
        payload = b64json(claims(role="ADMIN"))
        sig = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        token = f"{header}.{payload}.{b64url(sig)}"
        assert rejects(verifier, token).reason == "algorithm not allowed"
        # Relabelled RS256 with the HMAC signature: the RSA check fails.
        relabelled = f"{b64json({'alg': 'RS256', 'typ': 'JWT'})}.{payload}.{b64url(sig)}"
        assert rejects(verifier, relabelled).reason == "invalid signature"


def test_hs256_signed_with_jwk_material_is_refused_by_jwks_verifier(
    rsa_keys: KeyPair, tmp_path: Path
) -> None:
    jwk = public_jwk(rsa_keys, alg="RS256", kid="k1")
    verifier = TokenVerifier(
        JWTSettings(secret=None, algorithms=("RS256",), jwks_path=write_jwks(tmp_path, [jwk]))
    )
    for key in (rsa_keys.public_pem.encode(), json.dumps(jwk).encode(), jwk["n"].encode()):
        header = b64json({"alg": "HS256", "typ": "JWT", "kid": "k1"})
        payload = b64json(claims(role="ADMIN"))
        sig = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        assert rejects(verifier, f"{header}.{payload}.{b64url(sig)}").reason == (
            "algorithm not allowed"
        )


def test_rs256_token_is_refused_by_hs256_verifier(
    hs_verifier: TokenVerifier, rsa_keys: KeyPair
) -> None:
    """The other direction: an attacker's own RSA key signs a token for an HS256 verifier."""
    token = jwt.encode(claims(role="ADMIN"), rsa_keys.private_key, algorithm="RS256")
    assert rejects(hs_verifier, token).reason == "algorithm not allowed"
    # ...and an RS256-labelled token whose signature is an HMAC under the real secret.
    header = b64json({"alg": "RS256", "typ": "JWT"})
    payload = b64json(claims(role="ADMIN"))
    sig = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert rejects(hs_verifier, f"{header}.{payload}.{b64url(sig)}").reason == (
        "algorithm not allowed"
    )


def test_public_key_is_never_accepted_as_hmac_secret(rsa_keys: KeyPair, ec_keys: KeyPair) -> None:
    for pem in (rsa_keys.public_pem, ec_keys.public_pem):
        with pytest.raises(ValueError, match="asymmetric key"):
            JWTSettings(secret=pem)


def test_mixed_algorithm_families_are_refused(rsa_keys: KeyPair) -> None:
    with pytest.raises(ValueError, match="mix"):
        JWTSettings(secret=SECRET, algorithms=("HS256", "RS256"))
    with pytest.raises(ValueError, match="mix"):
        JWTSettings(secret=None, algorithms=("RS256", "HS256"), public_key_pem=rsa_keys.public_pem)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret": SECRET, "algorithms": ("none",)},
        {"secret": SECRET, "algorithms": ("HS256", "none")},
        {"secret": SECRET, "algorithms": ()},
        {"secret": SECRET, "algorithms": "HS256"},
        {"secret": SECRET, "algorithms": ("XS256",)},
        {"secret": "short-secret"},
        {"secret": "x" * 31},
        {"secret": "x" * 40, "algorithms": ("HS512",)},
        {"secret": None},
        {"secret": ""},
        {"secret": SECRET, "public_key_pem": "pem"},
        {"secret": SECRET, "jwks_path": "/tmp/jwks.json"},
        {"secret": None, "algorithms": ("RS256",)},
        {"secret": SECRET, "algorithms": ("RS256",), "public_key_pem": "pem"},
        {"secret": None, "algorithms": ("RS256",), "public_key_pem": "p", "jwks_path": "j"},
        {"secret": SECRET, "issuer": ""},
        {"secret": SECRET, "audience": ""},
        {"secret": SECRET, "leeway_seconds": -1},
        {"secret": SECRET, "leeway_seconds": 3600},
    ],
)
def test_settings_refuse_unsafe_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        JWTSettings(**kwargs)


def test_settings_repr_hides_the_secret() -> None:
    assert SECRET not in repr(HS)
    assert "HS256" in repr(HS)


def test_settings_accept_long_secrets_for_larger_hmacs() -> None:
    settings = JWTSettings(secret="y" * 64, algorithms=("HS512", "HS256"))
    token = mint_token(settings, subject="u", tenant_id=TENANT, role=Role.CUSTOMER)
    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    assert TokenVerifier(settings).verify(token).tenant_id == TENANT
    # An HS256 token verifies too: both are pinned.
    assert TokenVerifier(settings).verify(sign_hs(claims(), "y" * 64)).tenant_id == TENANT


def test_wrong_secret_is_refused(hs_verifier: TokenVerifier) -> None:
    other = "another-secret-of-sufficient-length-0123"
    assert rejects(hs_verifier, sign_hs(claims(), other)).reason == "invalid signature"


def test_unpinned_hmac_variant_is_refused(hs_verifier: TokenVerifier) -> None:
    token = sign_hs(claims(), "z" * 64, alg="HS512")
    assert rejects(hs_verifier, token).reason == "algorithm not allowed"


def test_edited_claims_are_refused(hs_verifier: TokenVerifier) -> None:
    token = mint_token(HS, subject=str(USER), tenant_id=TENANT, role=Role.CUSTOMER)
    header, payload, sig = token.split(".")
    body = json.loads(jwt.utils.base64url_decode(payload))
    for field, value in [
        ("role", "ADMIN"),
        ("tenant", str(uuid.uuid4())),
        ("sub", str(uuid.uuid4())),
        ("scope", "graphql:introspect graphql:adhoc write:products"),
        ("exp", body["exp"] + 86400),
    ]:
        edited = dict(body, **{field: value})
        assert rejects(hs_verifier, f"{header}.{b64json(edited)}.{sig}").reason == (
            "invalid signature"
        )
    # Editing the header (even to another pinned-looking value) breaks the signature too.
    edited_header = b64json({"alg": "HS256", "typ": "JWT", "kid": "x"})
    assert rejects(hs_verifier, f"{edited_header}.{payload}.{sig}").reason == "invalid signature"
    # A truncated or extended signature is no better.
    rejects(hs_verifier, f"{header}.{payload}.{sig[:-2]}")
    rejects(hs_verifier, f"{header}.{payload}.{sig}AA")
    rejects(hs_verifier, f"{header}.{payload}.")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c",
        "...",
        "a.b.c.d.e",
        "eyJ.eyJ.eyJ",
        "Bearer abc.def.ghi",
        "\u0442\u0435\u0441\u0442.\u0442\u0435\u0441\u0442.\u0442\u0435\u0441\u0442",
        f"{b64json([1, 2])}.{b64json({})}.",
        f"{b64json({'alg': 'HS256'})}.{b64url(b'not json')}.{b64url(b'x' * 32)}",
        f"{b64json({'alg': 'HS256'})}.{b64json([1])}.{b64url(b'x' * 32)}",
        f"{b64json({'alg': 'HS256', 'crit': ['exp']})}.{b64json({})}.{b64url(b'x' * 32)}",
    ],
)
def test_garbage_is_refused(hs_verifier: TokenVerifier, token: str) -> None:
    rejects(hs_verifier, token)


def test_whitespace_and_junk_around_a_valid_token_are_refused(hs_verifier: TokenVerifier) -> None:
    token = sign_hs(claims())
    hs_verifier.verify(token)
    for bad in (token + " ", " " + token, token + "\n", token + "!!!!", token.replace(".", ". ")):
        rejects(hs_verifier, bad)


def test_oversized_token_is_refused_before_parsing(hs_verifier: TokenVerifier) -> None:
    token = sign_hs(claims(pad="x" * MAX_TOKEN_LENGTH))
    assert rejects(hs_verifier, token).reason == "token too large"


def test_non_string_token_is_refused(hs_verifier: TokenVerifier) -> None:
    with pytest.raises(AuthError):
        hs_verifier.verify(b"abc.def.ghi")  # type: ignore[arg-type]
    with pytest.raises(AuthError):
        hs_verifier.verify(None)  # type: ignore[arg-type]


# --- T18: time ------------------------------------------------------------------------------


def test_expired_token_is_refused(hs_verifier: TokenVerifier) -> None:
    now = int(time.time())
    token = mint_token(
        HS, subject=str(USER), tenant_id=TENANT, role=Role.ADMIN, now=now - 7200, ttl_seconds=3600
    )
    assert rejects(hs_verifier, token).reason == "token expired"
    assert rejects(hs_verifier, sign_hs(claims(exp=now - 31))).reason == "token expired"


def test_expiry_within_leeway_is_accepted(hs_verifier: TokenVerifier) -> None:
    now = int(time.time())
    assert hs_verifier.verify(sign_hs(claims(exp=now - 10))).tenant_id == TENANT


def test_zero_leeway_refuses_just_expired_token() -> None:
    settings = JWTSettings(secret=SECRET, leeway_seconds=0)
    token = sign_hs(claims(exp=int(time.time()) - 2))
    assert rejects(TokenVerifier(settings), token).reason == "token expired"


def test_remembered_token_is_refused_once_expired() -> None:
    """A verified token is remembered (issue #13's read path), but never past its ``exp``."""
    verifier = TokenVerifier(JWTSettings(secret=SECRET, leeway_seconds=0))
    exp = int(time.time()) + 2
    token = sign_hs(claims(exp=exp))
    first, again = verifier.verify(token), verifier.verify(token)
    assert first == again and first.tenant_id == TENANT
    assert (
        rejects(verifier, sign_hs(claims(exp=exp), secret="x" * 32)).reason == "invalid signature"
    )
    time.sleep(max(0.0, exp - time.time()) + 0.05)
    assert rejects(verifier, token).reason == "token expired"


def test_not_yet_valid_token_is_refused(hs_verifier: TokenVerifier) -> None:
    now = int(time.time())
    assert rejects(hs_verifier, sign_hs(claims(nbf=now + 600))).reason == "token not yet valid"
    # iat in the future beyond leeway is just as suspicious
    assert rejects(hs_verifier, sign_hs(claims(iat=now + 600))).reason == "token not yet valid"


def test_nbf_within_leeway_is_accepted(hs_verifier: TokenVerifier) -> None:
    now = int(time.time())
    p = hs_verifier.verify(sign_hs(claims(nbf=now + 10, iat=now + 10)))
    assert p.tenant_id == TENANT


@pytest.mark.parametrize("field", ["exp", "nbf", "iat"])
def test_non_numeric_times_are_refused(hs_verifier: TokenVerifier, field: str) -> None:
    rejects(hs_verifier, sign_hs(claims(**{field: "tomorrow"})))


# --- T18: issuer, audience, required claims ----------------------------------------------------


def test_wrong_issuer_is_refused(hs_verifier: TokenVerifier) -> None:
    assert rejects(hs_verifier, sign_hs(claims(iss="evil"))).reason == "invalid issuer"
    assert rejects(hs_verifier, sign_hs(claims(iss=["tollgate"]))).reason == "invalid issuer"


def test_wrong_audience_is_refused(hs_verifier: TokenVerifier) -> None:
    assert rejects(hs_verifier, sign_hs(claims(aud="other-api"))).reason == "invalid audience"
    assert rejects(hs_verifier, sign_hs(claims(aud=["a", "b"]))).reason == "invalid audience"


def test_issuer_and_audience_come_from_settings() -> None:
    settings = JWTSettings(secret=SECRET, issuer="idp.example", audience="orders")
    token = sign_hs(claims(iss="idp.example", aud="orders"))
    assert TokenVerifier(settings).verify(token).tenant_id == TENANT
    assert rejects(TokenVerifier(HS), token).reason in {"invalid issuer", "invalid audience"}


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_missing_required_claim_is_refused(hs_verifier: TokenVerifier, claim: str) -> None:
    assert (
        rejects(hs_verifier, sign_hs(claims(**{claim: None}))).reason == f"missing claim: {claim}"
    )
    # an explicit JSON null counts as missing
    body = claims()
    body[claim] = None
    assert rejects(hs_verifier, sign_hs(body)).reason == f"missing claim: {claim}"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("role", "SUPERUSER", "invalid claim: role"),
        ("role", "admin", "invalid claim: role"),
        ("role", "", "invalid claim: role"),
        ("role", 1, "invalid claim: role"),
        ("role", ["ADMIN"], "invalid claim: role"),
        ("tenant", "not-a-uuid", "invalid claim: tenant"),
        ("tenant", TENANT.hex, "invalid claim: tenant"),
        ("tenant", f"{{{TENANT}}}", "invalid claim: tenant"),
        ("tenant", 42, "invalid claim: tenant"),
        ("sub", "", "invalid claim: sub"),
        ("sub", "   ", "invalid claim: sub"),
        ("sub", 42, "invalid claim: sub"),
        ("sub", "x" * 300, "invalid claim: sub"),
        ("scope", ["read:orders"], "invalid claim: scope"),
        ("tier", "gold tier", "invalid claim: tier"),
        ("tier", 3, "invalid claim: tier"),
    ],
)
def test_bad_claim_values_are_refused(
    hs_verifier: TokenVerifier, field: str, value: Any, reason: str
) -> None:
    assert rejects(hs_verifier, sign_hs(claims(**{field: value}))).reason == reason


# --- asymmetric: PEM and JWKS ----------------------------------------------------------------


def test_rs256_with_pem_round_trips(rsa_keys: KeyPair, rsa_keys_2: KeyPair) -> None:
    settings = JWTSettings(secret=None, algorithms=("RS256",), public_key_pem=rsa_keys.public_pem)
    verifier = TokenVerifier(settings)
    token = mint_token(
        settings,
        subject=str(USER),
        tenant_id=TENANT,
        role=Role.CUSTOMER,
        private_key_pem=rsa_keys.private_pem,
    )
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert verifier.verify(token).user_id == USER
    # signed by another key: refused
    forged = mint_token(
        settings,
        subject=str(USER),
        tenant_id=TENANT,
        role=Role.ADMIN,
        private_key_pem=rsa_keys_2.private_pem,
    )
    assert rejects(verifier, forged).reason == "invalid signature"
    # An ES256 token is not even considered by an RS256 verifier.
    es = jwt.encode(claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    assert rejects(verifier, es).reason == "algorithm not allowed"


def test_es256_with_pem_round_trips(ec_keys: KeyPair, rsa_keys: KeyPair) -> None:
    settings = JWTSettings(secret=None, algorithms=("ES256",), public_key_pem=ec_keys.public_pem)
    verifier = TokenVerifier(settings)
    token = mint_token(
        settings,
        subject=str(USER),
        tenant_id=TENANT,
        role=Role.STAFF,
        private_key_pem=ec_keys.private_pem,
    )
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert verifier.verify(token).role is Role.STAFF
    other = ec.generate_private_key(ec.SECP256R1())
    assert rejects(verifier, jwt.encode(claims(), other, algorithm="ES256")).reason == (
        "invalid signature"
    )
    rs = jwt.encode(claims(), rsa_keys.private_key, algorithm="RS256")
    assert rejects(verifier, rs).reason == "algorithm not allowed"


def test_pem_verifier_refuses_keys_that_do_not_fit(rsa_keys: KeyPair, ec_keys: KeyPair) -> None:
    def verifier(algs: tuple[str, ...], pem: str) -> TokenVerifier:
        return TokenVerifier(JWTSettings(secret=None, algorithms=algs, public_key_pem=pem))

    with pytest.raises(ValueError):
        verifier(("RS256",), ec_keys.public_pem)  # wrong key type
    with pytest.raises(ValueError):
        verifier(("ES256",), rsa_keys.public_pem)
    with pytest.raises(ValueError):
        verifier(("RS256", "ES256"), rsa_keys.public_pem)  # one PEM cannot serve both
    with pytest.raises(ValueError, match="public key"):
        verifier(("RS256",), rsa_keys.private_pem)  # never configure the private key
    with pytest.raises(ValueError):
        verifier(("RS256",), "not a pem")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    weak_pem = weak.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with pytest.raises(ValueError, match="1024"):
        verifier(("RS256",), weak_pem)


def test_mint_with_asymmetric_settings_needs_a_matching_private_key(
    rsa_keys: KeyPair, ec_keys: KeyPair
) -> None:
    settings = JWTSettings(secret=None, algorithms=("RS256",), public_key_pem=rsa_keys.public_pem)
    with pytest.raises(ValueError):
        mint_token(settings, subject="u", tenant_id=TENANT, role=Role.CUSTOMER)
    with pytest.raises(ValueError):
        mint_token(
            settings,
            subject="u",
            tenant_id=TENANT,
            role=Role.CUSTOMER,
            private_key_pem=rsa_keys.public_pem,
        )
    with pytest.raises(ValueError):
        mint_token(
            settings,
            subject="u",
            tenant_id=TENANT,
            role=Role.CUSTOMER,
            private_key_pem=ec_keys.private_pem,
        )


@pytest.fixture
def jwks_settings(
    tmp_path: Path, rsa_keys: KeyPair, rsa_keys_2: KeyPair, ec_keys: KeyPair
) -> JWTSettings:
    keys = [
        public_jwk(rsa_keys, alg="RS256", kid="rsa-1"),
        public_jwk(rsa_keys_2, alg="RS256", kid="rsa-2", include_alg=False),
        public_jwk(ec_keys, alg="ES256", kid="ec-1"),
        # an encryption key the verifier must ignore
        dict(public_jwk(rsa_keys, alg="RS256", kid="enc-1"), use="enc"),
    ]
    return JWTSettings(
        secret=None, algorithms=("RS256", "ES256"), jwks_path=write_jwks(tmp_path, keys)
    )


def test_jwks_selects_the_key_by_kid(
    jwks_settings: JWTSettings, rsa_keys: KeyPair, rsa_keys_2: KeyPair, ec_keys: KeyPair
) -> None:
    verifier = TokenVerifier(jwks_settings)
    for pair, kid, role in [
        (rsa_keys, "rsa-1", Role.CUSTOMER),
        (rsa_keys_2, "rsa-2", Role.STAFF),
        (ec_keys, "ec-1", Role.ADMIN),
    ]:
        token = mint_token(
            jwks_settings,
            subject=str(USER),
            tenant_id=TENANT,
            role=role,
            private_key_pem=pair.private_pem,
            kid=kid,
        )
        assert verifier.verify(token).role is role


def test_jwks_refuses_wrong_missing_and_unknown_kids(
    jwks_settings: JWTSettings, rsa_keys: KeyPair, rsa_keys_2: KeyPair, ec_keys: KeyPair
) -> None:
    verifier = TokenVerifier(jwks_settings)

    def mint(pair: KeyPair, kid: str | None) -> str:
        return mint_token(
            jwks_settings,
            subject=str(USER),
            tenant_id=TENANT,
            role=Role.ADMIN,
            private_key_pem=pair.private_pem,
            kid=kid,
        )

    assert rejects(verifier, mint(rsa_keys_2, "rsa-1")).reason == "invalid signature"
    assert rejects(verifier, mint(rsa_keys, "nope")).reason == "unknown signing key"
    assert rejects(verifier, mint(rsa_keys, "enc-1")).reason == "unknown signing key"
    assert rejects(verifier, mint(rsa_keys, None)).reason == "unknown signing key"
    # The key's algorithm is bound by the JWKS: an ES256 token cannot borrow an RSA kid.
    assert rejects(verifier, mint(ec_keys, "rsa-1")).reason == "algorithm not allowed"
    # A non-string kid is malformed.
    bad_kid = forge({"alg": "RS256", "kid": 7}, claims(), b"x" * 256)
    assert rejects(verifier, bad_kid).reason == "invalid token"


def test_single_key_jwks_accepts_tokens_without_kid(tmp_path: Path, ec_keys: KeyPair) -> None:
    settings = JWTSettings(
        secret=None,
        algorithms=("ES256",),
        jwks_path=write_jwks(tmp_path, [public_jwk(ec_keys, alg="ES256", kid=None)]),
    )
    token = mint_token(
        settings,
        subject="u",
        tenant_id=TENANT,
        role=Role.CUSTOMER,
        private_key_pem=ec_keys.private_pem,
    )
    assert TokenVerifier(settings).verify(token).subject == "u"


@pytest.mark.parametrize(
    "make_keys",
    [
        lambda r, e: [],
        lambda r, e: [{"kty": "oct", "k": b64url(b"k" * 32), "kid": "h", "alg": "HS256"}],
        lambda r, e: [dict(public_jwk(r, alg="RS256", kid="a"), d="private-part")],
        lambda r, e: [public_jwk(e, alg="ES256", kid="e")],  # nothing for RS256
        lambda r, e: [public_jwk(r, alg="RS256", kid="a"), public_jwk(r, alg="RS256", kid="a")],
        lambda r, e: [public_jwk(r, alg="RS256", kid=None), public_jwk(r, alg="RS256", kid="b")],
        lambda r, e: [{"kty": "RSA", "kid": "broken", "alg": "RS256", "n": "AQAB"}],
    ],
)
def test_unusable_jwks_files_are_refused(
    tmp_path: Path,
    rsa_keys: KeyPair,
    ec_keys: KeyPair,
    make_keys: Callable[[KeyPair, KeyPair], list[dict[str, Any]]],
) -> None:
    path = write_jwks(tmp_path, make_keys(rsa_keys, ec_keys))
    with pytest.raises(ValueError):
        TokenVerifier(JWTSettings(secret=None, algorithms=("RS256",), jwks_path=path))


def test_unreadable_jwks_file_is_refused(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.json", tmp_path / "bad.json", tmp_path / "list.json"):
        if path.name == "bad.json":
            path.write_text("{not json")
        if path.name == "list.json":
            path.write_text("[]")
        with pytest.raises(ValueError):
            TokenVerifier(JWTSettings(secret=None, algorithms=("RS256",), jwks_path=str(path)))


# --- bearer parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc.def.ghi", "abc.def.ghi"),
        ("BEARER abc.def.ghi", "abc.def.ghi"),
        ("BeArEr a-b_c.d~e+f/g==", "a-b_c.d~e+f/g=="),
        ("  Bearer abc.def.ghi  ", "abc.def.ghi"),
        ("Bearer   abc.def.ghi", "abc.def.ghi"),
    ],
)
def test_parse_bearer_extracts_the_token(header: str | None, token: str | None) -> None:
    assert parse_bearer(header) == token


@pytest.mark.parametrize(
    "header",
    [
        "",
        " ",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Bearer a b",
        "Bearer\tabc",
        "Bearerabc.def",
        "Basic dXNlcjpwYXNz",
        "Token abc.def.ghi",
        "abc.def.ghi",
        "Bearer abc,def",
        "Bearer abc\ndef",
        "Bearer abc\r\n",
        "Bearer =abc",
        "Bearer abc.def.ghi extra",
        "Bearer \u00e9t\u00e9",
    ],
)
def test_parse_bearer_refuses_malformed_headers(header: str) -> None:
    with pytest.raises(AuthError) as info:
        parse_bearer(header)
    assert info.value.reason == "malformed Authorization header"


# --- no overrides of PyJWT's private API ----------------------------------------------------


def test_no_private_pyjwt_method_is_overridden() -> None:
    """PyJWT's private helpers (the base64url decoder carries a security fix) stay PyJWT's."""
    import inspect

    import auth.tokens

    overridden = []
    for name, cls in inspect.getmembers(auth.tokens, inspect.isclass):
        if cls.__module__ != "auth.tokens":
            continue
        for base in cls.__mro__[1:]:
            if not base.__module__.startswith("jwt"):
                continue
            for attr in vars(cls):
                if (
                    attr.startswith("_")
                    and not attr.startswith("__")
                    and attr != "_abc_impl"
                    and hasattr(base, attr)
                ):
                    overridden.append(f"{name}.{attr}")
    assert overridden == []
    assert not hasattr(auth.tokens, "_PinnedJWS")


def test_pyjwt_is_capped_at_the_tested_minor_version() -> None:
    """_PinnedJWT sets PyJWT's private ``_jws``: pyproject caps PyJWT at the tested minor."""
    import tomllib
    from importlib.metadata import version

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    spec = next(d for d in project["project"]["dependencies"] if d.startswith("pyjwt"))
    major, minor = (int(part) for part in version("pyjwt").split(".")[:2])
    assert f"<{major}.{minor + 1}" in spec
