"""Default plugin: the OpenAI API's operations (`compatgate.operations.OPENAI_OPERATIONS`)."""

from __future__ import annotations

from collections.abc import Callable

from ..hookspecs import hookimpl
from ..operations import OPENAI_OPERATIONS, Operation


@hookimpl(trylast=True)
def register_operations(register: Callable[[Operation], None]) -> None:
    for operation in OPENAI_OPERATIONS:
        register(operation)
