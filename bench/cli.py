"""`metricbench` command line. Heavy modules are imported inside the commands so `--help` is instant.

Exit codes: 0 success; 1 some cell failed (the suite still finished); 2 bad input (one line on stderr,
`--debug` for the traceback).

Over 400 lines on purpose: the parser is one table of every command and flag (the `--help` a user
reads), and each command below it is a few lines that hand over to `bench/run`, `bench/report` or
`bench/track`; split, the flags of one command would sit away from the code that reads them.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from pathlib import Path

from metricbench.bench import __version__
from metricbench.bench.core.errors import UsageError


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _integer(text: str) -> int:
    # argparse's own message ("invalid int value") does not say what is expected in words
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _owner_option(owner: str, example: str):
    """A parser of OWNER.OPTION=VALUE, the value read as a TOML value when it is one (1, 0.5, true, "x"), else as text."""

    def parse(text: str) -> tuple[str, str, object]:
        import tomllib

        name, sep, raw = text.partition("=")
        who, dot, option = name.partition(".")
        if not (sep and dot and who and option):
            raise argparse.ArgumentTypeError(f"must look like {owner}.OPTION=VALUE (e.g. {example}), got {text!r}")
        try:
            value = tomllib.loads(f"value = {raw}")["value"]
        except tomllib.TOMLDecodeError:
            value = raw
        return who, option, value

    return parse


_task_option = _owner_option("TASK", "imagenet.weights=nasnet.pt")
_method_option = _owner_option("METHOD", "ala.beta=0.02")


def _either(names) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]


def _one_of(*names: str, label: str = ""):
    """A type for a fixed set of values: argparse's `choices` word their error in its own way and suggest nothing."""

    def parse(text: str) -> str:
        if text in names:
            return text
        from metricbench.bench.core.registry import suggest

        raise argparse.ArgumentTypeError(f"{label}must be {_either(names)}, got {text!r}{suggest(text, names)}")

    return parse


