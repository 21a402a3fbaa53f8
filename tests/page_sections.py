"""A check shared by the tests of docs/results.md's rewritable sections."""

from ae_jax.studies import results_md

BEFORE = ["# Results", "", "## Claims of the posts", "", "kept", "", "## The judge", "", "also kept"]


def rewrite_twice(results: str, page, section: str) -> list[str]:
    """Rewrite one section of a page holding two others, twice (inserted before the judge's, then replaced in
    place), checking each time that the others are untouched and the section appears once; its final lines."""
    heading = results_md.SECTIONS[section][0]
    page.write_text("\n".join(BEFORE) + "\n")
    for _ in range(2):
        assert results_md.main(["--results", results, "--out", str(page), "--section", section]) == 0
        lines = page.read_text().splitlines()
        start, judge = lines.index(heading), lines.index("## The judge")
        assert lines[: start - 1] == BEFORE[:5] and lines[judge - 1 :] == BEFORE[5:] and start < judge
        assert lines.count(heading) == 1
    return lines
