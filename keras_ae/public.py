"""Public names of a package, imported from their modules on first use.

Each subpackage's ``__init__`` lists its public names and the module that
defines each; ``lazy_exports`` gives the package the module-level
``__getattr__`` and ``__dir__`` of PEP 562, so ``from keras_ae.training import
train`` works while ``import keras_ae.training.precision`` (the command line
building its parser) loads neither TensorFlow nor the rest of the package.
"""

import importlib

# What `pip install "keras_ae[full]"` adds to the serving install.
FULL_INSTALL_MODULES = {"tensorflow", "keras", "tensorflow_datasets", "keras_tuner", "scipy",
                        "sklearn", "tensorboard", "tf2onnx", "onnx", "matplotlib"}
FULL_INSTALL = "pip install 'keras_ae[full]'"


def needs_full_install(error, what):
    """A one-line message for ``error``, a ``ModuleNotFoundError`` of a module
    only the full install has, or ``None`` for any other error.

    Example:

    >>> needs_full_install(ModuleNotFoundError(name="tensorflow"), "keras-ae train")
    "keras-ae train needs tensorflow, which the serving install (pip install keras_ae) \
leaves out: pip install 'keras_ae[full]'"
    """
    name = (getattr(error, "name", None) or "").split(".")[0]
    if not isinstance(error, ModuleNotFoundError) or name not in FULL_INSTALL_MODULES:
        return None
    return (f"{what} needs {name}, which the serving install (pip install keras_ae) "
            f"leaves out: {FULL_INSTALL}")


def lazy_exports(package, exports):
    """``(__getattr__, __dir__, __all__)`` for ``package``.

    Args:
        package: the package's ``__name__``.
        exports: each submodule that defines public names (relative to
            ``package``: ``"loop"`` for ``keras_ae.training.loop``) -> those
            names.

    Returns:
        The package's ``__getattr__`` and ``__dir__`` (PEP 562), and its
        ``__all__``, sorted.

    Example, in a package's ``__init__.py``::

        _EXPORTS = {"loop": ("train",), "precision": ("choose_policy",)}
        __getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
    """
    homes = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name):
        if name in homes:
            try:
                module = importlib.import_module(f"{package}.{homes[name]}")
            except ModuleNotFoundError as error:
                message = needs_full_install(error, f"{package}.{name}")
                if message is None:
                    raise
                raise ModuleNotFoundError(message, name=error.name) from None
            return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        module = importlib.import_module(package)
        return sorted(set(vars(module)) | set(homes))

    return __getattr__, __dir__, sorted(homes)
