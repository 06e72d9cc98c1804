"""The ``keras-ae`` command line: it parses arguments, calls the library and
prints; nothing in keras_ae imports it.

``main`` is the console script; ``python -m keras_ae.cli`` runs it too.
Importing this package loads no TensorFlow: ``keras-ae predict`` runs in the
serving install.
"""

from keras_ae.cli.commands import main

__all__ = ["main"]
