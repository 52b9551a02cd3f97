"""Plans as text, with the values the planner quotes removed.

PostgreSQL prints conditions with their constants (``Index Cond: (id = 918273)``,
``Filter: (email = 'a@b.c'::text)``); so may MySQL in ``Extra``. Quoted strings and
numbers become ``?`` like in ``db.query.text``, except inside PostgreSQL's estimate
groups ``(cost=0.00..8.27 rows=1 width=36)``, which are the point of a plan.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

#: Longest plan kept on a span, in characters.
MAX_PLAN_CHARS: Final = 8192

_ESTIMATES: Final = re.compile(r"\((?:cost|actual)=[^()]*\)")
_QUOTED: Final = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"(?=::)|E'(?:[^'\\]|\\.)*'")
_NUMBER: Final = re.compile(r"(?<![\w.$])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")


def _scrub_piece(text: str) -> str:
    return _NUMBER.sub("?", _QUOTED.sub("?", text))


def sanitize_plan(plan: str) -> str:
    """``plan`` without literal values; estimates kept; cut to :data:`MAX_PLAN_CHARS`."""
    out: list[str] = []
    position = 0
    for match in _ESTIMATES.finditer(plan):
        out.append(_scrub_piece(plan[position : match.start()]))
        out.append(match.group())
        position = match.end()
    out.append(_scrub_piece(plan[position:]))
    return "".join(out)[:MAX_PLAN_CHARS]


def postgres_plan(rows: Sequence[Sequence[Any]]) -> str:
    return "\n".join(str(row[0]) for row in rows)


def sqlite_plan(rows: Sequence[Sequence[Any]]) -> str:
    """EXPLAIN QUERY PLAN rows ``(id, parent, notused, detail)`` as an indented tree."""
    depth: dict[Any, int] = {}
    lines = []
    for row in rows:
        node, parent, detail = row[0], row[1], row[-1]
        level = depth.get(parent, -1) + 1
        depth[node] = level
        lines.append(f"{'  ' * level}{detail}")
    return "\n".join(lines)


def tabular_plan(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """MySQL/MariaDB EXPLAIN rows as ``column=value`` lines (NULL columns left out)."""
    lines = []
    for row in rows:
        pairs = [f"{name}={value}" for name, value in zip(columns, row, strict=False)]
        lines.append(
            " ".join(pair for pair, value in zip(pairs, row, strict=False) if value is not None)
        )
    return "\n".join(lines)
