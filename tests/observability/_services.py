"""Reachability of real services: skip loudly, or fail under CI=true (see tests/services.py)."""

from __future__ import annotations

from tests.services import require as require_service

__all__ = ["require_service"]
