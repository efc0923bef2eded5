"""Multipart uploads (``/audio/transcriptions``, ``/images/edits``...) read as they arrive.

`read_form` reads the fields that come before the first file (the SDKs send ``model`` and the
other fields first) and stops there: the gateway can route the request while the file is still
on its way. `Form.stream` then re-encodes the fields (with ``model`` replaced) and relays the
rest of the client's body part by part, so the upload goes to the upstream as it comes and is
never held whole in memory. The byte limit (``max_upload_bytes``) is enforced all the way.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from .exceptions import GatewayError, InvalidRequestError
from .validation import too_large

__all__ = ["Form", "read_form"]

_FIELDS_LIMIT = 1024 * 1024  # the non-file fields of one form, together

# A parsed piece of the body: ("part", headers), ("data", bytes) or ("end", b"").
Event = tuple[str, Any]


class _Parser:
    """python-multipart's streaming parser, its callbacks collected as `Event`s."""

    def __init__(self, boundary: bytes) -> None:
        self.events: list[Event] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._name = self._value = b""

        def header_field(data: bytes, start: int, end: int) -> None:
            self._name += data[start:end]

        def header_value(data: bytes, start: int, end: int) -> None:
            self._value += data[start:end]

        def header_end() -> None:
            self._headers.append((self._name, self._value))
            self._name = self._value = b""

        def headers_finished() -> None:
            self.events.append(("part", self._headers))
            self._headers = []

        callbacks: Any = {
            "on_header_field": header_field,
            "on_header_value": header_value,
            "on_header_end": header_end,
            "on_headers_finished": headers_finished,
            "on_part_data": lambda data, start, end: self.events.append(("data", data[start:end])),
            "on_part_end": lambda: self.events.append(("end", b"")),
        }
        self._parser = MultipartParser(boundary, callbacks)

    def feed(self, data: bytes) -> list[Event]:
        try:
            self._parser.write(data)
        except MultipartParseError as exc:
            raise InvalidRequestError(f"The multipart/form-data body is malformed ({exc}).") from None
        events, self.events = self.events, []
        return events


class _Body:
    """The client's body after the fields already read: its remaining events and chunks."""

    def __init__(self, parser: _Parser, pending: list[Event], chunks: AsyncIterator[bytes],
                 size: int, limit: int) -> None:
        self.parser, self.pending, self.chunks = parser, pending, chunks
        self.size, self.limit = size, limit

    async def events(self) -> AsyncIterator[Event]:
        for event in self.pending:
            yield event
        self.pending = []
        async for chunk in self.chunks:
            self.size += len(chunk)
            if self.size > self.limit:
                raise too_large(self.limit)
            for event in self.parser.feed(chunk):
                yield event


class Form(dict[str, Any]):
    """The fields of a multipart request (``model``, ``response_format``...), and the rest of
    its body (the file parts and any later field) that `stream` relays without buffering."""

    def __init__(self, fields: dict[str, Any], rest: _Body | None = None) -> None:
        super().__init__(fields)
        self.rest = rest
        self.failure: GatewayError | None = None  # what ended `stream` early (size limit...)
        self.boundary = f"compatgate-{uuid.uuid4().hex}".encode()

    def replace(self, **fields: Any) -> Form:
        """A copy with ``fields`` changed, relaying the same upload."""
        return Form({**self, **fields}, self.rest)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary.decode()}"

    async def stream(self) -> AsyncIterator[bytes]:
        """The form re-encoded as multipart/form-data, the upload relayed as it arrives
        (once: the client's body is read as this runs)."""
        delimiter = b"--" + self.boundary + b"\r\n"
        for name, values in self.items():
            for value in values if isinstance(values, list) else (values,):
                yield delimiter + _disposition(name) + b"\r\n\r\n" + str(value).encode() + b"\r\n"
        if self.rest is not None:
            rest, self.rest = self.rest, None
            try:
                async for kind, value in rest.events():
                    if kind == "part":
                        head = b"".join(k + b": " + v + b"\r\n" for k, v in value)
                        yield delimiter + head + b"\r\n"
                    elif kind == "data":
                        if value:
                            yield value
                    else:
                        yield b"\r\n"
            except GatewayError as exc:
                self.failure = exc
                raise
        yield b"--" + self.boundary + b"--\r\n"


async def read_form(request: Request, limit: int) -> Form:
    """The fields before the first file part of a multipart/form-data request; the rest is
    left to `Form.stream`. 413 past ``limit`` bytes, 400 when not multipart."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidRequestError(
            "This endpoint expects a multipart/form-data body (Content-Type: multipart/form-data)."
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    parser = _Parser(boundary)
    chunks = request.stream().__aiter__()
    fields: dict[str, Any] = {}
    name: str | None = None
    value = b""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        events = parser.feed(chunk)
        for index, (kind, data) in enumerate(events):
            if kind == "part":
                name, filename = _names(data)
                if filename is not None:
                    return Form(fields, _Body(parser, events[index:], chunks, size, limit))
                value = b""
            elif kind == "data":
                value += data
                if len(value) > _FIELDS_LIMIT:
                    raise InvalidRequestError("A form field is larger than 1 MiB.", param=name)
            elif name is not None:
                text = value.decode("utf-8", "replace")
                previous = fields.get(name)
                if previous is None:
                    fields[name] = text
                else:  # a repeated field (``timestamp_granularities[]``): keep every value
                    fields[name] = [*previous, text] if isinstance(previous, list) else [previous, text]
                name = None
    return Form(fields)


def _names(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    for key, value in headers:
        if key.lower() == b"content-disposition":
            _, options = parse_options_header(value)
            name, filename = options.get(b"name"), options.get(b"filename")
            return (name.decode("utf-8", "replace") if name is not None else None,
                    filename.decode("utf-8", "replace") if filename is not None else None)
    return None, None


def _disposition(name: str) -> bytes:
    return b'Content-Disposition: form-data; name="' + name.replace('"', "%22").encode() + b'"'
