"""Distribution sizes: exact on real installs (du of their files), each file counted once."""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

import pytest

from advisor.advise.facts.distributions import scan_distributions
from advisor.advise.facts.python_envs import scan_environments
from advisor.oci.filetree import merge_layers
from tests.advise.localdir import layer_from_directory, layer_from_files
from tests.advise.rules import fixtures as fx


def _du_of_record(dist: importlib.metadata.Distribution) -> int:
    """`du -b --apparent-size` of a distribution's files, as Python itself lists them."""
    seen: set[str] = set()
    total = 0
    for f in dist.files or []:
        p = os.path.realpath(str(f.locate()))
        if p not in seen and os.path.isfile(p):
            seen.add(p)
            total += os.path.getsize(p)
    return total


@pytest.fixture(scope="module")
def venv_scan() -> tuple:
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    # The whole venv: RECORDs also name ../../../bin scripts and binaries (ruff, dive).
    layer = layer_from_directory(Path(sys.prefix), "opt/venv")
    tree = merge_layers([layer]).tree
    envs = scan_environments(tree)
    return site, tree, envs, scan_distributions(tree, envs)


def test_every_real_distribution_within_1_percent_of_du(venv_scan: tuple) -> None:
    site, _tree, envs, scan = venv_scan
    assert [(e.path, e.kind) for e in envs] == [("opt/venv/lib/python3.11/site-packages", "venv")]
    checked = 0
    for d in scan.distributions:
        real = importlib.metadata.distribution(d.name)
        if Path(str(real.locate_file(""))).resolve() != site.resolve():
            continue
        du = _du_of_record(real)
        assert abs(d.size_bytes - du) <= 0.01 * max(du, 1), (d.name, d.size_bytes, du)
        checked += 1
    assert checked >= 20


def test_sum_of_distributions_and_unowned_is_the_site_dir(venv_scan: tuple) -> None:
    _site, tree, envs, scan = venv_scan
    site_total = tree.du(envs[0].path)
    inside = sum(tree.get(p).size for d in scan.distributions for p in d.files if p.startswith(envs[0].path + "/"))
    assert inside + scan.unowned[0].size_bytes == site_total


def test_namespace_package_counted_once_and_unowned_bytes() -> None:
    files = {**fx.nvidia("nvidia-cublas", "cublas", 1000), **fx.nvidia("nvidia-cudnn-cu13", "cudnn", 2000)}
    files[f"{fx.SITE}/nvidia/__init__.py"] = 50
    files[f"{fx.SITE}/stray_module.py"] = 777
    tree = merge_layers([layer_from_files(files)]).tree
    scan = scan_distributions(tree, scan_environments(tree))
    by = {d.key: d for d in scan.distributions}
    shared = f"{fx.SITE}/nvidia/__init__.py"
    assert (shared in by["nvidia-cublas"].files) != (shared in by["nvidia-cudnn-cu13"].files)
    assert by["nvidia-cublas"].size_bytes + by["nvidia-cudnn-cu13"].size_bytes == 3000 + 200 + 50 + sum(
        len(tree.read(p) or b"") for d in by.values() for p in d.files if ".dist-info/" in p)
    assert scan.unowned[0].size_bytes == 777 and scan.unowned[0].top[0] == ("stray_module.py", 777)


def test_fallbacks_without_record() -> None:
    site = "usr/lib/python3/dist-packages"
    files: fx.Files = {
        f"{site}/six-1.16.0.egg-info/PKG-INFO": "Name: six\nVersion: 1.16.0\n",
        f"{site}/six-1.16.0.egg-info/top_level.txt": "six\n",
        f"{site}/six.py": 34_000,
        f"{site}/yaml-6.0.egg-info/PKG-INFO": "Name: PyYAML\nVersion: 6.0\n",
        f"{site}/yaml-6.0.egg-info/installed-files.txt": "../yaml/__init__.py\n../yaml/x.so\n",
        f"{site}/yaml-6.0.egg-info/requires.txt": "[ext]\ncython\n",
        f"{site}/yaml/__init__.py": 12_000, f"{site}/yaml/x.so": 500_000,
        f"{site}/debian_thing.egg-info": "Name: debian-thing\nVersion: 1\n",
        "usr/bin/python3.11": 6_000_000,
    }
    tree = merge_layers([layer_from_files(files)]).tree
    envs = scan_environments(tree)
    assert [(e.path, e.kind, e.python_version) for e in envs] == [(site, "system", "3.11")]
    by = {d.key: d for d in scan_distributions(tree, envs).distributions}
    assert by["six"].source == "top_level" and f"{site}/six.py" in by["six"].files
    assert by["pyyaml"].source == "installed-files" and by["pyyaml"].size_bytes >= 512_000
    assert by["pyyaml"].requires == ('cython; extra == "ext"',)
    assert by["debian-thing"].source == "metadata-only"


def test_missing_record_files_are_not_counted() -> None:
    files = fx.dist("gone", "1.0", {"gone/__init__.py": 100, "gone/big.bin": 10_000})
    del files[f"{fx.SITE}/gone/big.bin"]
    tree = merge_layers([layer_from_files(files)]).tree
    (d,) = scan_distributions(tree, scan_environments(tree)).distributions
    assert all(not p.endswith("big.bin") for p in d.files)


def test_debian_package_files_and_postinst_bytecode() -> None:
    """python3-* from Debian: dpkg's .list names the files, bytecode compiled at postinst goes to its source's owner."""
    site = "usr/lib/python3/dist-packages"
    files: fx.Files = {
        **fx.dpkg({"python3-six": {f"{site}/six.py": 34_000, f"{site}/six-1.16.0.dist-info/METADATA": 1_000,
                                   "usr/share/doc/python3-six/copyright": 1_500}}),
        f"{site}/six-1.16.0.dist-info/METADATA": "Name: six\nVersion: 1.16.0\n",
        f"{site}/__pycache__/six.cpython-311.pyc": 29_000,
        "usr/bin/python3.11": 6_000_000,
    }
    ctx = fx.Img([files]).context()
    (d,) = ctx.scan.distributions
    assert d.source == "metadata-only+dpkg"
    assert set(d.files) == {f"{site}/six.py", f"{site}/six-1.16.0.dist-info/METADATA",
                            "usr/share/doc/python3-six/copyright", f"{site}/__pycache__/six.cpython-311.pyc"}
    assert ctx.scan.unowned[0].size_bytes == 0
