"""The audit record's actions are prepared in a thread while the server executes; the record
written from those prepared parts is exactly the record built afterwards."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from reconciler import audit
from reconciler.apply import reconcile
from reconciler.snapshot import read_snapshot
from tests.helpers import utc
from tests.integration.conftest import World


def test_prepared_record_is_the_record(world: World) -> None:
    world.add_grant("alice")
    world.add_grant("bob", grantee="bob", expires=utc(hours=1))
    world.run()
    world.repo.remove("grants/db1/bob.yaml")
    world.add_grant("alice-rw", access="readwrite", expires=utc(hours=1))
    now = datetime.now(timezone.utc)
    snapshot = read_snapshot(world.repo.root, "HEAD", now)
    run = reconcile(snapshot, now, execute=True, env=world.env,
                    while_executing=audit.preparer(snapshot))
    [target] = run.targets
    assert target.executed and target.prepared is not None and len(target.prepared) == 2
    whole = audit.record(run, "tester")
    fast = audit.to_json(audit.record(run, "tester", actions=False),
                         {"actions": audit.action_lines(run)})
    assert json.loads(fast) == whole
    assert [(a["action"], a["cause"], a["status"]) for a in whole["actions"]] == [
        ("create", "granted", "ok"), ("revoke", "removed", "ok")]
    target.prepared = None  # not prepared (or the thread failed): built when written
    assert json.loads(audit.to_json(audit.record(run, "tester", actions=False),
                                    {"actions": audit.action_lines(run)})) == whole
