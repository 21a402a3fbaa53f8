"""One study at smoke size through `ae-jax study`, with the checks every study's folder must pass. The studies
whose module tests them further run there only (OWN_MODULE), so each smoke study trains once in the suite."""

import json
import os

from ae_jax.cli import main

OWN_MODULE = {"first_post": "test_first_post", "denoising": "test_first_post", "training_trend": "test_trend"}


def run_and_check(name: str, out_dir: str) -> str:
    """Run study `name` at smoke size into out_dir, check the folder it writes; that folder."""
    assert main(["study", name, "--out", out_dir]) == 0
    folder = os.path.join(out_dir, f"{name}-smoke")  # never the full size's folder
    html = open(os.path.join(folder, "index.html")).read()
    assert "<table>" in html or '<img src="data:image/png;base64,' in html
    assert '<p class="banner">smoke size: the tiny preset, not a result</p>' in html
    with open(os.path.join(folder, "results.json")) as f:
        done = json.load(f)
    assert done["size"] == "smoke" and done["banner"] == "smoke size: the tiny preset, not a result" and done["models"]
    for model in done["models"]:
        assert len(model["config_hash"]) == 64 and model["run_dir"].endswith(model["config_hash"][:8])
        for result in model["evaluators"].values():
            assert result["numbers"] and len(result["key"]) == 64
            assert all(os.path.isfile(p) for p in result["figures"].values())
        if "distribution" in model["evaluators"]:
            numbers = model["evaluators"]["distribution"]["numbers"]
            assert numbers["n_points"] > 0 and len(numbers["fwhm"]) == model["config"]["model"]["z_dim"]
    assert json.load(open(os.path.join(folder, "config.json")))["study"] == name
    return folder
