"""The examples in the docstrings run and say what they show."""

import doctest

import numpy as np
import pytest

import keras_ae
from keras_ae.anomaly import options as anomaly_options
from keras_ae.models import builders
from keras_ae.data import sources as data
from keras_ae.anomaly import defects
from keras_ae.codes import adapter as downstream
from keras_ae.export import exporter as export
from keras_ae import files
from keras_ae.data import folders
from keras_ae.runtime import images
from keras_ae.models import layers
from keras_ae.models import facts as model_facts
from keras_ae.runtime import onnx_files
from keras_ae import outputs
from keras_ae.data import pipelines
from keras_ae.runtime import pixels
from keras_ae.training import precision
from keras_ae.models import shapes
from keras_ae.training import loop as training
from keras_ae.tuning import reports, space, trial_data


@pytest.mark.parametrize("module", [shapes, layers, builders, data, folders, images,
                                    pipelines, pixels, training, files, export,
                                    space, trial_data, reports, downstream,
                                    model_facts, onnx_files, defects, anomaly_options,
                                    precision, outputs],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"np": np, "keras_ae": keras_ae, **{
        name: getattr(keras_ae, name) for name in keras_ae.__all__}})
    assert result.attempted > 0
    assert result.failed == 0


def test_importing_the_package_does_not_load_tensorflow():
    import subprocess
    import sys
    code = ("import sys, keras_ae; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
            "print(keras_ae.__version__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == keras_ae.__version__
