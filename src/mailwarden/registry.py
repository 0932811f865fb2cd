"""A small name -> component registry; duplicate names are an error."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Components keyed by their stable kebab-case ``name`` attribute, in registration order."""

    def __init__(self, kind: str, components: Iterable[T] = ()) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        for component in components:
            self.add(component)

    def add(self, component: T) -> T:
        name = getattr(component, "name", None)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} component {component!r} has no name")
        if name in self._items:
            raise ValueError(f"duplicate {self.kind} name: {name}")
        self._items[name] = component
        return component

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self._items) or "none"
            raise KeyError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
