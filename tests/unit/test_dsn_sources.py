"""Where a target's admin DSN comes from (reconciler/dsn.py): the policy keys dsn_env and
dsn_file, the repository-level templates with {target}, and the rules a DSN file must meet.
The policy checks are one problem at path:line each, like tests/unit/test_validate.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.dsn import DsnError, admin_dsn, file_refusal, fold, read_dsn_file, where
from reconciler.model import Target
from tests.helpers import policy
from tests.unit.test_validate import GRANT, POLICY, grant_data, only_problem, snapshot


def targets_policy(targets: dict[str, dict[str, Any]], **repository: str) -> dict[str, Any]:
    doc = policy()
    doc["targets"] = {name: {"engine": "postgres", **keys} for name, keys in targets.items()}
    if repository:
        doc["repository"] = dict(repository)
    return doc


def line_in(doc: dict[str, Any], text: str) -> int:
    dumped = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=10**6)
    return next(n for n, line in enumerate(dumped.splitlines(), 1) if text in line)


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "folded"), [("orders-prod", "ORDERS_PROD"),
                                              ("billing.eu", "BILLING_EU"),
                                              ("db_1", "DB_1"), ("9x", "9X")])
def test_a_target_name_folds_to_an_environment_variable_part(name: str, folded: str) -> None:
    assert fold(name) == folded


# -- policy: target keys ---------------------------------------------------------------------


def test_a_target_may_name_a_dsn_file_instead_of_dsn_env() -> None:
    snap = snapshot({GRANT: grant_data()},
                    {POLICY: targets_policy({"db1": {"dsn_file": "/run/secrets/db1"}})})
    assert snap.problems == []
    target = snap.policy.targets["db1"]
    assert (target.dsn_env, target.dsn_file) == (None, "/run/secrets/db1")


def test_dsn_env_and_dsn_file_together_are_one_problem() -> None:
    doc = targets_policy({"db1": {"dsn_env": "X", "dsn_file": "/run/x"}})
    found = only_problem(snapshot({}, {POLICY: doc}))
    assert found.line == line_in(doc, "dsn_file:")
    assert found.message == ("targets.db1: dsn_env and dsn_file are both set: a target reads "
                             "its DSN from one of them")


def test_a_target_without_a_source_and_without_a_template_is_one_problem() -> None:
    doc = targets_policy({"db1": {}})
    found = only_problem(snapshot({}, {POLICY: doc}))
    assert found.line == line_in(doc, "db1:")
    assert found.message.startswith("targets.db1: missing dsn_env or dsn_file")
    assert not snapshot({}, {POLICY: doc}).policy.valid


@pytest.mark.parametrize("path", ["run/secrets/db1", "relative", "/ok\n/x"])
def test_a_dsn_file_must_be_an_absolute_path(path: str) -> None:
    doc = targets_policy({"db1": {"dsn_file": path}})
    found = only_problem(snapshot({}, {POLICY: doc}))
    assert found.message.startswith("targets.db1.dsn_file: invalid value")


# -- policy: repository templates ------------------------------------------------------------


def test_the_repository_dsn_env_template_is_folded_per_target() -> None:
    doc = targets_policy({"orders-prod": {}, "billing.eu": {}, "db1": {"dsn_env": "OWN"}},
                         dsn_env="JITGRANT_DSN_{target}")
    snap = snapshot({}, {POLICY: doc})
    assert snap.problems == []
    assert {n: t.dsn_env for n, t in snap.policy.targets.items()} == {
        "orders-prod": "JITGRANT_DSN_ORDERS_PROD", "billing.eu": "JITGRANT_DSN_BILLING_EU",
        "db1": "OWN"}  # a target's own dsn_env wins


def test_the_repository_dsn_file_template_uses_the_name_as_it_is() -> None:
    doc = targets_policy({"orders-prod": {}, "db1": {"dsn_env": "OWN"}},
                         dsn_file="/run/secrets/jitgrant/{target}")
    snap = snapshot({}, {POLICY: doc})
    assert snap.problems == []
    assert snap.policy.targets["orders-prod"].dsn_file == "/run/secrets/jitgrant/orders-prod"
    assert snap.policy.targets["db1"].dsn_file is None


def test_a_template_from_another_policy_file_applies() -> None:
    parts = {"policies/targets.yaml": targets_policy({"db1": {}}),
             "policies/repo.yaml": {"repository": {"dsn_env": "DSN_{target}"}}}
    snap = snapshot({}, parts)
    assert snap.problems == [] and snap.policy.targets["db1"].dsn_env == "DSN_DB1"


@pytest.mark.parametrize(("key", "value", "message"), [
    ("dsn_env", "JITGRANT_DSN", "repository.dsn_env: must contain {target}, where each "
                                "target's name goes (folded to upper case)"),
    ("dsn_env", "JITGRANT-{target}", "repository.dsn_env: 'JITGRANT-{target}' does not make "
                                     "environment variable names: use letters, digits, _ and "
                                     "{target}, and start with a letter or _"),
    ("dsn_file", "/run/secrets/db", "repository.dsn_file: must contain {target}, where each "
                                    "target's name goes"),
    ("dsn_file", "secrets/{target}", "repository.dsn_file: 'secrets/{target}' must be an "
                                     "absolute path, without control characters"),
])
def test_a_bad_template_is_one_problem_at_its_line(key: str, value: str, message: str) -> None:
    doc = targets_policy({"db1": {}, "db2": {}}, **{key: value})
    snap = snapshot({}, {POLICY: doc})
    found = only_problem(snap)  # not one more per target that would have used it
    assert (found.line, found.message) == (line_in(doc, f"{key}:"), message)
    assert not snap.policy.valid


def test_a_template_that_makes_a_name_starting_with_a_digit_is_refused_at_the_target() -> None:
    doc = targets_policy({"9db": {}}, dsn_env="{target}_DSN")
    found = only_problem(snapshot({}, {POLICY: doc}))
    assert found.line == line_in(doc, "9db:")
    assert "makes '9DB_DSN' of its name" in found.message


def test_two_targets_folding_to_one_variable_is_an_error_at_the_second() -> None:
    doc = targets_policy({"orders-prod": {}, "orders.prod": {}, "orders_prod": {"dsn_env": "X"}},
                         dsn_env="JITGRANT_DSN_{target}")
    snap = snapshot({}, {POLICY: doc})
    found = only_problem(snap)
    assert found.line == line_in(doc, "orders.prod:")
    assert found.message == (f"targets.orders.prod: repository.dsn_env makes "
                             f"$JITGRANT_DSN_ORDERS_PROD of its name, as of target orders-prod "
                             f"({POLICY}:{line_in(doc, 'orders-prod:')}): give one of them its "
                             "own dsn_env")


def test_both_templates_are_one_problem() -> None:
    doc = targets_policy({"db1": {}}, dsn_env="D_{target}", dsn_file="/s/{target}")
    found = only_problem(snapshot({}, {POLICY: doc}))
    assert found.line == line_in(doc, "dsn_file: /s/")
    assert found.message.startswith("repository.dsn_file: the policies also set "
                                    "repository.dsn_env")


def test_a_template_defined_in_two_files_names_both() -> None:
    parts = {"policies/a.yaml": targets_policy({"db1": {}}, dsn_env="A_{target}"),
             "policies/b.yaml": {"repository": {"dsn_env": "B_{target}"}}}
    found = only_problem(snapshot({}, parts))
    assert found.path == "policies/b.yaml"
    assert found.message == ("repository.dsn_env is defined twice: in policies/a.yaml:"
                             f"{line_in(parts['policies/a.yaml'], 'dsn_env:')} and here")


# -- the file rules --------------------------------------------------------------------------


def status(mode: int, uid: int, gid: int, kind: int = stat.S_IFREG) -> os.stat_result:
    return os.stat_result((kind | mode, 0, 0, 1, uid, gid, 10, 0, 0, 0))


ME, MY_GROUP = 1000, 1000


@pytest.mark.parametrize(("mode", "uid", "gid"), [
    (0o600, ME, MY_GROUP), (0o400, ME, 4242), (0o640, ME, MY_GROUP),
    (0o440, 0, MY_GROUP),  # a Kubernetes Secret volume: root, fsGroup, defaultMode 0440
    (0o440, 0, 0),  # systemd: root-owned, read access for the service's user by an ACL
    (0o400, 0, 4242),
])
def test_files_only_we_and_root_can_read_are_accepted(mode: int, uid: int, gid: int) -> None:
    assert file_refusal(status(mode, uid, gid), ME, {MY_GROUP}) is None


@pytest.mark.parametrize(("mode", "uid", "gid", "why"), [
    (0o644, ME, MY_GROUP, "other users have access to it (mode 0644): chmod o-rwx it"),
    (0o604, 0, 0, "other users have access to it (mode 0604): chmod o-rwx it"),
    (0o601, ME, MY_GROUP, "other users have access to it (mode 0601): chmod o-rwx it"),
    (0o660, ME, MY_GROUP, "its group may write it (mode 0660): chmod g-w it"),
    (0o640, ME, 4242, "its group (gid 4242) may read it and jitgrant's user is not in that "
                      "group (mode 0640): chmod g-r it"),
    (0o440, 0, 4242, "its group (gid 4242) may read it and jitgrant's user is not in that "
                     "group (mode 0440): chmod g-r it"),
    (0o600, 4242, MY_GROUP, "it is owned by uid 4242, not by jitgrant's user (uid 1000) or "
                            "root: another user could read or replace it"),
])
def test_files_others_can_read_or_replace_are_refused(mode: int, uid: int, gid: int,
                                                       why: str) -> None:
    assert file_refusal(status(mode, uid, gid), ME, {MY_GROUP}) == why


@pytest.mark.parametrize(("kind", "text"), [(stat.S_IFDIR, "a directory"),
                                            (stat.S_IFIFO, "a FIFO"),
                                            (stat.S_IFCHR, "a character device")])
def test_only_regular_files_are_accepted(kind: int, text: str) -> None:
    assert file_refusal(status(0o600, ME, MY_GROUP, kind), ME, {MY_GROUP}) == \
        f"it is {text}, not a regular file"


# -- reading ---------------------------------------------------------------------------------


def dsn_file(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "db1.dsn"
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("content", [b"postgresql://u:pw@h/db\n", b"postgresql://u:pw@h/db\r\n",
                                     b"postgresql://u:pw@h/db", b"postgresql://u:pw@h/db\n\n"])
def test_the_content_is_the_dsn_without_its_trailing_line_breaks(tmp_path: Path,
                                                                 content: bytes) -> None:
    assert read_dsn_file(str(dsn_file(tmp_path, content))) == "postgresql://u:pw@h/db"


@pytest.mark.parametrize(("content", "message"), [(b"\n", "is empty"), (b"", "is empty"),
                                                  (b"pw\xff\n", "is not UTF-8 text"),
                                                  (b"x" * 70000, "is larger than 64 KiB")])
def test_a_file_that_holds_no_dsn_is_one_line(tmp_path: Path, content: bytes,
                                              message: str) -> None:
    path = dsn_file(tmp_path, content)
    with pytest.raises(DsnError) as caught:
        read_dsn_file(str(path))
    assert str(caught.value).startswith(f"DSN file {path} {message}")
    assert not caught.value.missing


def test_a_missing_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DsnError, match=r"^DSN file .*/nope does not exist$") as caught:
        read_dsn_file(str(tmp_path / "nope"))
    assert caught.value.missing


def target(**source: str) -> Target:
    return Target(name="orders-prod", engine="postgres", **source)  # type: ignore[arg-type]


def test_admin_dsn_reads_the_variable_and_names_it(tmp_path: Path) -> None:
    tgt = target(dsn_env="JG_X")
    dsn = admin_dsn(tgt, {"JG_X": "postgresql://a@h/db"})
    assert dsn == "postgresql://a@h/db" and where(tgt, dsn) == "$JG_X"


def test_a_set_variable_wins_over_a_credential(tmp_path: Path) -> None:
    (tmp_path / "orders-prod-dsn").write_text("postgresql://from-file@h/db\n")
    (tmp_path / "orders-prod-dsn").chmod(0o400)
    env = {"JG_X": "postgresql://from-env@h/db", "CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert admin_dsn(target(dsn_env="JG_X"), env) == "postgresql://from-env@h/db"
    del env["JG_X"]
    tgt = target(dsn_env="JG_X")
    dsn = admin_dsn(tgt, env)
    assert dsn == "postgresql://from-file@h/db"
    assert where(tgt, dsn) == str(tmp_path / "orders-prod-dsn")


def test_an_unset_variable_names_the_credential_looked_for(tmp_path: Path) -> None:
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    with pytest.raises(DsnError) as caught:
        admin_dsn(target(dsn_env="JG_X"), env)
    assert str(caught.value) == (f"environment variable JG_X is not set, and there is no "
                                 f"{tmp_path}/orders-prod-dsn")
    assert caught.value.missing
    with pytest.raises(DsnError, match=r"^environment variable JG_X is not set$"):
        admin_dsn(target(dsn_env="JG_X"), {})


def test_a_credential_open_to_others_is_refused_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "orders-prod-dsn").write_text("postgresql://u:hunter2@h/db\n")
    (tmp_path / "orders-prod-dsn").chmod(0o644)
    with pytest.raises(DsnError) as caught:
        admin_dsn(target(dsn_env="JG_X"), {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert not caught.value.missing and "hunter2" not in str(caught.value)
    assert "other users have access to it (mode 0644)" in str(caught.value)


def test_a_dsn_file_target_never_falls_back(tmp_path: Path) -> None:
    (tmp_path / "orders-prod-dsn").write_text("postgresql://u@h/db\n")
    (tmp_path / "orders-prod-dsn").chmod(0o400)
    with pytest.raises(DsnError, match="does not exist"):
        admin_dsn(target(dsn_file=str(tmp_path / "elsewhere")),
                  {"CREDENTIALS_DIRECTORY": str(tmp_path)})


def test_a_review_names_a_target_moved_to_a_file() -> None:
    from reconciler.prdiff import _target_changes

    old, new = target(dsn_env="JG_X"), target(dsn_file="/run/secrets/jitgrant/orders-prod")
    assert _target_changes(old, new) == [
        "target orders-prod: now postgres through the file /run/secrets/jitgrant/orders-prod "
        "(was postgres through $JG_X); the old server's logins are left alone"]
    assert _target_changes(old, target(dsn_env="JG_X")) == []
