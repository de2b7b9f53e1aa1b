"""`stad` turns bad input into one line naming the file or key, and exit status 2."""

import shutil
from pathlib import Path

import pytest

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
    params.write_text(params.read_text().replace("short_side: 96  ", "short_side: big  ", 1))
    assert main(["params", "check", "--file", str(params)]) == 2
    assert "frames.short_side" in capsys.readouterr().err
    shutil.copy(REPO / "params.yaml", params)
    assert main(["params", "check", "--file", str(params)]) == 0


def test_params_check_refuses_a_clip_beyond_the_stored_reach(tmp_path, capsys):
    """The store keeps frames.reach frames around each keyframe; a baseline clip (its length,
    interval and temporal jitter) reaching further is refused naming all of those keys."""
    params = tmp_path / "params.yaml"
    text = (REPO / "params.yaml").read_text()
    assert "reach: [40, 32]  " in text and "    frame_interval: 2  " in text
    params.write_text(text.replace("    frame_interval: 2  ", "    frame_interval: 16  ", 1))
    assert main(["params", "check", "--file", str(params)]) == 2      # 8x16 reads [64, 48]
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    for key in ("frames.reach", "baseline.model.clip_len", "baseline.model.frame_interval"):
        assert key in err, err
    assert "[64, 48]" in err and "[40, 32]" in err and "temporal_jitter" not in err

    # 8x2 reads [8, 6]; with temporal jitter [-1, 1) it reads [9, 6]: beyond [8, 6] by one
    text = text.replace("reach: [40, 32]  ", "reach: [8, 6]  ", 1)
    params.write_text(text)
    assert main(["params", "check", "--file", str(params)]) == 0
    capsys.readouterr()
    params.write_text(text.replace("temporal_jitter: false  ", "temporal_jitter: true  ", 1))
    assert main(["params", "check", "--file", str(params)]) == 2
    err = capsys.readouterr().err
    assert "frames.reach" in err and "baseline.data.temporal_jitter" in err and "[9, 6]" in err


def test_a_frame_store_with_an_unknown_codec_is_one_line_naming_store_and_array(tmp_path,
                                                                                capsys):
    """``stad summary``, ``stad keyframes`` and ``stad show`` on a real frame
    store one of whose arrays names a codec this zarr lacks."""
    from helpers.stores import name_an_unknown_codec
    from helpers.tiny_data import build_tiny_data

    data = build_tiny_data(tmp_path / "data", videos=2, seconds=3, width=32, height=24)
    store = data.frames_dir
    name_an_unknown_codec(store / "vid1" / "frames")
    for argv in (["summary", str(store)], ["keyframes", str(store)],
                 ["show", str(store), "vid0", "1", "--out", str(tmp_path / "x.png")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"{store}: cannot read array 'vid1/frames'" in err, err
        assert "codec_this_install_lacks" in err, err


@pytest.mark.parametrize("reach", [(40, 32), (4, 3), (5, 2), (8, 6), (1, 0), (0, 0)])
@pytest.mark.parametrize("clip_len", [1, 4, 8])
def test_show_strip_is_the_widest_clip_inside_the_reach(reach, clip_len):
    """``stad show`` without --frame-interval draws the widest strip the store holds."""
    from pipeline.cli import widest_interval
    from pipeline.frames.spec import clip_reach

    interval = widest_interval(reach, clip_len)
    needed = clip_reach(clip_len, interval, False)
    wider = clip_reach(clip_len, interval + 1, False)
    if clip_len > 1 and reach[0] >= clip_len // 2 and reach[1] >= clip_len - 1 - clip_len // 2:
        assert needed[0] <= reach[0] and needed[1] <= reach[1]
        assert wider[0] > reach[0] or wider[1] > reach[1]
    assert interval >= 1
