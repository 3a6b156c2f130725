"""Name -> class registries for methods and datasets, and the loading of plugins that fill them.

The harness looks methods and datasets up here by name and never imports a concrete one: the suite's own
modules and third-party plugins are found the same way, through the entry-point groups ``valbench.methods``
and ``valbench.datasets`` (``--plugin`` loads a one-off module or ``.py`` file). Adding a method is a module
that applies ``@register_method`` to one class, named by one entry-point line.
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys
from importlib import metadata
from typing import Callable

from valbench.protocol import FAMILIES, DataError, Dataset, ValuationMethod

DatasetLoader = Callable[..., Dataset]

METHODS: dict[str, type[ValuationMethod]] = {}
DATASETS: dict[str, DatasetLoader] = {}
UNAVAILABLE: dict[str, str] = {}  # plugin family -> why it registered nothing (e.g. an optional package missing)


class UnknownNameError(KeyError):
    """A method or dataset name that nothing registered; the message lists the valid names."""

    def __str__(self) -> str:
        return str(self.args[0])


def register_method(cls: type[ValuationMethod]) -> type[ValuationMethod]:
    """Class decorator: make ``cls`` available to the harness under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} must set a non-empty class attribute `name`")
    if cls.family not in FAMILIES:
        raise ValueError(f"method {cls.name!r}: family must be one of {FAMILIES}, got {cls.family!r}")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is already registered by {METHODS[cls.name].__qualname__}")
    METHODS[cls.name] = cls
    return cls


def register_dataset(name: str, description: str = "",
                     image_shape: tuple[int, int, int] | None = None) -> Callable[[DatasetLoader], DatasetLoader]:
    """Decorator for a loader ``load(seed, **params) -> Dataset`` registered under ``name``.

    ``image_shape`` (C, H, W) declares an image dataset (its loader sets the same ``meta["image_shape"]``),
    so that a usage error can name the datasets an image learner such as the CNN accepts.
    """

    def decorate(loader: DatasetLoader) -> DatasetLoader:
        if name in DATASETS and DATASETS[name] is not loader:
            raise ValueError(f"dataset name {name!r} is already registered")
        loader.description = description or (loader.__doc__ or "").strip().splitlines()[0]  # type: ignore[attr-defined]
        loader.image_shape = image_shape  # type: ignore[attr-defined]
        DATASETS[name] = loader
        return loader

    return decorate


ENTRY_POINT_GROUPS = ("valbench.methods", "valbench.datasets")
_loaded_entry_points: set[tuple[str, str]] = set()


def load_installed() -> None:
    """Load every module named by an installed entry point of the ``valbench.methods`` and
    ``valbench.datasets`` groups: the suite's own (declared in its pyproject) and third-party plugins alike.

    A module that fails to import registers nothing; why is kept in ``UNAVAILABLE`` under its entry name
    (``valbench list`` shows it) and every other entry still loads. Loading twice is a no-op.
    """
    found = False
    for group in ENTRY_POINT_GROUPS:
        for entry in metadata.entry_points(group=group):
            found = True
            if (group, entry.name) in _loaded_entry_points:
                continue
            _loaded_entry_points.add((group, entry.name))
            try:
                entry.load()
            except Exception as err:  # noqa: BLE001 - one broken plugin must not take the suite down
                UNAVAILABLE[entry.name] = f"entry point {entry.value!r} failed to load ({type(err).__name__}: {err})"
    if not found:
        raise DataError("no valbench entry points are installed, so no method or dataset is registered: "
                        "install the package (`pip install -e .`, or `make install`) rather than running from "
                        "a bare checkout")


def load_plugins(modules: list[str]) -> None:
    """Import each module (a dotted name or a ``.py`` path) so that its ``@register_method`` classes register.

    A plugin that is missing or named like a module Python already has (``json.py``) is a usage error. One
    that fails while importing registers nothing: it is named once on stderr and kept in ``UNAVAILABLE``, so
    that ``list`` and runs that do not use it still work (a run naming one of its methods is refused as an
    unknown method, with the broken plugin named).
    """
    for module in modules:
        if module in UNAVAILABLE:
            continue
        if module.endswith(".py"):
            path = pathlib.Path(module).resolve()
            if not path.is_file():
                raise DataError(f"plugin file {module!r} not found")
            loaded = sys.modules.get(path.stem)
            if loaded is not None and pathlib.Path(getattr(loaded, "__file__", "") or "").resolve() == path:
                continue
            if loaded is not None or path.stem in sys.stdlib_module_names or _found_elsewhere(path):
                raise DataError(f"plugin file {module!r} is named like the module {path.stem!r} that Python already "
                                "has; rename the file (e.g. my_methods.py)")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = mod  # so worker processes and pickling find it by name
            load = lambda: spec.loader.exec_module(mod)  # noqa: E731
        else:
            load = lambda: importlib.import_module(module)  # noqa: E731
        try:
            load()
        except ModuleNotFoundError as err:
            if err.name == module or module.startswith(f"{err.name}."):
                raise DataError(f"plugin module {module!r} cannot be imported: {err}") from err
            _broken(module, err)
        except Exception as err:  # noqa: BLE001 - a broken plugin must not take the suite down
            _broken(module, err)


def _found_elsewhere(path: pathlib.Path) -> bool:
    """Whether an importable module other than ``path`` has its name (the plugin would shadow it)."""
    try:
        spec = importlib.util.find_spec(path.stem)
    except (ImportError, ValueError):
        return False
    return spec is not None and (spec.origin is None or pathlib.Path(spec.origin).resolve() != path)


def _broken(module: str, err: Exception) -> None:
    sys.modules.pop(pathlib.Path(module).stem if module.endswith(".py") else module, None)
    UNAVAILABLE[module] = f"plugin {module!r} failed to import ({type(err).__name__}: {err})"
    print(f"warning: {UNAVAILABLE[module]}; its methods and datasets are unavailable", file=sys.stderr)


def _unavailable_note() -> str:
    return "; unavailable: " + "; ".join(UNAVAILABLE.values()) if UNAVAILABLE else ""


def get_method(name: str) -> type[ValuationMethod]:
    if name not in METHODS:
        raise UnknownNameError(f"unknown method {name!r}; valid methods: {', '.join(sorted(METHODS))}"
                               f"{_unavailable_note()}")
    return METHODS[name]


def check_learner_support(method: str, learner: str) -> None:
    """Refuse, before any cell runs, a method that declares the learners it supports (``learners``) with another;
    the message names the methods written for that learner (those that declare it)."""
    cls = get_method(method)
    if cls.learners is None or learner in cls.learners:
        return
    able = sorted(name for name, other in METHODS.items() if other.learners is not None and learner in other.learners)
    raise DataError(f"method {method!r} supports the learners {', '.join(cls.learners)}, not {learner!r}; "
                    f"methods written for {learner!r}: {', '.join(able) or 'none registered'} (and those that "
                    "take any learner: `valbench list`)")


def get_dataset(name: str) -> DatasetLoader:
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; valid datasets: {', '.join(sorted(DATASETS))}"
                               f"{_unavailable_note()}")
    return DATASETS[name]


def image_datasets() -> list[str]:
    """Registered datasets that declare an image shape (``register_dataset(..., image_shape=...)``)."""
    return sorted(name for name, loader in DATASETS.items() if getattr(loader, "image_shape", None) is not None)


def describe_method(cls: type[ValuationMethod]) -> str:
    """One line for ``python -m valbench list``: the ``description`` attribute, else the docstring's first line."""
    lines = (cls.description or cls.__doc__ or "").strip().splitlines()
    return lines[0] if lines else ""
