"""The verification function printed in docs/webhooks.md works against real signatures."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth.webhooks import new_secret, signature_header

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def _documented() -> Any:
    text = DOC.read_text(encoding="utf-8")
    (code,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", text, re.S)
        if "def verify_tollgate" in block
    ]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # our own docs
    return namespace["verify_tollgate"]


@given(body=st.binary(max_size=1024))
def test_the_documented_function_agrees_with_the_signer(body: bytes) -> None:
    verify_tollgate = _documented()
    old, new = new_secret(), new_secret()
    now = int(time.time())
    header = signature_header([new, old], now, body)
    assert verify_tollgate(body, header, [old]) == now
    assert verify_tollgate(body, header, [new]) == now
    with pytest.raises(ValueError, match="no signature matches"):
        verify_tollgate(body + b"x", header, [new])
    with pytest.raises(ValueError, match="no signature matches"):
        verify_tollgate(body, header, [new_secret()])
    with pytest.raises(ValueError, match="tolerance"):
        verify_tollgate(body, signature_header([new], now - 301, body), [new])


@given(candidate=st.text(min_size=1, max_size=80).filter(lambda s: "," not in s))
def test_the_documented_function_refuses_any_signature_text_without_crashing(
    candidate: str,
) -> None:
    """A non-ASCII ``v1`` is a ValueError for the receiver, never a TypeError (a 500)."""
    verify_tollgate = _documented()
    with pytest.raises(ValueError):
        verify_tollgate(b"{}", f"t={int(time.time())},v1={candidate}", [new_secret()])
