"""The progress bar moves through the analysis: steps counted per rule, shown as steps."""

from __future__ import annotations

from pathlib import Path

from rich.progress import Progress

from advisor.advise.advice import AdviseOptions, build_advice
from advisor.cli.progress import _Count
from tests.advise.rules import fixtures as fx


def test_analysis_reports_each_rule() -> None:
    seen: list[tuple[int, int, str]] = []
    build_advice(fx.cuda_torch().context(), AdviseOptions(progress=lambda d, t, w: seen.append((d, t, w))))
    total = seen[0][1]
    assert total > 10 and [d for d, _, _ in seen] == list(range(total + 1))
    assert seen[-1] == (total, total, "") and seen[3][2]  # each step names its rule


def test_a_steps_phase_is_counted_in_steps_not_bytes() -> None:
    with Progress(disable=True) as p:
        task_id = p.add_task("x", total=31, completed=12, steps=True)
        task = p.tasks[0]
        assert task.id == task_id
        assert str(_Count("bytes")(task)) == "12/31"
        p.update(task_id, steps=False, total=2_000_000, completed=1_000_000)
        assert "MB" in str(_Count("bytes")(task))


def test_the_pipeline_counts_its_analysis_in_steps(tmp_path: Path) -> None:
    from advisor.advise import pipeline
    from tests.oci.helpers import make_image

    ref = make_image(tmp_path, [{"etc/a": b"x" * 100}, {"etc/b": b"y"}])
    seen: list[tuple[int, int, str]] = []
    pipeline.run(pipeline.AdviseConfig(ref, use_cache=False, steps=lambda d, t, w: seen.append((d, t, w))))
    assert seen[0] == (0, 1, "analysing layers")
    done = [d for d, _, _ in seen[1:]]
    assert done == list(range(1, seen[-1][1] + 1)) and seen[-1][1] > 10
