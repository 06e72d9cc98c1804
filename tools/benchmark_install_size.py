"""Disk size of the two installs: serving (``pip install keras_ae``: NumPy,
Pillow, onnxruntime) and full (``pip install "keras_ae[full]"``: TensorFlow,
Keras, KerasTuner, tf2onnx and the rest).

For each, the distributions it brings (keras_ae's requirements and theirs,
markers evaluated for this machine) are looked up in this environment and
their installed files (each distribution's RECORD) summed on disk. The
serving install is also made for real, offline: a fresh virtual environment
(``make_serving_venv``, which ``tests/runtime/test_serving_install.py`` uses
too) into which those distributions are copied and the keras_ae wheel built
from this checkout is installed by pip with ``--no-index``; its whole size
(Python's own venv files included) is measured with the same walk.

Writes its section of docs/benchmarks.md. About a minute here::

    python3 tools/benchmark_install_size.py
"""

import argparse
import configparser
import datetime
import importlib.metadata
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
START = "<!-- benchmark_install_size:start -->"
END = "<!-- benchmark_install_size:end -->"


def requirements(extra=None):
    """keras_ae's requirements from setup.cfg: the serving install's, or
    those an extra adds (``"full"``), its own self-references left out."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    text = (config["options"]["install_requires"] if extra is None
            else config["options.extras_require"][extra])
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    return [Requirement(line) for line in lines
            if line and not line.startswith("keras_ae")]


def closure(wanted):
    """The installed distributions that ``wanted`` (requirements) bring,
    transitively, keyed by canonical name; a missing one is an error."""
    found, queue = {}, list(wanted)
    environment = default_environment()
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        try:
            distribution = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit(f"{requirement.name} is not installed here; install "
                             f"keras_ae[full] first") from None
        found[name] = distribution
        for text in distribution.requires or ():
            child = Requirement(text)
            if child.marker is None or child.marker.evaluate({**environment, "extra": ""}):
                queue.append(child)
    return found


def installed_bytes(distribution):
    """Bytes on disk of a distribution's installed files (its RECORD)."""
    total = 0
    for file in distribution.files or ():
        path = Path(distribution.locate_file(file))
        if path.is_file():
            total += path.stat().st_size
    return total


def folder_bytes(folder):
    """Bytes of every file under ``folder`` (links not followed)."""
    return sum(path.stat().st_size for path in Path(folder).rglob("*")
               if path.is_file() and not path.is_symlink())


def build_wheel(folder):
    """The keras_ae wheel of this checkout, built offline into ``folder``."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(folder), str(ROOT)],
                   check=True)
    return next(Path(folder).glob("keras_ae-*.whl"))


def make_serving_venv(folder):
    """A fresh virtual environment with the serving install, made offline.

    NumPy, Pillow, onnxruntime and what they need are copied in from this
    environment's installed files (the wheels pip installed here); then pip,
    with ``--no-index``, installs the keras_ae wheel of this checkout and
    checks its requirements against them, so a requirement that is not
    there fails the install.

    Returns:
        The venv's Python executable.
    """
    folder = Path(folder)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    here = Path(sysconfig.get_paths()["purelib"])
    for distribution in closure(requirements()).values():
        for file in distribution.files or ():
            source = Path(distribution.locate_file(file)).resolve()
            if not source.is_file() or here not in source.parents:
                continue  # scripts in bin/ and the like: not needed to import
            target = site / source.relative_to(here)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    wheel = build_wheel(folder / "wheel")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-index",
                    "--no-cache-dir", "--disable-pip-version-check", str(wheel)], check=True)
    shutil.rmtree(folder / "wheel")
    return python


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "tools"))
    import benchmark_report

    serving = closure(requirements())
    full = closure(requirements() + requirements("full"))
    sizes = {name: installed_bytes(d) for name, d in full.items()}
    with tempfile.TemporaryDirectory() as work:
        venv = make_serving_venv(Path(work) / "venv").parents[1]
        venv_bytes = folder_bytes(venv)
        own = folder_bytes(next(venv.glob("lib/python*/site-packages/keras_ae")))
    biggest = sorted(sizes, key=sizes.get, reverse=True)[:6]
    mb = 1e6
    rows = [
        ("serving: `pip install keras_ae`", len(serving),
         sum(sizes[n] for n in serving) / mb, f"{venv_bytes / mb:,.0f} MB"),
        ('full: `pip install "keras_ae[full]"`', len(full),
         sum(sizes.values()) / mb, "-"),
    ]
    table = ["| install | distributions | their files on disk | a fresh venv, measured |",
             "|---|---:|---:|---:|"]
    table += [f"| {name} | {count} | {size:,.0f} MB | {venv} |"
              for name, count, size, venv in rows]
    intro = (
        f"{datetime.date.today()}, {benchmark_report.machine()}, Python "
        f"{platform.python_version()}; `python3 tools/benchmark_install_size.py`. "
        f"The distributions each install brings (setup.cfg's requirements and "
        f"theirs, as installed here) and the bytes of their installed files; keras_ae "
        f"itself adds {own / mb:.1f} MB. The "
        f"serving install was also made for real: a fresh venv, offline, the "
        f"distributions copied in and the keras_ae wheel installed by pip "
        f"(`--no-index`), measured whole (Python's venv files, pip and setuptools "
        f"included). Largest in the full install: "
        + ", ".join(f"{n} {sizes[n] / mb:,.0f} MB" for n in biggest) + ".")
    benchmark_report.publish_table(args.output, START, END,
                                   "Install size: serving against full", intro, table)


if __name__ == "__main__":
    main()
