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
