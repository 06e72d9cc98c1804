"""Registers keras_ae's layers with Keras whichever is imported first.

``keras.models.load_model`` finds a custom layer only if the class was
registered (``keras.saving.register_keras_serializable``) before the call,
and Keras imports no module outside its own packages to find one. Importing
``keras_ae.models.layers`` from ``keras_ae/__init__.py`` would register them, but it
would also load TensorFlow into every serving process, which must run on
numpy and onnxruntime alone. So ``import keras_ae``:

- imports ``keras_ae.models.layers`` at once when Keras is loaded already;
- otherwise waits for Keras: a finder on ``sys.meta_path`` answers
  ``import keras`` with Keras' own module spec, whose loader imports
  ``keras_ae.models.layers`` right after Keras' ``__init__`` has run, then steps
  aside.

Python has no public post-import hook; this is the import system's documented
extension point (PEP 451 finders and loaders), used the way ``wrapt``'s
post-import hooks use it. Nothing of Keras is patched.
"""

import importlib
import importlib.abc
import importlib.util
import sys

_LAYERS_MODULE = "keras_ae.models.layers"


def register_when_keras_loads():
    """Makes ``keras_ae``'s layers known to Keras, now or when Keras loads.

    Called by ``import keras_ae``; safe to call again.
    """
    if "keras" in sys.modules:
        importlib.import_module(_LAYERS_MODULE)
    elif not any(isinstance(f, _KerasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _KerasFinder())


class _KerasFinder(importlib.abc.MetaPathFinder):
    """Finds ``keras`` with the other finders and wraps its loader.

    It stays on ``sys.meta_path`` until Keras is actually executed: a
    ``importlib.util.find_spec("keras")`` that only asks whether Keras is
    installed (TensorFlow does) must not use it up.
    """

    def __init__(self):
        self._asking = False

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras" or self._asking:
            return None
        self._asking = True  # the other finders answer the question below
        try:
            spec = importlib.util.find_spec("keras")
        finally:
            self._asking = False
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader, self)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    """Keras' own loader, followed by ``import keras_ae.models.layers``."""

    def __init__(self, loader, finder):
        self._loader = loader
        self._finder = finder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        self._loader.exec_module(module)
        importlib.import_module(_LAYERS_MODULE)

    def __getattr__(self, name):  # resource readers and the like
        return getattr(self._loader, name)
