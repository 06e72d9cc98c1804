#!/usr/bin/env python3
"""Trains the default models on Fashion-MNIST and exports them to exported/.

For each shipped model: ``keras-ae train`` at the defaults (10 epochs, into
``runs/shipped/KIND``, resumable, and reused when already finished), then
``keras-ae export --formats onnx --quantize int8`` into
``exported/fashion_mnist_KIND`` (ONNX files, their int8 twins where int8
keeps the test MSE within 2% of float, and the model card; no SavedModel, to
stay small in git). Finally rewrites the table in exported/README.md from
the model cards.

    python3 tools/make_shipped_models.py                # all four, ~45 min on 2 CPU cores
    python3 tools/make_shipped_models.py --kinds dense  # one

Uses keras_ae's public API (its command line) only.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from keras_ae import cli, files

KINDS = {
    "conv_transpose": ["--model", "conv"],  # the default decoder
    "conv_upsample": ["--model", "conv", "--decoder", "upsample"],
    "conv_unpool": ["--model", "conv", "--decoder", "unpool"],
    "dense": ["--model", "dense"],
}
START, END = "<!-- shipped_models:start -->", "<!-- shipped_models:end -->"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"comma-separated, from {', '.join(KINDS)}")
    parser.add_argument("--runs", default="runs/shipped")
    parser.add_argument("--exported", default="exported")
    args = parser.parse_args(argv)
    unknown = set(args.kinds.split(",")) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)}; choose from {list(KINDS)}")
    return args


def table(exported):
    rows = [
        "| model | decoder | code floats | parameters | test MSE | PSNR dB | SSIM "
        "| ONNX KiB (all files) | largest ONNX difference from Keras "
        "| int8 test MSE (change) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind in KINDS:
        folder = Path(exported) / f"fashion_mnist_{kind}"
        if not (folder / "model_card.json").exists():
            continue
        card = json.loads((folder / "model_card.json").read_text())
        size = sum(p.stat().st_size for p in folder.glob("*.onnx")) / 1024
        test, int8 = card["test"], card.get("int8") or {}
        int8_text = ("-" if not int8 else
                     f"{int8['int8_mse']:.5f} ({int8['mse_increase']:+.1%})"
                     + (", refused" if int8.get("refused") else ""))
        rows.append(
            f"| `{folder.name}` | {card['model']['decoder']} "
            f"| {card['model']['code_size']} | {card['model']['parameters']:,} "
            f"| {test['mse']:.5f} | {test['psnr']:.2f} | {test['ssim']:.3f} "
            f"| {size:,.0f} | {max(card['parity']['onnx'].values()):.1e} "
            f"| {int8_text} |")
    return "\n".join([START, *rows, END])


def main(argv=None):
    args = parse_args(argv)
    for kind in args.kinds.split(","):
        run = f"{args.runs}/{kind}"
        if cli.main(["train", *KINDS[kind], "--output", run]) != 0:
            return 1
        status = cli.main(["export", f"{run}/model.keras", "--formats", "onnx",
                           "--quantize", "int8",
                           "--output", f"{args.exported}/fashion_mnist_{kind}"])
        if status == 1:  # int8 refused: the float export stands, said above
            print(f"{kind}: shipped in float only")
        elif status != 0:
            return 1
    readme = Path(args.exported) / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        sys.exit(f"{readme} lacks the {START} ... {END} markers")
    head, rest = text.split(START, 1)
    files.write_atomically(readme, lambda tmp: Path(tmp).write_text(
        head + table(args.exported) + rest.split(END, 1)[1]))
    print(f"wrote {readme}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
