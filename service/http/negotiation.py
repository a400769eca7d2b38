"""Which body a request accepts: JSON or CSV, chosen as Crossbar's cowboy chooses (§1 step 7).

Crossbar provides JSON (`application/json`, `application/x-json`) first, then CSV
(`application/octet-stream`, `text/csv`, `text/comma-separated-values`). Cowboy takes
the client's media ranges from the highest quality down and answers with the first
provided type a range matches: `*/*` and `application/*` give JSON, `text/*` gives CSV.
Nothing matching is a 406.
"""

from __future__ import annotations

from typing import Literal

Body = Literal["json", "csv"]

JSON_TYPES = ("application/json", "application/x-json")
CSV_TYPES = ("application/octet-stream", "text/csv", "text/comma-separated-values")
PROVIDED: tuple[tuple[str, Body], ...] = (
    *((kind, "json") for kind in JSON_TYPES),
    *((kind, "csv") for kind in CSV_TYPES),
)


def preferred_body(accept: str | None) -> Body | None:
    """The body for this `Accept` header; None when it accepts neither (406)."""
    if not accept or not accept.strip():
        return "json"
    for media_range in _by_quality(accept):
        chosen = _match(media_range)
        if chosen is not None:
            return chosen
    return None


def _by_quality(accept: str) -> list[str]:
    ranges: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        kind, _, params = part.partition(";")
        kind = kind.strip().lower()
        if not kind:
            continue
        quality = _quality(params)
        if quality > 0:
            # Highest quality first; equal qualities keep the client's order.
            ranges.append((-quality, position, kind))
    return [kind for _q, _p, kind in sorted(ranges)]


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 1.0  # an unreadable weight is no reason to refuse the request
    return 1.0


def _match(media_range: str) -> Body | None:
    if media_range.endswith("+json"):
        # Not among Crossbar's types, but a JSON answer is what such a client wants.
        return "json"
    main, _, sub = media_range.partition("/")
    for kind, body in PROVIDED:
        provided_main, _, provided_sub = kind.partition("/")
        if main in ("*", provided_main) and sub in ("*", provided_sub):
            return body
    return None
