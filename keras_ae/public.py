"""Public names of a package, imported from their modules on first use.

Each subpackage's ``__init__`` lists its public names and the module that
defines each; ``lazy_exports`` gives the package the module-level
``__getattr__`` and ``__dir__`` of PEP 562, so ``from keras_ae.training import
train`` works while ``import keras_ae.training.precision`` (the command line
building its parser) loads neither TensorFlow nor the rest of the package.
"""

import importlib


def lazy_exports(package, exports):
    """``(__getattr__, __dir__)`` for ``package``.

    Args:
        package: the package's ``__name__``.
        exports: public name -> the submodule that defines it, relative to
            ``package`` (``"loop"`` for ``keras_ae.training.loop``).

    Returns:
        Two functions to assign to the package's ``__getattr__`` and
        ``__dir__``.

    Example, in a package's ``__init__.py``::

        _EXPORTS = {"train": "loop", "choose_policy": "precision"}
        __all__ = sorted(_EXPORTS)
        __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
    """
    def __getattr__(name):
        if name in exports:
            module = importlib.import_module(f"{package}.{exports[name]}")
            return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        module = importlib.import_module(package)
        return sorted(set(vars(module)) | set(exports))

    return __getattr__, __dir__
