"""Argument helpers shared by sub-commands."""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Iterable
from typing import Any


def parse_value(text: str) -> Any:
    """``--set key=value`` values: JSON when it parses (numbers, true/false, null), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["noise_level=10", "prompt=a scan"]`` -> ``{"noise_level": 10, "prompt": "a scan"}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--task, --upscaler, --model, --device, --dtype, --set: the options of every enhancing command."""
    p.add_argument("--task", default="ocr", help="preset: ocr, face or generic (default: ocr)")
    p.add_argument("--upscaler", default=None, help="backend name (default: the task's auto rule)")
    p.add_argument("--model", default=None, help="backend model: hub id, local folder or weights file")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--dtype", default=None, help="float32, float16/fp16 or bfloat16/bf16")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override a preset field, e.g. --set noise_level=10 (repeatable)")


def spelled_command(command: str, options: Iterable[tuple[str, Any]]) -> str:
    """``preproc COMMAND --opt-name value ...`` for every ``(opt_name, value)`` whose value is not
    None: the full command line of a training run, for its weights' metadata."""
    parts = ["preproc", command]
    for key, value in options:
        if value is not None:
            parts += ["--" + key.replace("_", "-"), str(value)]
    return shlex.join(parts)