class _BadArguments(Exception):
    """argparse's complaint, with the (sub)parser that made it, so the one line can point at its --help."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    command_parsers: dict[str, argparse.ArgumentParser]  # set on the top-level parser: its commands, by name
    intermixed = False  # set on a command whose positionals may also follow its options

    def error(self, message: str):
        # argparse would print the whole usage and exit; bad input is one line, printed by main
        raise _BadArguments(self, message)

    def parse_known_args(self, args=None, namespace=None):
        if not self.intermixed:
            return super().parse_known_args(args, namespace)
        # plain argparse gives an optional positional no second chance: `list tasks --options 'syn*'` would
        # leave 'syn*' over; the intermixed parse (which calls this method again, hence the flag) takes it
        self.intermixed = False
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self.intermixed = True


def _comparison_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layout",
        type=_one_of("tasks", "methods", label="--layout "),
        default="tasks",
        metavar="{tasks,methods}",
        help="tasks: tasks as rows, methods as columns, each method on the metric it optimised (the paper's); "
        "methods: methods as rows and every metric as a column",
    )
    parser.add_argument("--baseline", default="surrogate", help="the method every other is paired with (default surrogate)")
    parser.add_argument(
        "--test",
        type=_one_of("t", "wilcoxon", label="--test "),
        default="t",
        metavar="{t,wilcoxon}",
        help="paired t-test (default) or Wilcoxon's signed-rank test (exact; cannot reach p < 0.05 below 6 seeds)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="metricbench", description="Benchmark methods that directly optimise non-differentiable metrics.")
    parser.add_argument("--version", action="version", version=f"metricbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a suite (built-in name or TOML file)")
    run.add_argument("suite", metavar="SUITE|FILE")
    run.add_argument("--tasks", type=_csv, help="comma-separated task names (default: the suite's)")
    run.add_argument("--methods", type=_csv, help="comma-separated method names (default: the suite's)")
    run.add_argument("--seeds", type=_integer, help="run seeds 0..N-1 (default: the suite's)")
    run.add_argument("--steps", type=_integer, help="finetuning steps per cell (default: the suite's budget)")
    run.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else OUT/mlflow.db)")
    run.add_argument("--out", default="runs/{suite}", help="output folder (default: runs/SUITE)")
    run.add_argument("--data-dir", help="folder holding downloaded datasets (tasks that need data)")
    run.add_argument(
        "--task-option",
        type=_task_option,
        action="append",
        metavar="TASK.OPTION=VALUE",
        help="set a task option, as [task_options.TASK] in a suite file (repeatable), e.g. imagenet.weights=nasnet.pt",
    )
    run.add_argument(
        "--method-option",
        type=_method_option,
        action="append",
        metavar="METHOD.OPTION=VALUE",
        help="set a method option, as [method_options.METHOD] in a suite file (repeatable), e.g. ala.beta=0.02",
    )
    run.add_argument(
        "--cache-dir", help="shared cache: pretrained/ checkpoints and datasets/ generated by embedded tasks (default: OUT/cache)"
    )
    run.add_argument(
        "--threads",
        type=_integer,
        default=None,
        help="PyTorch CPU threads (default 1: never far from the fastest, idle or busy; 0: PyTorch's own, one per core)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars or per-cell messages")
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    lister = commands.add_parser("list", help="list registered tasks, methods or suites")
    lister.add_argument(
        "what", type=_one_of("tasks", "methods", "suites", label="what to list "), metavar="{tasks,methods,suites}"
    )
    lister.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'synthetic*'")
    lister.add_argument("--options", action="store_true", help="also show each entry's options")
    lister.intermixed = True  # the pattern may come after --options too

    table = commands.add_parser(
        "table", help="render the comparison table from a run's folder (its cell records) or an MLflow store"
    )
    where = table.add_mutually_exclusive_group()
    where.add_argument("--out", help="an output folder of `metricbench run` (reads its cell records)")
    where.add_argument("--tracking-uri", help="an MLflow tracking URI")
    table.add_argument("--suite", help="which suite (experiment) when the store holds several")
    table.add_argument("--format", type=_one_of("md", "latex", "html", "csv"), default="md", metavar="{md,latex,html,csv}")
    _comparison_arguments(table)
    table.add_argument(
        "--published",
        nargs="?",
        const="",
        metavar="FILE",
        help="add the published reference numbers as labelled rows (default file: the repository's results/published.csv)",
    )
    table.add_argument(
        "--paired",
        metavar="BASELINE",
        help="instead of the table: each method's per-seed paired differences against BASELINE on the target metric (with --out)",
    )
    table.add_argument(
        "--diagnostics",
        default="",
        metavar="NAMES",
        help="with --paired: comma-separated logged diagnostics to average beside them, e.g. "
        "metricopt_value_spearman,stage/heldout_spearman",
    )
    table.add_argument(
        "--costs", action="store_true", help="the cost table instead (calls and examples per account, steps, seconds)"
    )
    table.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    report = commands.add_parser("report", help="write one self-contained HTML report (OUT/report.html) from the records")
    report.add_argument("--out", required=True, help="an output folder of `metricbench run`")
    report.add_argument("--suite", help="which suite, when the folder holds several")
    _comparison_arguments(report)
    report.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    ui = commands.add_parser("ui", help="browse a suite's runs in MLflow's UI, one row per cell (Ctrl-C stops it)")
    ui_store = ui.add_mutually_exclusive_group()
    ui_store.add_argument("--out", help="an output folder of `metricbench run` (serves its mlflow.db)")
    ui_store.add_argument("--tracking-uri", help="an MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    ui.add_argument("--port", type=_integer, default=5000, help="port on 127.0.0.1 (default 5000; 0: any free port)")
    ui.add_argument("--suite", help="which suite (experiment) when the store holds several")
    ui.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    data = commands.add_parser("data", help="get a paper task's dataset: download it, check it, or write a tiny fixture")
    data.add_argument(
        "action", type=_one_of("download", "check", "fixture", label="the data action "), metavar="{download,check,fixture}"
    )
    data.add_argument("task", metavar="TASK", help="a task that reads a dataset from disk (see `metricbench list tasks`)")
    data.add_argument("--data-dir", required=True, help="the folder that holds (or will hold) the datasets")
    data.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parser.command_parsers = {"run": run, "list": lister, "table": table, "report": report, "ui": ui, "data": data}
    return parser


_ARGUMENT_PROBLEM = re.compile(r"argument (?P<name>\S+): (?P<problem>.*)", re.DOTALL)


def _explain(parser: argparse.ArgumentParser, message: str, argv: list[str]) -> str:
    """argparse's message about `parser` as one line that names the problem and the fix."""
    see = f"; see `{parser.prog} --help`"
    commands = list(COMMANDS)
    if parser.prog == "metricbench" and "COMMAND" in message:
        # the top-level parser takes no option with a value, so its first bare word is the command
        word = next((arg for arg in argv if not arg.startswith("-")), None)
        if word is None:
            return f"missing command: {_either(commands)}{see}"
        from metricbench.bench.core.registry import suggest

        return f"unknown command {word!r}{suggest(word, commands)}; the command is {_either(commands)}{see}"
    required = re.fullmatch(r"the following arguments are required: (.*)", message)
    if required:
        return f"missing {required.group(1)}{see}"
    argument = _ARGUMENT_PROBLEM.fullmatch(message)
    if argument is None:
        return f"{message}{see}"
    name, problem = argument.group("name"), argument.group("problem")
    if problem == "expected one argument":
        problem = "needs a value"
    elif value := re.fullmatch(r"ignored explicit argument (.*)", problem):
        problem = f"takes no value, got {value.group(1)}"
    elif other := re.fullmatch(r"not allowed with argument (.*)", problem):
        problem = f"cannot be used with {other.group(1)}: give one, not both"
    # a positional's name is its metavar, which the problem (from `_one_of`) already words better
    return f"{name} {problem}{see}" if name.startswith("-") else f"{problem}{see}"


