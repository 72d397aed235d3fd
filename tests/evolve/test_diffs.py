"""Unified diffs as models write them → FileDiffs → a patch git applies exactly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mgt.evolve.diffs import DiffError, combined_patch, parse_diff, render_patch

SCENE_HUNK = "\n".join([
    "@@ -8,13 +8,6 @@",
    " ",
    " {{ scene_description }}",
    " ",
    "-## Faction History",
    "-",
    "-The complete chronicle of every faction the party has met, oldest first,",
    "-including treaties, betrayals, and every recorded skirmish:",
    "-",
    "-{{ full_faction_history }}",
    "-",
    " ## Active Threats",
    " ",
    " {{ active_threats }}",
]) + "\n"


def git_apply_check(repo: Path, patch: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "apply", "--check", "-p1", "-"], input=patch, text=True, cwd=repo,
        capture_output=True, check=False,
    )


def test_plain_unified_diff() -> None:
    [fd] = parse_diff("--- a/templates/dm_scene.jinja\n+++ b/templates/dm_scene.jinja\n"
                      + SCENE_HUNK)
    assert fd.path == "templates/dm_scene.jinja"
    assert (fd.added, fd.removed) == (0, 7)
    assert not fd.is_new and not fd.is_deleted


def test_git_diff_with_index_lines_and_two_files() -> None:
    text = (
        "diff --git a/x.txt b/x.txt\nindex 111..222 100644\n--- a/x.txt\n+++ b/x.txt\n"
        "@@ -1,2 +1,2 @@\n-a\n+b\n c\n"
        "diff --git a/y.txt b/y.txt\n--- a/y.txt\n+++ b/y.txt\n@@ -1 +1,2 @@\n y\n+z\n"
    )
    files = parse_diff(text)
    assert [(f.path, f.added, f.removed) for f in files] == [("x.txt", 1, 1), ("y.txt", 1, 0)]
    assert "index " not in render_patch(files)


def test_paths_without_prefixes_and_with_timestamps() -> None:
    [fd] = parse_diff("--- graph/dm.graph\t2026-01-15 10:00\n+++ graph/dm.graph\t2026-01-15\n"
                      "@@ -1 +1 @@\n-a\n+b\n")
    assert fd.old_path == fd.new_path == "graph/dm.graph"


def test_wrong_hunk_counts_are_recounted(repo: Path) -> None:
    # The header claims 20/10 lines; the body has 13/6 (a typical model miscount).
    text = ("--- a/templates/dm_scene.jinja\n+++ b/templates/dm_scene.jinja\n"
            + SCENE_HUNK.replace("@@ -8,13 +8,6 @@", "@@ -8,20 +8,10 @@"))
    files = parse_diff(text)
    patch = render_patch(files)
    assert "@@ -8,13 +8,6 @@" in patch
    assert git_apply_check(repo, patch).returncode == 0


def test_blank_context_line_without_its_space(repo: Path) -> None:
    body = SCENE_HUNK.replace("\n \n", "\n\n")  # editors strip the lone space
    [fd] = parse_diff("--- a/templates/dm_scene.jinja\n+++ b/templates/dm_scene.jinja\n" + body)
    assert (fd.added, fd.removed) == (0, 7)
    assert git_apply_check(repo, render_patch([fd])).returncode == 0


def test_prose_after_the_diff_is_not_part_of_it() -> None:
    text = ("--- a/templates/dm_scene.jinja\n+++ b/templates/dm_scene.jinja\n" + SCENE_HUNK
            + "\n\n--- RATIONALE ---\nPattern: slow_llm at dmScene\n")
    [fd] = parse_diff(text)
    assert fd.removed == 7
    assert "RATIONALE" not in render_patch([fd])


def test_new_and_deleted_files(repo: Path) -> None:
    new, gone = parse_diff(
        "--- /dev/null\n+++ b/notes/new.md\n@@ -0,0 +1,2 @@\n+one\n+two\n"
        "--- a/templates/dm_legacy_recap.jinja\n+++ /dev/null\n@@ -1,4 +0,0 @@\n"
        "-Write a \"previously on\" recap of the campaign in the style of the old\n"
        "-narrator (kept for sessions imported from the previous engine).\n-\n"
        "-{{ session_log }}\n"
    )
    assert new.is_new and new.path == "notes/new.md" and new.added == 2
    assert gone.is_deleted and gone.path == "templates/dm_legacy_recap.jinja"
    assert git_apply_check(repo, render_patch([new, gone])).returncode == 0


def test_rename_and_modes_are_kept() -> None:
    [fd] = parse_diff("diff --git a/old.txt b/new.txt\nsimilarity index 100%\n"
                      "rename from old.txt\nrename to new.txt\n")
    assert fd.paths == ("old.txt", "new.txt")
    [link] = parse_diff("diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n"
                        "@@ -0,0 +1 @@\n+/etc/passwd\n")
    assert link.extended == ("new file mode 120000",)


def test_binary_patch_is_marked() -> None:
    [fd] = parse_diff("diff --git a/img.png b/img.png\nBinary files a/img.png and b/img.png "
                      "differ\n")
    assert fd.binary


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no ---/+++ file headers found (not a unified diff)"),
        ("Just remove the faction history section.", "no ---/+++ file headers found"),
        ("@@ -1 +1 @@\n-a\n+b\n", "a hunk (@@ ... @@) before any ---/+++ file header"),
        ("--- a/x\n+++ b/x\n@@ nonsense @@\n", "malformed hunk header '@@ nonsense @@'"),
        ("--- a/x\n+++ b/x\nhello\n", "no hunks after the file header for x"),
        ("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n b\n", "changes nothing"),
    ],
)
def test_not_a_diff(text: str, reason: str) -> None:
    with pytest.raises(DiffError) as caught:
        parse_diff(text)
    assert reason in caught.value.reason


def test_combined_patch_of_the_sample_answer_applies(
    repo: Path, proposal: dict[str, object]
) -> None:
    patch = combined_patch(proposal["changes"])  # type: ignore[arg-type]
    assert patch.count("diff --git ") == 2
    assert git_apply_check(repo, patch).returncode == 0
