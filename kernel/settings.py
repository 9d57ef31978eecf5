"""The node's one settings object (pydantic-settings, env prefix ``LNM_``, nested with ``__``).

Load it once per entry point with :func:`load_settings` and pass it down; nothing reads the
environment at import time.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kernel.spool import make_dirs

_AE_RE = re.compile(r"^[\x20-\x7e]{1,16}$")
_WEB_USER_RE = re.compile(
    r"^[A-Za-z0-9._-]{1,64}:scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$"
)


def _check_ae(value: str) -> str:
    if not _AE_RE.match(value) or value.strip() == "" or "\\" in value:
        raise ValueError(f"AE title {value!r} must be 1-16 printable characters, no backslash")
    return value.strip()


_USERINFO = re.compile(r"//([^/@\s]*)@")


def redact_url(url: str) -> str:
    """``url`` with the password of its user information hidden (``//user:***@``); user
    information without a colon (a token) is hidden whole (``//***@``)."""

    def hide(match: re.Match[str]) -> str:
        user, colon, _ = match.group(1).partition(":")
        return f"//{user}:***@" if colon else "//***@"

    return _USERINFO.sub(hide, url, count=1)


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


class DiscontinuedRule(StrEnum):
    """What a study whose MPPS ends DISCONTINUED gets: its jobs (``run``) or none (``skip``)."""

    RUN = "run"
    SKIP = "skip"


class Destination(BaseModel):
    """A DICOM peer results are sent to (C-STORE), over DICOM TLS when ``tls``."""

    model_config = {"frozen": True}

    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)
    tls: bool = False

    _ae = field_validator("ae_title")(lambda cls, v: _check_ae(v))

    @classmethod
    def parse(cls, text: str) -> Destination:
        """Parse ``AE@HOST:PORT``, or ``AE@HOST:PORT+tls`` for a DICOM TLS peer."""
        match = re.match(r"^([^@]+)@(.+):(\d+)(\+tls)?$", text.strip())
        if not match:
            raise ValueError(f"destination {text!r} is not of the form AE@HOST:PORT[+tls]")
        return cls(
            ae_title=match.group(1),
            host=match.group(2),
            port=int(match.group(3)),
            tls=match.group(4) is not None,
        )

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}{'+tls' if self.tls else ''}"


class StowDestination(BaseModel):
    """A DICOMweb origin results are stored to with STOW-RS (PS3.18 10.5), written
    ``stow+http://HOST:PORT/ROOT`` (or ``stow+https://...``)."""

    model_config = {"frozen": True}

    url: str = Field(pattern=r"^https?://[^/\s]+(/\S*)?$")

    @classmethod
    def parse(cls, text: str) -> StowDestination:
        """Parse ``stow+http(s)://HOST:PORT/ROOT``; the stored URL has no trailing slash."""
        text = text.strip()
        if not text.startswith("stow+"):
            raise ValueError(f"destination {text!r} is not of the form stow+http://HOST:PORT/ROOT")
        return cls(url=text.removeprefix("stow+").rstrip("/"))

    def __str__(self) -> str:
        """The name shown and stored (Delivery rows, audit, logs): credentials hidden."""
        return f"stow+{redact_url(self.url)}"


def parse_destination(text: str) -> Destination | StowDestination:
    """``AE@HOST:PORT[+tls]`` (C-STORE) or ``stow+http://HOST:PORT/ROOT`` (STOW-RS)."""
    if text.strip().startswith("stow+"):
        return StowDestination.parse(text)
    return Destination.parse(text)


