"""Start and stop a real CNCF ``docker-registry`` on loopback for tests.

``start_registry(workdir)`` writes the registry's own YAML into ``workdir``, binds a free
127.0.0.1 port, waits until ``/v2/`` answers and returns a ``RegistryServer`` (``stop()`` it).
Variants: ``auth="htpasswd"`` (bcrypt, ``htpasswd -Bbn``) and ``auth="token"``, where a small
token service in this process signs RS256 JWTs (with ``openssl``) that the registry verifies
against the self-signed certificate it is configured with, as Docker Hub's flow works.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from advisor.sandbox.runner import free_port

USER = "advisor"
PASSWORD = "s3cret-pass"
SERVICE = "advisor-test-registry"
ISSUER = "advisor-test-issuer"
REFRESH_TOKEN = "advisor-refresh-token"  # what `docker login` saves as identitytoken

Auth = Literal["none", "htpasswd", "token"]


def available() -> bool:
    return shutil.which("docker-registry") is not None


@dataclass
class RegistryServer:
    host: str  # 127.0.0.1:PORT
    root: Path
    process: subprocess.Popen[bytes]
    auth: Auth = "none"
    token_server: ThreadingHTTPServer | None = None
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.token_server is not None:
            self.token_server.shutdown()
            self.token_server.server_close()


def _config(workdir: Path, port: int, auth_block: str) -> Path:
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    text = (
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: advisor-test-secret\n"
        f"{auth_block}"
    )
    path = workdir / "config.yml"
    path.write_text(text)
    return path


def _htpasswd_block(workdir: Path) -> str:
    line = subprocess.run(
        ["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True
    ).stdout.strip()
    path = workdir / "htpasswd"
    path.write_text(line + "\n")
    return f"auth:\n  htpasswd:\n    realm: advisor-test\n    path: {path}\n"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class _Signer:
    key: Path
    cert_der: bytes

    def token(self, subject: str, scopes: list[str]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        now = int(time.time())
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":", 2) if scope.count(":") >= 2 else ("", "", "")
            if kind == "repository":
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 600,
            "nbf": now - 10,
            "iat": now,
            "jti": f"{now}-{len(scopes)}",
            "access": access,
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            check=True,
            capture_output=True,
        ).stdout
        return f"{signing_input}.{_b64url(sig)}"


def _make_signer(workdir: Path) -> tuple[_Signer, Path]:
    key, cert = workdir / "token.key", workdir / "token.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=advisor-test-token",
        ],
        check=True,
        capture_output=True,
    )
    der = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return _Signer(key, der), cert


def _token_handler(signer: _Signer, log: list[dict[str, str]]) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            scopes = [s for value in query.get("scope", []) for s in value.split(" ")]
            log.append({"scope": " ".join(scopes), "service": ",".join(query.get("service", []))})
            if self.headers.get("Authorization") != expected:
                self._reply(401, {"details": "bad credentials"})
                return
            self._reply(200, {"token": signer.token(USER, scopes), "expires_in": 600})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            scopes = [s for value in form.get("scope", []) for s in value.split(" ")]
            log.append({"scope": " ".join(scopes), "grant": ",".join(form.get("grant_type", []))})
            if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != [
                REFRESH_TOKEN
            ]:
                self._reply(401, {"details": "bad refresh token"})
                return
            self._reply(200, {"access_token": signer.token(USER, scopes), "expires_in": 600})

        def _reply(self, status: int, obj: dict[str, Any]) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


def _token_block(workdir: Path, log: list[dict[str, str]]) -> tuple[str, ThreadingHTTPServer]:
    signer, cert = _make_signer(workdir)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _token_handler(signer, log))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    realm = f"http://127.0.0.1:{server.server_address[1]}/token"
    block = (
        f"auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
        f"    rootcertbundle: {cert}\n"
    )
    return block, server


def _wait_ready(host: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"docker-registry exited with {process.returncode}: {err[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://{host}/v2/", timeout=1):
                return
        except urllib.error.HTTPError as e:
            if e.code == 401:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"docker-registry on {host} did not answer within {timeout} s")


def start_registry(workdir: Path, auth: Auth = "none") -> RegistryServer:
    """Start ``docker-registry serve`` with its own YAML in ``workdir``; wait for ``/v2/``."""
    workdir.mkdir(parents=True, exist_ok=True)
    token_server: ThreadingHTTPServer | None = None
    log: list[dict[str, str]] = []
    block = ""
    if auth == "htpasswd":
        block = _htpasswd_block(workdir)
    elif auth == "token":
        block, token_server = _token_block(workdir, log)
    port = free_port()
    config = _config(workdir, port, block)
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    host = f"127.0.0.1:{port}"
    server = RegistryServer(host, workdir / "storage", process, auth, token_server, log)
    try:
        _wait_ready(host, process)
    except BaseException:
        server.stop()
        raise
    return server


def skopeo_copy(src: str, dest: str, *extra: str) -> None:
    """Copy an image with skopeo, the independent tool (loopback registries are plain HTTP)."""
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--insecure-policy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            *extra,
            src,
            dest,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def write_docker_config(
    directory: Path, host: str, user: str = USER, password: str = PASSWORD
) -> Path:
    """A DOCKER_CONFIG directory whose config.json holds ``auths.<host>.auth``."""
    directory.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return directory


__all__ = [
    "PASSWORD",
    "REFRESH_TOKEN",
    "USER",
    "RegistryServer",
    "available",
    "free_port",
    "skopeo_copy",
    "start_registry",
    "write_docker_config",
]
