"""Run settings: behave userdata (``-D name=value``) with environment-variable twins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from failspec.harness.errors import SetupError

BACKENDS = ("auto", "docker", "embedded", "url")
DEFAULT_IMAGE = "postgres:18"

# userdata key -> environment variable
ENV_TWINS = {
    "backend": "FAILSPEC_BACKEND",
    "db_url": "DATABASE_URL",
    "pg_image": "FAILSPEC_PG_IMAGE",
    "pg_bin": "FAILSPEC_PG_BIN",
    "pg_port": "FAILSPEC_PG_PORT",
    "timeout_scale": "FAILSPEC_TIMEOUT_SCALE",
}


@dataclass(frozen=True)
class Settings:
    """Everything a run can be told. Userdata wins over the environment."""

    backend: str = "auto"
    db_url: str | None = None
    pg_image: str = DEFAULT_IMAGE
    pg_bin: str | None = None
    pg_port: int | None = None
    # Multiplies every timeout the suite sets or waits for; raise it on slow machines.
    timeout_scale: float = 1.0

    @classmethod
    def from_sources(cls, userdata: Mapping[str, str], environ: Mapping[str, str]) -> Settings:
        raw: dict[str, str] = {k: v for k, v in userdata.items() if k not in ENV_TWINS}
        for name, env in ENV_TWINS.items():
            value = userdata.get(name) or environ.get(env)
            if value:
                raw[name] = value.strip()
        return cls.parse(raw)

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            known_list = ", ".join(sorted(known))
            raise SetupError(f"unknown setting {unknown[0]!r}: known are {known_list}")
        values: dict[str, object] = dict(raw)
        backend = str(values.get("backend", "auto")).lower()
        if backend not in BACKENDS:
            raise SetupError(
                f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)} "
                "(-D backend=... or FAILSPEC_BACKEND)"
            )
        values["backend"] = backend
        if backend == "url" and not values.get("db_url"):
            raise SetupError(
                "backend=url needs a server address: -D db_url=postgresql://user@host:port/db "
                "or DATABASE_URL"
            )
        if "pg_port" in values:
            values["pg_port"] = _number(values["pg_port"], "pg_port", int, 1, 65535)
        if "timeout_scale" in values:
            scale = values["timeout_scale"]
            values["timeout_scale"] = _number(scale, "timeout_scale", float, 0.1, 100)
        return cls(**values)  # type: ignore[arg-type]

    def seconds(self, base: float) -> float:
        """A timeout of ``base`` seconds, scaled for this machine."""
        return base * self.timeout_scale


def _number(value: object, name: str, kind: type, low: float, high: float) -> float | int:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise SetupError(f"{name}={value!r} is not a number") from None
    if not low <= number <= high:
        raise SetupError(f"{name}={value!r} is out of range ({low} to {high})")
    return number
