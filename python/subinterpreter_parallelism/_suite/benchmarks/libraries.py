"""Five workloads on popular pure-Python libraries: their inputs and their task functions.

markdown on 160 documents, pygments on 20 files, sqlglot on 100 queries, dateutil on 5,000
strings, networkx on 4 graphs (issue 15). The inputs are generated here, deterministically
(seeded ``random.Random``), so that nothing is downloaded at bench time and every competitor
gets the same work. The libraries are pinned in pyproject.toml's ``bench`` extra.

Each task function imports its library inside the call, not at module level: a worker that
runs it for the first time pays for the import, which is what the cold rows measure (the
caller has imported the library already, as a user's script would have). Tasks return a
small checksum of their output, so that results are checked against serial without the
transfer of the output itself weighing on the measurement.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LIBRARIES",
    "Library",
    "date_strings",
    "graph_specs",
    "markdown_documents",
    "python_sources",
    "sql_queries",
]

_WORDS = [
    "parallel",
    "interpreter",
    "worker",
    "pool",
    "task",
    "result",
    "future",
    "queue",
    "memory",
    "import",
    "module",
    "thread",
    "process",
    "fork",
    "start",
    "value",
    "error",
    "cancel",
    "timeout",
    "buffer",
    "pickle",
    "cache",
    "python",
    "library",
]


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


# -- markdown ---------------------------------------------------------------------------------


def markdown_documents(count: int, sections: int, seed: int = 1) -> list[str]:
    """``count`` Markdown documents of ``sections`` sections: headings, emphasis, links, lists,
    code blocks and tables."""
    rng = random.Random(seed)
    documents = []
    for d in range(count):
        parts = [f"# Document {d}\n"]
        for s in range(sections):
            parts.append(f"## Section {s}: {rng.choice(_WORDS)}\n")
            text = " ".join(_sentence(rng, rng.randint(5, 14)) for _ in range(4))
            parts.append(
                text.replace(" pool ", " **pool** ").replace(" task ", " *task* ")
                + f" See [the docs](https://example.org/{d}/{s}).\n"
            )
            parts.append(
                "\n".join(f"- {_sentence(rng, 6)} `{rng.choice(_WORDS)}()`" for _ in range(4)) + "\n"
            )
            parts.append(
                "```python\n" + "\n".join(f"x{i} = {rng.randint(0, 999)}" for i in range(4)) + "\n```\n"
            )
            parts.append(
                "| name | value |\n|---|---|\n"
                + "\n".join(f"| {rng.choice(_WORDS)} | {rng.randint(0, 99)} |" for _ in range(3))
                + "\n"
            )
        documents.append("\n".join(parts))
    return documents


def render_markdown(document: str) -> int:
    """Renders one document to HTML (tables and fenced code on); returns the HTML's CRC-32."""
    import markdown

    return zlib.crc32(markdown.markdown(document, extensions=["tables", "fenced_code"]).encode())


# -- pygments ---------------------------------------------------------------------------------


def python_sources(count: int, functions: int, seed: int = 2) -> list[str]:
    """``count`` Python files of ``functions`` functions each (classes, strings, comments)."""
    rng = random.Random(seed)
    files = []
    for f in range(count):
        lines = [f'"""Module {f}: {_sentence(rng, 8)}"""', "import os", "from typing import Any", ""]
        for n in range(functions):
            name = f"{rng.choice(_WORDS)}_{n}"
            lines += [
                f"def {name}(value: int, label: str = {rng.choice(_WORDS)!r}) -> dict[str, Any]:",
                f'    """{_sentence(rng, 9)}"""',
                f"    total = value * {rng.randint(2, 99)} + {rng.random():.4f}  # {_sentence(rng, 4)}",
                f"    for i in range({rng.randint(3, 30)}):",
                "        if i % 3 == 0 and label:",
                '            total += len(f"{label}-{i}") ** 2',
                "    return {'total': total, 'label': label, 'path': os.sep.join([label, str(value)])}",
                "",
            ]
            if n % 5 == 4:
                lines += [
                    f"class Holder{n}:",
                    f"    items: list[int] = [{', '.join(str(rng.randint(0, 9)) for _ in range(6))}]",
                    "",
                    "    def get(self, index: int) -> int:",
                    "        return self.items[index]",
                    "",
                ]
        files.append("\n".join(lines))
    return files


