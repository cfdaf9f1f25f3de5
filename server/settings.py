"""Configuration: every ``TOLLGATE_*`` environment variable, read only here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from auth.tokens import JWTSettings

ROOT = Path(__file__).resolve().parent.parent
DEMO_JWT_SECRET = "tollgate-demo-secret-do-not-use-in-production-0123456789"  # noqa: S105


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything configurable, with demo-friendly defaults and safe production defaults."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # URLs may carry passwords: kept out of repr() (and so out of logs and tracebacks).
    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{ROOT / 'var' / 'tollgate.db'}", repr=False
    )
    database_pool_size: int = 10
    redis_url: str | None = Field(default=None, repr=False)
    redis_timeout_ms: int = 50

    jwt_secret: SecretStr | None = None
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["HS256"])
    jwt_issuer: str = "tollgate"
    jwt_audience: str = "tollgate-api"
    jwt_leeway_seconds: int = 30
    jwt_public_key_file: str | None = None
    jwt_jwks_file: str | None = None
    # A JWKS URL (your identity provider's): keys are fetched, cached and refetched when a
    # token names a key id not in the cache, so keys rotate without a restart.
    jwt_jwks_url: str | None = None
    jwt_jwks_cache_seconds: int = 300

    graphiql: bool | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = 1_000_000
    execution_timeout_ms: int = 10_000
    # Run the queries the batched executor covers there (schema/executor.py); false sends
    # every operation through graphql-core's generic executor.
    fast_executor: bool = True
    batching: bool = False

    # Operation limits: value and mode (enforce | measure | off) per limit; see docs/limits.md.
    limits: dict[str, str] = Field(default_factory=dict)

    # Rate limiting (cost points; restore rates in points per second).
    ratelimit: bool = True
    ratelimit_fail_open: bool = True
    # A bucket must hold the most expensive admissible operation (max_cost, 25,000).
    user_capacity: int = 25_000
    user_restore_rate: float = 500.0
    tenant_capacity: int = 250_000
    tenant_restore_rate: float = 5_000.0
    anonymous_capacity: int = 2_000
    anonymous_restore_rate: float = 50.0
    write_capacity: int = 2_500
    write_restore_rate: float = 50.0
    tiers: dict[str, tuple[int, float]] = Field(default_factory=dict)

    # Response cache (docs/caching.md): in process unless redis_url is set.
    response_cache: bool = True
    response_cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    response_cache_hit_price: int = Field(default=1, ge=1)
    response_cache_prefix: str = "tollgate:rc:"

    pq_mode: Literal["open", "audit", "allowlist"] | None = None
    apq: bool = True

    # Webhooks (docs/webhooks.md): the delivery worker of this process and its policy.
    webhooks: bool = True
    # Loopback targets: None = allowed outside production only; true/false says so explicitly.
    webhook_allow_loopback: bool | None = None
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    webhook_batch: int = Field(default=20, ge=1, le=500)
    webhook_backoff_base_seconds: float = Field(default=10.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_for_seconds: float = Field(default=3 * 24 * 3600.0, gt=0)
    webhook_disable_after_seconds: float = Field(default=3 * 24 * 3600.0, ge=0)
    webhook_disable_after_failures: int = Field(default=20, ge=1)
    # Delivered and failed deliveries (and their events) are deleted after this long.
    webhook_retention_seconds: float = Field(default=30 * 24 * 3600.0, gt=0)

    log_level: str = "INFO"
    log_json: bool = True
    access_log: bool = True
    metrics: bool = True
    metrics_dir: str | None = None
    # /metrics wants a bearer token with the scope `metrics:read`; None: in production only.
    metrics_auth: bool | None = None
    otlp_endpoint: str | None = Field(default=None, repr=False)
    trace_sample_ratio: float = 1.0
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    _split_lists = model_validator(mode="before")(
        lambda cls, data: (
            {
                k: (_split(v) if k in {"jwt_algorithms", "cors_origins", "trusted_proxies"} else v)
                for k, v in data.items()
            }
            if isinstance(data, dict)
            else data
        )
    )

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def metrics_auth_required(self) -> bool:
        """Whether ``/metrics`` needs a token with `metrics:read` (production by default)."""
        return self.production if self.metrics_auth is None else self.metrics_auth

    @property
    def graphiql_enabled(self) -> bool:
        return (not self.production) if self.graphiql is None else self.graphiql

    @property
    def effective_pq_mode(self) -> str:
        if self.pq_mode is not None:
            return self.pq_mode
        return "allowlist" if self.production else "open"

    @property
    def effective_webhook_allow_loopback(self) -> bool:
        """Loopback webhook targets: as configured, else allowed outside production only."""
        if self.webhook_allow_loopback is not None:
            return self.webhook_allow_loopback
        return not self.production

    @property
    def public_keys_configured(self) -> bool:
        """Tokens are verified with public keys (a PEM file, a JWKS file or a JWKS URL)."""
        return bool(self.jwt_public_key_file or self.jwt_jwks_file or self.jwt_jwks_url)

    @property
    def effective_jwt_secret(self) -> str | None:
        """The demo secret outside production; production must configure its own."""
        if self.jwt_secret is not None and self.jwt_secret.get_secret_value():
            return self.jwt_secret.get_secret_value()
        if self.production or self.public_keys_configured:
            return None
        return DEMO_JWT_SECRET

    def jwt(self) -> JWTSettings:
        """The token verifier's settings (keys read from their files)."""
        public_key = None
        if self.jwt_public_key_file:
            public_key = Path(self.jwt_public_key_file).read_text(encoding="utf-8")
        return JWTSettings(
            secret=self.effective_jwt_secret,
            algorithms=tuple(self.jwt_algorithms),
            issuer=self.jwt_issuer,
            audience=self.jwt_audience,
            leeway_seconds=self.jwt_leeway_seconds,
            public_key_pem=public_key,
            jwks_path=self.jwt_jwks_file,
            jwks_url=self.jwt_jwks_url,
            jwks_cache_seconds=self.jwt_jwks_cache_seconds,
        )

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.production and not (self.jwt_secret or self.public_keys_configured):
            raise ValueError(
                "TOLLGATE_ENV=production needs TOLLGATE_JWT_SECRET, TOLLGATE_JWT_PUBLIC_KEY_FILE, "
                "TOLLGATE_JWT_JWKS_FILE or TOLLGATE_JWT_JWKS_URL: there is no default secret "
                "in production"
            )
        return self
