"""Optional country lookup from a MaxMind-format (.mmdb) file, read with ``maxminddb``.

``pip install 'mailwarden[geoip]'`` adds the reader; without it, or without a
file, the ``countries`` signal is skipped and the result says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mailwarden.errors import ConfigError, InputError


def country_lookup(path: str | None, notes: list[str]) -> Callable[[str], str | None] | None:
    """A function ip -> ISO country code (or None), or None when no GeoIP file is usable."""
    if not path:
        notes.append("no GeoIP file (--geoip / [hunt] geoip): countries not scored")
        return None
    try:
        import maxminddb
    except ImportError:
        raise ConfigError("--geoip needs the maxminddb package: pip install 'mailwarden[geoip]'") from None
    if not Path(path).is_file():
        raise InputError(f"GeoIP file not found: {path}")
    try:
        reader = maxminddb.open_database(path)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise InputError(f"cannot read GeoIP file {path}: {exc}") from None

    def country(ip: str) -> str | None:
        try:
            record = reader.get(ip)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        for key in ("country", "registered_country"):
            entry = record.get(key)
            if isinstance(entry, dict) and isinstance(entry.get("iso_code"), str):
                return entry["iso_code"]
        return None

    return country
