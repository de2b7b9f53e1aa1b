"""`stad` turns bad input into one line naming the file or key, and exit status 2."""

import shutil
from pathlib import Path

from pipeline.cli import main

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "ava"


def test_missing_file_is_named_without_a_traceback(tmp_path, capsys):
    gt = FIXTURES / "ava_val_sample.csv"
    missing = tmp_path / "labels.pbtxt"
    code = main(["eval", str(gt), str(FIXTURES / "results_mmaction2_sample.csv"),
                 "--label-map", str(missing)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(missing) in err and "Traceback" not in err


def test_params_check_names_the_bad_key(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    params.write_text(params.read_text().replace("clip_len: 8  ", "clip_len: eight  ", 1))
    assert main(["params", "check", "--file", str(params)]) == 2
    assert "frames.clip_len" in capsys.readouterr().err
    shutil.copy(REPO / "params.yaml", params)
    assert main(["params", "check", "--file", str(params)]) == 0


def test_a_frame_store_with_an_unknown_codec_is_one_line_naming_store_and_array(tmp_path,
                                                                                capsys):
    """Issue 23.5: ``stad summary``, ``stad keyframes`` and ``stad show`` on a real frame
    store one of whose arrays names a codec this zarr lacks."""
    from test_data_loading import build_tiny_data
    from test_lfb_bank import name_an_unknown_codec

    data = build_tiny_data(tmp_path / "data", videos=2, seconds=3, width=32, height=24,
                           clip_len=2)
    store = data.frames_dir
    name_an_unknown_codec(store / "vid1")
    for argv in (["summary", str(store)], ["keyframes", str(store)],
                 ["show", str(store), "vid0", "1", "--out", str(tmp_path / "x.png")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"{store}: cannot read array 'vid1'" in err and "codec_this_install_lacks" in err
