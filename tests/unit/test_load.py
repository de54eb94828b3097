"""Safe YAML loading with a line for every value, and reading files from a working tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.load import (MAX_DEPTH, MAX_FILE_BYTES, SourceFile, YamlProblem, blob_sha,
                             parse_yaml, read_folder)

PATH = "grants/db1/alice.yaml"


def parse(data: bytes):  # type: ignore[no-untyped-def]
    return parse_yaml(SourceFile(PATH, data))


def problem(data: bytes) -> YamlProblem:
    with pytest.raises(YamlProblem) as info:
        parse(data)
    assert "\n" not in info.value.message
    return info.value


# -- valid documents -------------------------------------------------------------------------


def test_valid_document_keeps_the_line_of_every_key_and_list_item() -> None:
    doc = parse(b"# a comment\n"
                b"grantee: alice\n"
                b"nested:\n"
                b"  a: 1\n"
                b"  b:\n"
                b"    - x\n"
                b"    - y: 2\n"
                b"      z: three\n")
    assert doc.path == PATH
    assert doc.data == {"grantee": "alice", "nested": {"a": 1, "b": ["x", {"y": 2, "z": "three"}]}}
    assert doc.line("grantee") == 2
    assert doc.line("nested") == 3
    assert doc.line("nested", "a") == 4
    assert doc.line("nested", "b") == 5
    assert doc.line("nested", "b", 0) == 6
    assert doc.line("nested", "b", 1) == 7
    assert doc.line("nested", "b", 1, "z") == 8


def test_line_of_a_missing_key_falls_back_to_its_deepest_existing_parent() -> None:
    doc = parse(b"a: 1\nnested:\n  b: 2\n")
    assert doc.line("nested", "missing") == 2
    assert doc.line("missing") == 1
    assert doc.line() == 1


def test_timestamps_stay_strings() -> None:
    doc = parse(b"expires: 2026-11-21T18:00:00Z\nstarts: 2026-11-21 16:00:00+02:00\n"
                b"day: 2026-11-21\n")
    assert doc.data == {"expires": "2026-11-21T18:00:00Z", "starts": "2026-11-21 16:00:00+02:00",
                        "day": "2026-11-21"}


def test_explicit_safe_tags_still_work() -> None:
    assert parse(b"a: !!str 3\nb: !!int '4'\n").data == {"a": "3", "b": 4}


def test_utf8_bom_is_accepted() -> None:
    doc = parse(b"\xef\xbb\xbfgrantee: alice\nreason: caf\xc3\xa9\n")
    assert doc.data == {"grantee": "alice", "reason": "caf\u00e9"}
    assert doc.line("reason") == 2


def test_crlf_line_endings_keep_lines_and_values_clean() -> None:
    doc = parse(b"a: 1\r\nb:\r\n  - x\r\n  - y\r\nreason: two words\r\n")
    assert doc.data == {"a": 1, "b": ["x", "y"], "reason": "two words"}
    assert doc.line("b", 1) == 4
    assert doc.line("reason") == 5


def test_tabs_inside_values_are_kept() -> None:
    doc = parse(b"reason: \"tab\\there\"\nticket: 'a\tb'\n")
    assert doc.data == {"reason": "tab\there", "ticket": "a\tb"}


def test_unicode_values_are_kept() -> None:
    text = "reason: '\U0001f4a5 \u00fcn\u00efc\u00f8de \u65e5\u672c'\n"
    assert parse(text.encode()).data == {"reason": "\U0001f4a5 \u00fcn\u00efc\u00f8de \u65e5\u672c"}


# -- rejected documents ----------------------------------------------------------------------


def test_malformed_yaml_reports_its_line() -> None:
    found = problem(b"grantee: alice\ntarget: db1\n  access: readonly\n")
    assert found.line == 3
    assert found.message.startswith("invalid YAML: ")


def test_unclosed_flow_sequence_is_a_problem_not_an_exception() -> None:
    found = problem(b"a: 1\nroles: [x, y\nreason: r\n")
    assert found.line in (2, 3)
    assert found.message.startswith("invalid YAML: ")


def test_tab_indentation_is_reported_on_its_line() -> None:
    found = problem(b"a:\n\tb: 1\n")
    assert found.line == 2


def test_alias_is_rejected() -> None:
    found = problem(b"a: &x 1\nb: *x\n")
    assert found.line in (1, 2)
    assert found.message == "YAML aliases (*name) are not allowed"


def test_alias_of_a_mapping_is_rejected() -> None:
    found = problem(b"a: &x {k: 1}\nc: 2\nb: *x\n")
    assert "aliases" in found.message


def test_alias_is_reported_at_the_line_of_the_alias() -> None:
    assert problem(b"a: &x 1\nc: 2\nb: *x\n").line == 3


def test_anchor_without_alias_is_harmless() -> None:
    assert parse(b"a: &x 1\nb: 2\n").data == {"a": 1, "b": 2}


def test_billion_laughs_is_rejected_at_the_first_alias_without_expanding() -> None:
    lines = [b'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, 30):
        refs = ",".join(f"*l{n - 1}" for _ in range(9)).encode()
        lines.append(b"l%d: &l%d [%s]" % (n, n, refs))
    # 9**30 strings if expanded; the first alias stops it before anything is expanded.
    found = problem(b"\n".join(lines) + b"\n")
    assert found.line in (1, 2)
    assert "aliases" in found.message


def test_duplicate_key_is_rejected_at_the_second_occurrence() -> None:
    found = problem(b"grantee: alice\naccess: readonly\ngrantee: mallory\n")
    assert found.line == 3
    assert found.message == "duplicate key 'grantee'"


def test_duplicate_nested_key_is_rejected() -> None:
    found = problem(b"targets:\n  db1:\n    engine: postgres\n    engine: mysql\n")
    assert found.line == 4
    assert "duplicate key 'engine'" == found.message


def test_keys_that_differ_only_in_quoting_are_duplicates() -> None:
    found = problem(b"grantee: alice\n'grantee': mallory\n")
    assert found.line == 2


@pytest.mark.parametrize("data", [
    b"base: {x: 1}\nother:\n  <<: {y: 2}\n",
    b"base: &b {x: 1}\nother:\n  <<: *b\n",
])
def test_merge_keys_are_rejected(data: bytes) -> None:
    found = problem(data)
    assert found.line == 3
    assert "merge keys" in found.message


def test_complex_keys_are_rejected() -> None:
    found = problem(b"a: 1\n? [x, y]\n: 1\n")
    assert found.line == 2


def test_nul_byte_is_rejected() -> None:
    found = problem(b"grantee: alice\nreason: a\x00b\n")
    assert found.message == "the file contains a NUL byte"


def test_non_utf8_is_rejected_with_the_line_of_the_first_bad_byte() -> None:
    found = problem(b"grantee: alice\ntarget: db1\nreason: caf\xe9\n")
    assert found.line == 3
    assert found.message == "the file is not UTF-8"


@pytest.mark.parametrize("data", [b"", b"   \n\n", b"# only a comment\n", b"\xef\xbb\xbf"])
def test_empty_file_is_a_problem(data: bytes) -> None:
    found = problem(data)
    assert found.line == 1
    assert found.message == "the file is empty"


def test_multi_document_file_is_rejected_at_the_second_document() -> None:
    found = problem(b"grantee: alice\n---\ngrantee: mallory\n")
    assert found.line == 2
    assert found.message.startswith("invalid YAML: ")


@pytest.mark.parametrize("data", [
    b"[" * 10_000,
    b"[" * 10_000 + b"\n",
    b"{a: " * 10_000 + b"\n",
])
def test_deeply_nested_unclosed_input_is_a_clean_problem(data: bytes) -> None:
    found = problem(data)
    assert found.line >= 1
    assert found.message.startswith(("invalid YAML", "nested more than"))


def test_deeply_nested_closed_input_is_cut_at_the_depth_limit() -> None:
    found = problem(b"[" * 10_000 + b"]" * 10_000 + b"\n")
    assert found.message == f"nested more than {MAX_DEPTH} levels deep"


def test_deep_block_nesting_is_reported_at_the_too_deep_line() -> None:
    data = b"".join(b"  " * i + b"k:\n" for i in range(60)) + b"  " * 60 + b"v\n"
    found = problem(data)
    assert found.line == MAX_DEPTH + 2
    assert found.message == f"nested more than {MAX_DEPTH} levels deep"


@pytest.mark.parametrize("data", [
    b"a: !!python/name:os.system\n",
    b"a: !!python/object/new:os.system\n",
    b"a: !foo bar\n",
])
def test_unknown_tags_on_scalars_are_rejected(data: bytes) -> None:
    found = problem(data)
    assert found.line == 1
    assert "could not determine a constructor" in found.message


@pytest.mark.parametrize("data", [
    b"a: !!python/object/apply:os.system ['echo pwned']\n",
    b"!!python/object/apply:os.system ['echo pwned']\n",
    b"a: !!python/object/apply:os.system\n  args: ['echo pwned']\n",
    b"a: !!python/tuple [1, 2]\n",
    b"a: !foo {x: 1}\n",
])
def test_unknown_tags_on_collections_are_rejected(data: bytes) -> None:
    problem(data)


@pytest.mark.parametrize("data", [
    b"a: !!int abc\n",
    b"connection_limit: " + b"9" * 5000 + b"\n",
    b"connection_limit: -" + b"9" * 5000 + b"\n",
])
def test_unconstructible_scalars_are_problems_not_exceptions(data: bytes) -> None:
    found = problem(data)
    assert found.line == 1


def test_a_source_that_could_not_be_read_is_a_problem_at_line_1() -> None:
    with pytest.raises(YamlProblem) as info:
        parse_yaml(SourceFile(PATH, None, error="file is too big"))
    assert (info.value.line, info.value.message) == (1, "file is too big")


def test_blob_sha_matches_git() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert blob_sha(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


# -- read_folder -----------------------------------------------------------------------------


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "repo"
    outside = tmp_path / "outside"
    (root / "grants" / "db1").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.yaml").write_bytes(b"stolen: true\n")
    return root, outside


def test_read_folder_reads_yaml_files_sorted_and_skips_others(tmp_path: Path) -> None:
    root, _ = _tree(tmp_path)
    (root / "grants" / "db1" / "b.yaml").write_bytes(b"b: 1\n")
    (root / "grants" / "db1" / "a.yml").write_bytes(b"a: 1\n")
    (root / "grants" / "db1" / "notes.txt").write_bytes(b"ignored")
    (root / "policies").mkdir()
    (root / "policies" / "p.yaml").write_bytes(b"p: 1\n")
    files = read_folder(root, ["grants"])
    assert [f.path for f in files] == ["grants/db1/a.yml", "grants/db1/b.yaml"]
    assert files[1].data == b"b: 1\n"
    assert files[1].blob == blob_sha(b"b: 1\n")
    assert read_folder(root, ["missing"]) == []


def test_oversized_file_gets_an_error_without_being_read(tmp_path: Path) -> None:
    root, _ = _tree(tmp_path)
    big = root / "grants" / "db1" / "big.yaml"
    big.touch()
    os.truncate(big, 10 * 1024 * 1024)  # sparse: 10 MB of nothing
    [found] = read_folder(root, ["grants"])
    assert found.data is None
    assert found.error == f"file is {10 * 1024 * 1024} bytes, over the limit of {MAX_FILE_BYTES}"
    with pytest.raises(YamlProblem) as info:
        parse_yaml(found)
    assert info.value.line == 1


def test_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    root, _ = _tree(tmp_path)
    data = b"a: " + b"x" * (MAX_FILE_BYTES - 4) + b"\n"
    assert len(data) == MAX_FILE_BYTES
    (root / "grants" / "db1" / "edge.yaml").write_bytes(data)
    [found] = read_folder(root, ["grants"])
    assert found.error is None and found.data == data


def test_symlink_leading_outside_the_repository_is_rejected(tmp_path: Path) -> None:
    root, outside = _tree(tmp_path)
    (root / "grants" / "db1" / "out.yaml").symlink_to(outside / "secret.yaml")
    (root / "grants" / "db1" / "rel.yaml").symlink_to(Path("../../../outside/secret.yaml"))
    found = read_folder(root, ["grants"])
    assert [(f.path, f.data, f.error) for f in found] == [
        ("grants/db1/out.yaml", None, "symlink leads outside the repository"),
        ("grants/db1/rel.yaml", None, "symlink leads outside the repository"),
    ]


def test_symlink_chain_ending_outside_is_rejected(tmp_path: Path) -> None:
    root, outside = _tree(tmp_path)
    (root / "hop.yaml").symlink_to(outside / "secret.yaml")
    (root / "grants" / "db1" / "chain.yaml").symlink_to(root / "hop.yaml")
    [found] = read_folder(root, ["grants"])
    assert found.data is None
    assert found.error == "symlink leads outside the repository"


def test_symlink_inside_the_repository_is_followed(tmp_path: Path) -> None:
    root, _ = _tree(tmp_path)
    (root / "shared").mkdir()
    (root / "shared" / "real.yaml").write_bytes(b"a: 1\n")
    (root / "grants" / "db1" / "link.yaml").symlink_to(Path("../../shared/real.yaml"))
    [found] = read_folder(root, ["grants"])
    assert (found.path, found.data, found.error) == ("grants/db1/link.yaml", b"a: 1\n", None)


def test_dangling_symlink_is_an_error_not_an_exception(tmp_path: Path) -> None:
    root, _ = _tree(tmp_path)
    (root / "grants" / "db1" / "gone.yaml").symlink_to(root / "nowhere.yaml")
    [found] = read_folder(root, ["grants"])
    assert found.data is None
    assert found.error is not None and found.error.startswith("cannot read")


def test_symlink_loop_is_an_error_not_an_exception(tmp_path: Path) -> None:
    root, _ = _tree(tmp_path)
    (root / "grants" / "db1" / "loop.yaml").symlink_to("loop.yaml")
    [found] = read_folder(root, ["grants"])
    assert found.data is None and found.error


def test_symlinked_top_folder_leading_outside_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.yaml").write_bytes(b"stolen: true\n")
    (root / "grants").symlink_to(outside)
    assert all(f.data is None for f in read_folder(root, ["grants"]))


def test_symlinked_subfolder_leading_outside_is_not_walked(tmp_path: Path) -> None:
    root, outside = _tree(tmp_path)
    (root / "grants" / "db2").symlink_to(outside)
    assert read_folder(root, ["grants"]) == []
