"""Do averaged text-sr weights ("model soups") read better than the models they average?

Evaluates each weights file, and the uniform average of each ``--soup`` group, with the
validator ``train-text-sr`` uses (Tesseract single-line CER on the fixed selection lines,
8/10/12 px, lossless and JPEG 75) and prints one JSON row per model. All files must have
the same architecture; averaging makes sense for fine-tunes of one start.

    .venv/bin/python benchmarks/weight_soup.py ../shared/datasets/text-lines-dev \\
        r3=runs/text-sr5-proxy3/w.safetensors r4=runs/text-sr6-proxy4/w.safetensors \\
        r5=runs/text-sr7-proxy5/w.safetensors r5w1=runs/text-sr7b-proxy5-w1/w.safetensors \\
        --soup r5+r5w1 --soup r4+r5+r5w1 --soup r3+r4
"""

from __future__ import annotations

import argparse
import copy
import json
import sys

import torch

from preproc.train.model import load_weights
from preproc.train.validate import TesseractLine, build_cases, evaluate, net_upscaler


def average(nets: list[torch.nn.Module]) -> torch.nn.Module:
    """A copy of ``nets[0]`` holding the mean (fp32) of all nets' parameters."""
    out = copy.deepcopy(nets[0]).float()
    states = [n.state_dict() for n in nets]
    out.load_state_dict({k: sum(s[k].float() for s in states) / len(states) for k in states[0]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("models", nargs="+", help="NAME=weights.safetensors")
    ap.add_argument("--soup", action="append", default=[], help="NAME+NAME[+...]: the average of these models")
    ap.add_argument("--lines", type=int, default=120)
    ap.add_argument("--split", default="selection")
    a = ap.parse_args()
    nets = {}
    for spec in a.models:
        name, sep, path = spec.partition("=")
        if not sep:
            sys.exit(f"{spec!r}: expected NAME=PATH")
        nets[name] = load_weights(path).float().eval()
    cases = build_cases(a.dataset, a.lines, (8, 10, 12), split=a.split)
    ocr = TesseractLine()
    todo = list(nets.items())
    for group in a.soup:
        names = group.split("+")
        missing = [n for n in names if n not in nets]
        if missing:
            sys.exit(f"--soup {group}: unknown model(s) {', '.join(missing)}")
        todo.append((group, average([nets[n] for n in names]).eval()))
    for name, net in todo:
        cer = evaluate(cases, net_upscaler(net, torch.device("cpu")), ocr)
        print(json.dumps({"model": name, **{k: round(v, 4) for k, v in cer.items()}}), flush=True)


if __name__ == "__main__":
    main()
