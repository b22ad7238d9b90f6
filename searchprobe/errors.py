"""One exception hierarchy. The CLI prints any of these as `error: …` and exits 2."""


class SearchprobeError(Exception):
    """Base class: a problem the user can fix, explained in one line."""


class ConfigError(SearchprobeError):
    """A config file or option is malformed: unknown key, wrong type, value out of range."""


class InputError(SearchprobeError, ValueError):
    """An argument or input value is not allowed (e.g. a <= 0, a malformed machine string)."""


class DataError(SearchprobeError):
    """A dataset, token string or file on disk is corrupt, foreign or empty."""


class FingerprintMismatch(SearchprobeError):
    """Two artefacts that must belong together were made from different things."""
