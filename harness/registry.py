"""Name -> object registries that refuse duplicates and explain unknown names."""
from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

from harness.errors import ConvbenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered registry of ``kind`` objects keyed by name.

    ``contributor`` names the plugin adding now (set by ``plugin_manager.build_registries`` around each plugin's
    hook), so a duplicate names both plugins; ``unavailable`` maps a name no plugin registered to why (its plugin
    failed to load or is disabled), so asking for it says that instead of "unknown"; ``broken`` lists the plugins
    that failed to load, named in every "unknown" answer (one of them may have been meant to add the name).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._owners: dict[str, str | None] = {}
        self.contributor: str | None = None
        self.unavailable: dict[str, str] = {}
        self.broken: list[str] = []

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            first, second = self._owners[name], self.contributor
            where = f": registered by {first} and again by {second}" if first and second else " (registered twice)"
            raise ConvbenchError(f"duplicate {self.kind} {name!r}{where}")
        self._items[name] = item
        self._owners[name] = self.contributor
        return item

    def withdraw(self, contributor: str) -> None:
        """Drops everything ``contributor`` added (its plugin failed halfway through its hook)."""
        for name in [n for n, owner in self._owners.items() if owner == contributor]:
            del self._items[name], self._owners[name]

    def get(self, name: str) -> T:
        if name not in self._items:
            if name in self.unavailable:
                raise ConvbenchError(f"{self.kind} {name} is unavailable: {self.unavailable[name]}")
            broken = f" (plugins that failed to load: {', '.join(self.broken)}; see `convbench plugins`)" if self.broken else ""
            raise ConvbenchError(unknown_name(self.kind, name, self._items) + broken)
        return self._items[name]

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)


def unknown_name(kind: str, name: str, known: object) -> str:
    """"unknown model 'vgg15' (did you mean 'vgg16'?); known: a, b, c"."""
    names = sorted(known)  # type: ignore[call-overload]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; known: {', '.join(names) or '(none)'}"
