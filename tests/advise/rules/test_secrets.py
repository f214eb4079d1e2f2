"""sec-secrets-in-layers on real images: keys, credentials, .env files, Env tokens, redacted."""

from __future__ import annotations

import json
from pathlib import Path

from advisor.advise.facts.capture import capture_for
from advisor.advise.facts.context import Context, ImageFacts
from advisor.advise.facts.secrets import find_secrets, redact, secret_capture
from advisor.advise.rules.base import Finding, Severity
from advisor.advise.rules.secrets import SecretsInLayers
from advisor.oci.filetree import LayerTree, merge_layers
from advisor.oci.layers import read_layers
from advisor.oci.loader import open_image
from advisor.oci.model import Capture, Entry, EntryKind
from advisor.oci.walk import CaptureFn
from tests.oci.helpers import FileSpec, make_image

# Fakes shaped like the real thing (AWS's own documentation example key, a made-up token).
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GH_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
HF_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
PEM = (b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
       b"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
       b"-----END OPENSSH PRIVATE KEY-----\n")
SECRET_VALUES = (AWS_ID, AWS_SECRET, GH_TOKEN, HF_TOKEN, "s3cr3t-Passw0rd!", "b3BlbnNzaC1rZXkt")


def _capture(entry: Entry) -> Capture | None:
    # capture_for falls back to secret_capture; spelled out so this test states its need.
    return capture_for(entry) or secret_capture(entry)


def test_capture_for_keeps_what_the_secrets_rule_reads() -> None:
    for path in ("app/.env", "root/.ssh/id_ed25519", "srv/tls/server.key"):
        entry = Entry(path, EntryKind.FILE, 300)
        assert capture_for(entry) == secret_capture(entry) == Capture(head=300)


def _advise(ref: str, capture: CaptureFn = _capture) -> tuple[list[Finding], list[LayerTree]]:
    with open_image(ref) as image:
        trees = read_layers(image, capture)
        facts = ImageFacts(reference=ref, env=tuple(image.config.env))
    ctx = Context(facts, tuple(trees), merge_layers(trees).tree)
    return SecretsInLayers().evaluate(ctx), trees


def _no_leak(findings: list[Finding]) -> None:
    blob = json.dumps([[f.message, list(f.paths), {k: str(v) for k, v in f.data.items()}]
                       for f in findings])
    for value in SECRET_VALUES:
        assert value not in blob, f"secret value {value[:6]}... leaked into a finding"


def test_private_key_deleted_later_is_still_reported_with_its_layer(tmp_path: Path) -> None:
    ref = make_image(tmp_path, [
        {"etc/hostname": b"box\n"},
        {"root/.ssh/id_ed25519": PEM, "app/deploy.pem": PEM},
        {"root/.ssh/id_ed25519": FileSpec(whiteout=True)},
    ], config={"config": {"Env": ["PATH=/usr/bin"]}})
    findings, _ = _advise(ref)
    by_path = {f.paths[0]: f for f in findings}
    assert set(by_path) == {"root/.ssh/id_ed25519", "app/deploy.pem"}
    key = by_path["root/.ssh/id_ed25519"]
    assert key.data["layer"] == 1 and key.data["hidden"] is True
    assert "still in the image" in key.message and key.severity is Severity.CRITICAL
    assert by_path["app/deploy.pem"].data["hidden"] is False
    assert all(f.rule == "sec-secrets-in-layers" and f.bytes > 0 for f in findings)
    _no_leak(findings)


def test_cloud_credentials_env_files_and_config_env(tmp_path: Path) -> None:
    creds = f"[default]\naws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n"
    ref = make_image(tmp_path, [{
        "root/.aws/credentials": creds.encode(),
        "app/.env": b"DEBUG=1\nDB_PASSWORD=s3cr3t-Passw0rd!\nAPI_TOKEN=$FROM_VAULT\n",
        "app/settings.py": f"GITHUB = '{GH_TOKEN}'\n".encode(),
    }], config={"config": {"Env": [f"HF_TOKEN={HF_TOKEN}", "PATH=/usr/local/bin",
                                   "GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D",
                                   "DB_PASSWORD_FILE=/run/secrets/db"]}})
    findings, _ = _advise(ref)
    kinds = sorted((f.data["kind"], f.paths[0]) for f in findings)
    assert kinds == [
        ("aws-access-key-id", "root/.aws/credentials"),
        ("aws-secret-access-key", "root/.aws/credentials"),
        ("github-token", "app/settings.py"),
        ("huggingface-token", "config.Env[HF_TOKEN]"),
        ("secret-variable:DB_PASSWORD", "app/.env"),
    ]
    env_hit = next(f for f in findings if f.paths[0].startswith("config.Env"))
    assert env_hit.data["layer"] == -1 and "Env" in env_hit.message
    assert env_hit.data["redacted"] == redact(HF_TOKEN) and HF_TOKEN not in env_hit.message
    _no_leak(findings)


def _nothing(entry: Entry) -> Capture | None:
    return None


