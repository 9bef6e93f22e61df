"""Rust's string conventions, so that error messages read as the Rust task's do."""

# Unicode White_Space, what Rust's `str::trim` removes (Python's `strip` also removes
# U+001C..U+001F, which Rust keeps).
RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def trim(text: str) -> str:
    """Rust's ``str::trim``."""
    return text.strip(RUST_WHITESPACE)


def trim_start(text: str) -> str:
    """Rust's ``str::trim_start``."""
    return text.lstrip(RUST_WHITESPACE)


def is_ascii_digits(text: str) -> bool:
    """Every character is 0-9 (``str.isdigit`` also takes other scripts' digits)."""
    return all("0" <= c <= "9" for c in text)


def debug(text: str) -> str:
    """Rust's ``{:?}`` of a string: quoted, with quotes, backslashes and controls escaped."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)
