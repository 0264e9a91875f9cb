"""What `perpetua strategies list` shows: every nameable strategy with its parameter model's fields.

Builtins come first (in `strategies.loader.BUILTINS` order), then installed entry points of the
`perpetua.strategies` group by name. A strategy that cannot be loaded (a builtin whose module is
not written yet, a broken plugin) is listed with the loader's error instead of its parameters.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic.fields import FieldInfo

from core.config import ConfigError
from strategies.loader import available, resolve


def type_name(annotation: Any) -> str:
    """A readable type: `Decimal`, `int | None`, `list[str]`."""
    if annotation is Ellipsis:
        return "..."
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    return str(annotation).replace("typing.", "")


def _json_value(value: Any) -> Any:
    """A default as JSON can show it (Decimals and other objects as their text)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def _field(name: str, info: FieldInfo) -> dict[str, Any]:
    required = info.is_required()
    default = None if required else info.get_default(call_default_factory=True)
    return {
        "name": name,
        "type": type_name(info.annotation),
        "required": required,
        "default": _json_value(default),
        "description": info.description or "",
    }


def catalog() -> list[dict[str, Any]]:
    """One entry per nameable strategy: name, source, reference, class, API version, params or error."""
    entries = []
    for item in available():
        entry: dict[str, Any] = {
            "name": item.name,
            "source": item.source,
            "reference": item.reference,
            "distribution": item.distribution,
            "shadowed_by_builtin": item.shadowed,
            "class": None,
            "api_version": None,
            "summary": "",
            "params": [],
            "error": None,
        }
        try:
            # The route a config takes; a shadowed entry point is reached by its class path only.
            cls = resolve(item.reference if item.shadowed else item.name, item.name)
        except ConfigError as exc:
            entry["error"] = "; ".join(issue.message for issue in exc.issues)
            entries.append(entry)
            continue
        entry["class"] = f"{cls.__module__}:{cls.__qualname__}"
        entry["api_version"] = ".".join(str(v) for v in cls.api_version)
        entry["summary"] = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        entry["params"] = [_field(name, info) for name, info in cls.Params.model_fields.items()]
        entries.append(entry)
    return entries