def highlight_python(source: str) -> int:
    """Highlights one Python file to HTML; returns the HTML's CRC-32."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return zlib.crc32(highlight(source, PythonLexer(), HtmlFormatter()).encode())


# -- sqlglot ----------------------------------------------------------------------------------


def sql_queries(count: int, joins: int, seed: int = 3) -> list[str]:
    """``count`` analytic SQL queries with ``joins`` joins, a subquery, grouping and ordering."""
    rng = random.Random(seed)
    queries = []
    for _ in range(count):
        tables = [f"t{rng.randint(0, 20)}" for _ in range(joins + 1)]
        select = ", ".join(f"{t}.c{rng.randint(0, 9)} AS a{i}" for i, t in enumerate(tables))
        query = f"SELECT {select}, COUNT(*) AS n, SUM({tables[0]}.amount) AS total FROM {tables[0]}"
        for i, table in enumerate(tables[1:], 1):
            query += f" LEFT JOIN {table} AS j{i} ON j{i}.id = {tables[0]}.k{i}"
        query += (
            f" WHERE {tables[0]}.day >= DATE '2024-01-{rng.randint(10, 28)}'"
            f" AND {tables[0]}.kind IN (SELECT kind FROM kinds WHERE weight > {rng.randint(1, 50)})"
            f" AND COALESCE({tables[0]}.note, '') LIKE '%{rng.choice(_WORDS)}%'"
            f" GROUP BY {', '.join(f'a{i}' for i in range(len(tables)))}"
            f" HAVING COUNT(*) > {rng.randint(1, 9)} ORDER BY total DESC LIMIT {rng.randint(10, 100)}"
        )
        queries.append(query)
    return queries


def transpile_sql(query: str) -> int:
    """Parses a DuckDB query, optimizes nothing, writes it as Spark SQL; returns its CRC-32."""
    import sqlglot

    return zlib.crc32("\n".join(sqlglot.transpile(query, read="duckdb", write="spark", pretty=True)).encode())


# -- dateutil ---------------------------------------------------------------------------------

_DATE_FORMATS = (
    "{y}-{m:02d}-{d:02d}T{H:02d}:{M:02d}:{S:02d}",
    "{d} {mon} {y} {H}:{M:02d}",
    "{mon} {d}, {y}",
    "{m}/{d}/{y} {H:02d}:{M:02d}",
    "{wd}, {d} {mon} {y} {H:02d}:{M:02d}:{S:02d} +0{z}00",
    "{y}{m:02d}{d:02d}",
    "{d}.{m}.{y}",
)
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def date_strings(count: int, seed: int = 4) -> list[str]:
    """``count`` date strings in several formats (ISO, RFC 2822, US, European, compact)."""
    import datetime

    rng = random.Random(seed)
    out = []
    for _ in range(count):
        y, m, d = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
        weekday = datetime.date(y, m, d).strftime("%a")
        out.append(
            rng.choice(_DATE_FORMATS).format(
                y=y,
                m=m,
                d=d,
                H=rng.randint(0, 23),
                M=rng.randint(0, 59),
                S=rng.randint(0, 59),
                mon=_MONTHS[m - 1],
                wd=weekday,
                z=rng.randint(1, 9),
            )
        )
    return out


def parse_dates(strings: list[str]) -> int:
    """Parses a batch of date strings; returns the CRC-32 of their ISO forms."""
    from dateutil import parser

    return zlib.crc32("|".join(parser.parse(s, dayfirst=False).isoformat() for s in strings).encode())


# -- networkx ---------------------------------------------------------------------------------


def graph_specs(count: int, nodes: int, edges: int, seed: int = 5) -> list[tuple[int, int, int]]:
    """``count`` random graphs as ``(nodes, edges, seed)``: each task builds its own graph."""
    return [(nodes, edges, seed + g) for g in range(count)]


def graph_measures(nodes: int, edges: int, seed: int) -> tuple[int, int, float]:
    """Builds a seeded G(n, m) graph; returns its components, its diameter-ish longest shortest
    path from node 0, and the rounded sum of its betweenness centrality (pure Python)."""
    import networkx as nx

    graph = nx.gnm_random_graph(nodes, edges, seed=seed)
    components = nx.number_connected_components(graph)
    lengths = nx.single_source_shortest_path_length(graph, 0)
    centrality = nx.betweenness_centrality(graph)
    return components, max(lengths.values()), round(sum(centrality.values()), 6)


# -- the registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Library:
    """One library workload: what the caller imports, the task, and its calls for a size."""

    name: str
    #: The module the caller imports before any timing (a script would import it at its top).
    module: str
    task: Callable[..., Any]
    #: ``calls(scale)``: the argument tuples of every task; ``scale`` (0, 1] shrinks the work
    #: per item, never the item counts the issue names (the tests use tiny scales).
    calls: Callable[[float], list[tuple[Any, ...]]]
    #: What the full size is, in prose (the report's row label).
    what: str


def _at_least(value: float, floor: int = 1) -> int:
    return max(floor, int(value))


def _date_calls(scale: float) -> list[tuple[Any, ...]]:
    strings = date_strings(_at_least(5_000 * scale, 40))
    batch = max(1, len(strings) // 20)  # 20 tasks of 250 strings at full size
    return [(strings[i : i + batch],) for i in range(0, len(strings), batch)]


LIBRARIES: tuple[Library, ...] = (
    Library(
        "markdown",
        "markdown",
        render_markdown,
        lambda s: [(d,) for d in markdown_documents(160, _at_least(2 * s))],
        "markdown, 160 documents",
    ),
    Library(
        "pygments",
        "pygments.lexers",
        highlight_python,
        lambda s: [(f,) for f in python_sources(20, _at_least(15 * s))],
        "pygments, 20 Python files",
    ),
    Library(
        "sqlglot",
        "sqlglot",
        transpile_sql,
        lambda s: [(q,) for q in sql_queries(100, _at_least(6 * s))],
        "sqlglot, 100 queries",
    ),
    Library("dateutil", "dateutil.parser", parse_dates, _date_calls, "dateutil, 5,000 date strings"),
    Library(
        "networkx",
        "networkx",
        graph_measures,
        lambda s: graph_specs(4, _at_least(200 * s, 20), _at_least(800 * s, 40)),
        "networkx, 4 graphs",
    ),
)
