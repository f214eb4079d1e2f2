"""Fix artifacts for ``advise --write-fixes DIR``: Dockerfile, .dockerignore, split requirements."""

from advisor.advise.fixes.writer import FixPlan, plan_fixes, write_fixes

__all__ = ["FixPlan", "plan_fixes", "write_fixes"]
