"""The harvest: what humans did in Label Studio, fetched incrementally (:mod:`.store`), turned
into corrections, metrics and a report (:mod:`.pull`), and rule suggestions; announced to the
other features through the ``harvested`` event."""

REQUIRES: tuple[str, ...] = ()
