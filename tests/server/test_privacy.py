"""Privacy: export and erasure (GraphQL and CLI), tenancy, scope, and no personal data in telemetry.

Every test makes its own data subject (a fresh user with an order, a review, an internal note
and an idempotency record) so that erasing it never disturbs the seeded rows other tests read.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Table, insert, select, update

from auth import ROLE_SCOPES, Role
from auth.tokens import mint_token
from database.engine import make_engine, tenant_transaction
from database.ids import new_id
from database.models import IdempotencyRecord, Order, Review, User
from observability import OperationTracer, configure_logging, configure_tracing
from resolvers.ids import to_global_id
from server.settings import Settings
from tests.server.conftest import Tokens, gql, operation

ROOT = Path(__file__).resolve().parents[2]
USERS: Table = User.__table__  # type: ignore[assignment]
ORDERS: Table = Order.__table__  # type: ignore[assignment]
REVIEWS: Table = Review.__table__  # type: ignore[assignment]
IDEMPOTENCY: Table = IdempotencyRecord.__table__  # type: ignore[assignment]

EXPORT = "query($u: ID!) { privacyExport(userId: $u) }"
ERASE = """mutation($u: ID!) { privacyErase(input: {userId: $u}) {
  erased userErrors { field message code } } }"""
CREATE_PRODUCT = """mutation($input: CreateProductInput!) { createProduct(input: $input) {
  product { id } userErrors { code } } }"""
ADD_REVIEW = """mutation($p: ID!, $b: String) { addReview(input: {productId: $p, rating: 4, body: $b}) {
  review { id } userErrors { code } } }"""


@dataclass
class Subject:
    """A data subject made for one test, with every kind of row erasure touches."""

    tenant: str
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    name: str
    email: str
    headers: dict[str, str]
    order_ids: list[str] = field(default_factory=list)
    idempotency_key: str = ""

    @property
    def gid(self) -> str:
        return to_global_id("User", self.user_id)


async def _post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    response = await gql(client, query, variables, headers)
    body: dict[str, Any] = response.json()
    assert response.status_code == 200, body
    return body


async def make_subject(
    client: httpx.AsyncClient, tokens: Tokens, settings: Settings, tenant: str = "acme"
) -> Subject:
    """Insert a customer, then let it order (with a note), review, and get an internal note."""
    tenant_id = tokens.tenants[tenant]
    tag = uuid.uuid4().hex[:10]
    user_id = new_id()
    name, email = f"Probe Person{tag}", f"probe.{tag}@{tenant}.example"
    engine = make_engine(settings.database_url)
    try:
        async with tenant_transaction(engine, tenant_id, write=True) as conn:
            await conn.execute(
                insert(USERS).values(
                    id=user_id, tenant_id=tenant_id, name=name, email=email, role="CUSTOMER"
                )
            )
    finally:
        await engine.dispose()
    token = mint_token(
        settings.jwt(), subject=str(user_id), tenant_id=tenant_id, role=Role.CUSTOMER
    )
    subject = Subject(tenant, tenant_id, user_id, name, email, {"Authorization": f"Bearer {token}"})
    sku = f"PRIV-{tag}"
    created = await _post(
        client,
        CREATE_PRODUCT,
        {
            "input": {
                "sku": sku,
                "name": f"Privacy {sku}",
                "price": "5.00",
                "currency": "USD",
                "stock": 100,
            }
        },
        tokens.headers("ADMIN", tenant),
    )
    product_id = created["data"]["createProduct"]["product"]["id"]
    subject.idempotency_key = f"privacy-{tag}"
    order = await _post(
        client,
        operation("CreateOrder"),
        {
            "input": {
                "idempotencyKey": subject.idempotency_key,
                "currency": "USD",
                "items": [{"productId": product_id, "quantity": 2}],
                "note": f"Ring {name} at {email}",
            }
        },
        subject.headers,
    )
    payload = order["data"]["createOrder"]
    assert payload["userErrors"] == [], payload
    subject.order_ids.append(payload["order"]["id"])
    review = await _post(
        client, ADD_REVIEW, {"p": product_id, "b": f"Great, says {name}"}, subject.headers
    )
    assert review["data"]["addReview"]["userErrors"] == [], review
    engine = make_engine(settings.database_url)
    try:
        async with tenant_transaction(engine, tenant_id, write=True) as conn:
            await conn.execute(
                update(ORDERS)
                .where(ORDERS.c.customer_id == user_id)
                .values(internal_note=f"{name} called about delivery")
            )
    finally:
        await engine.dispose()
    return subject


async def _rows(settings: Settings, subject: Subject) -> dict[str, Any]:
    """The subject's rows as stored, read straight from the database."""
    engine = make_engine(settings.database_url)
    try:
        async with tenant_transaction(engine, subject.tenant_id) as conn:
            user = (await conn.execute(select(USERS).where(USERS.c.id == subject.user_id))).one()
            orders = (
                await conn.execute(select(ORDERS).where(ORDERS.c.customer_id == subject.user_id))
            ).all()
            reviews = (
                await conn.execute(select(REVIEWS).where(REVIEWS.c.author_id == subject.user_id))
            ).all()
            records = (
                await conn.execute(
                    select(IDEMPOTENCY).where(IDEMPOTENCY.c.subject == str(subject.user_id))
                )
            ).all()
    finally:
        await engine.dispose()
    return {"user": user, "orders": orders, "reviews": reviews, "records": records}


