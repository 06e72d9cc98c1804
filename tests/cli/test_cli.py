"""The keras-ae command line."""

import pytest

from keras_ae.cli import commands as cli


def test_summary_lists_every_model_with_code_sizes(capsys):
    assert cli.main(["summary", "--brief"]) == 0
    out = capsys.readouterr().out
    for name in ["dense_autoencoder", "conv_transpose_autoencoder",
                 "conv_upsample_autoencoder", "conv_unpool_autoencoder"]:
        assert name in out
    # 28x28x1 = 784 floats; conv code 7x7x4 = 196 (4x), dense code 32 (24.5x)
    assert "196" in out and "4.0x" in out and "24.5x" in out
    # the builders' defaults, not numbers of the CLI's own
    import keras_ae
    assert f"{keras_ae.build_conv_autoencoder().count_params():,}" in out


def test_summary_with_other_shape_and_code(capsys):
    assert cli.main(["summary", "--brief", "--input-shape", "29,29,3",
                     "--filters", "8,8,4", "--code-size", "30"]) == 0
    out = capsys.readouterr().out
    assert "(29, 29, 3)" in out and "2523 floats" in out and "84.1x" in out


def test_summary_bad_filters_is_a_clear_error(capsys):
    assert cli.main(["summary", "--filters", "16,0"]) == 2
    err = capsys.readouterr().err
    assert "filters must be a sequence of positive integers, got (16, 0)" in err


def test_unparsable_option_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["summary", "--filters", "a,b"])
    assert exit_info.value.code == 2
    assert "expected comma-separated integers" in capsys.readouterr().err
