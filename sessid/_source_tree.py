"""Running from the root of a source checkout after a plain ``pip install .``.

There the folder ``sessid/`` of the checkout comes first on ``sys.path`` (``python -m`` and
``python -c`` put the current directory there), so ``import sessid`` finds the sources, which have no
compiled module: that is built into the installed copy. ``redirect`` points the package at the
installed copy instead, so ``python -m sessid ...`` works from the checkout as from anywhere else.
An editable install (``pip install -e .``) builds the compiled module into the checkout, and this
is never reached.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys


def _has_compiled_module(folder: str) -> bool:
    return any(
        os.path.isfile(os.path.join(folder, "_sessid" + suffix))
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )


def installed_copy(source: str) -> str | None:
    """The folder of another ``sessid`` package on ``sys.path`` that has the compiled module."""
    checkout = os.path.realpath(os.path.dirname(source))
    elsewhere = [p for p in sys.path if os.path.realpath(p or os.curdir) != checkout]
    spec = importlib.machinery.PathFinder.find_spec("sessid", elsewhere)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        if _has_compiled_module(folder):
            return folder
    return None


def redirect(package_path: list[str]) -> None:
    """Makes the package's submodules come from the installed copy; raises ImportError, saying
    what to do, when there is none."""
    source = package_path[0]
    folder = installed_copy(source)
    if folder is None:
        raise ImportError(
            f"sessid's compiled module is not built in {source}, and no installed sessid was found: "
            "run 'pip install .' (or 'pip install -e .' to work on sessid)",
            name="sessid._sessid",
        )
    package_path[:] = [folder]
