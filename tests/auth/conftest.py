"""Session-scoped key pairs for the auth tests."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.auth.jwt_helpers import KeyPair, make_pair


@pytest.fixture(scope="session")
def rsa_keys() -> KeyPair:
    return make_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="session")
def rsa_keys_2() -> KeyPair:
    return make_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="session")
def ec_keys() -> KeyPair:
    return make_pair(ec.generate_private_key(ec.SECP256R1()))
