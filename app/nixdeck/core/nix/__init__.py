"""Everything NixDeck knows about Nix.

version (find nix, NixVersion, NixMissing/NixTooOld), commands (argv builders), attrs (NixOS
attribute paths), outputs (`--json` stdout), parser (incremental stderr parser) with codes, messages,
progress, events and plain, parselog (whole-log summary for `parse-log`), lockdiff, errors
(store path mapping, untracked files, missing attributes).
"""
