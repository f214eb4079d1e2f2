"""Every kind of Python environment is found, with its version; none is invented."""

from __future__ import annotations

from advisor.advise.facts.python_envs import scan_environments
from advisor.oci.filetree import merge_layers
from tests.advise.localdir import layer_from_files
from tests.advise.rules import fixtures as fx


def test_all_environment_kinds() -> None:
    files: fx.Files = {
        **fx.dist("a", "1", {"a.py": 10}),  # /usr/local system
        **fx.dist("b", "1", {"b.py": 10}, site="opt/venv/lib/python3.12/site-packages"),
        "opt/venv/pyvenv.cfg": "home = /usr/local/bin\nversion = 3.12.4\n",
        **fx.dist("c", "1", {"c.py": 10}, site="opt/conda/lib/python3.10/site-packages"),
        "opt/conda/conda-meta/python-3.10.14-h1.json": "{}",
        **fx.dist("d", "1", {"d.py": 10}, site="home/app/.local/lib/python3.11/site-packages"),
        **fx.dist("e", "1", {"e.py": 10}, site="root/.local/lib/python3.11/site-packages"),
        **fx.dist("f", "1", {"f.py": 10}, site="app/deps"),
        "srv/lib/mod.py": 10,
        "usr/local/bin/python3.11": 10,
    }
    tree = merge_layers([layer_from_files(files)]).tree
    envs = {e.path: (e.kind, e.python_version) for e in scan_environments(tree, ["PYTHONPATH=/srv/lib:/missing", "PATH=/x"])}
    assert envs == {
        fx.SITE: ("system", "3.11"),
        "opt/venv/lib/python3.12/site-packages": ("venv", "3.12"),
        "opt/conda/lib/python3.10/site-packages": ("conda", "3.10"),
        "home/app/.local/lib/python3.11/site-packages": ("user", "3.11"),
        "root/.local/lib/python3.11/site-packages": ("user", "3.11"),
        "app/deps": ("target", "3.11"),
        "srv/lib": ("pythonpath", "3.11"),
    }


def test_no_python_no_environment() -> None:
    tree = merge_layers([layer_from_files({"etc/os-release": "ID=alpine\n", "bin/busybox": 900_000})]).tree
    assert scan_environments(tree) == []
