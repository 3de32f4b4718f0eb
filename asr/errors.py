"""Exceptions raised on bad input. Every message names the file (and the
utterance, line or phone) and says what is wrong."""


class AsrError(Exception):
    """Base class for errors the toolkit reports to the user without a traceback."""


class AudioError(AsrError):
    """An audio file cannot be read or is unusable (empty, corrupt, wrong rate)."""


class DataError(AsrError):
    """A corpus file or data directory is missing, malformed or inconsistent."""


class GraphError(AsrError):
    """A language model or decoding graph cannot be built or read."""


class ModelError(AsrError):
    """A model directory is missing files or is inconsistent."""
