"""The node's one settings object (pydantic-settings, env prefix ``LNM_``, nested with ``__``).

Load it once per entry point with :func:`load_settings` and pass it down; nothing reads the
environment at import time.
"""

from __future__ import annotations

import json
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_AE_RE = re.compile(r"^[\x20-\x7e]{1,16}$")


def _check_ae(value: str) -> str:
    if not _AE_RE.match(value) or value.strip() == "" or "\\" in value:
        raise ValueError(f"AE title {value!r} must be 1-16 printable characters, no backslash")
    return value.strip()


def _split_list(value: Any) -> Any:
    """Environment lists: a JSON array, or comma-separated text."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [v.strip() for v in text.split(",") if v.strip()]
    return value


class Profile(StrEnum):
    """Deployment profiles: they change URLs and limits, never which code runs."""

    EMBEDDED = "embedded"
    PRODUCTION = "production"


class Destination(BaseModel):
    """A DICOM peer results are sent to (C-STORE)."""

    model_config = {"frozen": True}

    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)

    _ae = field_validator("ae_title")(lambda cls, v: _check_ae(v))

    @classmethod
    def parse(cls, text: str) -> Destination:
        """Parse ``AE@HOST:PORT``."""
        match = re.match(r"^([^@]+)@(.+):(\d+)$", text.strip())
        if not match:
            raise ValueError(f"destination {text!r} is not of the form AE@HOST:PORT")
        return cls(ae_title=match.group(1), host=match.group(2), port=int(match.group(3)))

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


class Settings(BaseSettings):
    """Everything the node can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="LNM_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    profile: Profile = Profile.EMBEDDED
    home: Path = Path("lnm-home")

    # DICOM network
    ae_title: str = "LNMNODE"
    bind_address: str = "127.0.0.1"
    port: int = Field(default=11112, ge=0, le=65535)
    calling_ae_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_associations: int = Field(default=10, ge=1, le=256)
    max_pdu_size: int = Field(default=16382, ge=0)
    max_instance_bytes: int = Field(default=2 * 1024**3, ge=1024)
    min_free_disk_bytes: int = Field(default=512 * 1024**2, ge=0)
    network_timeout_seconds: float = Field(default=60.0, gt=0)

    # where results go
    destinations: Annotated[list[Destination], NoDecode] = Field(default_factory=list)

    # study assembly
    quiet_seconds: float = Field(default=30.0, ge=0)
    max_wait_seconds: float = Field(default=3600.0, gt=0)
    sweep_interval_seconds: float = Field(default=2.0, gt=0)
    requeue_after_seconds: float = Field(default=300.0, gt=0)

    # storage and queue; empty means "derive from home and profile"
    database_url: str = ""
    broker_url: str = ""
    task_time_limit_seconds: int = Field(default=1800, ge=10)
    redis_visibility_timeout_seconds: int = Field(default=3600, ge=60)

    # inference
    device: str = "cpu"
    models_dir: Path | None = None
    default_model: str = "ynet-busi"

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        return _check_ae(value)

    @field_validator("calling_ae_allowlist", mode="before")
    @classmethod
    def _allowlist(cls, value: Any) -> Any:
        value = _split_list(value)
        return [_check_ae(v) for v in value] if isinstance(value, list) else value

    @field_validator("destinations", mode="before")
    @classmethod
    def _destinations(cls, value: Any) -> Any:
        value = _split_list(value)
        if isinstance(value, list):
            return [Destination.parse(v) if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        self.home = self.home.expanduser().absolute()
        if not self.database_url:
            if self.profile is Profile.PRODUCTION:
                raise ValueError("profile production needs LNM_DATABASE_URL (PostgreSQL)")
            self.database_url = f"sqlite:///{self.home / 'lnm.sqlite3'}"
        if not self.broker_url:
            if self.profile is Profile.PRODUCTION:
                raise ValueError("profile production needs LNM_BROKER_URL (Redis)")
            self.broker_url = "filesystem://"
        if self.task_time_limit_seconds >= self.redis_visibility_timeout_seconds:
            raise ValueError("task_time_limit_seconds must stay below the Redis visibility timeout")
        return self

    def redacted(self) -> dict[str, Any]:
        """Effective settings with secrets (passwords in URLs) hidden, for the start-up log."""
        data = self.model_dump(mode="json")
        for key in ("database_url", "broker_url"):
            data[key] = re.sub(r"//([^:/@]*):([^@]+)@", r"//\1:***@", data[key])
        return data


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, then apply non-None ``overrides`` (CLI flags)."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    settings = Settings(**clean)
    settings.home.mkdir(parents=True, exist_ok=True)
    if not os.access(settings.home, os.W_OK):
        raise ValueError(f"home folder {settings.home} is not writable")
    return settings


def settings_environment(settings: Settings) -> dict[str, str]:
    """``LNM_*`` variables that rebuild exactly ``settings`` in a child process."""
    env: dict[str, str] = {}
    for key, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        env[f"LNM_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env
