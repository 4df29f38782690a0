"""Error types shared by every part of serveplan.

Every error a user can cause derives from :class:`ServeplanError`, so the CLI can print it as one
clear line and exit non-zero without a traceback.
"""

from __future__ import annotations

from typing import Any


class ServeplanError(Exception):
    """Base class of every error serveplan raises on purpose."""


_KEEP: Any = object()  # InputError.relabel: keep this part of the error


class InputError(ServeplanError, ValueError):
    """Bad input: names where it came from (file, field) and the offending value.

    Parameters
    ----------
    message : str
        What is wrong, in words.
    source : str, optional
        The file (or other origin) the input came from.
    field : str, optional
        The key path of the offending field, e.g. ``servers[3].memory_gb``.
    value : Any, optional
        The offending value.
    hint : str, optional
        What to do instead.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        field: str | None = None,
        value: Any = ...,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.field = field
        self.value = value
        self.hint = hint
        super().__init__(self.__str__())

    def relabel(self, *, source: Any = _KEEP, field: Any = _KEEP, value: Any = _KEEP, hint: Any = _KEEP) -> InputError:
        """The same message with some of ``source``, ``field``, ``value`` and ``hint`` replaced.

        For a caller that knows more about where the input came from than the code that raised.
        """
        return InputError(
            self.message,
            source=self.source if source is _KEEP else source,
            field=self.field if field is _KEEP else field,
            value=self.value if value is _KEEP else value,
            hint=self.hint if hint is _KEEP else hint,
        )

    def __str__(self) -> str:
        where = []
        if self.source:
            where.append(str(self.source))
        if self.field:
            where.append(f"field '{self.field}'")
        text = ": ".join([", ".join(where), self.message]) if where else self.message
        if self.value is not ...:
            text += f" (got {self.value!r})"
        if self.hint:
            text += f"; {self.hint}"
        return text


class BackendUnavailableError(ServeplanError):
    """A solver backend whose package is not installed or cannot run here."""


class UnknownNameError(InputError):
    """A name (method, backend, figure, experiment) that no registry knows."""
