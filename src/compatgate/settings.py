"""Checking configuration tables: the one checker of the core's configuration and of every
plugin's settings.

A `Table` is one TOML table being read: its values, where it is (``plugins.router.retry``) and
the file it came from (``source``). It refuses keys it does not know, naming the closest known
one (`only`), reads a value of a given type (`value`), a nested table (`table`) or an array of
tables (`tables`); any other rule of a plugin's (a range, a choice) raises `error`, which names
the place the same way. Every mistake is a `ConfigError` whose message starts with the source::

    table = Table(gateway.config.plugin("mine"), "plugins.mine", gateway.config.source)
    table.only({"limit", "mode"})
    limit = table.value("limit", int, 10)
    if limit < 1:
        raise table.error("must be at least 1", "limit")
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar, overload

from .exceptions import ConfigError
from .hints import did_you_mean

__all__ = ["UNKNOWN_KEY", "UNKNOWN_NAMED_KEY", "Table"]

T = TypeVar("T")
D = TypeVar("D")

#: How `Table.only` words an unknown key by default: ``unknown key gateway.acess_log (did you
#: mean 'access_log'?) (allowed here: ...)``. A template may use ``path`` (the key's place),
#: ``where`` (the table's), ``key``, ``hint`` and ``allowed`` (the known keys, listed).
UNKNOWN_KEY = "unknown key {path}{hint} (allowed here: {allowed})"
#: The same, naming the key and the table apart: ``unknown key 'colour' in plugins.otel``.
UNKNOWN_NAMED_KEY = "unknown key {key!r} in {where}{hint} (allowed here: {allowed})"


class Table(Mapping[str, Any]):
    """A configuration table at ``where`` (``""`` for the top level) of ``source`` (the file,
    ``<dict>``; None to leave the prefix to the caller). ``values`` that is not a table is a
    `ConfigError` (``plugins.x must be a table``). Reading is a mapping's: ``table["key"]``,
    ``"key" in table``, iteration."""

    __slots__ = ("_values", "source", "where")

    def __init__(self, values: Any, where: str = "", source: str | None = None) -> None:
        if not isinstance(values, Mapping):
            raise ConfigError(_prefixed(source, f"{where} must be a table"))
        self._values: Mapping[str, Any] = values
        self.where = where
        self.source = source

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<Table {self.where or '<top>'} of {self.source}>"

    def path(self, key: str | None = None) -> str:
        """Where ``key`` is (``plugins.router.retry.max_attempts``); the table itself for None."""
        if key is None:
            return self.where
        return f"{self.where}.{key}" if self.where else key

    def error(self, message: str, key: str | None = None) -> ConfigError:
        """The `ConfigError` ``"<source>: <where>.<key> <message>"`` (``key`` None: the table)."""
        return ConfigError(_prefixed(self.source, f"{self.path(key)} {message}"))

    def only(self, allowed: Iterable[str], *, message: str = UNKNOWN_KEY, listed: str | None = None) -> None:
        """Refuse a key not in ``allowed`` (the first one, alphabetically), with the closest
        allowed key as a hint; ``message`` words it (see `UNKNOWN_KEY`), ``listed`` replaces
        the list of allowed keys it shows."""
        known = set(allowed)
        unknown = sorted(set(self._values) - known)
        if unknown:
            key = unknown[0]
            text = message.format(
                path=self.path(key), where=self.where, key=key, hint=did_you_mean(key, known),
                allowed=listed if listed is not None else ", ".join(sorted(known)),
            )
            raise ConfigError(_prefixed(self.source, text))

    @overload
    def value(self, key: str, kind: type[T]) -> T | None: ...

    @overload
    def value(self, key: str, kind: type[T], default: D) -> T | D: ...

    def value(self, key: str, kind: type[Any], default: Any = None) -> Any:
        """The value of ``key``, which must be of type ``kind`` (``<where>.<key> must be of
        type int``), or ``default`` when absent. A ``float`` accepts an integer (returned as a
        float); a ``bool`` is no integer."""
        if key not in self._values:
            return default
        value = self._values[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if (kind is not bool and isinstance(value, bool)) or not isinstance(value, kind):
            raise self.error(f"must be of type {kind.__name__}", key)
        return value

    def table(self, key: str) -> Table:
        """The table at ``key`` (an empty one when absent)."""
        return Table(self._values.get(key, {}), self.path(key), self.source)

    def tables(self, key: str) -> list[Table]:
        """The array of tables at ``key`` (``[[key]]``; empty when absent), each named
        ``<key>[<index>]``."""
        values = self._values.get(key, [])
        if not isinstance(values, list):
            raise self.error(f"must be an array of tables ([[{self.path(key)}]])", key)
        return [Table(value, f"{self.path(key)}[{index}]", self.source) for index, value in enumerate(values)]


def _prefixed(source: str | None, message: str) -> str:
    return f"{source}: {message}" if source is not None else message
