"""Request ids, structured logging, Prometheus metrics, tracing and Server-Timing.

A leaf package: it imports none of Tollgate's other packages, reads no environment
variables and creates nothing at import time.
"""

from __future__ import annotations

from observability.logging import configure_logging, get_logger, log_operation
from observability.metrics import Metrics, mark_process_dead, render_multiprocess
from observability.request_id import RequestIdMiddleware, current_request_id, get_request_id
from observability.timing import ServerTiming
from observability.tracing import OperationTracer, configure_tracing

__all__ = [
    "Metrics",
    "OperationTracer",
    "RequestIdMiddleware",
    "ServerTiming",
    "configure_logging",
    "configure_tracing",
    "current_request_id",
    "get_logger",
    "get_request_id",
    "log_operation",
    "mark_process_dead",
    "render_multiprocess",
]