def _unexpected(parser: argparse.ArgumentParser, top: argparse.ArgumentParser, word: str) -> str:
    """The line for the first word no argument of `parser` (a command's) or `top` took: an unknown option (with
    the closest one) or a stray value."""
    see = f"; see `{parser.prog} --help`"
    if not word.startswith("-") or re.fullmatch(r"-\d+(\.\d*)?", word):
        return f"unexpected argument {word!r}{see}"
    option = word.split("=", 1)[0]
    actions = [*parser._actions, *top._actions]
    known = {name.lstrip("-"): name for action in actions for name in action.option_strings if name.startswith("--")}
    # without the dashes every option would look alike ("--stepz" is as close to "--seeds" as to "--help")
    close = [known[name] for name in difflib.get_close_matches(option.lstrip("-"), list(known), n=3, cutoff=0.6)]
    hint = f" (did you mean {', '.join(repr(name) for name in close)}?)" if close else ""
    return f"unknown option {option!r}{hint}{see}"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line; a bad one raises a UsageError whose message is one line."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except _BadArguments as exc:
        raise UsageError(_explain(exc.parser, str(exc), argv)) from None
    if extra:
        raise UsageError(_unexpected(parser.command_parsers[args.command], parser, extra[0]))
    return args


def cmd_run(args) -> int:
    from metricbench.bench.core import interrupts

    # from the first instant: a Ctrl-C while the suite is validated is honoured at the run's first safe point
    with interrupts.ctrl_c_stops_the_suite():
        return _run(args)


