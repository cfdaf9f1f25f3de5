"""``python -m server webhooks verify`` (the ``tollgate webhooks verify`` command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth.webhooks import new_secret, signature_header
from server.cli import main

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000


def _run(tmp_path: Path, body: bytes, *args: str) -> tuple[int, str]:
    path = tmp_path / "body.json"
    path.write_bytes(body)
    return main(["webhooks", "verify", "--body", str(path), *args]), ""


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=512))
def test_verify_accepts_a_signed_body_and_refuses_changes(tmp_path: Path, body: bytes) -> None:
    secret = new_secret()
    header = signature_header([secret], NOW, body)
    ok, _ = _run(tmp_path, body, "--secret", secret, "--header", header, "--now", str(NOW))
    assert ok == 0
    changed, _ = _run(
        tmp_path, body + b" ", "--secret", secret, "--header", header, "--now", str(NOW)
    )
    assert changed == 1
    stale, _ = _run(tmp_path, body, "--secret", secret, "--header", header, "--now", str(NOW + 301))
    assert stale == 1
    wrong, _ = _run(tmp_path, body, "--secret", new_secret(), "--header", header, "--now", str(NOW))
    assert wrong == 1


def test_verify_takes_both_secrets_during_a_rotation(tmp_path: Path) -> None:
    old, new = new_secret(), new_secret()
    header = signature_header([new, old], NOW, b"{}")
    for secrets in ([old], [new], [old, new]):
        flags = [arg for s in secrets for arg in ("--secret", s)]
        code, _ = _run(tmp_path, b"{}", *flags, "--header", header, "--now", str(NOW))
        assert code == 0


def test_verify_from_stdin_as_a_process_says_why(tmp_path: Path) -> None:
    secret = new_secret()
    header = signature_header([secret], NOW, b'{"a":1}')
    base = [sys.executable, "-m", "server", "webhooks", "verify", "--header", header]
    ok = subprocess.run(
        [*base, "--secret", secret, "--now", str(NOW)],
        input=b'{"a":1}',
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0 and ok.stdout.decode().strip() == f"valid (t={NOW})"
    bad = subprocess.run(
        [*base, "--secret", "whsec_other", "--now", str(NOW)],
        input=b'{"a":1}',
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.decode().strip() == "invalid: no signature matches"
    assert "Traceback" not in bad.stderr.decode()
    missing = subprocess.run(
        [*base, "--secret", secret, "--body", str(tmp_path / "nope.json")],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2
    assert missing.stderr.decode().startswith("tollgate: error: cannot read the body")
    assert "Traceback" not in missing.stderr.decode()
