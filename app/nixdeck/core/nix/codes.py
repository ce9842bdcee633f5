"""Numeric codes of Nix's internal-json log: verbosity levels, activity types and result types.

Values are those of Nix's `logging.hh` (2.4-2.19: activities 100-111, results 100-107; 2.20+ adds
activity 112 FetchTree and result 108 FetchStatus; upstream 2.36pre adds activity 113 FetchToStore and
result 109 FetchToStore). Determinate Nix 3.1+ gives 109 and 110 other meanings (HashMismatch and
BuildResult, with a JSON `payload` instead of `fields`): result 109 is told apart by its `payload`.
Lix 2.95 stops at 111/107. Unknown values are kept as plain ints by the parser, so these enums are
for naming, never for validation.
"""

from __future__ import annotations

from enum import IntEnum


class Level(IntEnum):
    """Nix verbosity levels (`lvlError` .. `lvlVomit`)."""

    ERROR = 0
    WARN = 1
    NOTICE = 2
    INFO = 3
    TALKATIVE = 4
    CHATTY = 5
    DEBUG = 6
    VOMIT = 7


class ActivityType(IntEnum):
    """`actUnknown` .. `actBuildWaiting`."""

    UNKNOWN = 0
    COPY_PATH = 100
    FILE_TRANSFER = 101
    REALISE = 102
    COPY_PATHS = 103
    BUILDS = 104
    BUILD = 105
    OPTIMISE_STORE = 106
    VERIFY_PATHS = 107
    SUBSTITUTE = 108
    QUERY_PATH_INFO = 109
    POST_BUILD_HOOK = 110
    BUILD_WAITING = 111
    FETCH_TREE = 112  # 2.20+
    FETCH_TO_STORE = 113  # upstream 2.36pre: fields [srcPath, hashOnly]


class ResultType(IntEnum):
    """`resFileLinked` .. `resPostBuildLogLine`."""

    FILE_LINKED = 100
    BUILD_LOG_LINE = 101
    UNTRUSTED_PATH = 102
    CORRUPTED_PATH = 103
    SET_PHASE = 104
    PROGRESS = 105
    SET_EXPECTED = 106
    POST_BUILD_LOG_LINE = 107
    FETCH_STATUS = 108  # 2.20+: fields [status text]
    FETCH_TO_STORE = 109  # upstream 2.36pre: fields [storePath]; Determinate: HashMismatch (payload)
    BUILD_RESULT = 110  # Determinate 3.1+: payload {status, builtOutputs, startTime, stopTime, timesBuilt}


#: Determinate Nix's meaning of result 109 (a `payload` object, no `fields`).
DETERMINATE_HASH_MISMATCH = 109


#: Message kinds NixDeck groups Nix levels into.
KIND_ERROR = "error"
KIND_WARNING = "warning"
KIND_NOTICE = "notice"
KIND_INFO = "info"
KIND_DEBUG = "debug"


def kind_of_level(level: int) -> str:
    """Group a Nix level: 0 error, 1 warning, 2 notice, 3 info, 4 and above debug."""
    if level <= 0:
        return KIND_ERROR
    if level == 1:
        return KIND_WARNING
    if level == 2:
        return KIND_NOTICE
    if level == 3:
        return KIND_INFO
    return KIND_DEBUG
