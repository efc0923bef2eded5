"""Multipart uploads (``/audio/transcriptions``, ``/images/edits``...) read as they arrive.

`read_form` reads the fields that come before the first file (the Python SDK sends ``model``
and the other fields first) and, when every field the gateway checks is among them, stops
there: the gateway can route the request while the file is still on its way, and `Form.stream`
re-encodes the fields (``model`` replaced) and relays the rest of the client's body part by
part, so the upload goes upstream as it comes and is never held whole in memory. When a checked
field comes after a file (the Node SDK sends fields in the caller's order), the files are
spooled (memory, then a temporary file) until the fields are known. The gateway forwards exactly
the fields it checked: a repeated field is a 400, and so is a checked field that arrives after
the files while they are already streaming. The byte limit (``max_upload_bytes``) holds all the
way.
"""

from __future__ import annotations

import tempfile
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
_SPOOL_MEMORY = 1024 * 1024  # spooled file bytes kept in memory before going to a temporary file
_REPLAY_PIECE = 64 * 1024

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


class _Rest:
    """The client's body after the fields read so far: its remaining events and chunks, read
    as `Form.stream` relays them (the upload is never held whole in memory)."""

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


class _Spool:
    """File parts read before every checked field had arrived, kept in a temporary file that
    stays in memory up to 1 MiB: their headers, and where their data starts and ends."""

    def __init__(self) -> None:
        self.file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115 - closed by Form.stream
        self.parts: list[tuple[bytes, int, int]] = []
        self._head = b""
        self._start = 0

    def begin(self, headers: list[tuple[bytes, bytes]]) -> None:
        self._head = b"".join(k + b": " + v + b"\r\n" for k, v in headers)
        self._start = self.file.tell()

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def end(self) -> None:
        self.parts.append((self._head, self._start, self.file.tell()))

    async def replay(self, delimiter: bytes) -> AsyncIterator[bytes]:
        try:
            for head, start, end in self.parts:
                yield delimiter + head + b"\r\n"
                self.file.seek(start)
                while start < end:
                    data = self.file.read(min(_REPLAY_PIECE, end - start))
                    start += len(data)
                    yield data
                yield b"\r\n"
        finally:
            self.file.close()


class Form(dict[str, Any]):
    """The fields of a multipart request (``model``, ``response_format``...) and its files.

    The files come from the client's body as `stream` relays them (``rest``), or from a spool
    when they came before a field the gateway checks. ``size`` is the upload's size as the
    client declared it (else the limit); ``sent`` counts the bytes relayed so far.
    ``fields_are_text``: every field value is text (validators read numbers from it)."""

    fields_are_text = True

    def __init__(self, fields: dict[str, Any], rest: _Rest | None = None, spool: _Spool | None = None,
                 *, size: int = 0, checked: frozenset[str] = frozenset()) -> None:
        super().__init__(fields)
        self.rest, self.spool, self.size, self.checked = rest, spool, size, checked
        self.sent = 0
        self.failure: GatewayError | None = None  # what ended `stream` early (size limit...)
        self.boundary = f"compatgate-{uuid.uuid4().hex}".encode()

    def replace(self, **fields: Any) -> Form:
        """A copy with ``fields`` changed, relaying the same upload."""
        form = Form({**self, **fields}, self.rest, self.spool, size=self.size, checked=self.checked)
        form.boundary = self.boundary
        return form

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary.decode()}"

    async def stream(self) -> AsyncIterator[bytes]:
        """The form re-encoded as multipart/form-data, the files relayed as they arrive (once:
        the client's body is read as this runs). A field after the files that repeats a field
        or is one the gateway checks ends the upload with a 400 (in ``failure``)."""
        delimiter = b"--" + self.boundary + b"\r\n"
        for name, values in self.items():
            for value in values if isinstance(values, list) else (values,):
                piece = delimiter + _disposition(name) + b"\r\n\r\n" + str(value).encode() + b"\r\n"
                self.sent += len(piece)
                yield piece
        try:
            if self.spool is not None:
                spool, self.spool = self.spool, None
                async for piece in spool.replay(delimiter):
                    self.sent += len(piece)
                    yield piece
            if self.rest is not None:
                rest, self.rest = self.rest, None
                async for piece in self._relay(rest, delimiter):
                    self.sent += len(piece)
                    yield piece
        except GatewayError as exc:
            self.failure = exc
            raise
        yield b"--" + self.boundary + b"--\r\n"

    async def _relay(self, rest: _Rest, delimiter: bytes) -> AsyncIterator[bytes]:
        async for kind, value in rest.events():
            if kind == "part":
                name, filename = _names(value)
                if filename is None and name is not None:
                    _check_late(name, self)
                yield delimiter + b"".join(k + b": " + v + b"\r\n" for k, v in value) + b"\r\n"
            elif kind == "data":
                if value:
                    yield value
            else:
                yield b"\r\n"


def _check_late(name: str, form: Form) -> None:
    if name in form and not name.endswith("[]"):
        raise _duplicate(name)
    if name in form.checked:
        raise InvalidRequestError(
            f"The form field '{name}' must come before the file parts.", param=name, code="invalid_value"
        )


def _duplicate(name: str) -> InvalidRequestError:
    return InvalidRequestError(f"The form field '{name}' is given more than once.", param=name,
                               code="duplicate_parameter")


async def read_form(request: Request, limit: int, checked: frozenset[str] = frozenset({"model"})) -> Form:
    """The fields of a multipart/form-data request. When every ``checked`` field came before the
    first file, the rest is left to `Form.stream` (the upload goes upstream as it arrives);
    otherwise the whole body is read, the files spooled. A repeated field (but ``name[]``
    arrays) is a 400; 413 past ``limit`` bytes; 400 when not multipart."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidRequestError(
            "This endpoint expects a multipart/form-data body (Content-Type: multipart/form-data)."
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    size_hint = int(declared) if declared is not None and declared.isdigit() else limit
    parser = _Parser(boundary)
    chunks = request.stream().__aiter__()
    fields: dict[str, Any] = {}
    spool: _Spool | None = None
    name: str | None = None
    in_file = False
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
                in_file = filename is not None
                if in_file:
                    if spool is None and checked <= fields.keys():
                        return Form(fields, _Rest(parser, events[index:], chunks, size, limit),
                                    size=size_hint, checked=checked)
                    spool = spool or _Spool()
                    spool.begin(data)
                value = b""
            elif kind == "data":
                if in_file:
                    assert spool is not None
                    spool.write(data)
                    continue
                value += data
                if len(value) > _FIELDS_LIMIT:
                    raise InvalidRequestError("A form field is larger than 1 MiB.", param=name)
            elif in_file:
                assert spool is not None
                spool.end()
                in_file = False
            elif name is not None:
                _add(fields, name, value.decode("utf-8", "replace"))
                name = None
    return Form(fields, None, spool, size=size_hint, checked=checked)


def _add(fields: dict[str, Any], name: str, text: str) -> None:
    previous = fields.get(name)
    if previous is None:
        fields[name] = text
    elif name.endswith("[]"):  # an array field (``timestamp_granularities[]``): keep every value
        fields[name] = [*previous, text] if isinstance(previous, list) else [previous, text]
    else:
        raise _duplicate(name)


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
