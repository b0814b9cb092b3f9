"""The ``preproc`` command line: one sub-command per module in :data:`COMMANDS`.

Each command module defines ``add_parser(subparsers)`` (returning its parser) and
``run(args) -> int`` (the exit status). Modules are imported when the parser is built,
so they keep heavy imports (torch, diffusers) inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS: list[str] = [
    "preproc.commands.enhance",
    "preproc.commands.compare",
    "preproc.commands.ocr",
    "preproc.commands.train_text_sr",
    "preproc.commands.train_face_sr",
    "preproc.commands.train_text_recognizer",
]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="preproc", description="Make small text and face crops readable for machines.")
    parser.add_argument("--version", action="version", version=f"preproc {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        mod = importlib.import_module(name)
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``preproc`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from .errors import PreprocError

    try:
        return int(args._run(args) or 0)
    except PreprocError as e:
        print(f"preproc {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
