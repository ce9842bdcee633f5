"""Automations: user-defined, parameterised, dependent runs of NixDeck's operations (DESIGN §7).

Definitions live in the project's ``nixdeck.toml`` (``[groups.*]``, ``[automations.*]``);
``catalog`` validates each on its own (a broken one is listed with its error, never stops the
project), ``runner`` runs one as a parent task whose steps are child tasks of the operations'
own kinds, ``plan`` resolves a dry run, ``transfer`` exports, imports and edits them.
"""
