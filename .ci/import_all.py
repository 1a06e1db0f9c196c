"""Import every module of voiceguard, optional extras included, and print how many there were.

Run by ``.ci/run`` on each claimed Python with the ``dev`` extra installed, so that a name or
syntax newer than the oldest claimed Python fails here rather than in a user's traceback. Warnings
are errors, as in the test suite, except voiceguard's own deprecation of its old import paths
(``voiceguard.clock`` warns when imported). ``__main__`` modules run the command line with
``--help``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pkgutil
import sys
import traceback
import warnings


def main() -> int:
    warnings.simplefilter("error")
    warnings.filterwarnings(
        "ignore", r".* is deprecated and goes away in the next release", DeprecationWarning
    )
    version = ".".join(map(str, sys.version_info[:3]))
    try:
        import voiceguard  # noqa: PLC0415 - after the warning filters, and reported if it fails
    except Exception:
        traceback.print_exc()
        print(f"voiceguard itself failed to import on Python {version}")
        return 1
    names = ["voiceguard"]
    failed: list[str] = []

    def walk_error(name: str) -> None:
        failed.append(name)
        traceback.print_exc()

    for module in pkgutil.walk_packages(voiceguard.__path__, "voiceguard.", onerror=walk_error):
        names.append(module.name)
    for name in names:
        try:
            if name.rpartition(".")[2] == "__main__":
                run_main(name)
            else:
                importlib.import_module(name)
        except BaseException:  # any failure, SystemExit included, is reported
            failed.append(name)
            print(f"--- {name}", file=sys.stderr)
            traceback.print_exc()
    if failed:
        print(f"{len(failed)} of {len(names)} modules failed on Python {version}: {failed}")
        return 1
    print(f"imported {len(names)} modules on Python {version}")
    return 0


def run_main(name: str) -> None:
    """Import a ``__main__`` module as ``python -m`` would, asking the command line for its help."""
    argv = sys.argv
    sys.argv = [name, "--help"]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            importlib.import_module(name)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise
    finally:
        sys.argv = argv


if __name__ == "__main__":
    sys.exit(main())
