"""Strict validation of Voice Live client events against the ``azure-ai-voicelive`` SDK's typed models.

    problems = client_event_problems({"type": "session.update", "session": {...}})   # [] when it conforms

The SDK's models (``azure.ai.voicelive.models``, generated from Microsoft's
TypeSpec) deserialize leniently: an unknown key or a wrong type goes through.
This walks the same models strictly, from their own type hints and field
declarations: the event's ``type`` picks its class (the models' discriminator
table, as ``Model._deserialize`` does), every key must be a declared field,
every value must match the field's type (unions, lists, literals, enums, nested
models with their own discriminators), and a field whose type is not Optional
must be present.
"""

from __future__ import annotations

import enum
import sys
import typing
from typing import Any

from azure.ai.voicelive import _unions
from azure.ai.voicelive import models as voicelive_models
from azure.ai.voicelive._utils.model_base import Model, _RestField


def client_event_problems(event: Any) -> list[str]:
    """Every way ``event`` departs from ``ClientEvent`` and its subclasses; empty when it conforms."""
    problems: list[str] = []
    _check(event, voicelive_models.ClientEvent, "event", problems)
    return problems


def _hints(cls: type) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        module = sys.modules.get(klass.__module__)
        if module is not None:
            namespace.update(vars(module))
    namespace.update({"_models": voicelive_models, "_unions": _unions})
    return typing.get_type_hints(cls, globalns=namespace)


def _fields(cls: type) -> dict[str, tuple[str, _RestField]]:
    """The model's fields by wire name: {name: (attribute, field)}, as ``Model.__new__`` collects them."""
    found: dict[str, tuple[str, _RestField]] = {}
    for klass in reversed(cls.__mro__):
        for attribute, value in vars(klass).items():
            if not attribute.startswith("_") and isinstance(value, _RestField):
                found[value._rest_name_input or attribute] = (attribute, value)
    return found


def _subclass(cls: type, value: dict[str, Any]) -> tuple[type | None, str]:
    """The discriminated subclass ``value`` names (the SDK's rule), or None and why."""
    seen: list[str] = []
    while cls.__dict__.get("__mapping__"):
        field = cls._get_discriminator(seen)
        if field is None:
            break
        seen.append(field._rest_name)
        mapping = cls.__dict__["__mapping__"]
        chosen = mapping.get(value.get(field._rest_name))
        if chosen is None:
            return None, f"{field._rest_name}={value.get(field._rest_name)!r} is none of {sorted(mapping)}"
        if chosen is cls:
            break
        cls = chosen
    return cls, ""


def _optional(hint: Any) -> bool:
    return typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)


def _check(value: Any, hint: Any, path: str, problems: list[str]) -> None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return
    if origin is typing.Union:
        if value is None and type(None) in args:
            return
        attempts = []
        for member in (a for a in args if a is not type(None)):
            found: list[str] = []
            _check(value, member, path, found)
            if not found:
                return
            attempts.append(found)
        problems.append(f"{path}: {value!r:.80} matches none of its types ({attempts})")
    elif origin is typing.Literal:
        allowed = [a.value if isinstance(a, enum.Enum) else a for a in args]
        if isinstance(value, bool) or value not in allowed:
            problems.append(f"{path}: {value!r} is not one of {allowed}")
    elif origin is list:
        if not isinstance(value, list):
            problems.append(f"{path}: not a list")
            return
        for index, item in enumerate(value):
            _check(item, args[0], f"{path}[{index}]", problems)
    elif origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{path}: not an object")
            return
        for key, item in value.items():
            _check(item, args[1], f"{path}.{key}", problems)
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        if not isinstance(value, str) or value not in {member.value for member in hint}:
            problems.append(f"{path}: {value!r} is not one of {[member.value for member in hint]}")
    elif isinstance(hint, type) and issubclass(hint, Model):
        _check_model(value, hint, path, problems)
    elif hint in (int, float):
        number = isinstance(value, (int, float)) if hint is float else isinstance(value, int)
        if not number or isinstance(value, bool):
            problems.append(f"{path}: {value!r} is not {'a number' if hint is float else 'an integer'}")
    elif hint in (str, bool):
        if type(value) is not hint:
            problems.append(f"{path}: {value!r} is not a {hint.__name__}")
    elif hint is type(None):
        if value is not None:
            problems.append(f"{path}: {value!r} is not null")
    else:
        problems.append(f"{path}: the validator does not know the type {hint!r}")


def _check_model(value: Any, cls: type, path: str, problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(f"{path}: not an object ({cls.__name__})")
        return
    chosen, why = _subclass(cls, value)
    if chosen is None:
        problems.append(f"{path}: {why}")
        return
    fields, hints = _fields(chosen), _hints(chosen)
    for name, (attribute, _) in fields.items():
        if name not in value and not _optional(hints.get(attribute, typing.Any)):
            problems.append(f"{path}.{name}: required by {chosen.__name__}, missing")
    for name, item in value.items():
        if name not in fields:
            problems.append(f"{path}.{name}: not a field of {chosen.__name__}")
            continue
        _check(item, hints.get(fields[name][0], typing.Any), f"{path}.{name}", problems)