def _privacy_admin(tokens: Tokens, tenant: str = "acme") -> dict[str, str]:
    return tokens.headers("ADMIN", tenant)


async def test_export_returns_everything_held_about_the_user(
    client: httpx.AsyncClient, tokens: Tokens, settings: Settings
) -> None:
    subject = await make_subject(client, tokens, settings)
    body = await _post(client, EXPORT, {"u": subject.gid}, _privacy_admin(tokens))
    assert "errors" not in body, body
    document = json.loads(body["data"]["privacyExport"])
    assert document["format"] == "tollgate.privacy-export/1"
    assert document["tenant"]["slug"] == "acme"
    assert document["user"] == {
        "id": subject.gid,
        "uuid": str(subject.user_id),
        "name": subject.name,
        "email": subject.email,
        "role": "CUSTOMER",
        "createdAt": document["user"]["createdAt"],
    }
    [order] = document["orders"]
    assert order["id"] == subject.order_ids[0]
    assert order["note"] == f"Ring {subject.name} at {subject.email}"
    assert order["internalNote"] == f"{subject.name} called about delivery"
    assert order["total"] == "10.00"
    assert [(i["quantity"], i["unitPrice"]) for i in order["items"]] == [(2, "5.00")]
    [review] = document["reviews"]
    assert review["rating"] == 4 and review["body"] == f"Great, says {subject.name}"
    assert [r["key"] for r in document["idempotencyRecords"]] == [subject.idempotency_key]
    assert document["idempotencyRecords"][0]["orderId"] == subject.order_ids[0]


async def test_erase_anonymises_keeps_orders_and_repeats_as_a_no_op(
    client: httpx.AsyncClient, tokens: Tokens, settings: Settings
) -> None:
    subject = await make_subject(client, tokens, settings)
    bystander = await make_subject(client, tokens, settings)
    twin = await make_subject(client, tokens, settings, tenant="globex")
    before = await _rows(settings, subject)
    [order_before] = before["orders"]

    first = await _post(client, ERASE, {"u": subject.gid}, _privacy_admin(tokens))
    assert first["data"]["privacyErase"] == {"erased": True, "userErrors": []}

    after = await _rows(settings, subject)
    assert after["user"].name == "Erased user" and after["user"].email is None
    assert after["user"].role == "CUSTOMER"
    [order] = after["orders"]  # kept for accounting
    assert (order.id, order.number, order.status, order.total, order.currency) == (
        order_before.id,
        order_before.number,
        order_before.status,
        order_before.total,
        order_before.currency,
    )
    assert order.note is None and order.internal_note is None
    assert order.version == order_before.version + 1  # a changed row: stale writers conflict
    [review] = after["reviews"]
    assert review.rating == 4 and review.body is None  # product averages keep the rating
    assert after["records"] == []

    second = await _post(client, ERASE, {"u": subject.gid}, _privacy_admin(tokens))
    assert second["data"]["privacyErase"] == {"erased": False, "userErrors": []}
    assert (await _rows(settings, subject))["orders"][0].version == order.version

    # Nobody else was touched: not another user of the tenant, not another tenant's user.
    for other in (bystander, twin):
        rows = await _rows(settings, other)
        assert (rows["user"].name, rows["user"].email) == (other.name, other.email)
        assert rows["orders"][0].note is not None and rows["orders"][0].internal_note is not None
        assert rows["reviews"][0].body is not None and len(rows["records"]) == 1

    # The API shows the anonymised user; the order still reads with its items.
    view = await _post(
        client,
        "query($o: ID!) { order(id: $o) { note total { amount } customer { name email } } }",
        {"o": subject.order_ids[0]},
        tokens.headers("STAFF"),
    )
    assert view["data"]["order"] == {
        "note": None,
        "total": {"amount": "10.00"},
        "customer": {"name": "Erased user", "email": None},
    }


