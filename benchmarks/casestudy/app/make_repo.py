"""Turn a staged build context into a small real git repository (a few commits, fixed dates).

The case study copies ``.`` into the image without a .dockerignore, so its history ships too.
Usage: python make_repo.py CONTEXT_DIR
"""

import os
import subprocess
import sys

COMMITS = (
    ("Flask API serving the sentiment model", ["app.py", "requirements.txt", ".gitignore"]),
    ("Exploration and training notebooks", ["notebooks", "train.py"]),
    ("Add the labelled review data", ["data"]),
    (
        "Tests and dev requirements",
        ["test_app.py", "requirements-dev.txt", "requirements-prod.txt", "Dockerfile"],
    ),
)


def git(context, *args, date="2026-01-05T10:00:00Z"):
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Data Scientist",
        "GIT_AUTHOR_EMAIL": "ds@example.com",
        "GIT_COMMITTER_NAME": "Data Scientist",
        "GIT_COMMITTER_EMAIL": "ds@example.com",
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_DATE": date,
    }
    subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=context,
        env=env,
        check=True,
        capture_output=True,
    )


def main(context):
    with open(os.path.join(context, ".gitignore"), "w") as f:
        f.write("model/\n__pycache__/\n")
    git(context, "init", "-q")
    for day, (message, paths) in enumerate(COMMITS, 5):
        present = [p for p in paths if os.path.exists(os.path.join(context, p))]
        git(context, "add", *present)
        git(context, "commit", "-q", "-m", message, date=f"2026-01-{day:02d}T10:00:00Z")
    git(context, "gc", "-q")


if __name__ == "__main__":
    main(sys.argv[1])
