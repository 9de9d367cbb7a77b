"""The built-in features, registered through the same hooks a third-party plugin uses, as
datasette lists ``DEFAULT_PLUGINS``: the host loads these before any installed plugin, and
``PREANNOT_PLUGINS`` (which restricts installed plugins) never leaves them out."""

from __future__ import annotations

DEFAULT_PLUGINS = (
    "preannot.labelstudio.plugin",   # the kernel's own: rankers, re-predict on a promotion
    "preannot.harvest.plugin",       # `ls pull`, `ls suggest-rules`
    "preannot.selection.plugin",     # selectors, embeddings, `similar`, `duplicates`, `embed`
    "preannot.training.plugin",      # the model registry, the gate, fusion, `train`, `models`
    "preannot.production.plugin",    # production review and drift: `review`, `drift`
    "preannot.serve.plugin",         # the ML backend: `serve`, `ls connect`, `ls disconnect`
)
