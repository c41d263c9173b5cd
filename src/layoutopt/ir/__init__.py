"""Graph-level facts: op identities (``ops``), node access (``access``), meta refresh (``propagate``)."""
