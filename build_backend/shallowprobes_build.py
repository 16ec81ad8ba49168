"""PEP 517 build backend of shallowprobes: maturin's hooks, with cargo's build folder moved
out of the source tree.

maturin (like cargo) builds into ``target/`` next to ``Cargo.toml``. pip builds a local
checkout in place (``pip install .``, ``pip wheel .``) and ``python -m build`` runs the sdist
hook in it too, so every such build would leave a ``target/`` folder of several hundred MB
in the user's source folder, and a stale one could be picked up by a later build. The hooks
below that run cargo therefore point ``CARGO_TARGET_DIR`` at a fresh temporary folder, removed
when the hook returns (maturin has already copied the wheel or sdist to the directory pip
asked for by then).

Two exceptions, on purpose:

* a ``CARGO_TARGET_DIR`` the user set is left alone: that is how to keep a build folder
  between builds (incremental rebuilds) or to put it on another disk;
* editable installs (``pip install -e .``) build in ``target/`` as ``maturin develop`` does
  (the Makefile's ``make build``): they are development builds of this very checkout, which
  they modify anyway (the compiled module is placed in ``python/shallowprobes/``), and a
  kept ``target/`` makes the next rebuild incremental instead of several minutes.

Everything else is maturin's own behaviour (``[tool.maturin]`` in pyproject.toml,
``MATURIN_PEP517_ARGS``, ``config_settings``). pyproject.toml names this module with
``backend-path = ["build_backend"]``; cargo's package list puts this folder in the sdist, so
the sdist builds the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any, Iterator, Mapping, Optional

import maturin

# Hooks that run no maturin or cargo command: maturin's, unchanged.
from maturin import (
    get_requires_for_build_editable,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
)

__all__ = [
    "build_wheel",
    "build_sdist",
    "build_editable",
    "get_requires_for_build_wheel",
    "get_requires_for_build_sdist",
    "get_requires_for_build_editable",
    "prepare_metadata_for_build_wheel",
    "prepare_metadata_for_build_editable",
]

ConfigSettings = Optional[Mapping[str, Any]]
_NO_WARNING = "MATURIN_NO_MISSING_BUILD_BACKEND_WARNING"


@contextlib.contextmanager
def _maturin_env(out_of_tree: bool = True) -> Iterator[None]:
    """Run the body with ``CARGO_TARGET_DIR`` set to a temporary folder (when `out_of_tree`
    and the user set none), removed afterwards whether the build succeeded or not.

    Also silences maturin's warning that pyproject.toml's build-backend is not ``maturin``
    (maturin >= 1.7 reads ``MATURIN_NO_MISSING_BUILD_BACKEND_WARNING``): it says pip will not
    use maturin, which is wrong here, and would sit in every build log.
    """
    saved = {k: os.environ.get(k) for k in ("CARGO_TARGET_DIR", _NO_WARNING)}
    target = None
    os.environ.setdefault(_NO_WARNING, "1")
    if out_of_tree and not os.environ.get("CARGO_TARGET_DIR"):
        target = tempfile.mkdtemp(prefix="shallowprobes-cargo-target-")
        os.environ["CARGO_TARGET_DIR"] = target
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if target is not None:
            shutil.rmtree(target, ignore_errors=True)


def build_wheel(
    wheel_directory: str,
    config_settings: ConfigSettings = None,
    metadata_directory: Optional[str] = None,
) -> str:
    with _maturin_env():
        return str(maturin.build_wheel(wheel_directory, config_settings, metadata_directory))


def build_sdist(sdist_directory: str, config_settings: ConfigSettings = None) -> str:
    # `maturin pep517 write-sdist` runs cargo's package listing, which creates target/ too
    with _maturin_env():
        return str(maturin.build_sdist(sdist_directory, config_settings))


def build_editable(
    wheel_directory: str,
    config_settings: ConfigSettings = None,
    metadata_directory: Optional[str] = None,
) -> str:
    # in-tree target/, as `maturin develop` (see the module docstring)
    with _maturin_env(out_of_tree=False):
        return str(maturin.build_editable(wheel_directory, config_settings, metadata_directory))


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: ConfigSettings = None
) -> str:
    with _maturin_env():
        return str(maturin.prepare_metadata_for_build_wheel(metadata_directory, config_settings))


def prepare_metadata_for_build_editable(
    metadata_directory: str, config_settings: ConfigSettings = None
) -> str:
    # metadata only: no target/ left even though build_editable itself keeps one
    with _maturin_env():
        return str(maturin.prepare_metadata_for_build_editable(metadata_directory, config_settings))
