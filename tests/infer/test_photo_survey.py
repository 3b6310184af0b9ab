"""python -m src.infer.photo_survey: what a model does to folders of real photos, beside its gate alone."""

import json

import numpy as np
import pytest
from PIL import Image

from src.infer.photo_survey import main
from tests.infer.test_light_tiles import half_lit, lit_model


def test_a_survey_counts_unchanged_photos_per_set_and_draws_its_grid(tmp_path, capsys):
    model = lit_model(tmp_path / "lit.keras", "zero_dce")
    night, day = tmp_path / "night", tmp_path / "day"
    night.mkdir(), day.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((40, 56, 3)) * 20).astype(np.uint8)).save(night / "dark.png")
    Image.fromarray(half_lit(40, 56)).save(day / "shadowed.png")
    Image.fromarray(np.full((40, 56, 3), 200, np.uint8)).save(day / "flat.jpg")
    (day / "notes.txt").write_text("not a photo")
    summary, grid = tmp_path / "out/summary.json", tmp_path / "out/grid.jpg"
    main([str(night), str(day), "--model", model, "--grid", str(grid), "--summary", str(summary)])

    result = json.loads(summary.read_text())
    assert set(result) == {"model", "gate_alone"}
    assert {k: v["photos"] for k, v in result["model"].items()} == {"all": 3, "night": 1, "day": 2}
    # The gate leaves both lit photos alone; the lift brightens the shadowed one and leaves the evenly
    # lit one as it was (the dark one is the curves' business, the same in both).
    gate, lifted = result["gate_alone"]["day"], result["model"]["day"]
    assert gate["unchanged"] == 2 and lifted["unchanged"] == 1
    assert lifted["brightness_out"] > gate["brightness_out"] == pytest.approx(gate["brightness_in"], abs=1e-3)
    assert result["model"]["night"] == result["gate_alone"]["night"]
    assert Image.open(grid).size[0] > 0
    unchanged = result["model"]["all"]["unchanged"]
    assert f"model: {unchanged} of 3 photos unchanged" in capsys.readouterr().out


def test_a_folder_that_is_missing_or_holds_no_photo_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (tmp_path / "missing", empty):
        with pytest.raises(SystemExit):
            main([str(folder), "--grid", str(tmp_path / "g.jpg"), "--summary", str(tmp_path / "s.json")])
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("error: ") and str(folder) in line