async def test_privacy_fields_need_admin_with_the_privacy_scope(
    client: httpx.AsyncClient, tokens: Tokens, settings: Settings
) -> None:
    subject = await make_subject(client, tokens, settings)
    without_scope = sorted(ROLE_SCOPES[Role.ADMIN] - {"privacy:admin"})
    callers = {
        "customer": tokens.headers("CUSTOMER"),
        "staff": tokens.headers("STAFF"),
        "staff with the scope": tokens.headers("STAFF", scopes=["privacy:admin", "graphql:adhoc"]),
        "admin without the scope": tokens.headers("ADMIN", scopes=without_scope),
    }
    for label, headers in callers.items():
        for query in (EXPORT, ERASE):
            body = await _post(client, query, {"u": subject.gid}, headers)
            assert body["data"] is None, label
            assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], label
    anonymous = (await gql(client, EXPORT, {"u": subject.gid})).json()
    assert anonymous["errors"][0]["extensions"]["code"] in ("UNAUTHENTICATED", "FORBIDDEN")
    rows = await _rows(settings, subject)
    assert rows["user"].email == subject.email and rows["reviews"][0].body is not None


async def test_another_tenants_user_reads_as_missing(
    client: httpx.AsyncClient, tokens: Tokens, settings: Settings
) -> None:
    subject = await make_subject(client, tokens, settings)
    globex = _privacy_admin(tokens, "globex")
    exported = await _post(client, EXPORT, {"u": subject.gid}, globex)
    assert exported["data"] is None
    assert [e["extensions"]["code"] for e in exported["errors"]] == ["NOT_FOUND"]
    missing = await _post(client, EXPORT, {"u": to_global_id("User", uuid.uuid4())}, globex)
    assert missing["errors"][0]["message"] == exported["errors"][0]["message"]
    erased = await _post(client, ERASE, {"u": subject.gid}, globex)
    assert erased["data"]["privacyErase"] == {
        "erased": False,
        "userErrors": [{"field": ["userId"], "message": "No such user.", "code": "NOT_FOUND"}],
    }
    malformed = await _post(client, ERASE, {"u": subject.order_ids[0]}, globex)
    assert malformed["data"]["privacyErase"]["userErrors"][0]["code"] == "INVALID_INPUT"
    not_a_user = await _post(client, EXPORT, {"u": subject.order_ids[0]}, globex)
    assert [e["extensions"]["code"] for e in not_a_user["errors"]] == ["BAD_USER_INPUT"]
    rows = await _rows(settings, subject)
    assert (rows["user"].name, rows["user"].email) == (subject.name, subject.email)
    assert rows["orders"][0].note is not None and len(rows["records"]) == 1


