"""Registry authentication as Docker does it: the ``WWW-Authenticate`` challenge of a 401,
then basic credentials or a bearer token per scope (from ``docker login``'s config.json,
credential helpers, or an identity token), each token fetched once and reused."""

from __future__ import annotations

import base64
import urllib.parse

import requests

from advisor.errors import RegistryError
from advisor.oci.sources.credentials import Credentials, load_credentials
from advisor.oci.sources.http import LOGIN_HINT, Challenge, parse_challenge
from advisor.oci.sources.neterrors import classify


class RegistryAuth:
    """The credentials, challenge and tokens of one registry host."""

    def __init__(self, registry: str, session: requests.Session, credentials: Credentials | None,
                 use_docker_config: bool, *, verify_tls: bool, timeout: float) -> None:
        self.registry = registry
        self.verify_tls = verify_tls
        self.timeout = timeout
        self._session = session
        self._credentials = credentials
        self._use_docker_config = use_docker_config and credentials is None
        self._challenge: Challenge | None = None
        self._tokens: dict[str, str] = {}

    def credentials(self) -> Credentials | None:
        if self._credentials is None and self._use_docker_config:
            self._credentials = load_credentials(self.registry)
            self._use_docker_config = False
        return self._credentials

    def denied(self, status: int, scope: str) -> RegistryError:
        verb = "refused" if status == 403 else "requires authentication for"
        what = scope.split(":")[1] if scope.count(":") >= 2 else self.registry
        creds = " (with the saved credentials)" if self._credentials is not None else ""
        return RegistryError(
            f"registry {self.registry} {verb} {what}{creds}: HTTP {status}",
            hint=LOGIN_HINT.format(host=self.registry),
            status=status,
        )

    def headers(self, scope: str) -> dict[str, str]:
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            creds = self.credentials()
            if creds is None:
                return {}
            raw = f"{creds.username}:{creds.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        token = self._tokens.get(scope)
        if token is None:
            token = self._fetch_token(challenge, scope)
            self._tokens[scope] = token
        return {"Authorization": f"Bearer {token}"}

    def learn(self, resp: requests.Response, scope: str) -> bool:
        """Learn the challenge from a 401; False when there is nothing new to try."""
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            return False
        if challenge.scheme == "basic" and self.credentials() is None:
            return False
        self._challenge = challenge
        self._tokens.pop(scope, None)
        return True

    def _fetch_token(self, challenge: Challenge, scope: str) -> str:
        realm = challenge.params.get("realm", "")
        if not realm:
            raise RegistryError(f"registry {self.registry} sent a bearer challenge without a realm")
        # several scopes (a cross-repository mount) travel as repeated scope parameters
        params = [("service", challenge.params.get("service", ""))]
        params += [("scope", s) for s in scope.split()]
        creds = self.credentials()
        try:
            if creds and creds.identity_token:
                form = [
                    *params,
                    ("grant_type", "refresh_token"),
                    ("client_id", "advisor"),
                    ("refresh_token", creds.identity_token),
                ]
                resp = self._session.post(
                    realm, data=form, timeout=self.timeout, verify=self.verify_tls
                )
            else:
                auth = (creds.username, creds.password) if creds and creds.username else None
                resp = self._session.get(
                    realm,
                    params=params,
                    auth=auth,
                    timeout=self.timeout,
                    verify=self.verify_tls,
                )
        except requests.exceptions.RequestException as e:
            token_host = urllib.parse.urlsplit(realm).netloc or realm
            failure = classify(e, token_host)
            raise RegistryError(f"token service: {failure.message}", hint=failure.hint) from e
        if resp.status_code in (401, 403):
            raise self.denied(resp.status_code, scope)
        if resp.status_code != 200:
            raise RegistryError(
                f"token service {realm} answered HTTP {resp.status_code}", status=resp.status_code
            )
        try:
            obj = resp.json()
            token = obj.get("token") or obj.get("access_token")
        except (ValueError, AttributeError) as e:
            raise RegistryError(f"token service {realm} answered without JSON") from e
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token service {realm} gave no token")
        return token
