"""The web edge: public pages, the editors' dashboard and the JSON API.

Path ids use the ``id`` convertor registered here (before any route module is imported): ASCII
digits only, at most 18 of them, so every id a path can carry fits a 64-bit column and a path
like ``/archive/99999999999999999999`` or ``/archive/²`` is a plain 404, never a 500.
"""

from starlette.convertors import Convertor, register_url_convertor


class IdConvertor(Convertor[int]):
    """A row id in a path: 1 to 18 ASCII digits (below 10**18, so within 64 bits)."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("id", IdConvertor())
