"""A config section: a plain class whose annotated attributes are its fields, each declared once.

    class RotationConfig(ConfigSection):
        keep: int = key(48, Int(0, 1_000_000), "rotated files kept; 0: keep all")

A section behaves as a dataclass does (keyword or positional `__init__` with the defaults, `==` field by
field, a `repr`, unhashable), and `dataclasses.replace`, `fields`, `is_dataclass` and `asdict` accept it.
It is not built by `@dataclass`: importing dataclasses (and inspect) and making the schema's dataclasses
cost a `--check-config` about 18 ms (docs/operations.md#start-up). The `dataclasses.Field`s are built only when
something asks for them (`__dataclass_fields__`, read by every `dataclasses` function), and that
something has imported `dataclasses` already.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~4 ms of every start
if TYPE_CHECKING:
    from collections.abc import Callable
    from dataclasses import Field
    from typing import Any

    from icmpsensor.config.kinds import Kind


class Key:
    """One field of a section: a config key (its kind says how YAML is read into it) or, with no kind, a
    plain attribute (`Config.source`). `default_factory` is set for a sub-section (its class)."""

    __slots__ = ("default", "default_factory", "doc", "kind", "name", "restart")

    def __init__(self, default: Any = None, kind: Kind | None = None, doc: str = "", *, restart: bool = False,
                 default_factory: Callable[[], Any] | None = None) -> None:
        self.name = ""  # set by the class that declares it
        self.default, self.default_factory = default, default_factory
        self.kind, self.doc, self.restart = kind, doc, restart

    def initial(self) -> Any:
        return self.default_factory() if self.default_factory is not None else self.default


class _DataclassFields:
    """`__dataclass_fields__`, built for a section the first time it is read: the fields of a dataclass
    made with the same names, annotations and defaults (the metadata holds the Key)."""

    def __get__(self, instance: object, owner: type[ConfigSection]) -> dict[str, Field[Any]]:
        import dataclasses

        shadow = dataclasses.make_dataclass(owner.__name__, [
            (k.name, owner.__annotations__.get(k.name, "object"),
             dataclasses.field(default_factory=k.default_factory, metadata={"key": k}) if k.default_factory
             else dataclasses.field(default=k.default, metadata={"key": k}))
            for k in owner.__keys__
        ])
        fields: dict[str, Field[Any]] = shadow.__dataclass_fields__
        owner.__dataclass_fields__ = fields  # type: ignore[assignment]  # the next read finds them directly
        return fields


class ConfigSection:
    """The base of every section: collects each subclass's fields, in the order they are written."""

    __keys__: tuple[Key, ...] = ()
    __dataclass_fields__ = _DataclassFields()
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: as a dataclass

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        keys = []
        # (not inspect.get_annotations: importing inspect is what @dataclass costs)
        for name in cls.__dict__.get("__annotations__", {}):  # noqa: RUF063
            value = cls.__dict__.get(name)
            k = value if isinstance(value, Key) else Key(value)
            k.name = name
            if k.default_factory is not None:
                delattr(cls, name)
            else:
                setattr(cls, name, k.default)  # the class attribute is the default, as with a dataclass
            keys.append(k)
        cls.__keys__ = (*cls.__keys__, *keys)
        cls.__dataclass_fields__ = _DataclassFields()  # its own: a base's, once built, lacks these keys

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        keys = self.__keys__
        name = type(self).__name__
        if len(args) > len(keys):
            raise TypeError(f"{name}() takes {len(keys)} positional arguments but {len(args)} were given")
        given = dict(zip([k.name for k in keys], args, strict=False))
        for field, value in kwargs.items():
            if field in given:
                raise TypeError(f"{name}() got multiple values for argument {field!r}")
            given[field] = value
        values = self.__dict__
        for k in keys:
            values[k.name] = given.pop(k.name) if k.name in given else k.initial()
        if given:
            raise TypeError(f"{name}() got an unexpected keyword argument {next(iter(given))!r}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, k.name) for k in self.__keys__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k.name}={getattr(self, k.name)!r}" for k in self.__keys__)
        return f"{type(self).__qualname__}({fields})"


def make_section(name: str, module: str, keys: dict[str, tuple[type, Key]]) -> type[ConfigSection]:
    """A section class built from a table (`name: (annotation, key(...))`), importable as `module.name` (so
    that a config pickles, as a reload sent to the workers does)."""
    namespace: dict[str, Any] = {"__annotations__": {n: t for n, (t, _) in keys.items()}, "__module__": module,
                                 "__qualname__": name}
    namespace.update((n, k) for n, (_, k) in keys.items())
    return type(name, (ConfigSection,), namespace)


def config_fields(cls: type) -> list[Key]:
    """The fields of a section that are YAML keys, in documented order."""
    return [k for k in cls.__keys__ if k.kind is not None]  # type: ignore[attr-defined]
