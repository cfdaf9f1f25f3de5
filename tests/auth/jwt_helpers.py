"""Key generation and hand-made tokens for the auth tests (keys are generated, never committed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

SECRET = "s3cr3t-for-tests-only-0123456789abcdef"  # 38 bytes
TENANT = uuid.UUID("0190a3b4-0000-7000-8000-000000000001")
USER = uuid.UUID("0190a3b4-0000-7000-8000-0000000000aa")


@dataclass(frozen=True)
class KeyPair:
    """A generated key pair, as PEM text and as key objects."""

    private_pem: str
    public_pem: str
    private_key: Any
    public_key: Any


def make_pair(private_key: Any) -> KeyPair:
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_key = private_key.public_key()
    public_pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return KeyPair(private_pem, public_pem, private_key, public_key)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """Assemble a compact JWS by hand, with whatever header and signature an attacker likes."""
    return f"{b64json(header)}.{b64json(claims)}.{b64url(signature)}"


def claims(**overrides: Any) -> dict[str, Any]:
    """A complete, currently valid claim set for the default JWTSettings; None removes a claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "tollgate",
        "aud": "tollgate-api",
        "sub": str(USER),
        "tenant": str(TENANT),
        "role": "CUSTOMER",
        "scope": "read:orders write:orders read:products",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign_hs(payload: dict[str, Any], secret: str = SECRET, alg: str = "HS256") -> str:
    """HMAC-sign any payload (PyJWT's encode refuses some malformed claims we need to send)."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = f"{b64json({'alg': alg, 'typ': 'JWT'})}.{b64json(payload)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def public_jwk(
    pair: KeyPair, *, alg: str, kid: str | None, include_alg: bool = True
) -> dict[str, Any]:
    """The public half of `pair` as a JWK dict, as an identity provider would publish it."""
    algorithm = jwt.algorithms.get_default_algorithms()[alg]
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(pair.public_key))
    jwk["use"] = "sig"
    if kid is not None:
        jwk["kid"] = kid
    if include_alg:
        jwk["alg"] = alg
    return jwk
