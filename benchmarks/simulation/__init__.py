"""What the benchmarks and the tests both set up: a project folder's ``preannot.toml``
(:mod:`.config`) and a Label Studio user who submits gold (:mod:`.annotator`).

It lives beside the benchmarks, which run as ``python benchmarks/x.py`` and import it as
``simulation``; the tests import it as ``benchmarks.simulation`` (the repository root is on
their path). It stays out of the preannot wheel: it is no part of the product."""
