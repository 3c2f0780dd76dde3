"""The exceptions jaxopt_mat raises.

Every error a user can cause derives from :class:`JaxOptMatError`; the CLI
turns each into a one-line message and a non-zero exit code.
"""


class JaxOptMatError(Exception):
    """Base class of every error jaxopt_mat raises on purpose."""

    exit_code = 1


class ConfigError(JaxOptMatError):
    """A campaign configuration is malformed or inconsistent."""

    exit_code = 2


class DataError(JaxOptMatError):
    """Observations or candidate tables are malformed."""

    exit_code = 3


class RepeatedBatchError(DataError):
    """Measurements repeat an earlier batch exactly (most likely the same file observed twice)."""


class InfeasibleError(JaxOptMatError):
    """The bounds and linear constraints leave no feasible point."""

    exit_code = 2


class NumericalError(JaxOptMatError):
    """A numerical step failed (e.g. a Cholesky factorisation despite jitter)."""

    exit_code = 4


class CampaignError(JaxOptMatError):
    """A campaign folder is missing, incomplete or in an unexpected state."""

    exit_code = 5


def read_data_file(path, what: str = "file") -> str:
    """The text of a user's data file; a missing or unreadable file becomes a :class:`DataError`.

    The file is read as UTF-8; a leading byte-order mark (which spreadsheet
    programs write to "CSV UTF-8" files) is dropped, so the first column's name
    stays what it looks like.
    """
    from pathlib import Path

    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except UnicodeDecodeError as e:
        line = e.object[:e.start].count(b"\n") + 1
        raise DataError(f"{path} line {line}: not UTF-8 text (byte 0x{e.object[e.start]:02x}); save it as UTF-8") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e})") from None


def refuse_repeated_columns(header, wanted, source: str) -> None:
    """A :class:`DataError` when a column the caller reads appears more than once in ``header``.

    Which of two ``yield`` columns is the measurement cannot be guessed, so
    the file is refused instead of one of them being used silently.
    """
    repeated = sorted({c for c in wanted if header.count(c) > 1})
    if repeated:
        raise DataError(f"{source}: column(s) {', '.join(repeated)} appear more than once in the header")


def separator_hint(header) -> str:
    """A hint for a header that is one field holding ``;`` or tabs: a file not separated by commas.

    Returns ``""`` when the header does not look like that, otherwise a
    sentence to append to an error message.
    """
    if len(header) == 1 and any(sep in header[0] for sep in (";", "\t")):
        sep = "';'" if ";" in header[0] else "tabs"
        return f" (its header is a single field separated by {sep}: save the file with commas as separators)"
    return ""
