"""`distill experiment` end to end with a tiny random proxy on real alpaca rows: real beats shuffled, random draws
agree, results resume, and a killed run ends with the same numbers as an uninterrupted one."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from engine import api
from engine.errors import ConfigError
from tests.experiment.conftest import write_experiment
from tests.report.test_build import CHROMIUM_FLAGS


@pytest.fixture(scope="module")
def finished(pool_dir: Path, tiny_model: Path) -> api.ExperimentReport:
    return api.experiment(write_experiment(pool_dir, tiny_model, steps=400), out=pool_dir / "exp-main")


def _verdict(report: api.ExperimentReport, arm: str, ev: str = "external:trusted") -> dict:
    return next(v for v in report.verdicts if v["arm"] == arm and v["eval"] == ev and v["metric"] == "loss")


def test_real_rows_beat_shuffled_rows_in_every_seed(finished: api.ExperimentReport) -> None:
    m = pl.read_parquet(finished.out / "metrics.parquet").filter(pl.col("eval") == "external:trusted")
    real = m.filter(arm="real").sort("seed")["loss"].to_list()
    shuffled = m.filter(arm="shuffled").sort("seed")["loss"].to_list()
    assert len(real) == len(shuffled) == 2
    assert all(r < s for r, s in zip(real, shuffled, strict=True)), (real, shuffled)
    v = _verdict(finished, "shuffled")
    assert v["verdict"] == "worse" and v["diff"] > max(v["spread"], v["base_spread"])


def test_two_random_draws_are_not_different(finished: api.ExperimentReport) -> None:
    v = _verdict(finished, "real_draw2")
    assert v["verdict"] == "not different"
    assert v["draw_spread"] == pytest.approx(abs(v["diff"]))  # the baseline's only other draw
    assert _verdict(finished, "real")["verdict"] == "baseline"


def test_arms_are_equal_in_size_and_never_see_eval_rows(finished: api.ExperimentReport, pool_dir: Path) -> None:
    data = finished.out / "data"
    held = set(pl.read_parquet(data / "eval-holdout.parquet")["id"])
    assert finished.holdout == len(held) == 40
    sizes = {}
    for arm in ("real", "shuffled", "real_draw2"):
        ids = pl.read_parquet(data / f"{arm}.parquet")["id"]
        sizes[arm] = ids.len()
        assert not held & set(ids), arm
    assert set(sizes.values()) == {200} and finished.arms == sizes
    source = pl.read_parquet(pool_dir / "pool" / "part-00000.parquet")["source"]
    for arm, want in (("real", "real"), ("shuffled", "shuffled"), ("real_draw2", "real")):
        ords = pl.read_parquet(data / f"{arm}.parquet")["_ord"]
        assert set(source.gather(ords)) == {want}, arm


def test_outputs_curves_and_report(finished: api.ExperimentReport) -> None:
    curves = pl.read_parquet(finished.out / "curves.parquet")
    per_run = curves.group_by("arm", "seed").agg(pl.len(), first=pl.col("loss").first(), last=pl.col("loss").last())
    assert per_run.height == 6 and set(per_run["len"]) == {400}
    assert (per_run["last"] < per_run["first"]).all()  # every run learned something
    page = (finished.out / "report.html").read_text()
    blob = page.split('id="distill-experiment">', 1)[1].split("</script>", 1)[0]
    embedded = json.loads(blob)
    assert embedded["verdicts"] == json.loads(json.dumps(finished.verdicts))
    assert "random proxy (cannot judge data quality)" in page
    assert pl.read_parquet(finished.out / "verdicts.parquet").height == len(finished.verdicts) == 6


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_report_page_draws_its_charts_in_chromium(finished: api.ExperimentReport, tmp_path: Path) -> None:
    page = finished.out / "report.html"
    base = ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*base, "--dump-dom", page.as_uri()], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    charts = page.read_text().count('class="plotly-graph-div"')
    assert charts == 3  # loss curves, holdout loss, external loss
    assert dom.count('class="main-svg"') >= 2 * charts  # plotly.js drew every chart
    assert "worse" in dom and "not different" in dom


def test_rerun_skips_finished_runs_and_prints_the_table(finished: api.ExperimentReport, pool_dir: Path) -> None:
    exp = write_experiment(
        pool_dir, Path(json.loads((finished.out / "experiment.json").read_text())["model"]), steps=400
    )
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "experiment", str(exp), "--out", str(finished.out), "--quiet"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert time.perf_counter() - started < 60  # nothing retrained (a retrain of 6 runs takes longer)
    assert "shuffled" in out.stdout and "worse" in out.stdout and "not different" in out.stdout
    assert "0 run(s) resumed" in out.stdout


def _metrics(out: Path) -> list[dict]:
    return pl.read_parquet(out / "metrics.parquet").select("arm", "seed", "eval", "loss", "tokens").to_dicts()


def test_killed_run_resumes_to_the_same_metrics(pool_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    exp = write_experiment(
        tmp_path, tiny_model, rows=120, steps=240, workers=1, checkpoint_every=10, second_random=False
    )
    exp.write_text(
        exp.read_text()
        .replace('dir = "pool"', f'dir = "{pool_dir / "pool"}"')
        .replace('"trusted.json"', f'"{pool_dir / "trusted.json"}"')
    )

    # every part runs in a fresh CLI process, as a user's runs do: equal bits need the same process setup (this
    # pytest process may hold OpenBLAS, loaded globally by an earlier MLX test, and its matmuls round differently)
    def cli(out: Path) -> list[str]:
        return [sys.executable, "-m", "engine.cli.main", "experiment", str(exp), "--out", str(out), "--quiet"]

    subprocess.run(cli(tmp_path / "whole"), check=True, capture_output=True)
    cmd = cli(tmp_path / "killed")
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpts: list[Path] = []
    deadline = time.monotonic() + 120
    while not ckpts and proc.poll() is None and time.monotonic() < deadline:
        ckpts = list((tmp_path / "killed").glob("runs/*/*/checkpoint.pt"))
        time.sleep(0.05)
    assert ckpts, f"no checkpoint before exit: {proc.stderr.read() if proc.stderr else ''}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = ckpts[0].parent
    assert not (run_dir / "result.json").exists()  # killed mid-run
    resumed = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    assert re.search(r"\b[12] run\(s\) resumed", resumed), resumed
    assert _metrics(tmp_path / "killed") == _metrics(tmp_path / "whole")
    a = pl.read_parquet(tmp_path / "killed" / "curves.parquet").drop("seconds")
    b = pl.read_parquet(tmp_path / "whole" / "curves.parquet").drop("seconds")
    assert a.equals(b)


def test_bad_experiment_files_name_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    two_arms = '[[arm]]\nname = "a"\nquery = "top_n"\n[[arm]]\nname = "b"\nquery = "random_n"\n'
    bad.write_text(
        'seeds = [0]\n[pool]\ndir = "x"\n[[arm]]\nname = "a"\nquery = "top_n"\n[[arm]]\nname = "b"\nquery = "random_n"\n'
    )
    with pytest.raises(ConfigError, match=r"bad.toml: seeds: give at least 2 distinct seeds"):
        api.experiment(bad)
    bad.write_text('[pool]\ndir = "x"\n[train]\nstepz = 3\n' + two_arms)
    with pytest.raises(ConfigError, match=r"bad.toml: \[train\]: unknown key 'stepz'.*steps"):
        api.experiment(bad)
    bad.write_text('[pool]\ndir = "x"\n[[arm]]\nname = "a"\nquery = "top_n"\n')
    with pytest.raises(ConfigError, match=r"at least 2 arms"):
        api.experiment(bad)
    bad.write_text(
        '[pool]\ndir = "x"\n[model]\ninit = "proxy"\n[[arm]]\nname = "a"\nquery = "top_n"\n[[arm]]\nname = "b"\nquery = "top_n"\n'
    )
    with pytest.raises(ConfigError, match=r"use method = 'full'"):
        api.experiment(bad)


def test_whole_pool_arm_keeps_every_row_without_equal_size(pool_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    exp = write_experiment(tmp_path, tiny_model, rows=100, steps=4, workers=1, second_random=False)
    text = exp.read_text().replace('dir = "pool"', f'dir = "{pool_dir / "pool"}"')
    text = text.replace('"trusted.json"', f'"{pool_dir / "trusted.json"}"').replace("rows = 100", "equal_size = false")
    text += '\n[[arm]]\nname = "whole"\nquery = "pool"\n'
    text = text.replace('params = { source = "real", seed = 0 }', 'params = { source = "real", seed = 0, n = 100 }')
    text = text.replace(
        'params = { source = "shuffled", seed = 0 }', 'params = { source = "shuffled", seed = 0, n = 50 }'
    )
    exp.write_text(text)
    report = api.experiment(exp, out=tmp_path / "out")
    assert report.arms == {"real": 100, "shuffled": 50, "whole": 600 - 40}
    assert set(pl.read_parquet(tmp_path / "out" / "curves.parquet")["step"].unique()) == {1, 2, 3, 4}


def test_rlvr_pool_gets_exact_match_accuracy_by_greedy_decoding(tiny_model: Path, tmp_path: Path, data: Path) -> None:
    lines = (data / "gsm8k_train.jsonl").read_text().splitlines()[:120]
    (tmp_path / "gsm8k.jsonl").write_text("\n".join(lines) + "\n")
    api.ingest([tmp_path / "gsm8k.jsonl"], tmp_path / "pool")
    exp = write_experiment(tmp_path, tiny_model, rows=40, steps=3, workers=1, second_random=False)
    text = exp.read_text().replace('external = ["trusted.json"]', "generate_tokens = 6")
    text = text.replace('query = ["from_source", "random_n"]', 'query = "random_n"')
    text = text.replace('params = { source = "real", seed = 0 }', "params = { seed = 0 }")
    text = text.replace('params = { source = "shuffled", seed = 0 }', "params = { seed = 1 }")
    exp.write_text(text)
    report = api.experiment(exp, out=tmp_path / "out")
    m = pl.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert set(m["accuracy_rows"]) == {40.0}  # every held-out problem decoded and compared
    assert m["accuracy"].is_between(0, 1).all()
    assert {(v["arm"], v["metric"]) for v in report.verdicts} >= {("shuffled", "accuracy"), ("real", "accuracy")}
    refs = pl.read_parquet(tmp_path / "out" / "data" / "eval-holdout.parquet")["final"]
    assert refs.is_not_null().all() and refs.str.contains(r"^-?[\d,.]+$").all()
