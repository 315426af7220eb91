"""The comparison table: paired statistics against the baseline with Holm's correction, bold only where
significantly best, both layouts, and every format (the LaTeX one compiled by pdflatex where it is installed)."""

from __future__ import annotations

import csv
import html.parser
import io
import shutil
import subprocess

import numpy as np
import pytest
from metricbench.bench.cli import main
from metricbench.bench.report import costs, render, results, tables
from metricbench.bench.report.records import CellResult
from metricbench.bench.report.stats import holm
from scipy import stats as scipy_stats

DIRECTIONS = {"misclassification": "lower", "aucpr": "higher"}
SEEDS = range(6)
START = [0.20, 0.24, 0.18, 0.22, 0.26, 0.21]  # each seed's own checkpoint: a spread larger than the effects
NOISE = [0.001, -0.002, 0.0015, -0.0005, 0.002, -0.001]


def _cell(method, seed, error, status="ok"):
    metrics = {"misclassification": error, "aucpr": 1 - error} if status == "ok" else {}
    pretrained = {"misclassification": START[seed], "aucpr": 1 - START[seed]}
    return CellResult("t", method, seed, status, "" if status == "ok" else "Diverged: boom", metrics, pretrained, DIRECTIONS)


def _results():
    cells = []
    for s in SEEDS:
        cells.append(_cell("surrogate", s, START[s] - 0.010 + NOISE[s]))  # improves on its start
        cells.append(_cell("good", s, START[s] - 0.030 + NOISE[s] * 0.5))  # better than surrogate on every seed
        cells.append(_cell("bad", s, START[s] + 0.015 - NOISE[s]))  # worse on every seed
        cells.append(_cell("noisy", s, START[s] - 0.010 + (0.02 if s % 2 else -0.02)))  # no clear effect
    cells.append(_cell("failing", 0, 0.0, status="failed"))
    cells += [_cell("failing", s, START[s]) for s in range(1, 6)]
    return cells


def _differences(cells, method):
    by = {(c.method, c.seed): c.metrics["misclassification"] for c in cells if c.status == "ok"}
    return [-(by[method, s] - by["surrogate", s]) for s in SEEDS if (method, s) in by]


def test_paired_tests_and_holm_match_scipy_and_mark_wins_and_losses():
    cells = _results()
    table = tables.build(cells)
    compared = ["bad", "failing", "good", "noisy"]
    raw = [scipy_stats.ttest_rel(np.zeros(len(d)), -np.asarray(d)).pvalue for d in (_differences(cells, m) for m in compared)]
    adjusted = holm(raw)
    assert table.comparisons == 4
    for method, p, p_holm in zip(compared, raw, adjusted, strict=True):
        entry = table.rows[method][("t", "misclassification")]
        assert entry.compared and entry.p == pytest.approx(p, rel=1e-9) and entry.p_holm == pytest.approx(p_holm, rel=1e-9)
    assert table.rows["good"][("t", "misclassification")].verdict == 1
    assert table.rows["bad"][("t", "misclassification")].verdict == -1
    assert table.rows["noisy"][("t", "misclassification")].verdict == 0
    assert table.best(("t", "misclassification", "lower")) == {"good"}
    # aucpr was no row's target: shown, never tested, never bold
    assert not table.rows["good"][("t", "aucpr")].compared and not table.best(("t", "aucpr", "higher"))
    failing = table.rows["failing"][("t", "misclassification")]
    assert (failing.failed, len(failing.values), failing.pairs) == (1, 5, 5)


def test_change_from_start_is_paired_per_seed_and_has_a_t_interval():
    table = tables.build(_results())
    good = table.rows["good"][("t", "misclassification")]
    changes = [0.030 - NOISE[s] * 0.5 for s in SEEDS]
    assert good.changes == pytest.approx(changes)
    low, high = scipy_stats.t.interval(0.95, 5, loc=np.mean(changes), scale=scipy_stats.sem(changes))
    assert (good.change.low, good.change.high) == (pytest.approx(low), pytest.approx(high))
    md = render.to_markdown(table)
    assert f"Δ {np.mean(changes):+.4f} [{low:+.4f}, {high:+.4f}], n=6) ▲" in md


def test_nothing_is_bold_when_the_best_made_its_metric_worse_than_the_start():
    cells = []
    for s in SEEDS:
        cells.append(_cell("surrogate", s, START[s] + 0.050 + NOISE[s]))
        cells.append(_cell("less-bad", s, START[s] + 0.020 + NOISE[s] * 0.5))  # significantly better, still worse than start
    table = tables.build(cells)
    entry = table.rows["less-bad"][("t", "misclassification")]
    assert entry.verdict == 1 and entry.change.mean < 0 and not entry.bold


def test_the_baseline_is_bold_only_when_every_other_row_is_significantly_worse():
    cells = [c for c in _results() if c.method in ("surrogate", "bad")]
    assert tables.build(cells).best(("t", "misclassification", "lower")) == {"surrogate"}
    cells = [c for c in _results() if c.method in ("surrogate", "bad", "noisy")]
    assert tables.build(cells).best(("t", "misclassification", "lower")) == set()


def test_wilcoxon_option_and_its_caption_below_six_seeds():
    cells = [c for c in _results() if c.seed < 5]
    table = tables.build(cells, test="wilcoxon")
    good = table.rows["good"][("t", "misclassification")]
    assert good.p == pytest.approx(scipy_stats.wilcoxon(_differences(cells, "good"), method="exact").pvalue)
    assert good.verdict == 0  # 2/2^5 = 0.0625 at best
    assert "cannot reach p < 0.05" in render.to_markdown(table)
    assert "cannot reach" not in render.to_markdown(tables.build(_results(), test="wilcoxon"))


