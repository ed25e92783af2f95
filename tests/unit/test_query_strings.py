"""A request's query string as parameters (``opengroup.api.exchange.query_of``), for
every transport and batch item alike.

Rules pinned here: the first value of a name wins; a name without ``=`` has the value
""; empty fields are skipped; ``%`` escapes and ``+`` are decoded as
``urllib.parse.parse_qsl`` decodes them. The fast split for strings without escapes
must give exactly what the general parser gives.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from opengroup.api.exchange import query_of


def reference(query_string: str) -> dict[str, str]:
    query: dict[str, str] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        query.setdefault(name, value)
    return query


def test_a_poll_query() -> None:
    assert query_of("t=r&reactors=5") == {"t": "r", "reactors": "5"}
    assert query_of("") == {}
    assert query_of("a=1&a=2&&b&=x") == {"a": "1", "b": "", "": "x"}
    assert query_of("required=sogs%2Cblind&x=a+b") == {"required": "sogs,blind", "x": "a b"}


@given(st.text(alphabet="ab=&%+2C;é ", max_size=40))
def test_every_query_string_is_read_as_the_general_parser_reads_it(query_string: str) -> None:
    assert query_of(query_string) == reference(query_string)
