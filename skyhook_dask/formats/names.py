"""Object names: the rule every backend and every manifest follows."""

from __future__ import annotations

import re

from ..exceptions import InvalidNameError

# Object names are '/'-separated paths of safe components: no '..', no empty parts, no
# leading '/', no control characters. The same rule on every backend keeps datasets portable.
_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+=@,\-]*$")
MAX_NAME_LENGTH = 1024


def validate_name(name: str, what: str = "object name") -> str:
    """Return ``name`` if it is a safe object name, else raise :class:`InvalidNameError`."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"{what} must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(f"{what} {name[:40]!r}... is longer than {MAX_NAME_LENGTH}")
    for part in name.split("/"):
        if part in ("", ".", "..") or not _COMPONENT.fullmatch(part):
            raise InvalidNameError(
                f"{what} {name!r} has an invalid part {part!r}: parts are letters, digits and "
                "_.:+=@,- and may not be empty, '.' or '..'"
            )
    return name