def _run(args) -> int:
    from metricbench.bench.run.runner import RunSettings, run_suite, summary_text
    from metricbench.bench.run.suite import load_suite

    suite = load_suite(args.suite).select(args.tasks, args.methods, args.seeds, args.steps, args.task_option, args.method_option)
    out_dir = Path(args.out.format(suite=suite.name))
    settings = RunSettings(
        out_dir=out_dir,
        device=args.device,
        tracking_uri=args.tracking_uri,
        data_dir=args.data_dir,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        quiet=args.quiet,
        **({"threads": args.threads} if args.threads is not None else {}),
    )
    summary = run_suite(suite, settings)
    print(summary_text(summary, out_dir))
    return summary.exit_code


def cmd_list(args) -> int:
    if args.what == "suites":
        import fnmatch

        from metricbench.bench.run.suite import builtin_suites, load_suite

        suites = {name: path for name, path in builtin_suites().items() if fnmatch.fnmatch(name, args.pattern)}
        if not suites:
            raise UsageError(f"no suites match '{args.pattern}'")
        for name, path in sorted(suites.items()):
            print(f"{name:<20} {load_suite(str(path)).description}")
        return 0
    # the built-ins' rows come from a catalog checked against the registries: listing imports no torch
    from metricbench.bench.listing import print_listing

    return print_listing(args.what, args.pattern, args.options)


def cmd_table(args) -> int:
    from metricbench.bench.track.uri import check_tracking_uri

    if args.out:
        # the records are the source of truth: no store is read, nothing is created
        from metricbench.bench.report import records

        results = records.load_records(args.out, suite=args.suite)
        if args.paired:
            from metricbench.bench.report import paired

            diagnostics = tuple(name for name in args.diagnostics.split(",") if name)
            print(paired.to_markdown(paired.paired(results, args.paired, diagnostics), args.paired, diagnostics), end="")
            return 0
    else:
        if args.paired:
            raise UsageError("--paired reads the cell records: give the run's output folder with --out DIR")
        uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise UsageError("say where the results are: --out DIR (the cell records) or --tracking-uri URI")
        # before anything opens the store: MLflow would create an empty one at a SQLite path that holds none
        check_tracking_uri(uri, must_exist=True)
        from metricbench.bench.track.collect import collect

        results, _ = collect(uri, args.suite)
    from metricbench.bench.report import costs, render, tables

    _check_baseline(results, args.baseline)
    table = tables.build(results, args.baseline, args.test)
    table = _with_published(table, args.published)
    if args.costs:
        print(costs.COST_RENDERERS[args.format](table), end="")
    else:
        print(render.render(table, args.format, args.layout), end="")
    return 0


def _check_baseline(results, baseline: str) -> None:
    methods = sorted({r.method for r in results})
    if baseline not in methods:
        from metricbench.bench.core.registry import suggest

        raise UsageError(
            f"--baseline '{baseline}' ran no cell here{suggest(baseline, methods)}; its methods: {', '.join(methods)}"
        )


def cmd_report(args) -> int:
    from metricbench.bench.report import html as report
    from metricbench.bench.report import outputs, records

    results = records.load_records(args.out, suite=args.suite)
    _check_baseline(results, args.baseline)
    path = report.write_report(args.out, outputs.derive(results, args.baseline, args.test), args.layout)
    print(f"report: {path}")
    return 0


def _with_published(table, published: str | None):
    if published is None:
        return table
    from metricbench.bench.report.published import DEFAULT_PUBLISHED, add_published, load_published

    return add_published(table, load_published(published or DEFAULT_PUBLISHED))


def cmd_ui(args) -> int:
    from metricbench.bench.track.ui import serve

    return serve(args.out, args.tracking_uri, args.port, args.suite)


def cmd_data(args) -> int:
    from metricbench.bench.run.datasets import data_command

    return data_command(args.action, args.task, Path(args.data_dir))


COMMANDS = {"run": cmd_run, "list": cmd_list, "table": cmd_table, "report": cmd_report, "ui": cmd_ui, "data": cmd_data}


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_arguments(argv)
    except UsageError as exc:
        print(f"metricbench: error: {exc}", file=sys.stderr)
        return 2
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
