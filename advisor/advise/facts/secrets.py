"""Likely secrets in an image: key files, credentials, ``.env`` files and tokens in ``Env``.

Every layer is searched on its own, not only the merged filesystem: a file deleted by a later
layer still ships in the layer that added it, and anyone who pulls the image can read it.
Values are redacted before they leave this module; a ``SecretHit`` never holds a secret.

``secret_capture`` is the capture predicate the single streaming pass needs so that the
content checks can run (``advisor.advise.facts.capture.capture_for`` should fall back to it);
without captured content the name-based checks still work.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from advisor.oci.filetree import LayerTree
from advisor.oci.model import Capture, Entry, EntryKind

# Secrets live in small files; a bigger "id_rsa" is not worth reading whole.
SECRET_FILE_MAX = 64 * 1024

# A file whose name alone says it holds credentials (path suffix -> kind).
NAMED_FILES: tuple[tuple[str, str], ...] = (
    ("/.ssh/id_rsa", "ssh-private-key"),
    ("/.ssh/id_dsa", "ssh-private-key"),
    ("/.ssh/id_ecdsa", "ssh-private-key"),
    ("/.ssh/id_ed25519", "ssh-private-key"),
    ("/.aws/credentials", "aws-credentials"),
    ("/.docker/config.json", "docker-credentials"),
    ("/.git-credentials", "git-credentials"),
    ("/.netrc", "netrc"),
    ("/.pypirc", "pypi-credentials"),
    ("/.npmrc", "npm-credentials"),
    ("/.kube/config", "kubeconfig"),
    ("/.config/gcloud/application_default_credentials.json", "gcp-credentials"),
    ("/.cache/huggingface/token", "huggingface-token"),
    ("/.huggingface/token", "huggingface-token"),
)
NAMED_BASENAMES = frozenset(suffix.rsplit("/", 1)[1] for suffix, _ in NAMED_FILES)
# Names that may hold keys; only their content decides (certifi's cacert.pem is public).
CONTENT_SUFFIXES = (".pem", ".key", ".p8", ".env", ".json", ".cfg", ".ini", ".conf", ".yaml",
                    ".yml", ".toml", ".properties", ".sh", ".py", ".txt")
# Trees full of public certificates and test keys that would only add noise.
SKIP_PREFIXES = ("etc/ssl/certs/", "usr/share/ca-certificates/", "usr/share/doc/",
                 "usr/lib/ssl/certs/", "etc/ca-certificates/")

PATTERNS: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("private-key", re.compile(rb"-----BEGIN ((?:RSA|EC|DSA|OPENSSH|ENCRYPTED) )?PRIVATE KEY-----")),
    ("aws-access-key-id", re.compile(rb"\b((?:AKIA|ASIA)[0-9A-Z]{16})\b")),
    ("aws-secret-access-key",
     re.compile(rb"(?i)aws_secret_access_key\s*[=:]\s*[\"']?([A-Za-z0-9/+=]{40})")),
    ("github-token", re.compile(rb"\b(gh[pousr]_[A-Za-z0-9]{36,})\b")),
    ("huggingface-token", re.compile(rb"\b(hf_[A-Za-z0-9]{30,})\b")),
    ("slack-token", re.compile(rb"\b(xox[abprs]-[A-Za-z0-9-]{10,})\b")),
    ("gcp-service-account", re.compile(rb"\"type\"\s*:\s*\"service_account\"")),
)
# A literal every match of each pattern contains (the aws secret's case-folded): a file
# without it cannot match, and ``bytes.find`` rules it out ~20x faster than the regex scan.
_NEEDS: dict[str, tuple[bytes, ...]] = {
    "private-key": (b"PRIVATE KEY-----",),
    "aws-access-key-id": (b"AKIA", b"ASIA"),
    "aws-secret-access-key": (b"aws_secret_access_key",),
    "github-token": (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"),
    "huggingface-token": (b"hf_",),
    "slack-token": (b"xoxa-", b"xoxb-", b"xoxp-", b"xoxr-", b"xoxs-"),
    "gcp-service-account": (b"service_account",),
}
# KEY=value lines of a .env file, and Env entries, whose key names a secret.
SECRET_KEY_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY",
                    "ACCESS_KEY", "CREDENTIAL", "AUTH")
NOT_SECRET_KEYS = frozenset({"GPG_KEY", "PYTHON_SHA256", "PYTHON_GET_PIP_SHA256",
                             "HF_HUB_DISABLE_TOKEN", "TOKENIZERS_PARALLELISM"})
PLACEHOLDERS = frozenset({"", "changeme", "change-me", "xxx", "none", "null", "false", "true",
                          "0", "1", "example", "placeholder", "dummy", "secret", "password"})
_ASSIGN = re.compile(rb"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*[=:]\s*(.*?)\s*$", re.M)


@dataclass(frozen=True, slots=True)
class SecretHit:
    """One likely secret: where it is, what it looks like, and a redacted glimpse of it.

    ``location`` is an in-layer path, or ``config.Env[NAME]`` for the image config.
    ``layer`` is the layer that ships it (-1 for the config); ``hidden`` says a later layer
    deleted or replaced it, which hides it from containers but not from anyone with the image.
    """

    kind: str
    location: str
    layer: int
    redacted: str
    size: int
    hidden: bool = False


def redact(value: str) -> str:
    """Enough to recognise which secret it is, never enough to use it."""
    if len(value) >= 20:
        return f"{value[:4]}…({len(value)} chars)"
    return f"***({len(value)} chars)"


def _named_kind(path: str) -> str | None:
    if path.rpartition("/")[2] not in NAMED_BASENAMES:  # one set lookup: called per member
        return None
    slashed = "/" + path
    for suffix, kind in NAMED_FILES:
        if slashed.endswith(suffix):
            return kind
    return None


def is_env_file(name: str) -> bool:
    """``.env``, ``.env.production``, ``prod.env``; not ``.envrc`` nor a directory called env."""
    return name == ".env" or name.startswith(".env.") or (name.endswith(".env") and name != "env")


def is_candidate(path: str) -> bool:
    """Whether a path may hold a secret worth reading (string tests only: called per member)."""
    if path.startswith(SKIP_PREFIXES) or "/site-packages/" in path or "/dist-packages/" in path:
        return False
    name = posixpath.basename(path)
    return (_named_kind(path) is not None or is_env_file(name) or name.startswith("id_")
            or name.endswith(CONTENT_SUFFIXES))


def secret_capture(entry: Entry) -> Capture | None:
    """What ``capture_for`` must keep for the content checks: small candidate files, whole."""
    if entry.kind is not EntryKind.FILE or entry.size > SECRET_FILE_MAX:
        return None
    if not is_candidate(entry.path):
        return None
    return Capture(head=max(1, entry.size))


def secret_key_name(key: str) -> bool:
    upper = key.upper()
    if upper in NOT_SECRET_KEYS or upper.endswith(("_FILE", "_PATH", "_DIR", "_URL_PATH")):
        return False
    return any(word in upper for word in SECRET_KEY_WORDS)


def _looks_like_value(value: str) -> bool:
    v = value.strip().strip("\"'")
    return v.lower() not in PLACEHOLDERS and not v.startswith(("$", "/", "<", "{{")) and len(v) >= 6


def scan_text(data: bytes, env_style: bool) -> Iterator[tuple[str, str]]:
    """(kind, redacted value) of every secret in ``data``; ``env_style`` adds KEY=value lines."""
    seen: set[str] = set()
    folded: bytes | None = None
    for kind, pattern in PATTERNS:
        if kind == "aws-secret-access-key":
            folded = data.lower() if folded is None else folded
            if _NEEDS[kind][0] not in folded:
                continue
        elif kind in _NEEDS and not any(needle in data for needle in _NEEDS[kind]):
            continue
        for m in pattern.finditer(data):
            raw = (m.group(1) if m.groups() and m.group(1) and kind != "private-key" else m.group(0))
            value = raw.decode("utf-8", "replace")
            if value not in seen:
                seen.add(value)
                yield kind, redact(value) if kind != "private-key" else "-----BEGIN … PRIVATE KEY-----"
    if env_style:
        for m in _ASSIGN.finditer(data):
            key = m.group(1).decode("utf-8", "replace")
            value = m.group(2).decode("utf-8", "replace").strip("\"'")
            if secret_key_name(key) and _looks_like_value(value) and value not in seen:
                seen.add(value)
                yield f"secret-variable:{key}", redact(value)


def _file_hits(tree: LayerTree, path: str, entry: Entry, hidden: bool) -> list[SecretHit]:
    name = posixpath.basename(path)
    head = tree.heads.get(path)
    hits: list[SecretHit] = []
    if head is not None:
        env_style = is_env_file(name) or _named_kind(path) is not None
        for kind, shown in scan_text(head, env_style):
            hits.append(SecretHit(kind, path, tree.index, shown, entry.size, hidden))
    named = _named_kind(path) or ("env-file" if is_env_file(name) and entry.size > 0 else None)
    if named is not None and not hits:
        # No content captured (or nothing matched): the name alone is evidence enough.
        hits.append(SecretHit(named, path, tree.index, "***", entry.size, hidden))
    return hits


def _removed_by(tree: LayerTree, path: str) -> bool:
    """Whether ``tree`` deletes ``path`` from the layers below (whiteout or opaque parent)."""
    if path in tree.whiteouts or any(path.startswith(w + "/") for w in tree.whiteouts):
        return True
    return any(d == "" or path.startswith(d + "/") for d in tree.opaque_dirs)


def _final_owner(trees: Sequence[LayerTree], path: str) -> int | None:
    """The layer whose version of ``path`` a container sees (None: deleted or absent)."""
    owner: int | None = None
    for t in trees:
        if _removed_by(t, path):
            owner = None
        if path in t.entries:
            owner = t.index
    return owner


def scan_layers(trees: Sequence[LayerTree]) -> list[SecretHit]:
    """Secrets in every layer's files, each marked hidden when a later layer removed it."""
    hits: list[SecretHit] = []
    for tree in trees:
        for path, entry in tree.entries.items():
            if entry.kind is not EntryKind.FILE or not is_candidate(path):
                continue
            found = _file_hits(tree, path, entry, hidden=False)
            if found and _final_owner(trees, path) != tree.index:
                found = [SecretHit(h.kind, h.location, h.layer, h.redacted, h.size, True)
                         for h in found]
            hits.extend(found)
    return hits


def scan_env(env: Sequence[str]) -> list[SecretHit]:
    """Secrets in the config's ``Env`` (``NAME=value`` strings): baked into every container."""
    hits: list[SecretHit] = []
    for item in env:
        key, sep, value = item.partition("=")
        if not sep:
            continue
        location = f"config.Env[{key}]"
        by_pattern = list(scan_text(value.encode("utf-8", "replace"), env_style=False))
        if by_pattern:
            hits.extend(SecretHit(k, location, -1, shown, len(item)) for k, shown in by_pattern)
        elif secret_key_name(key) and _looks_like_value(value):
            hits.append(SecretHit(f"secret-variable:{key}", location, -1, redact(value), len(item)))
    return hits


def find_secrets(trees: Sequence[LayerTree], env: Sequence[str]) -> list[SecretHit]:
    """Every likely secret of an image, config first, then by layer and path."""
    hits = scan_env(env) + scan_layers(trees)
    return sorted(hits, key=lambda h: (h.layer, h.location, h.kind))
