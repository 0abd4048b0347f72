"""Passwords in URLs: nntune prints and stores URLs with the password masked.

A storage URL may carry a password (`postgresql://alice:secret@db/nntune`). What nntune shows
(errors, `--json`, result.json, the study's attributes that optuna-dashboard displays) holds
`***` in its place. A masked URL still connects: its password is left out, and the database
driver takes it from where users keep it (libpq: PGPASSWORD, ~/.pgpass, a service file).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def mask_url(url: str) -> str:
    """`url` with its password (if any) replaced by ***; anything that is not a URL unchanged."""
    if "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.password is None:
            return url
        return parsed.render_as_string(hide_password=True)
    except Exception:  # not a database URL (http(s) data): the generic form
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))


def without_mask(url: str) -> str:
    """A masked database URL as one to connect with: no password, so the driver looks it up."""
    if "://" not in url or MASK not in url:
        return url
    from sqlalchemy.engine import URL, make_url

    parsed = make_url(url)
    if parsed.password != MASK:
        return url
    bare = URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database,
                      parsed.query)  # (URL.set treats password=None as 'unchanged')
    return bare.render_as_string(hide_password=False)


def scrub(text: str, url: str) -> str:
    """`text` (an error message that may quote `url`) with the password gone."""
    masked = mask_url(url)
    if masked == url:
        return text
    text = text.replace(url, masked)
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:
        password = urlsplit(url).password
    return text.replace(str(password), MASK) if password else text