def test_name_alone_is_evidence_without_captured_content(tmp_path: Path) -> None:
    # With no content kept at all (a capture policy that skips them), the names still count.
    ref = make_image(tmp_path, [{"root/.ssh/id_rsa": PEM, "srv/.env": b"TOKEN=abcdefgh\n",
                                 "home/u/.docker/config.json": b'{"auths": {}}'}])
    findings, _ = _advise(ref, capture=_nothing)
    assert sorted(f.paths[0] for f in findings) == [
        "home/u/.docker/config.json", "root/.ssh/id_rsa", "srv/.env"]
    _no_leak(findings)


def test_silent_on_public_certificates_placeholders_and_site_packages(tmp_path: Path) -> None:
    cert = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    ref = make_image(tmp_path, [{
        "etc/ssl/certs/ca-certificates.crt": cert,
        "usr/local/lib/python3.11/site-packages/certifi/cacert.pem": cert,
        "usr/local/lib/python3.11/site-packages/tests/key.pem": PEM,
        "app/server.pem": cert,
        "app/.env.example": b"DB_PASSWORD=changeme\nAPI_TOKEN=<your token>\n",
        "app/config.yaml": b"password_file: /run/secrets/pw\ntokenizer: bert\n",
    }], config={"config": {"Env": ["TOKENIZERS_PARALLELISM=false", "HF_HUB_OFFLINE=1"]}})
    findings, _ = _advise(ref)
    # .env.example is an env file by name: reported by name only, with no value shown.
    assert [(f.paths[0], f.data["redacted"]) for f in findings] == [("app/.env.example", "***")]


def test_secret_capture_is_bounded() -> None:
    assert secret_capture(Entry("app/.env", EntryKind.FILE, 100)) == Capture(head=100)
    assert secret_capture(Entry("app/huge.pem", EntryKind.FILE, 10 << 20)) is None
    assert secret_capture(Entry("usr/lib/libc.so.6", EntryKind.FILE, 100)) is None
    assert secret_capture(Entry("root/.ssh", EntryKind.DIR)) is None


def test_find_secrets_orders_config_first_then_layers() -> None:
    t0 = LayerTree(0, entries={"a/.env": Entry("a/.env", EntryKind.FILE, 20)},
                   heads={"a/.env": b"SECRET_KEY=abcdefghijkl\n"})
    hits = find_secrets([t0], ["AWS_SECRET_ACCESS_KEY=" + AWS_SECRET])
    assert [(h.layer, h.location) for h in hits] == [(-1, "config.Env[AWS_SECRET_ACCESS_KEY]"),
                                                     (0, "a/.env")]
    assert all(AWS_SECRET not in h.redacted and "abcdefghijkl" not in h.redacted for h in hits)


def test_advise_cli_reports_secrets_redacted(tmp_path: Path) -> None:
    import subprocess
    import sys

    ref = make_image(tmp_path, [
        {"app/main.py": b"print(1)\n", "root/.aws/credentials":
         f"[default]\naws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n".encode()},
        {"root/.aws/credentials": FileSpec(whiteout=True)},
    ], config={"config": {"Env": [f"GITHUB_TOKEN={GH_TOKEN}"]}})
    advisor = Path(sys.executable).parent / "advisor"
    proc = subprocess.run([str(advisor), "advise", ref, "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    found = [f for f in doc["findings"] if f["rule"] == "sec-secrets-in-layers"]
    # The JSON report roots every path with "/", the config's Env location included.
    assert sorted(p.lstrip("/") for f in found for p in f["paths"]) == [
        "config.Env[GITHUB_TOKEN]", "root/.aws/credentials", "root/.aws/credentials"]
    assert {f["severity"] for f in found} == {"critical"}
    assert any("still in the image" in f["message"] for f in found)
    for value in SECRET_VALUES:
        assert value not in proc.stdout
    text = subprocess.run([str(advisor), "advise", ref, "--format", "text"],
                          capture_output=True, text=True, timeout=120).stdout
    assert "sec-secrets-in-layers" in text or "secret" in text.lower()
    assert all(value not in text for value in SECRET_VALUES)


SAMPLES = {
    "private-key": b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n",
    "aws-access-key-id": b"key = ASIAIOSFODNN7EXAMPLE\n",
    "aws-secret-access-key": b"AWS_Secret_Access_Key: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'\n",
    "github-token": b"token=ghs_" + b"a1B2" * 9 + b"\n",
    "huggingface-token": b"HF=hf_" + b"Zq9" * 11 + b"\n",
    "slack-token": b"SLACK xoxp-1234567890-abcdef\n",
    "gcp-service-account": b'{"type" :  "service_account", "project_id": "p"}',
}


def test_every_pattern_is_found_past_its_prefilter() -> None:
    """scan_text skips a pattern whose literal is absent: each kind still finds its sample,
    with a lot of text around it, and a text holding none of the literals finds nothing."""
    from advisor.advise.facts.secrets import PATTERNS, scan_text

    assert set(SAMPLES) == {kind for kind, _ in PATTERNS}
    filler = b"lorem ipsum dolor sit amet, " * 2000
    for kind, sample in SAMPLES.items():
        found = [k for k, _ in scan_text(filler + sample + filler, env_style=False)]
        assert found == [kind], kind
    assert list(scan_text(filler, env_style=False)) == []