@contextmanager
def captured_logs(settings: Settings) -> Iterator[io.StringIO]:
    """Send the app's JSON log lines to a buffer, then restore the app's logging."""
    stream = io.StringIO()
    configure_logging(level="INFO", json=True, stream=stream)
    try:
        yield stream
    finally:
        configure_logging(level=settings.log_level, json=settings.log_json)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_erase_logs_one_line_naming_who_asked_without_personal_data(
    client: httpx.AsyncClient, tokens: Tokens, settings: Settings
) -> None:
    subject = await make_subject(client, tokens, settings)
    admin = tokens.users[("acme", "ADMIN")]
    with captured_logs(settings) as stream:
        body = await _post(client, ERASE, {"u": subject.gid}, _privacy_admin(tokens))
    assert body["data"]["privacyErase"]["erased"] is True
    [line] = [e for e in _lines(stream) if e.get("event") == "privacy.erase"]
    assert line["logger"] == "tollgate.privacy"
    assert line["requested_by"] == str(admin.id) and line["via"] == "graphql"
    assert line["tenant"] == str(subject.tenant_id)
    assert line["subject_id"] == str(subject.user_id)
    assert line["outcome"] == "erased"
    assert line["counts"] == {
        "user_anonymised": 1,
        "orders_anonymised": 1,
        "reviews_cleared": 1,
        "idempotency_records_deleted": 1,
    }
    text = stream.getvalue()
    for secret in (subject.name, subject.email, "Ring ", "Great, says", "called about"):
        assert secret not in text


def _graphql_endpoint(app: Any) -> Any:
    for route in app.routes:
        if getattr(route, "path", None) == "/graphql":
            return route.endpoint.__self__
    raise AssertionError("no /graphql route")


