"""Evaluation: what humans did with the predictions, and how good each pre-annotator is.

Region matching (:mod:`.match`, the one overlap function), metrics (:mod:`.metrics`), the
correction classifier and its files (:mod:`.corrections`), the HTML report (:mod:`.report`) and
rule suggestions (:mod:`.suggest`). Nothing here talks to Label Studio or trains anything:
the harvest, the gate, fusion and the rankers all judge through this package.
"""
