"""How the PostgreSQL fast path packs statements into query strings: a statement that carries
a verifier never shares a query string with another login's statements (PostgreSQL logs a
failing query string whole)."""

from __future__ import annotations

from reconciler.engines.base import Statement
from reconciler.engines.postgres import CHUNK, query_strings


def _stmts(secret_actions: set[int], actions: int, per_action: int = 3) -> list[Statement]:
    out = []
    for action in range(actions):
        for n in range(per_action):
            text = f"COMMENT ON ROLE r{action} IS 'x{n}'"
            if n == 0 and action in secret_actions:
                out.append(Statement(action, "main", "CREATE ROLE r PASSWORD 'SCRAM-SHA-256$v'",
                                     "CREATE ROLE r PASSWORD '********'"))
            else:
                out.append(Statement(action, "main", text, text))
    return out


def _strings(stmts: list[Statement]) -> list[list[Statement]]:
    """Each query string the server receives, as its statements."""
    return [string for alone, part in query_strings(stmts)
            for string in ([[s] for s in part] if alone else [part])]


def test_a_verifier_shares_its_query_string_with_no_other_statement() -> None:
    stmts = _stmts({1, 2, 5, 700}, 1000)
    strings = _strings(stmts)
    assert [s for string in strings for s in string] == stmts  # all of them, in order
    for string in strings:
        if any(s.sql != s.shown for s in string):
            assert len(string) == 1


def test_statements_without_verifiers_still_go_chunk_by_chunk() -> None:
    stmts = _stmts(set(), 1000)
    strings = _strings(stmts)
    assert len(strings) <= -(-len(stmts) // (CHUNK - 2))  # whole actions of 3 per string
    assert all(len(string) <= CHUNK for string in strings)
