"""Token verification: ``auth.tokens.TokenVerifier`` next to PyJWT's own ``jwt.decode``.

``python -m bench.bench_tokens`` prints microseconds per HS256 token for both (best of three
rounds of 2,000) and their ratio. A report, not a test: nothing fails on a slow figure.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import jwt

from auth import Role
from auth.tokens import REQUIRED_CLAIMS, JWTSettings, TokenVerifier, mint_token

SECRET = "bench-secret-" + "x" * 32


def _best_mean(fn: Callable[[], object], n: int = 2000) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main() -> None:
    settings = JWTSettings(secret=SECRET)
    token = mint_token(settings, subject=str(uuid.uuid4()), tenant_id=uuid.uuid4(), role=Role.ADMIN)
    verifier = TokenVerifier(settings)
    ours = _best_mean(lambda: verifier.verify(token))
    plain = _best_mean(
        lambda: jwt.decode(
            token,
            SECRET,
            algorithms=["HS256"],
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=30,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    )
    print(f"TokenVerifier.verify {ours * 1e6:7.1f} us/token")
    print(f"jwt.decode           {plain * 1e6:7.1f} us/token")
    print(f"ratio jwt.decode / ours = {plain / ours:.2f}x")


if __name__ == "__main__":
    main()
