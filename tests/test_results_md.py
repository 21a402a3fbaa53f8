"""docs/results.md from several results folders: a study's seeds run apart pool into the claims they give run
together, and a section whose study has no results here is kept from the existing page."""

import json
import os
import shutil

import pytest

from ae_jax.studies import results_md
from ae_jax.studies.catalogue import run_study


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    """The claims study at smoke size with seeds 0 and 1, in one results folder."""
    out = str(tmp_path_factory.mktemp("two_seeds"))
    run_study("claims", full=False, out_dir=out, seeds=2)
    return out


def _split(both: str, into: str, seed: int) -> str:
    """A copy of the results folder `both` elsewhere whose claims results hold only the given seed's models."""
    root = shutil.copytree(both, into)
    path = os.path.join(root, "claims-smoke", "results.json")
    done = json.load(open(path))
    done["models"] = [m for m in done["models"] if m["config"]["seed"] == seed]
    json.dump(done, open(path, "w"))
    return root


def _section(page, heading: str) -> list[str]:
    lines = page.read_text().splitlines()
    assert lines.count(heading) == 1
    begin = lines.index(heading)
    end = next((i for i in range(begin + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    while lines[end - 1] == "":
        end -= 1
    return lines[begin:end]


def _claims_section(page) -> list[str]:
    return _section(page, results_md.CLAIMS_HEADING)


def test_seeds_run_apart_and_moved_pool_into_the_claims_they_give_run_together(two_seeds, tmp_path):
    together = tmp_path / "together" / "results.md"
    together.parent.mkdir()
    assert results_md.main(["--results", two_seeds, "--out", str(together)]) == 0
    expected = _claims_section(together)
    assert any(line.endswith("tiny: seeds 0, 1; tiny_vae_tiny_kl: seeds 0, 1.") for line in expected)

    moved = str(tmp_path / "moved")
    shutil.copytree(two_seeds, moved)  # the figures are found where the folder is now, not where it was written
    seed_0, seed_1 = _split(moved, str(tmp_path / "seed_0"), 0), _split(moved, str(tmp_path / "seed_1"), 1)
    shutil.rmtree(moved)
    apart = tmp_path / "apart" / "results.md"
    apart.parent.mkdir()
    assert results_md.main(["--results", seed_1, "--results", seed_0, "--out", str(apart)]) == 0
    assert _claims_section(apart) == expected
    assert sorted(os.listdir(apart.parent / "figures")) == sorted(os.listdir(together.parent / "figures"))
    assert any(name.startswith("claims_tiny_") for name in os.listdir(apart.parent / "figures"))
    measured = f"{results_md.MEASURED_HEADING}claims (smoke size)"
    assert _section(apart, measured) == _section(together, measured)  # one section, both folders' seeds


def test_pooling_refuses_a_seed_given_twice_and_results_of_another_setting(two_seeds, tmp_path):
    with pytest.raises(SystemExit, match="seed 0 of tiny is under both"):
        results_md.pooled([two_seeds, _split(two_seeds, str(tmp_path / "again"), 0)], "claims")
    other = _split(two_seeds, str(tmp_path / "other"), 1)
    path = os.path.join(other, "claims-smoke", "results.json")
    done = json.load(open(path))
    done["overrides"].append("train.epochs=3")
    json.dump(done, open(path, "w"))
    with pytest.raises(SystemExit, match="run with other settings"):
        results_md.pooled([_split(two_seeds, str(tmp_path / "zero"), 0), other], "claims")


def test_a_rebuild_keeps_a_measured_section_whose_study_has_no_results_here(two_seeds, tmp_path):
    page, figures = tmp_path / "results.md", tmp_path / "figures"
    figures.mkdir()
    (figures / "trend_training_trend.png").write_bytes(b"measured in an earlier session")
    (figures / "stale_figure.png").write_bytes(b"of results no longer shown")
    trend = [results_md.TREND_HEADING, "", "measured earlier"]
    prior = [results_md.PRIOR_HEADING, "", "Setting: the prior measured earlier"]
    judge = [results_md.JUDGE_HEADING, "", "- vae_prior/judge-0123abcd: measured earlier"]
    measured = [f"{results_md.MEASURED_HEADING}vae_prior (full size)", "", "| model |", "|---|", "| case1 |"]
    old = ["# Results", "", *trend, "", *prior, "", *judge, "", *measured]
    page.write_text("\n".join(old) + "\n")
    assert results_md.main(["--results", two_seeds, "--out", str(page)]) == 0
    for section in (trend, prior, judge, measured):  # their studies have no results under two_seeds
        assert _section(page, section[0]) == section
    lines = page.read_text().splitlines()
    assert lines.index(f"{results_md.MEASURED_HEADING}claims (smoke size)") < lines.index(measured[0])
    text = page.read_text()
    assert results_md.main(["--results", two_seeds, "--out", str(page)]) == 0
    assert page.read_text() == text  # a rebuild from the same folders changes nothing, kept sections included
    assert (figures / "trend_training_trend.png").is_file() and not (figures / "stale_figure.png").exists()
    not_measured = f"{results_md.FIRST_POST_HEADING}: not yet measured (`ae-jax study first_post --full`; "
    not_measured += "`ae-jax study denoising --full`)"
    assert not_measured in lines  # no first_post results here and none on the old page: nothing to keep

    page.write_text(page.read_text().replace("measured earlier", "measured again"))
    empty = str(tmp_path / "empty")
    assert results_md.main(["--results", empty, "--out", str(page)]) == 0  # the claims section is kept too
    assert _claims_section(page)[2].startswith("Setting: ") and "measured again" in page.read_text()
    assert any(name.startswith("claims_tiny_") for name in os.listdir(figures))


def test_a_section_the_page_lacks_goes_where_a_rebuild_puts_it(two_seeds, tmp_path):
    page = tmp_path / "results.md"
    old = ["# Results", "", results_md.CLAIMS_HEADING, "", "kept", "", results_md.TREND_HEADING, "", "## Ablations"]
    page.write_text("\n".join(old) + "\n")
    assert results_md.main(["--results", two_seeds, "--out", str(page), "--section", "prior"]) == 0
    lines = page.read_text().splitlines()
    prior = f"{results_md.PRIOR_HEADING}: not yet measured (`ae-jax study vae_prior --full`)"
    assert lines == [*old[:6], prior, "", *old[6:]]  # after the claims, before the trend, as in SECTIONS


def test_a_study_at_two_sizes_gets_a_measured_section_each(two_seeds, tmp_path):
    full = tmp_path / "full" / "claims"
    full.mkdir(parents=True)
    done = json.load(open(os.path.join(two_seeds, "claims-smoke", "results.json")))
    (full / "results.json").write_text(json.dumps({**done, "size": "full"}))
    lines = results_md.measured_sections([two_seeds, str(full.parent)])
    heading = results_md.MEASURED_HEADING
    assert [line for line in lines if line.startswith(heading)] == [
        f"{heading}claims (smoke size)",
        f"{heading}claims (full size)",
    ]