@contextmanager
def captured_spans(app: Any) -> Iterator[Any]:
    """Record the /graphql endpoint's spans in memory for the duration of the block."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = configure_tracing(exporter=exporter)
    endpoint = _graphql_endpoint(app)
    previous = endpoint.tracer
    endpoint.tracer = OperationTracer(provider, record_document=True)
    try:
        yield exporter
    finally:
        endpoint.tracer = previous
        assert provider is not None
        provider.shutdown()


@dataclass
class Telemetry:
    """What one run of operations left behind, and the personal values it touched."""

    touched: set[str]
    log_lines: list[str]
    spans: list[str]
    metrics: str


async def run_operations(
    app: Any, client: httpx.AsyncClient, tokens: Tokens, settings: Settings
) -> Telemetry:
    """Run reads, writes, failures and the privacy operations while capturing telemetry."""
    subject = await make_subject(client, tokens, settings)
    customer = tokens.users[("acme", "CUSTOMER")]
    touched: set[str] = {subject.name, subject.email}
    with captured_logs(settings) as stream, captured_spans(app) as exporter:
        viewer = await _post(client, "{ viewer { id name email } }", {}, tokens.headers("CUSTOMER"))
        staff_list = await _post(
            client,
            "{ users(first: 10, role: STAFF) { nodes { name email } } }",
            {},
            tokens.headers("STAFF"),
        )
        node = await _post(
            client,
            "query($u: ID!) { node(id: $u) { ... on User { name email } } }",
            {"u": to_global_id("User", customer.id)},
            tokens.headers("ADMIN"),
        )
        own = await _post(client, "{ viewer { name email } }", {}, subject.headers)
        # Personal data in variables, in a literal, in a GET query string, in failing documents.
        await _post(
            client,
            "query($s: String) { products(search: $s) { totalCount } }",
            {"s": subject.email},
            subject.headers,
        )
        await _post(
            client,
            f'{{ products(search: "{subject.name}") {{ totalCount }} }}',
            {},
            subject.headers,
        )
        await client.get(
            "/graphql",
            params={
                "query": "query($s: String) { products(search: $s) { totalCount } }",
                "variables": json.dumps({"s": subject.email}),
            },
            headers={"Accept": "application/graphql-response+json", **subject.headers},
        )
        await gql(client, f'{{ node(id: "{subject.email}") {{ id }} }}', None, subject.headers)
        await gql(client, f'{{ viewer {{ name "{subject.name}" }} }}', None, subject.headers)
        await _post(client, EXPORT, {"u": subject.gid}, _privacy_admin(tokens))
        await _post(client, ERASE, {"u": subject.gid}, _privacy_admin(tokens))
        metrics = await client.get("/metrics")
    touched.update({viewer["data"]["viewer"]["name"], viewer["data"]["viewer"]["email"]})
    for user in staff_list["data"]["users"]["nodes"]:
        touched.update({user["name"], user["email"]})
    touched.update({node["data"]["node"]["name"], node["data"]["node"]["email"]})
    assert own["data"]["viewer"] == {"name": subject.name, "email": subject.email}
    assert len(touched) >= 20 and None not in touched
    assert metrics.status_code == 200
    # The test's own HTTP client (httpx) logs the URLs it requests; only the app's lines count.
    lines = [line for line in stream.getvalue().splitlines() if '"logger":"httpx"' not in line]
    spans = [span.to_json() for span in exporter.get_finished_spans()]
    return Telemetry(touched, lines, spans, metrics.text)


async def test_personal_fields_never_appear_in_logs_or_metrics(
    app: Any, client: httpx.AsyncClient, tokens: Tokens, settings: Settings
) -> None:
    seen = await run_operations(app, client, tokens, settings)
    assert any('"graphql.operation"' in line for line in seen.log_lines), "nothing was logged"
    assert any('"privacy.erase"' in line for line in seen.log_lines)
    assert "graphql" in seen.metrics
    for value in sorted(seen.touched):
        assert [line for line in seen.log_lines if value in line] == [], f"{value!r} logged"
        assert value not in seen.metrics, f"{value!r} in /metrics"


async def test_personal_fields_never_appear_in_traces(
    app: Any, client: httpx.AsyncClient, tokens: Tokens, settings: Settings
) -> None:
    seen = await run_operations(app, client, tokens, settings)
    assert seen.spans, "no span was recorded"
    for value in sorted(seen.touched):
        leaks = [span for span in seen.spans if value in span]
        assert leaks == [], f"{value!r} in spans:\n" + "\n".join(leaks)


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TOLLGATE_DATABASE_URL": settings.database_url,
        "TOLLGATE_LOG_JSON": "true",
    }
    return subprocess.run(
        [sys.executable, "-m", "server", "privacy", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_cli_exports_then_erases_idempotently(
    client: httpx.AsyncClient, tokens: Tokens, settings: Settings, tmp_path: Path
) -> None:
    subject = await make_subject(client, tokens, settings)
    target = ["--tenant", "acme", "--user", str(subject.user_id)]

    printed = _cli(settings, "export", *target)
    assert printed.returncode == 0, printed.stderr
    document = json.loads(printed.stdout)  # logs go to stderr, so stdout is pure JSON
    assert document["user"]["email"] == subject.email
    assert document["orders"][0]["internalNote"] == f"{subject.name} called about delivery"
    out = tmp_path / "export.json"
    written = _cli(
        settings,
        "export",
        "--tenant",
        str(subject.tenant_id),
        "--user",
        subject.gid,
        "--out",
        str(out),
    )
    assert written.returncode == 0, written.stderr
    assert json.loads(out.read_text())["user"]["uuid"] == str(subject.user_id)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    elsewhere = _cli(
        settings,
        "erase",
        "--tenant",
        "globex",
        "--user",
        str(subject.user_id),
        "--requested-by",
        "ticket-7",
    )
    assert elsewhere.returncode == 1 and elsewhere.stdout == ""

    erased = _cli(settings, "erase", *target, "--requested-by", "ticket-7")
    assert erased.returncode == 0, erased.stderr
    report = json.loads(erased.stdout)
    assert report["erased"] is True
    assert report["counts"] == {
        "user_anonymised": 1,
        "orders_anonymised": 1,
        "reviews_cleared": 1,
        "idempotency_records_deleted": 1,
    }
    [line] = [
        json.loads(text)
        for text in erased.stderr.splitlines()
        if text.startswith("{") and "privacy.erase" in text
    ]
    assert line["requested_by"] == "ticket-7" and line["via"] == "cli"
    assert line["subject_id"] == str(subject.user_id) and line["counts"] == report["counts"]
    for secret in (subject.name, subject.email):
        assert secret not in erased.stderr and secret not in erased.stdout

    again = _cli(settings, "erase", *target, "--requested-by", "ticket-7")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["erased"] is False
    assert set(json.loads(again.stdout)["counts"].values()) == {0}
    rows = await _rows(settings, subject)
    assert rows["user"].email is None and len(rows["orders"]) == 1


@pytest.mark.parametrize("user", ["not-an-id", str(uuid.uuid4())])
def test_cli_refuses_unknown_users_without_changing_anything(settings: Settings, user: str) -> None:
    result = _cli(settings, "erase", "--tenant", "acme", "--user", user, "--requested-by", "t")
    assert result.returncode == 1 and result.stdout == ""
    assert "user" in result.stderr
