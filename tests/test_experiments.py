"""Every study and the demo at smoke size, so none can rot (trained models are shared between studies)."""
import json
import os

import pytest

from ae_jax.demo import run_demo
from experiments.studies import STUDIES, run_study


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("experiments"))


@pytest.mark.parametrize("name", list(STUDIES))
def test_study_runs_at_smoke_size(name, out_dir):
    page = run_study(name, full=False, out_dir=out_dir)
    html = open(page).read()
    assert "<table>" in html or "<img src=\"data:image/png;base64," in html
    with open(os.path.join(out_dir, name, "results.json")) as f:
        assert json.load(f)["size"] == "smoke"
    assert any(f.endswith(".csv") for f in os.listdir(os.path.join(out_dir, name))) or name == "filaments"


def test_unknown_study_is_refused(out_dir):
    with pytest.raises(ValueError, match="unknown study 'nope'"):
        run_study("nope", full=False, out_dir=out_dir)


def test_quick_demo_writes_one_self_contained_page(tmp_path):
    page = run_demo(str(tmp_path), quick=True, log=lambda s: None)
    html = open(page).read()
    assert "<img src=\"data:image/png;base64," in html and "src=\"http" not in html
    for heading in ("AE vs tiny-KL VAE", "faces: z-point distribution", "faces_vae_tiny_kl: generators",
                    "Intrinsic dimension", "Timings"):
        assert heading in html
