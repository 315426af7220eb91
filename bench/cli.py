"""`metricbench` command line. Heavy modules are imported inside the commands so `--help` is instant.

Exit codes: 0 success; 1 some cell failed (the suite still finished); 2 bad input (one line on stderr,
`--debug` for the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench import __version__
from bench.errors import UsageError


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metricbench", description="Benchmark methods that directly optimise non-differentiable metrics."
    )
    parser.add_argument("--version", action="version", version=f"metricbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a suite (built-in name or TOML file)")
    run.add_argument("suite", metavar="SUITE|FILE")
    run.add_argument("--tasks", type=_csv, help="comma-separated task names (default: the suite's)")
    run.add_argument("--methods", type=_csv, help="comma-separated method names (default: the suite's)")
    run.add_argument("--seeds", type=int, help="run seeds 0..N-1 (default: the suite's)")
    run.add_argument("--steps", type=int, help="finetuning steps per cell (default: the suite's budget)")
    run.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else OUT/mlflow.db)")
    run.add_argument("--out", default="runs/{suite}", help="output folder (default: runs/SUITE)")
    run.add_argument("--data-dir", help="folder holding downloaded datasets (tasks that need data)")
    run.add_argument("--cache-dir", help="pretrained checkpoint cache (default: OUT/cache/pretrained)")
    run.add_argument("--quiet", action="store_true", help="no progress bars or per-cell messages")
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    lister = commands.add_parser("list", help="list registered tasks, methods or suites")
    lister.add_argument("what", choices=["tasks", "methods", "suites"])
    lister.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'synthetic*'")
    lister.add_argument("--options", action="store_true", help="also show each entry's options")

    table = commands.add_parser("table", help="render the comparison table from an MLflow store")
    where = table.add_mutually_exclusive_group()
    where.add_argument("--out", help="an output folder of `metricbench run` (uses its mlflow.db)")
    where.add_argument("--tracking-uri", help="an MLflow tracking URI")
    table.add_argument("--suite", help="which suite (experiment) when the store holds several")
    table.add_argument("--format", choices=["md", "latex", "csv"], default="md")
    table.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parser


def cmd_run(args) -> int:
    from bench.runner import RunSettings, run_suite, summary_text
    from bench.suite import load_suite

    suite = load_suite(args.suite).select(args.tasks, args.methods, args.seeds, args.steps)
    out_dir = Path(args.out.format(suite=suite.name))
    settings = RunSettings(
        out_dir=out_dir,
        device=args.device,
        tracking_uri=args.tracking_uri,
        data_dir=args.data_dir,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        quiet=args.quiet,
    )
    summary = run_suite(suite, settings)
    print(summary_text(summary, out_dir))
    return summary.exit_code


def cmd_list(args) -> int:
    if args.what == "suites":
        from bench.suite import builtin_suites, load_suite

        for name, path in sorted(builtin_suites().items()):
            suite = load_suite(str(path))
            print(f"{name:<20} {suite.description}")
        return 0
    if args.what == "tasks":
        from tasks import TASKS as registry
    else:
        from methods import METHODS as registry
    entries = registry.entries(args.pattern)
    if not entries:
        raise UsageError(f"no {args.what} match '{args.pattern}'")
    for entry in entries:
        print(f"{entry.name:<20} {entry.description}")
        if args.options:
            for key, opt in entry.options.items():
                choices = f" {{{', '.join(map(str, opt.choices))}}}" if opt.choices else ""
                print(f"    {key} ({opt.type.__name__}{choices}, default {opt.default!r}): {opt.help}")
    return 0


def cmd_table(args) -> int:
    from bench import tables
    from bench.tracking import check_tracking_uri

    if args.tracking_uri:
        uri = args.tracking_uri
    elif args.out:
        db = Path(args.out) / "mlflow.db"
        if not db.exists():
            raise UsageError(f"'{args.out}' has no mlflow.db; give the --out folder of a `metricbench run`")
        uri = f"sqlite:///{db.resolve()}"
    elif os.environ.get("MLFLOW_TRACKING_URI"):
        uri = os.environ["MLFLOW_TRACKING_URI"]
    else:
        raise UsageError("say where the results are: --out DIR or --tracking-uri URI")
    check_tracking_uri(uri)
    results, _ = tables.collect(uri, args.suite)
    print(tables.RENDERERS[args.format](tables.build(results)), end="")
    return 0


COMMANDS = {"run": cmd_run, "list": cmd_list, "table": cmd_table}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        if args.debug:
            raise
        print(f"metricbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("metricbench: interrupted; finished cells are kept and a re-run resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