@dataclass(frozen=True)
class CallingAE:
    """One calling-AE allowlist entry: ``AE`` (from any host) or ``AE@ADDRESS`` / ``AE@NETWORK``.

    The host part is an IP address (``US1@10.1.2.3``) or network (``US1@10.1.2.0/24``); host
    names are refused (a DNS answer is no proof of origin). The last ``@`` separates the two.
    """

    ae_title: str
    network: IPv4Network | IPv6Network | None = None

    @classmethod
    def parse(cls, text: str) -> CallingAE:
        """Parse one entry; raises ``ValueError`` naming the entry and the expected form."""
        title, at, host = text.strip().rpartition("@")
        if not at:
            return cls(_check_ae(host))
        try:
            network = ip_network(host.strip(), strict=False)
        except ValueError as exc:
            raise ValueError(
                f"calling AE {text!r}: after '@' comes an IP address or network "
                "(US1@10.1.2.3 or US1@10.1.2.0/24), not a host name"
            ) from exc
        return cls(_check_ae(title), network)

    def permits(self, ae_title: str, address: str) -> bool:
        """True when ``ae_title`` calling from ``address`` matches this entry."""
        if ae_title.strip() != self.ae_title:
            return False
        if self.network is None:
            return True
        try:
            peer = ip_address(address)
        except ValueError:
            return False
        if isinstance(peer, IPv6Address) and peer.ipv4_mapped is not None:
            peer = peer.ipv4_mapped
        return peer in self.network

    def __str__(self) -> str:
        if self.network is None:
            return self.ae_title
        single = self.network.num_addresses == 1
        return f"{self.ae_title}@{self.network.network_address if single else self.network}"


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
    # our maximum PDU length (0: unlimited); larger PDUs mean fewer reads per instance
    max_pdu_size: int = Field(default=1024**2, ge=0)
    max_instance_bytes: int = Field(default=2 * 1024**3, ge=1024)
    # refuse an image whose Rows x Columns x samples x frames exceeds this, before decoding
    max_pixel_samples: int = Field(default=1 << 30, ge=1)
    min_free_disk_bytes: int = Field(default=512 * 1024**2, ge=0)
    network_timeout_seconds: float = Field(default=60.0, gt=0)
    # receive-path hardening: connections that have not sent an A-ASSOCIATE-RQ yet are capped
    # and closed after the ARTIM timeout; decoding a frame is bounded per frame and, across
    # associations, by the bytes the checks may hold in memory at once
    max_unassociated_connections: int = Field(default=16, ge=1, le=1024)
    association_request_timeout_seconds: float = Field(default=10.0, gt=0)
    max_frame_samples: int = Field(default=1 << 25, ge=1)
    receive_memory_budget_bytes: int = Field(default=1024**3, ge=1024**2)

    # DICOM TLS (PS3.15 B.12): the SCP speaks TLS only when a certificate is set
    tls_certificate: Path | None = None
    tls_private_key: Path | None = None
    tls_ca_certificates: Path | None = None
    tls_require_client_certificate: bool = True

    # where results go
    destinations: Annotated[list[Destination | StowDestination], NoDecode] = Field(
        default_factory=list
    )
    #: delivery attempts per destination before it is dead-lettered (FAILED)
    max_delivery_attempts: int = Field(default=8, ge=1, le=100)

    # retention (the sweeper's retention pass, every retention_interval_seconds; audited)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    #: received studies are kept this long after their last instance (pathology arrives late,
    #: and `dataset build --from-node` needs them); labelled studies are kept for good
    received_retention_days: float = Field(default=90.0, gt=0)
    #: received bytes above which the oldest finished, unlabelled studies go even before
    #: received_retention_days (0: no cap)
    spool_max_bytes: int = Field(default=0, ge=0)
    quarantine_max_age_days: float = Field(default=30.0, gt=0)
    quarantine_max_bytes: int = Field(default=1024**3, gt=0)

    # study assembly
    quiet_seconds: float = Field(default=30.0, ge=0)
    max_wait_seconds: float = Field(default=3600.0, gt=0)
    sweep_interval_seconds: float = Field(default=2.0, gt=0)
    requeue_after_seconds: float = Field(default=300.0, gt=0)
    #: a study whose Modality Performed Procedure Step ends DISCONTINUED: run its jobs or skip it
    mpps_discontinued: DiscontinuedRule = DiscontinuedRule.SKIP

    # storage and queue; empty means "derive from home and profile"
    database_url: str = ""
    # PostgreSQL: connect and statement timeouts; every database: how long a C-STORE waits for
    # its commit before it answers 0xA700
    database_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    database_statement_timeout_seconds: float = Field(default=30.0, gt=0)
    commit_wait_seconds: float = Field(default=30.0, gt=0)
    broker_url: str = ""
    task_time_limit_seconds: int = Field(default=1800, ge=10)
    #: a worker holds a job for this long and renews the hold every third of it while the job
    #: runs: a worker that dies (killed, out of memory) frees its job within this time
    job_lease_seconds: float = Field(default=60.0, ge=3)
    redis_visibility_timeout_seconds: int = Field(default=3600, ge=60)
    #: the queue jobs go to unless ``queue_routes`` names another for their model
    default_queue: str = Field(default="lnm", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: model key or family -> queue (``ynet=gpu,tiny-ynet=cpu`` or a JSON object); key wins
    queue_routes: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)

    # inference
    device: str = "cpu"
    #: jobs run at once by `serve` (worker processes) and `worker` (pool size); 0: one per GPU
    #: when ``device`` is CUDA, else one per CPU core
    worker_concurrency: int = Field(default=0, ge=0, le=64)
    #: how long (ms) a job's forward pass waits for other jobs of the same model to run with it
    #: as one batch; unset: 50 when ``device`` is CUDA, 0 (no batching) on a CPU
    batch_wait_ms: float | None = Field(default=None, ge=0, le=1000)
    #: the most jobs in one batch, and the jobs a batching worker process runs at once (threads)
    batch_max: int = Field(default=8, ge=1, le=64)
    models_dir: Path | None = None
    default_model: str = "ynet-busi"

    # input selection: an instance is contrast-enhanced ultrasound (CEUS) when ``ceus_pattern``
    # (a regular expression) matches the value of ``ceus_tag`` (a DICOM keyword or "GGGG,EEEE")
    ceus_tag: str = Field(
        default="SeriesDescription", pattern=r"^([A-Za-z]+|[0-9A-Fa-f]{4},[0-9A-Fa-f]{4})$"
    )
    ceus_pattern: str = r"(?i)\b(CEUS|contrast)\b"

    # status web page and /metrics (served by `serve` when http_port is set; 0: any free port)
    http_port: int | None = Field(default=None, ge=0, le=65535)
    http_bind_address: str = "127.0.0.1"
    #: ``NAME:HASH`` entries (``lnm-node web-user NAME`` makes one); empty: nobody can log in
    web_users: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: signs session cookies; empty: a random key per start (sessions end at a restart)
    web_session_secret: str = ""
    web_session_seconds: int = Field(default=8 * 3600, ge=60, le=30 * 24 * 3600)
    #: /metrics answers from a cache this old at most (it needs no login: a scrape flood must
    #: not run the database aggregates each time)
    metrics_cache_seconds: float = Field(default=10.0, ge=0)
    #: reverse proxies (addresses or networks) whose X-Forwarded-Proto/-For are believed:
    #: behind one that terminates https, session cookies are marked Secure, and the client
    #: that logs and login throttling name is the address it forwards (else the TCP peer)
    web_trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: failed logins wait this long after the third failure (per client and per user),
    #: doubling with each further failure up to web_login_max_backoff_seconds
    web_login_backoff_seconds: float = Field(default=1.0, gt=0)
    web_login_max_backoff_seconds: float = Field(default=300.0, gt=0)

    # de-identification (`lnm-node deidentify`): the key of the UID and Patient ID remapping
    deid_uid_secret: str = ""

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        return _check_ae(value)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not re.match(r"^(sqlite(\+pysqlite)?|postgresql\+psycopg)://", value):
            scheme = value.partition("://")[0] if "://" in value else value[:20]
            raise ValueError(f"database_url: SQLite (sqlite:///FILE) or PostgreSQL through the "
                             f"driver the node installs, psycopg 3 "
                             f"(postgresql+psycopg://USER@HOST/DB), not {scheme!r}")  # fmt: skip
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|cuda(:\d+)?", value):
            raise ValueError(f"device: cpu, cuda or cuda:N, not {value!r}")
        return value

    @field_validator("ceus_pattern")
    @classmethod
    def _ceus_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(
                f"ceus_pattern {value!r} is not a regular expression: {error}"
            ) from error
        return value

    @field_validator("web_users", mode="before")
    @classmethod
    def _web_users(cls, value: Any) -> Any:
        value = _split_list(value)
        if isinstance(value, list):
            names = []
            for entry in value:
                if not isinstance(entry, str) or not _WEB_USER_RE.match(entry.strip()):
                    shown = (
                        entry.partition(":")[0] if isinstance(entry, str) else type(entry).__name__
                    )
                    raise ValueError(
                        f"web_users entry for {shown!r} is not NAME:scrypt$N$R$P$SALT$HASH; "
                        "make one with `lnm-node web-user NAME`"
                    )
                names.append(entry.partition(":")[0])
            if len(set(names)) != len(names):
                raise ValueError("web_users names a user twice")
            return [entry.strip() for entry in value]
        return value

    @field_validator("web_trusted_proxies", mode="before")
    @classmethod
    def _trusted_proxies(cls, value: Any) -> Any:
        value = _split_list(value)
        if isinstance(value, list):
            return [str(ip_network(str(v).strip(), strict=False)) for v in value]
        return value

    @field_validator("calling_ae_allowlist", mode="before")
    @classmethod
    def _allowlist(cls, value: Any) -> Any:
        value = _split_list(value)
        return [str(CallingAE.parse(v)) for v in value] if isinstance(value, list) else value

    @field_validator("queue_routes", mode="before")
    @classmethod
    def _queue_routes(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                value = json.loads(text)
            else:
                pairs = [item.partition("=") for item in text.split(",") if item.strip()]
                if any(not sep for _, sep, _ in pairs):
                    raise ValueError(f"queue_routes {text!r} is not of the form MODEL=QUEUE,...")
                value = {k.strip(): v.strip() for k, _, v in pairs}
        if isinstance(value, dict):
            for model, queue in value.items():
                if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", str(queue)) or not str(model).strip():
                    raise ValueError(
                        f"queue_routes entry {model!r}={queue!r}: bad model or queue name"
                    )
        return value

    @field_validator("destinations", mode="before")
    @classmethod
    def _destinations(cls, value: Any) -> Any:
        value = _split_list(value)
        if isinstance(value, list):
            return [parse_destination(v) if isinstance(v, str) else v for v in value]
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
        self._check_tls()
        return self

    def _check_tls(self) -> None:
        if (self.tls_certificate is None) != (self.tls_private_key is None):
            raise ValueError("tls_certificate and tls_private_key are set together or not at all")
        for name in ("tls_certificate", "tls_private_key", "tls_ca_certificates"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name} {path} is not a readable file")
        if (
            self.tls_certificate is not None
            and self.tls_require_client_certificate
            and self.tls_ca_certificates is None
        ):
            raise ValueError(
                "tls_require_client_certificate needs tls_ca_certificates (the CA that signs "
                "client certificates); or set tls_require_client_certificate=false"
            )

    def destination_named(self, name: str) -> Destination | StowDestination:
        """The configured destination shown as ``name`` (its credentials included), else
        ``name`` parsed as a new one."""
        for destination in self.destinations:
            if str(destination) == name:
                return destination
        return parse_destination(name)

    def effective_concurrency(self) -> int:
        """Jobs run at once: ``worker_concurrency``, or derived from the GPUs or cores."""
        if self.worker_concurrency:
            return self.worker_concurrency
        if self.device.startswith("cuda"):
            return max(1, _cuda_device_count())
        return available_cpus()

    def effective_batch_wait_seconds(self) -> float:
        """Seconds a forward pass waits for a batch: ``batch_wait_ms``, or 0.05 on CUDA, else 0."""
        if self.batch_wait_ms is not None:
            return self.batch_wait_ms / 1000.0
        return 0.05 if self.device.startswith("cuda") else 0.0

    def batching(self) -> bool:
        """Whether workers batch the forward passes of jobs that wait together."""
        return self.effective_batch_wait_seconds() > 0 and self.batch_max > 1

    def calling_ae_rules(self) -> list[CallingAE]:
        """The calling-AE allowlist, parsed (empty: every calling AE is allowed)."""
        return [CallingAE.parse(entry) for entry in self.calling_ae_allowlist]

    def redacted(self) -> dict[str, Any]:
        """Effective settings with secrets (passwords in URLs) hidden, for the start-up log."""
        data = self.model_dump(mode="json")
        for key in ("database_url", "broker_url"):
            data[key] = redact_url(data[key])
        data["destinations"] = [str(d) for d in self.destinations]
        data["web_users"] = [entry.partition(":")[0] + ":***" for entry in self.web_users]
        for key in ("web_session_secret", "deid_uid_secret"):
            if data[key]:
                data[key] = "***"
        return data


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _cuda_device_count() -> int:
    """GPUs visible to torch (0 when torch or CUDA is absent); torch is imported only here."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, then apply non-None ``overrides`` (CLI flags)."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    settings = Settings(**clean)
    make_dirs(settings.home)
    if not os.access(settings.home, os.W_OK):
        raise ValueError(f"home folder {settings.home} is not writable")
    _create_private_sqlite(settings.database_url)
    return settings


def _create_private_sqlite(url: str) -> None:
    """Create a SQLite database file 0600 before SQLite does (it would follow the umask); its
    journal and WAL files take the database file's mode."""
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    if not path.parent.is_dir():
        return
    try:  # one atomic step: a second process starting at the same moment finds the file made
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def settings_environment(settings: Settings) -> dict[str, str]:
    """``LNM_*`` variables that rebuild exactly ``settings`` in a child process."""
    env: dict[str, str] = {}
    for key, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        env[f"LNM_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env
