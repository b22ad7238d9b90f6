"""`searchprobe <verb> …`: one verb per pipeline stage.

Verbs live in `searchprobe.commands.<module>`, each with `add_arguments(parser)` and
`run(args) -> int`. Only the chosen verb's module is imported, and command modules import
their heavy dependencies (torch, transformer_lens, datasets) inside `run`, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from searchprobe import __version__
from searchprobe.errors import InputError, SearchprobeError

#: verb -> (module, one-line help). Add a verb by adding a module and a line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("searchprobe.commands.generate", "generate a task dataset from tasks/<name>.toml"),
    "train": ("searchprobe.commands.train", "train a TransformerLens model on a task dataset (writes a run directory)"),
    "eval": ("searchprobe.commands.eval", "evaluate a run by greedy rollouts on held-out data"),
    "lens": ("searchprobe.commands.lens", "logit lens and tuned lens of a run (writes RUN_DIR/lens/)"),
    "probe": ("searchprobe.commands.probe", "linear probes for every hook × position × label, with controls and baselines"),
    "patch": ("searchprobe.commands.patch", "causal interventions: patching sweeps, ablations, goal retargeting (writes RUN_DIR/patching/)"),
    "report": ("searchprobe.commands.report", "write RUN_DIR/report.html: one self-contained page of every stage"),
    "run": ("searchprobe.commands.run", "run an experiment TOML: generate, train, lens, probe, patch, report"),
    "demo": ("searchprobe.commands.demo", "the end-to-end demo: search library, chess puzzles, the model pipeline and its report"),
    "search": ("searchprobe.commands.search", "the search & prior-cost library: dovetail, levin, priors, forwarding, circuits, tm"),
}


def _top_parser() -> argparse.ArgumentParser:
    verbs = "\n".join(f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="searchprobe",
        description="Is this transformer doing search inside, and how?",
        epilog=f"verbs:\n{verbs}\n\nRun `searchprobe VERB --help` for a verb's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"searchprobe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("verb", nargs="?", choices=sorted(COMMANDS), metavar="VERB", help="one of: " + ", ".join(COMMANDS))
    return parser


class UsageError(InputError):
    """A command line argparse rejects (unknown option, bad value): one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one ``error: …`` line (the usage stays in ``--help``)."""

    def error(self, message: str):  # noqa: D102 — argparse's hook
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def build_verb_parser(verb: str) -> argparse.ArgumentParser:
    module_name, help_ = COMMANDS[verb]
    module = importlib.import_module(module_name)
    parser = _Parser(prog=f"searchprobe {verb}", description=help_)
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    # Split global options from the verb and its own arguments.
    head: list[str] = []
    while argv and argv[0].startswith("-"):
        head.append(argv.pop(0))
    if not argv:
        top.parse_args(head)  # handles --help / --version
        top.print_help()
        return 2
    verb, rest = argv[0], argv[1:]
    if verb not in COMMANDS:
        print(f"error: unknown verb {verb!r}; choose from: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    debug = "--debug" in head
    previous = _catch_sigterm()
    try:
        parser = build_verb_parser(verb)
        args = parser.parse_args(rest)
        debug = debug or args.debug
        return int(args._run(args) or 0)
    except SearchprobeError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("error: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except BrokenPipeError:  # `searchprobe … | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not _NOT_SET:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


class Terminated(KeyboardInterrupt):
    """SIGTERM (sent by `timeout`, `kill` and cluster schedulers), raised like Ctrl-C so every
    `finally` and `except BaseException` runs and temporaries are removed."""


def _catch_sigterm():
    """Turn SIGTERM into `Terminated` in this process (not in forked workers, which just exit);
    returns the previous handler to restore, or _NOT_SET when handlers cannot be set here."""
    if threading.current_thread() is not threading.main_thread():
        return _NOT_SET
    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() != owner:  # a forked worker: die as SIGTERM would have made it
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return _NOT_SET


_NOT_SET = object()


if __name__ == "__main__":
    raise SystemExit(main())