def test_a_table_without_its_baseline_says_nothing_was_tested():
    cells = [c for c in _results() if c.method != "surrogate"]
    for test in ("t", "wilcoxon"):
        table = tables.build(cells, test=test)
        assert table.comparisons == 0 and not table.best(("t", "misclassification", "lower"))
        text = render.to_markdown(table)
        assert "No row could be tested against `surrogate`" in text and "--baseline METHOD" in text
        assert "comparisons" not in text and "▲" not in text and "cannot reach" not in text
    assert "No row could be tested" not in render.to_markdown(tables.build(cells, "good"))


def test_layouts_and_formats():
    table = tables.build(_results())
    by_tasks = render.to_markdown(table, "tasks")
    assert by_tasks.startswith("| task | metric | (pretrained) | bad | failing | good | noisy | surrogate |")
    assert "| t | misclassification ↓ |" in by_tasks and "aucpr" not in by_tasks.split("\n\n")[0]  # targets only
    by_methods = render.to_markdown(table, "methods")
    assert by_methods.startswith("| method | t misclassification ↓ | t aucpr ↑ |")
    assert "| good | **0.1884 ± 0.0285**" in by_methods
    assert "- t / failing / seed 0: Diverged: boom" in by_methods
    rows = {(r["method"], r["metric"]): r for r in csv.DictReader(io.StringIO(render.to_csv(table)))}
    good = rows["good", "misclassification"]
    assert (good["best"], good["verdict"], good["n"], good["baseline"], good["test"]) == ("1", "1", "6", "surrogate", "t")
    assert rows["good", "aucpr"]["p"] == "" and rows["(pretrained)", "aucpr"]["n"] == "6"

    class Checker(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.open, self.bold = [], 0

        def handle_starttag(self, tag, attrs):
            if tag not in ("br",):
                self.open.append(tag)
            self.bold += tag == "b"

        def handle_endtag(self, tag):
            assert self.open.pop() == tag

    checker = Checker()
    checker.feed(render.to_html(table))
    assert "each entry is the method" in render.to_html(table) and "each entry" not in render.to_html(table, "methods")
    assert checker.open == [] and checker.bold == 1


@pytest.mark.parametrize("layout", ["tasks", "methods"])
def test_latex_is_booktabs_with_grouped_headers_caption_and_label(layout):
    latex = render.to_latex(tables.build(_results()), layout, label="tab:demo")
    for needed in (r"\toprule", r"\midrule", r"\bottomrule", r"\cmidrule(lr)", r"\caption{", r"\label{tab:demo}"):
        assert needed in latex
    assert r"\begin{table*}" in latex and r"\resizebox{\textwidth}{!}" in latex
    assert r"\textbf{0.1884 $\pm$ 0.0285}$^{\ast}$" in latex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (CI installs texlive-latex-base)")
@pytest.mark.parametrize("layout", ["tasks", "methods"])
def test_latex_compiles_in_a_two_column_paper_and_fits_its_width(tmp_path, layout):
    table = tables.build(_results())
    body = render.to_latex(table, layout) + costs.costs_latex(table)
    document = "\n".join(
        [
            r"\documentclass[twocolumn]{article}",
            r"\usepackage[margin=2cm]{geometry}",
            r"\usepackage{booktabs}",
            r"\usepackage{graphicx}",
            r"\begin{document}",
            "Text.",
            body,
            r"\end{document}",
        ]
    )
    (tmp_path / "paper.tex").write_text(document)
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path, capture_output=True, text=True
    )
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Overfull \\hbox" not in log and (tmp_path / "paper.pdf").stat().st_size > 0


def test_results_frame_is_long_and_paired(smoke_run):
    out, _ = smoke_run
    frame = results.load(out)
    cells = frame[frame["record"] == "cell"]
    records = list((out / "cells").glob("*.json"))
    assert cells["cell_id"].nunique() == len(records)
    assert set(cells["split"]) == {"test", "pretrained"}
    test = cells[cells["split"] == "test"]
    start = cells[cells["split"] == "pretrained"].set_index(["cell_id", "metric"])["value"]
    for r in test.itertuples():
        sign = 1 if r.direction == "higher" else -1
        assert r.change == pytest.approx(sign * (r.value - start[(r.cell_id, r.metric)]))
    assert (frame[frame["record"] == "stage"]["method"].str.startswith("metricopt")).all()
    assert {"queries_calls", "batch_queries_examples", "wall_seconds", "gpu_seconds", "device"} <= set(frame.columns)
    curves = results.load_anytime(out)
    assert len(curves) and curves.groupby("cell_id")["step"].min().eq(0).all()


def test_table_and_report_commands(smoke_run, capsys):
    out, _ = smoke_run
    assert main(["table", "--out", str(out), "--layout", "methods", "--test", "wilcoxon"]) == 0
    assert capsys.readouterr().out.startswith("| method |")
    assert main(["table", "--out", str(out), "--costs"]) == 0
    assert "| method | task | n | steps |" in capsys.readouterr().out
    assert main(["table", "--out", str(out), "--baseline", "surrogat"]) == 2
    assert "did you mean 'surrogate'" in capsys.readouterr().err
    assert main(["report", "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "http://" not in page and "https://" not in page
    assert "Failed cells" in page and "torch_version" in page
