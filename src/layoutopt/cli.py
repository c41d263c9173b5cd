"""``layoutopt`` on the command line: a thin shell over ``layoutopt.optimize``."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
import warnings

from .errors import InputError, InternalError, LayoutoptError

EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Warnings the libraries layoutopt drives raise about themselves, never about the user's model:
# (category, module the warning is attributed to, start of the message). Every other warning shows.
_QUIET_WARNINGS = (
    # torch's pytree deprecates its own LeafSpec; deepcopying an ExportedProgram re-creates them
    (FutureWarning, r"copyreg$", r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    # ExecuTorch (compile): torch.jit, importlib.resources and its own ExperimentalWarning
    (DeprecationWarning, r"(torch|executorch)(\.|$)", ""),
    (DeprecationWarning, r"importlib\.resources\._legacy$", r"\w+ is deprecated\. Use files\(\) instead"),
    # aot_autograd turns anomaly detection on while tracing a backward and means to hide this itself
    (UserWarning, r"torch\._functorch\.", "Anomaly Detection has been enabled"),
)


def _parser() -> argparse.ArgumentParser:
    from .targets import TARGETS
    from .zoo import DEFAULT, MODELS

    p = argparse.ArgumentParser(prog="layoutopt", description="Exact layout planning for exported PyTorch graphs.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        # checked by layoutopt itself, so that a wrong value is one line, not a usage dump
        sp.add_argument("--target", default="ethos-u55", help=f"deployment target: {', '.join(TARGETS)}")
        sp.add_argument("--io-layout", default="contiguous",
                        help="layout user inputs and outputs keep: contiguous or channels_last (ranks 4 and 5)")
        sp.add_argument("--json", metavar="FILE", help="write the report as JSON (schema: layoutopt schema)")
        sp.add_argument("--html", metavar="FILE", help="write the report as one HTML page with graph pictures")
        sp.add_argument("--explain", metavar="NODE", help="why NODE's output got its layout, and what the "
                                                          "other layouts would cost")
        sp.add_argument("--no-verify", action="store_true", help="skip the numerical check")
        sp.add_argument("--no-rewrites", action="store_true", help="plan layouts only; leave op forms alone")

    opt = sub.add_parser("optimize", help="plan the layouts of a .pt2 program")
    opt.add_argument("model", help="a .pt2 file written by torch.export.save")
    opt.add_argument("-o", "--output", required=True, help="where to write the optimized .pt2")
    opt.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    common(opt)

    demo = sub.add_parser("demo", help="optimize a bundled model and print the report")
    demo.add_argument("--model", default=DEFAULT, help=f"bundled model: {', '.join(MODELS)}")
    common(demo)

    comp = sub.add_parser("compile", help="compile a .pt2 program with an ExecuTorch backend (needs the "
                                          "executorch extra) and print the backend's own figures")
    comp.add_argument("model", help="a .pt2 file written by torch.export.save (float; quantized here)")
    comp.add_argument("--backend", required=True, choices=["ethos-u", "xnnpack", "cortex-m"])
    comp.add_argument("--target", default="ethos-u55-128", help="Ethos-U configuration, e.g. ethos-u85-256")
    comp.add_argument("-o", "--output", required=True, help="folder for the .pte and the backend's artefacts")
    comp.add_argument("--no-optimize", action="store_true", help="ExecuTorch's stock flow, untouched")
    comp.add_argument("--compare", action="store_true", help="run the stock flow and layoutopt's side by side")
    comp.add_argument("--json", metavar="FILE", help="write the figures as JSON")

    zoo = sub.add_parser("zoo", help="optimize the bundled model set (random init) and print a table")
    zoo.add_argument("--models", help="comma-separated names (default: all; see the error for the list)")
    zoo.add_argument("--target", default="ethos-u55", help=f"deployment target: {', '.join(TARGETS)}")
    zoo.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    zoo.add_argument("--compare", choices=["executorch"], help="add stock vs layoutopt columns from the "
                                                               "target's ExecuTorch flow (executorch extra)")

    sub.add_parser("targets", help="list the targets and what they need")
    sub.add_parser("schema", help="print the JSON schema of the report (--json output)")
    return p


def _write_outputs(args: argparse.Namespace, result) -> None:
    if args.json:
        with open(args.json, "w") as f:
            f.write(result.report.to_json() + "\n")
    if args.html:
        result.report.save_html(args.html)
        print(f"wrote {args.html}")
    if args.explain:
        from .explain import explain

        print(explain(result, args.explain), end="")


def _run(args: argparse.Namespace) -> int:
    import layoutopt
    from .files import load_program, save_program

    if args.command == "schema":
        import json

        from .report.report import schema

        print(json.dumps(schema(), indent=2))
        return 0
    if args.command == "targets":
        for t in layoutopt.TARGETS.values():
            fams = ", ".join(sorted(f.value for f in t.channels_last))
            print(f"{t.name:10s} {t.summary}; channels-last: {fams}")
        return 0
    if args.command == "demo":
        from .zoo import build

        model, inputs = build(args.model)
        result = layoutopt.optimize(model, inputs, target=args.target, io_layout=args.io_layout,
                                    verify=not args.no_verify, rewrites=not args.no_rewrites)
        print(f"model: {args.model} (bundled, random init)")
        print(result.report.render(), end="")
        _write_outputs(args, result)
        return 0
    if args.command == "optimize":
        layoutopt.get_target(args.target)
        if os.path.exists(args.output) and not args.force:
            raise InputError(f"'{args.output}' exists; pass --force to overwrite it")
        program = load_program(args.model)
        result = layoutopt.optimize(program, target=args.target, io_layout=args.io_layout,
                                    verify=not args.no_verify, rewrites=not args.no_rewrites)
        save_program(result.program, args.output, force=args.force, source=args.model)
        print(result.report.render(), end="")
        print(f"wrote {args.output}")
        _write_outputs(args, result)
        return 0
    if args.command == "compile":
        return _compile(args)
    if args.command == "zoo":
        from .zoo.run import run_zoo

        return run_zoo(args.models.split(",") if args.models else None, args.target, args.json, args.compare)
    raise InputError(f"unknown command {args.command}")


def _compile(args: argparse.Namespace) -> int:
    import json
    import logging

    logging.disable(logging.WARNING)  # the backends' import-time chatter; errors still surface

    from .files import load_program
    from .verify.numerics import seeded_inputs

    program = load_program(args.model)
    inputs = seeded_inputs(program)
    from .executorch import compile_flow
    from .executorch.figures import figures, render

    flow = args.target if args.backend == "ethos-u" else args.backend
    modes = [False, True] if args.compare else [not args.no_optimize]
    results = []
    for optimize in modes:
        out_dir = os.path.join(args.output, "layoutopt" if optimize else "stock") if args.compare else args.output
        results.append(compile_flow(flow, program, inputs, optimize, out_dir))
    print(render(results, f"{args.backend} ({results[0]['target']}): {args.model}"), end="")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"optimized": r["optimized"], "pte": r["pte"], **figures(r)} for r in results], f, indent=2)
    return 0


def _save_crash(argv: list[str]) -> str | None:
    """Write the traceback being handled to a new file in the temp dir; its path, or None."""
    import platform

    from . import __version__

    # torch is not imported here: the crash may be torch failing to import
    torch_version = getattr(sys.modules.get("torch"), "__version__", "not imported")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        fd, path = tempfile.mkstemp(prefix=f"layoutopt-crash-{stamp}-", suffix=".txt", text=True)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"layoutopt {__version__}, torch {torch_version}, python {platform.python_version()}, "
                    f"{platform.platform()}\n")
            f.write(f"command: layoutopt {' '.join(argv)}\n\n")
            f.write(traceback.format_exc())
    except OSError:
        return None
    return path


def _report_bug(exc: BaseException, argv: list[str]) -> None:
    """One line for an error that is layoutopt's fault, not the user's; the details go to a file."""
    lines = str(exc).strip().splitlines()
    what = type(exc).__name__ + (f": {lines[0][:200]}" if lines else "")
    path = _save_crash(argv)
    if path is None:  # no writable temp dir: the traceback is all there is to report
        traceback.print_exc()
    where = "above" if path is None else f"saved to {path}"
    print(f"layoutopt: internal error ({what}); this is a layoutopt bug, please report it with the "
          f"traceback {where}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            for category, module, message in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message, category, module)
            return _run(args)
    except InternalError as exc:
        _report_bug(exc, argv)
        return EXIT_BUG
    except LayoutoptError as exc:
        print(f"layoutopt: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("layoutopt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        _report_bug(exc, argv)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
