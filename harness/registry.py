"""Name -> object registries that refuse duplicates and explain unknown names."""
from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

from harness.errors import ConvbenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered registry of ``kind`` objects keyed by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"duplicate {self.kind} {name!r}")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConvbenchError(unknown_name(self.kind, name, self._items))
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
