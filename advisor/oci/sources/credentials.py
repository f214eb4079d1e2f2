"""Registry credentials as the Docker CLI stores them (``~/.docker/config.json``, ``DOCKER_CONFIG``).

``auths.<host>.auth`` (base64 ``user:password``) and ``identitytoken`` are read directly;
``credHelpers``/``credsStore`` name external programs, run as ``docker-credential-<name> get``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.errors import RegistryError

_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")
_LOGIN_HINT = "run `docker login HOST`, or point DOCKER_CONFIG at a directory with config.json"


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth2 refresh token, exchanged at the token endpoint

    def __repr__(self) -> str:  # never leak secrets into logs or tracebacks
        return f"Credentials(username={self.username!r}, password=***, identity_token=***)"


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def load_credentials(host: str, config_path: Path | None = None) -> Credentials | None:
    """Credentials for ``host`` (``docker.io`` maps to Docker Hub's keys), or None."""
    config = _read_config(config_path or docker_config_path())
    keys = _HUB_KEYS if host in _HUB_KEYS else (host,)
    helpers = config.get("credHelpers") or {}
    for key in keys:
        if isinstance(helpers, dict) and isinstance(helpers.get(key), str):
            return run_helper(helpers[key], key)
    auths = config.get("auths") or {}
    if isinstance(auths, dict):
        for name, entry in auths.items():
            if _host_of(name) in keys or name in keys:
                creds = _from_auth_entry(entry, name)
                if creds is not None:
                    return creds
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        for key in keys:
            creds = run_helper(store, key)
            if creds is not None:
                return creds
    return None


def _read_config(path: Path) -> Mapping[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise RegistryError(f"cannot read {path}: {e.strerror}", hint=_LOGIN_HINT) from e
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise RegistryError(f"{path} is not valid JSON: {e}", hint="fix or remove the file") from e
    return obj if isinstance(obj, dict) else {}


def _host_of(key: str) -> str:
    rest = key.split("://", 1)[1] if "://" in key else key
    return rest.split("/", 1)[0]


def _from_auth_entry(entry: Any, name: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    token = entry.get("identitytoken") or ""
    user, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise RegistryError(
                f"the saved auth for {name} in {docker_config_path()} is not base64 'user:password'",
                hint=_LOGIN_HINT,
            ) from e
    if not (user or password or token):
        return None
    return Credentials(user, password, str(token))


def run_helper(name: str, server: str) -> Credentials | None:
    """Ask ``docker-credential-<name>`` for ``server``'s credentials."""
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        raise RegistryError(
            f"Docker's config names the credential helper '{name}', but docker-credential-{name} is not on PATH",
            hint="install that helper, or use a DOCKER_CONFIG whose config.json holds auths",
        )
    try:
        done = subprocess.run(
            [program, "get"], input=server.encode(), capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RegistryError(
            f"credential helper docker-credential-{name} failed: {e}", hint=_LOGIN_HINT
        ) from e
    if done.returncode != 0:
        if b"credentials not found" in done.stdout + done.stderr:
            return None
        message = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise RegistryError(
            f"credential helper docker-credential-{name} failed: {message[0] if message else done.returncode}",
            hint=_LOGIN_HINT,
        )
    try:
        obj = json.loads(done.stdout)
        user, secret = str(obj.get("Username") or ""), str(obj.get("Secret") or "")
    except (ValueError, AttributeError) as e:
        raise RegistryError(f"credential helper docker-credential-{name} printed no JSON") from e
    if user == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(user, secret)
